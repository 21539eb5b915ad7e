// pybind11 bindings for the C++ kernels in csrc/: shape checks and the GIL only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "direct_convolution.hpp"

namespace py = pybind11;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <typename T>
py::array_t<T> convolve_valid(CArray<T> image, CArray<T> kernel, int num_threads) {
  if (image.ndim() != 3) throw std::invalid_argument("image must be (H, W, C)");
  if (kernel.ndim() != 2) throw std::invalid_argument("kernel must be (kh, kw)");
  const auto height = image.shape(0), width = image.shape(1), channels = image.shape(2);
  const auto kh = kernel.shape(0), kw = kernel.shape(1);
  if (kh > height || kw > width)
    throw std::invalid_argument("kernel larger than image in valid mode");
  py::array_t<T> out({height - kh + 1, width - kw + 1, channels});
  const T* in_ptr = image.data();
  const T* k_ptr = kernel.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::convolve_valid(in_ptr, height, width, channels, k_ptr, kh, kw, out_ptr,
                             num_threads);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "fastblur C++ kernels (csrc/) bound with pybind11.";
  m.def("convolve_valid", &convolve_valid<float>, py::arg("image"), py::arg("kernel"),
        py::arg("num_threads") = 1);
  m.def("convolve_valid", &convolve_valid<double>, py::arg("image"), py::arg("kernel"),
        py::arg("num_threads") = 1);
#ifdef FASTBLUR_HAVE_OPENMP
  m.attr("has_openmp") = true;
#else
  m.attr("has_openmp") = false;
#endif
}
