"""The README's API example runs and shows the shapes it claims."""
from conftest import needs_readme, readme_example, run_readme_example


@needs_readme
def test_primitives_example_runs():
    code, namespace = run_readme_example("## The primitives")
    assert namespace["blurry"].shape == (656, 1216, 3)
    assert namespace["spread"].shape == (656, 1216, 3)
    assert namespace["batch"].shape == (1, 656, 1216, 3)
    assert "(656, 1216, 3)" in code


@needs_readme
def test_layer_examples_run_after_the_primitives():
    """The README's operators and backends examples run on the primitives example's arrays."""
    _, namespace = run_readme_example("## The primitives")
    run_readme_example("## Linear operators and gradients", namespace)
    operator = namespace["A"]
    assert operator.ishape == (720, 1280, 3) and operator.oshape == (656, 1216, 3)
    assert "fastblur.explain(" in readme_example("## Backends")
