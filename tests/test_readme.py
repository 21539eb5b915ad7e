"""The README's API example runs and shows the shapes it claims."""
from conftest import needs_readme, run_readme_example


@needs_readme
def test_primitives_example_runs():
    code, namespace = run_readme_example("## The primitives")
    assert namespace["blurry"].shape == (656, 1216, 3)
    assert namespace["spread"].shape == (656, 1216, 3)
    assert namespace["batch"].shape == (1, 656, 1216, 3)
    assert "(656, 1216, 3)" in code


def _python_block(text, heading):
    section = text[text.index(heading):]
    code = section[section.index("```python\n") + len("```python\n"):]
    return code[: code.index("```")]


@pytest.mark.skipif(not README.exists(), reason="README.md not beside tests/")
def test_layer_examples_run_after_the_primitives():
    """The README's operators and backends examples run on the primitives example's arrays."""
    text = README.read_text(encoding="utf-8")
    namespace = {}
    exec(compile(_python_block(text, "## The primitives"), str(README), "exec"), namespace)
    exec(compile(_python_block(text, "## Linear operators and gradients"), str(README), "exec"), namespace)
    operator = namespace["A"]
    assert operator.ishape == (720, 1280, 3) and operator.oshape == (656, 1216, 3)
    assert "fastblur.explain(" in _python_block(text, "## Backends")
