"""The README's API example runs and shows the shapes it claims."""
from conftest import needs_readme, run_readme_example


@needs_readme
def test_primitives_example_runs():
    code, namespace = run_readme_example("## The primitives")
    assert namespace["blurry"].shape == (656, 1216, 3)
    assert namespace["spread"].shape == (656, 1216, 3)
    assert namespace["batch"].shape == (1, 656, 1216, 3)
    assert "(656, 1216, 3)" in code
