"""Write the API reference pages from each documented module's ``__all__``.

Sphinx extension: on ``builder-inited`` it writes ``api/generated/MODULE.rst`` for every
module of :data:`MODULES` (one ``autosummary`` table, then one ``autofunction``,
``autoclass`` or ``autodata`` directive per name of ``__all__``), so a name added to an
``__all__`` is documented by the next build without editing the docs.
``tests/test_docs.py`` checks the pages against ``__all__``.
"""
import importlib
import inspect
from pathlib import Path

# The modules of the API reference, in the order of its index. A module that is not
# there (``ModuleNotFoundError`` for the module itself, e.g. one still on a branch) is
# left out; any other import error stops the build.
MODULES = (
    "fastblur",
    "fastblur.operators",
    "fastblur.kernels",
    "fastblur.sbdd",
    "fastblur.sbdd.segment",
    "fastblur.sbdd.codecs",
    "fastblur.sbdd.distributed",
    "fastblur.sbdd.storage",
    "fastblur.evaluate",
    "fastblur.torch",
)

OUT_DIR = Path(__file__).resolve().parents[1] / "api" / "generated"


def import_module(name):
    """``name`` imported, or None where that module itself does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name == name:
            return None
        raise


def documented_modules():
    """``{name: module}`` of the :data:`MODULES` that import here, in order."""
    modules = {}
    for name in MODULES:
        module = import_module(name)
        if module is not None:
            modules[name] = module
    return modules


def directive(module, name):
    """The autodoc directive for ``module.name``: autoclass, autofunction or autodata."""
    value = getattr(module, name)
    if inspect.isclass(value):
        return "autoclass"
    if callable(value):
        return "autofunction"
    return "autodata"


def page(module_name, module):
    """The reST page documenting every name of ``module.__all__``."""
    names = list(module.__all__)
    title = f"``{module_name}``"
    lines = [
        ".. This page is written by docs/_ext/apigen.py from __all__; do not edit.",
        "",
        title,
        "=" * len(title),
        "",
        f".. automodule:: {module_name}",
        "   :no-members:",
        "",
        f".. currentmodule:: {module_name}",
        "",
        ".. autosummary::",
        "",
    ]
    lines += [f"   {name}" for name in names]
    lines.append("")
    for name in names:
        kind = directive(module, name)
        lines += [f".. {kind}:: {name}"]
        if kind == "autoclass":
            lines += ["   :members:"]
        lines.append("")
    return "\n".join(lines)


def write_pages(out_dir=OUT_DIR):
    """Write one page a module into ``out_dir`` (stale pages removed); returns the names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = documented_modules()
    for stale in out_dir.glob("*.rst"):
        if stale.stem not in modules:
            stale.unlink()
    for name, module in modules.items():
        path = out_dir / f"{name}.rst"
        text = page(name, module)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return list(modules)


def _on_builder_inited(app):
    write_pages(Path(app.srcdir) / "api" / "generated")


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
