"""The documentation covers the public API and the command-line tools.

Fast checks without a Sphinx build: the API pages that ``docs/_ext/apigen.py`` writes
document exactly each listed module's ``__all__``, and every console script has a page
generated from its argparse parser. ``.ci/run`` builds the site itself, warnings as errors.
"""
import argparse
import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
pytestmark = pytest.mark.skipif(not (DOCS / "_ext" / "apigen.py").exists(), reason="docs/ not beside tests/")

# The modules the API reference must cover (issue 19); those not in this checkout yet are
# skipped by apigen and here.
REQUIRED = ("fastblur", "fastblur.kernels", "fastblur.sbdd", "fastblur.sbdd.segment", "fastblur.sbdd.codecs",
            "fastblur.evaluate", "fastblur.torch", "fastblur.operators")
DIRECTIVE = re.compile(r"^\.\. (autofunction|autoclass|autodata):: (\S+)$", re.M)


def _apigen():
    spec = importlib.util.spec_from_file_location("apigen", DOCS / "_ext" / "apigen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _autosummary(text):
    block = text.split(".. autosummary::\n", 1)[1]
    names = []
    for line in block.splitlines()[1:]:
        if not line.strip():
            break
        names.append(line.strip())
    return names


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    apigen = _apigen()
    if importlib.util.find_spec("torch") is None:  # the docs build mocks it; here it is left out
        apigen.MODULES = tuple(name for name in apigen.MODULES if name != "fastblur.torch")
    written = apigen.write_pages(out)
    return apigen, written, {path.stem: path.read_text(encoding="utf-8") for path in out.glob("*.rst")}


def test_every_required_module_is_listed():
    assert set(REQUIRED) <= set(_apigen().MODULES)


def test_pages_document_exactly_each_all(pages):
    apigen, written, texts = pages
    assert set(written) == set(texts)
    for name in REQUIRED:
        if name in apigen.MODULES and importlib.util.find_spec(name) is not None:
            assert name in written, f"{name} exists but has no API page"
    for name in written:
        module = importlib.import_module(name)
        text = texts[name]
        assert f".. automodule:: {name}\n" in text and f".. currentmodule:: {name}\n" in text
        directives = DIRECTIVE.findall(text)
        documented = [target for _, target in directives]
        assert sorted(documented) == sorted(module.__all__), f"{name}: API page differs from __all__"
        assert len(set(documented)) == len(documented)
        assert sorted(_autosummary(text)) == sorted(module.__all__)
        for kind, target in directives:
            value = getattr(module, target)
            expected = "autoclass" if inspect.isclass(value) else "autofunction" if callable(value) else "autodata"
            assert kind == expected, f"{name}.{target} documented with {kind}"


def test_stale_pages_are_removed(tmp_path):
    (tmp_path / "fastblur.gone.rst").write_text("old")
    _apigen().write_pages(tmp_path)
    assert not (tmp_path / "fastblur.gone.rst").exists()
    assert (tmp_path / "fastblur.rst").exists()


def test_api_index_includes_the_generated_pages():
    text = (DOCS / "api" / "index.rst").read_text(encoding="utf-8")
    assert ":glob:" in text and "generated/*" in text


def _console_scripts():
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    return dict(re.findall(r'"(fastblur-[a-z]+)=fastblur\.cli\.([a-z_]+):main"', text))


def test_every_command_has_a_page_from_its_parser():
    scripts = _console_scripts()
    assert {"fastblur-gen", "fastblur-kernels", "fastblur-eval", "fastblur-bench", "fastblur-segment"} <= set(scripts)
    index = (DOCS / "cli" / "index.rst").read_text(encoding="utf-8")
    for prog, module_name in scripts.items():
        page = DOCS / "cli" / f"{module_name}.rst"
        assert page.exists(), f"no page for {prog}"
        text = page.read_text(encoding="utf-8")
        assert f":module: fastblur.cli.{module_name}\n" in text and ":func: build_parser\n" in text
        assert f":prog: {prog}\n" in text
        assert re.search(rf"^   {module_name}$", index, re.M), f"{prog} missing from the CLI index"
        parser = importlib.import_module(f"fastblur.cli.{module_name}").build_parser()
        assert isinstance(parser, argparse.ArgumentParser) and parser.prog == prog


def test_gallery_examples_are_titled_scripts():
    examples = sorted((DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 6
    for path in examples:
        text = path.read_text(encoding="utf-8")
        title = text.split('"""', 2)[1].strip().splitlines()
        assert len(title) >= 2 and set(title[1]) == {"="} and len(title[1]) >= len(title[0]), path.name


def _code_blocks(path, language="python"):
    """The ``.. code-block:: language`` blocks of a reST page, dedented."""
    import textwrap

    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f".. code-block:: {language}":
            body = []
            for following in lines[i + 1:]:
                if following.strip() and not following.startswith("   "):
                    break
                body.append(following)
            blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


def test_conventions_example_runs_and_shows_its_shapes():
    """The primitives example of the conventions page (the README's, moved) runs."""
    code = _code_blocks(DOCS / "guide" / "conventions.rst")[0]
    namespace = {}
    exec(compile(code, "conventions.rst", "exec"), namespace)
    assert namespace["blurry"].shape == (656, 1216, 3)
    assert namespace["spread"].shape == (656, 1216, 3)
    assert namespace["batch"].shape == (1, 656, 1216, 3)
    assert namespace["batch_weights"].shape == (1, 3, 656, 1216)
    assert "(656, 1216, 3)" in code


def test_guide_has_the_pages_of_the_issue():
    index = (DOCS / "guide" / "index.rst").read_text(encoding="utf-8")
    for page in ("conventions", "backends", "formation", "generating", "evaluation", "training", "benchmarks"):
        assert (DOCS / "guide" / f"{page}.rst").exists(), page
        assert re.search(rf"^   {page}$", index, re.M), f"{page} missing from the guide's toctree"


@pytest.mark.skipif(not (ROOT / ".ci" / "run").exists() or not (ROOT / "README.md").exists(),
                    reason="no .ci/run or README.md beside tests/")
def test_ci_runs_the_readme_test_command_and_builds_the_docs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"&& (pytest tests [^\n#]*?)\s+#", readme).group(1)
    assert re.search(rf"^{re.escape(command)}$", ci, re.M)
    assert re.search(r"^sphinx-build -W --keep-going -b html docs docs/_build/html$", ci, re.M)
    assert re.search(r'pip install .*"\.\[test,docs\]"', ci)
