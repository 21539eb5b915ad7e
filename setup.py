"""Build fastblur: the Python package plus the C++ extension ``fastblur._native``.

The extension is configured and compiled by ``CMakeLists.txt``; this file only hands
CMake the paths it needs (Python, pybind11, the output directory).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


def _drop_stale_cache(build_dir):
    """Forget a CMake cache whose tools are gone (pip's isolated build envs are temporary)."""
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists():
        return
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith(("CMAKE_MAKE_PROGRAM:", "CMAKE_COMMAND:")):
            tool = line.split("=", 1)[-1].strip()
            if tool and not Path(tool).exists():
                cache.unlink()
                shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
                return


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        _drop_stale_cache(build_dir)
        config = "Debug" if self.debug else "Release"
        configure = [
            "cmake", str(ROOT),
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DCMAKE_BUILD_TYPE={config}",
        ]
        try:
            import ninja  # noqa: F401

            configure += ["-G", "Ninja"]
        except ImportError:
            pass
        configure += os.environ.get("FASTBLUR_CMAKE_ARGS", "").split()
        subprocess.run(configure, cwd=build_dir, check=True)
        subprocess.run(["cmake", "--build", ".", "--config", config], cwd=build_dir, check=True)


setup(
    name="fastblur",
    version="0.1.0",
    description="Fast spatially varying blur and SBDD motion-deblurring training pairs",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["fastblur", "fastblur.*"]),
    package_data={"fastblur": ["data/*"]},
    ext_modules=[CMakeExtension("fastblur._native")],
    cmdclass={"build_ext": CMakeBuild},
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.10",
        "numba>=0.58",
        "pyfftw>=0.13",
        "scikit-image>=0.21",
        "opencv-python-headless>=4.8",
        "pillow>=9",
        "tqdm>=4.60",
        "tomli>=1.1; python_version < '3.11'",
        # the default PNG writer of fastblur-gen (a manylinux wheel; elsewhere OpenCV writes)
        "fpng>=0.1; platform_system == 'Linux' and platform_machine == 'x86_64'",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "pytest-benchmark>=4", "fpng>=0.1", "imagecodecs>=2023.1",
                 "pylops>=2.0", "deepinv>=0.2", "distributed>=2024.1", "s3fs>=2024.1", "moto[server]>=5",
                 "webdataset>=0.2", "matplotlib>=3.7"],
        # fastblur-gen's PNG writers: fpng for --png-compression fast, imagecodecs for small
        "codecs": ["fpng>=0.1", "imagecodecs>=2023.1"],
        "gpu": ["cupy-cuda12x>=13"],
        "gpu-cuda13": ["cupy-cuda13x>=14"],
        "torch": ["torch>=2.0"],
        "segment": ["torch>=2.0", "torchvision>=0.15"],
        "operators": ["pylops>=2.0"],
        "deepinv": ["torch>=2.0", "deepinv>=0.2"],
        # fastblur-gen beyond one machine: Dask, object stores
        "dask": ["distributed>=2024.1", "fsspec>=2024.1"],
        "s3": ["s3fs>=2024.1"],
        "gcs": ["gcsfs>=2024.1"],
        # the documentation site (docs/): sphinx-build -W --keep-going -b html docs docs/_build/html
        "docs": ["sphinx>=7", "numpydoc>=1.6", "sphinx-gallery>=0.15", "pydata-sphinx-theme>=0.15",
                 "matplotlib>=3.7", "sphinx-argparse>=0.4"],
    },
    entry_points={
        "console_scripts": [
            "fastblur-gen=fastblur.cli.gen:main",
            "fastblur-kernels=fastblur.cli.kernels:main",
            "fastblur-eval=fastblur.cli.eval:main",
            "fastblur-bench=fastblur.cli.bench:main",
            "fastblur-segment=fastblur.cli.segment:main",
        ]
    },
    zip_safe=False,
)
