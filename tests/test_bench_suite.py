"""The benchmark suite (``bench/``) keeps up with the library: a benchmark that rots fails here,
not on the day someone times it.

Each script under ``bench/`` is imported as pytest imports it there (``bench/`` first on
``sys.path``); every ``fastblur`` name the scripts import or use (function bodies included)
must exist; and ``bench_sbdd``, whose end-to-end cases drive the dataset writer's internals,
runs each of its cases once (as ``--benchmark-disable`` does) on a tiny case, plus its
report's entry point.
"""
import ast
import importlib
import inspect
import io
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "conftest") if BENCH.is_dir() else []
#: Packages a script may need that fastblur does not: the script is skipped without them.
OPTIONAL = {"torch", "torchvision", "deepinv", "cupy", "cupyx", "distributed", "dask"}
#: The smallest object kept on bench_sbdd's tiny case (4000 px at 720p, as the reference).
MIN_AREA = 200

pytestmark = pytest.mark.skipif(not SCRIPTS, reason="no bench/ folder beside tests/ (not a source checkout)")


@pytest.fixture
def bench(monkeypatch):
    """``import_module`` for the scripts of ``bench/``; what they change (``sys.path``, the
    thread setting, ``sys.modules``) is undone afterwards."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", os.environ.get("FASTBLUR_NUM_THREADS", "1"))
    before = set(sys.modules)

    def load(name):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if (error.name or "").split(".")[0] in OPTIONAL:
                pytest.skip(f"bench/{name}.py needs {error.name}")
            raise

    yield load
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if Path(module_file).parent == BENCH:
            del sys.modules[name]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports(bench, name):
    module = bench(name)
    assert Path(module.__file__).resolve() == BENCH / f"{name}.py"


def _fastblur_names(tree):
    """``(line, module, name)`` of each ``from fastblur... import name``, ``import fastblur.x``
    and ``fastblur.name`` in ``tree`` (``name`` None: the module itself)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "fastblur":
            yield from ((node.lineno, node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name, None) for alias in node.names
                        if alias.name.split(".")[0] == "fastblur")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "fastblur":
            yield node.lineno, "fastblur", node.attr


def _missing(module_name, name):
    """Why ``module_name.name`` cannot be had (None if it can), or "optional" for a module
    that needs a package outside fastblur's own."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in OPTIONAL:
            return "optional"
        return f"cannot import {module_name}: {error}"
    if name is None or hasattr(module, name):
        return None
    try:  # a submodule
        importlib.import_module(f"{module_name}.{name}")
        return None
    except ModuleNotFoundError:
        return f"{module_name} has no {name!r}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_fastblur_names_used_exist(name):
    """Imports inside functions and fixtures run only when a benchmark does: checked here."""
    tree = ast.parse((BENCH / f"{name}.py").read_text(encoding="utf-8"))
    uses = sorted(set(_fastblur_names(tree)), key=lambda use: (use[0], use[1], use[2] or ""))
    problems = {use: _missing(*use[1:]) for use in uses}
    broken = [f"bench/{name}.py:{line}: {why}" for (line, *_), why in problems.items() if why not in (None, "optional")]
    assert not broken, "\n".join(broken)


class OneCall:
    """pytest-benchmark's fixture as ``--benchmark-disable`` runs it: the function, once."""

    def __init__(self):
        self.group, self.extra_info, self.calls = None, {}, 0

    def __call__(self, function, *args, **kwargs):
        self.calls += 1
        return function(*args, **kwargs)

    def pedantic(self, target, args=(), kwargs=None, setup=None, rounds=1, warmup_rounds=0, iterations=1):
        if setup is not None:
            made = setup()
            if made is not None:
                args, kwargs = made
        self.calls += 1
        return target(*args, **(kwargs or {}))


@pytest.fixture
def sbdd(bench, monkeypatch):
    """``bench_sbdd`` at 160x120 with 9x9 kernels."""
    module = bench("bench_sbdd")
    for name, value in dict(HEIGHT=120, WIDTH=160, KERNEL=9).items():
        monkeypatch.setattr(module, name, value)
    return module


@pytest.fixture
def pipelines(sbdd, tmp_path, monkeypatch):
    """The measured pipelines on the tiny case; the smallest object area scaled down with
    the image, so that its five objects are kept (as at 720p)."""
    from dataclasses import replace

    reference_masks = sbdd.reference_masks
    monkeypatch.setattr(sbdd, "reference_masks", lambda path: reference_masks(path, min_area=MIN_AREA))
    pipelines = sbdd.Pipelines(replace(sbdd.make_case(tmp_path), min_object_area=MIN_AREA))
    assert len(pipelines.masks) == sbdd.OBJECTS and len(pipelines.kernels) == sbdd.OBJECTS + 1
    return pipelines


def _read(path):
    from fastblur.sbdd.dataset import read_image

    return read_image(str(path))


def test_sbdd_pipelines_make_and_write_pairs(pipelines):
    from fastblur.sbdd.dataset import make_pair

    out = Path(pipelines.config.out)
    records = [pipelines.fastblur_pair() for _ in range(2)]
    assert [r["index"] for r in records] == [0, 1]  # successive pairs, as a run makes them
    for record in records:
        blurry, sharp = _read(out / record["blurry"]), _read(out / record["sharp"])
        _, expected, _ = make_pair(pipelines.config, record["index"])
        expected_blurry, expected_sharp = expected.to_uint8()
        np.testing.assert_array_equal(blurry, expected_blurry)
        np.testing.assert_array_equal(sharp, expected_sharp)
        assert list(blurry.shape[:2]) == record["size"]
    assert not np.array_equal(_read(out / records[0]["sharp"]), _read(out / records[1]["sharp"]))  # gains differ

    pipelines.codec_floor()
    crop = pipelines.image[32:-32, 32:-32]
    np.testing.assert_array_equal(_read(out / "blurry_ref.png"), crop)
    np.testing.assert_array_equal(_read(out / "sharp_ref.png"), crop)

    pipelines.reference_pair()
    blurry, sharp = _read(out / "blurry_ref.png"), _read(out / "sharp_ref.png")
    assert blurry.shape == sharp.shape and blurry.dtype == np.uint8 and not np.array_equal(blurry, sharp)

    for synthesis in (pipelines.fastblur_synthesis, pipelines.reference_synthesis):
        blurry, sharp = synthesis()
        assert blurry.shape == sharp.shape and blurry.ndim == 3 and blurry.dtype == np.uint8


def test_sbdd_cases_run_once(sbdd, pipelines):
    cases = {name: function for name, function in vars(sbdd).items()
             if name.startswith("bench_") and inspect.isfunction(function)}
    assert {"bench_fastblur_end_to_end", "bench_reference_style_end_to_end", "bench_codec_floor",
            "bench_fastblur_synthesis", "bench_reference_style_synthesis", "bench_generate"} <= set(cases)
    for name, case in cases.items():
        benchmark = OneCall()
        arguments = dict(benchmark=benchmark, pipelines=pipelines, workers=1)  # not 2: a pool's start-up
        case(**{p: arguments[p] for p in inspect.signature(case).parameters})
        assert benchmark.calls == 1, name
    written = Path(pipelines.config.out) / "w1"
    assert len(list(written.rglob("*.png"))) == 2 * 16  # bench_generate's 16 pairs


def test_sbdd_worker_memory_helper(sbdd, pipelines):
    """The --workers report's worker body, run here rather than in a spawned process."""
    before, peak = sbdd._worker_memory(pipelines.config.to_dict(), 2)
    assert 0 < before <= peak


def test_sbdd_report_runs(sbdd):
    cv2 = pytest.importorskip("cv2")
    threads = cv2.getNumThreads()
    output = io.StringIO()
    try:
        with redirect_stdout(output):
            sbdd.main(["--count", "2", "--repeat", "1", "--masks", "shapes,detectron2", "--formats", "png"])
    finally:
        cv2.setNumThreads(threads)
    lines = output.getvalue().splitlines()
    assert sum(" ms a pair (" in line for line in lines) == 2, lines
    assert sum("x one fftconvolve" in line for line in lines) == 2, lines


@pytest.mark.parametrize("name", ["bench_sbdd", "bench_scale", "kernel_stats"])
def test_report_help(bench, name, monkeypatch, capsys):
    module = bench(name)
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"]) if "argv" in inspect.signature(module.main).parameters else module.main()
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out
