"""The README's API example runs and shows the shapes it claims."""
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md not beside tests/")
def test_primitives_example_runs():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The primitives"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    code = code[: code.index("```")]
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["blurry"].shape == (656, 1216, 3)
    assert namespace["spread"].shape == (656, 1216, 3)
    assert namespace["batch"].shape == (1, 656, 1216, 3)
    assert "(656, 1216, 3)" in code
