// pybind11 bindings for the C++ kernels in csrc/: shape checks and the GIL only.
//
// Every function takes C-contiguous arrays of one float dtype (the float32 and float64
// overloads are tried in that order without conversion first, so a matching array is
// never copied) and releases the GIL for the computation. Calls run the instruction-set
// level chosen when the module loads (dispatch.hpp; FASTBLUR_SIMD forces one).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "build_info.hpp"
#include "dispatch.hpp"

namespace py = pybind11;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

void check_ndim(const py::array& array, py::ssize_t ndim, const char* what) {
  require(array.ndim() == ndim, std::string(what) + " must have " + std::to_string(ndim) +
                                    " dimensions, got " + std::to_string(array.ndim()));
}

template <typename T>
py::array_t<T> convolve_valid(CArray<T> image, CArray<T> kernel, int num_threads) {
  check_ndim(image, 3, "image (H, W, C)");
  check_ndim(kernel, 2, "kernel (kh, kw)");
  const auto height = image.shape(0), width = image.shape(1), channels = image.shape(2);
  const auto kh = kernel.shape(0), kw = kernel.shape(1);
  require(kh >= 1 && kw >= 1 && kh <= height && kw <= width,
          "kernel must be non-empty and fit in the image in valid mode");
  py::array_t<T> out({height - kh + 1, width - kw + 1, channels});
  const T* in_ptr = image.data();
  const T* k_ptr = kernel.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::kernels<T>().convolve_valid(
        in_ptr, height, width, channels, k_ptr, kh, kw, out_ptr, num_threads);
  }
  return out;
}

// Shared checks of the stacked operations (image, kernels and weights).
template <typename T>
void check_stack(const CArray<T>& image, const CArray<T>& kernels, const CArray<T>& weights) {
  check_ndim(image, 3, "image (H, W, C)");
  check_ndim(kernels, 3, "kernels (N, kh, kw)");
  check_ndim(weights, 3, "weights (N, h, w)");
  require(kernels.shape(1) >= 1 && kernels.shape(2) >= 1 &&
              kernels.shape(1) <= image.shape(0) && kernels.shape(2) <= image.shape(1),
          "kernels must be non-empty and fit in the image in valid mode");
  require(weights.shape(0) == kernels.shape(0), "weights must hold one map per kernel");
}

template <typename T>
py::array_t<T> blur_masked_valid(CArray<T> image, CArray<T> kernels, CArray<T> weights,
                                 double zero_weight, int num_threads) {
  check_stack(image, kernels, weights);
  const auto height = image.shape(0), width = image.shape(1), channels = image.shape(2);
  const auto count = kernels.shape(0), kh = kernels.shape(1), kw = kernels.shape(2);
  const auto out_height = height - kh + 1, out_width = width - kw + 1;
  require(weights.shape(1) == out_height && weights.shape(2) == out_width,
          "weights must be (N, H - kh + 1, W - kw + 1) on the output grid");
  py::array_t<T> out({out_height, out_width, channels});
  const T *in_ptr = image.data(), *k_ptr = kernels.data(), *w_ptr = weights.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::kernels<T>().blur_masked_valid(
        in_ptr, height, width, channels, k_ptr, count, kh, kw, w_ptr,
        static_cast<T>(zero_weight), out_ptr, num_threads);
  }
  return out;
}

template <typename T>
py::array_t<T> blur_product_valid(CArray<T> image, CArray<T> kernels, CArray<T> weights,
                                  double zero_weight, int num_threads) {
  check_stack(image, kernels, weights);
  const auto height = image.shape(0), width = image.shape(1), channels = image.shape(2);
  const auto count = kernels.shape(0), kh = kernels.shape(1), kw = kernels.shape(2);
  require(weights.shape(1) == height && weights.shape(2) == width,
          "weights must be (N, H, W) on the input grid");
  py::array_t<T> out({height - kh + 1, width - kw + 1, channels});
  const T *in_ptr = image.data(), *k_ptr = kernels.data(), *w_ptr = weights.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::kernels<T>().blur_product_valid(
        in_ptr, height, width, channels, k_ptr, count, kh, kw, w_ptr,
        static_cast<T>(zero_weight), out_ptr, num_threads);
  }
  return out;
}

// Shared checks of the mask convolutions: (count, height, width, kh, kw).
template <typename T>
std::array<py::ssize_t, 5> check_masks(const py::array_t<std::uint8_t, py::array::c_style>& masks,
                                       const CArray<T>& kernels) {
  check_ndim(masks, 3, "masks (N, H, W)");
  check_ndim(kernels, 3, "kernels (N, kh, kw)");
  const auto count = masks.shape(0), height = masks.shape(1), width = masks.shape(2);
  const auto kh = kernels.shape(1), kw = kernels.shape(2);
  require(kernels.shape(0) == count, "kernels must hold one kernel per mask");
  require(kh >= 1 && kw >= 1 && kh <= height && kw <= width,
          "kernels must be non-empty and fit in the masks in valid mode");
  return {count, height, width, kh, kw};
}

template <typename T>
py::array_t<T> convolve_masks_valid(py::array_t<std::uint8_t, py::array::c_style> masks,
                                    CArray<T> kernels, int num_threads) {
  const auto [count, height, width, kh, kw] = check_masks(masks, kernels);
  py::array_t<T> out({count, height - kh + 1, width - kw + 1});
  const std::uint8_t* m_ptr = masks.data();
  const T* k_ptr = kernels.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::kernels<T>().convolve_masks_valid(
        m_ptr, count, height, width, k_ptr, kh, kw, out_ptr, num_threads);
  }
  return out;
}

template <typename T>
py::array_t<T> smooth_masks_valid(py::array_t<std::uint8_t, py::array::c_style> masks,
                                  CArray<T> kernels, std::int64_t group, double eps,
                                  int num_threads) {
  const auto [count, height, width, kh, kw] = check_masks(masks, kernels);
  require(group >= 1 && count % group == 0, "group must divide the number of masks");
  py::array_t<T> out({count, height - kh + 1, width - kw + 1});
  const std::uint8_t* m_ptr = masks.data();
  const T* k_ptr = kernels.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::kernels<T>().smooth_masks_valid(m_ptr, count, group, height, width, k_ptr, kh,
                                              kw, static_cast<T>(eps), out_ptr, num_threads);
  }
  return out;
}

template <typename T>
py::array_t<T> blur_grid_valid(CArray<T> image, CArray<T> kernels, CArray<double> node_rows,
                               CArray<double> node_cols, int num_threads) {
  check_ndim(image, 3, "image (H, W, C)");
  check_ndim(kernels, 4, "kernels (ny, nx, kh, kw)");
  check_ndim(node_rows, 1, "node_rows (ny,)");
  check_ndim(node_cols, 1, "node_cols (nx,)");
  const auto height = image.shape(0), width = image.shape(1), channels = image.shape(2);
  const auto ny = kernels.shape(0), nx = kernels.shape(1);
  const auto kh = kernels.shape(2), kw = kernels.shape(3);
  require(ny >= 1 && nx >= 1, "kernels must hold at least one node");
  require(kh >= 1 && kw >= 1 && kh <= height && kw <= width,
          "kernels must be non-empty and fit in the image in valid mode");
  require(node_rows.shape(0) == ny && node_cols.shape(0) == nx,
          "node_rows and node_cols must hold one position per node row and column");
  const double* rows_ptr = node_rows.data();
  const double* cols_ptr = node_cols.data();
  for (py::ssize_t k = 0; k < ny; ++k)
    require(std::isfinite(rows_ptr[k]) && (k == 0 || rows_ptr[k] > rows_ptr[k - 1]),
            "node_rows must be finite and increasing");
  for (py::ssize_t k = 0; k < nx; ++k)
    require(std::isfinite(cols_ptr[k]) && (k == 0 || cols_ptr[k] > cols_ptr[k - 1]),
            "node_cols must be finite and increasing");
  py::array_t<T> out({height - kh + 1, width - kw + 1, channels});
  const T *in_ptr = image.data(), *k_ptr = kernels.data();
  T* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastblur::kernels<T>().blur_grid_valid(in_ptr, height, width, channels, k_ptr, ny, nx, kh,
                                           kw, rows_ptr, cols_ptr, out_ptr, num_threads);
  }
  return out;
}

// 8-bit codes of float32 values by thresholds (csrc/quantize.hpp).
py::array_t<std::uint8_t> quantize_by_thresholds(CArray<float> values,
                                                 CArray<std::uint32_t> buckets, int shift,
                                                 std::uint32_t clamp_bits, int num_threads) {
  check_ndim(buckets, 1, "buckets");
  require(shift >= 0 && shift < 24, "shift must lie in [0, 24)");
  require(static_cast<py::ssize_t>(clamp_bits >> shift) < buckets.shape(0),
          "buckets must cover every bucket up to clamp_bits");
  const std::uint32_t* b_ptr = buckets.data();
  const std::uint32_t size = 1u << shift;
  require(std::all_of(b_ptr, b_ptr + buckets.shape(0),
                      [size](std::uint32_t entry) {
                        const std::uint32_t code = entry & 0xFFu, offset = entry >> 8;
                        return offset <= size && (code < 255 || offset == size);
                      }),
          "buckets must hold a code in [0, 255] and an offset in [0, 2^shift], the offset "
          "2^shift where the code is 255");
  std::vector<py::ssize_t> shape(values.shape(), values.shape() + values.ndim());
  py::array_t<std::uint8_t> codes(shape);
  const float* in_ptr = values.data();
  std::uint8_t* out_ptr = codes.mutable_data();
  const auto count = static_cast<std::int64_t>(values.size());
  {
    py::gil_scoped_release release;
    fastblur::active_variant().quantize_by_thresholds(in_ptr, count, b_ptr, shift, clamp_bits,
                                                      out_ptr, num_threads);
  }
  return codes;
}

template <typename T>
void bind_dtype(py::module_& m) {
  m.def("convolve_valid", &convolve_valid<T>, py::arg("image"), py::arg("kernel"),
        py::arg("num_threads") = 1,
        "`valid` convolution of every channel of image (H, W, C) by kernel (kh, kw).");
  m.def("blur_masked_valid", &blur_masked_valid<T>, py::arg("image"), py::arg("kernels"),
        py::arg("weights"), py::arg("zero_weight"), py::arg("num_threads") = 1,
        "sum_i weights[i] * (kernels[i] * image), weights on the output grid; kernel i is "
        "skipped where |weights[i]| <= zero_weight.");
  m.def("blur_product_valid", &blur_product_valid<T>, py::arg("image"), py::arg("kernels"),
        py::arg("weights"), py::arg("zero_weight"), py::arg("num_threads") = 1,
        "sum_i kernels[i] * (weights[i] * image), weights on the input grid.");
  m.def("convolve_masks_valid", &convolve_masks_valid<T>, py::arg("masks"),
        py::arg("kernels"), py::arg("num_threads") = 1,
        "kernels[i] * masks[i] for 0/1 uint8 masks (N, H, W); result in the kernels' dtype.");
  m.def("smooth_masks_valid", &smooth_masks_valid<T>, py::arg("masks"), py::arg("kernels"),
        py::arg("group"), py::arg("eps"), py::arg("num_threads") = 1,
        "convolve_masks_valid, then out[g * group + i] /= (sum_j out[g * group + j] + eps), "
        "summed in order of j (see csrc/mask_convolution.hpp).");
  m.def("blur_grid_valid", &blur_grid_valid<T>, py::arg("image"), py::arg("kernels"),
        py::arg("node_rows"), py::arg("node_cols"), py::arg("num_threads") = 1,
        "sum over the grid nodes (j, i) of hat_y[j] * hat_x[i] * (kernels[j, i] * image): "
        "kernels (ny, nx, kh, kw) at output rows node_rows (ny,) and columns node_cols "
        "(nx,), evenly spaced, with bilinear (hat) weights (see csrc/grid_blur.hpp).");
}

// Chooses the level calls run (FASTBLUR_SIMD, else the best this CPU runs) and records
// the choice in the module's attributes.
void select_variant(py::module_& m) {
  std::vector<std::string> compiled, runnable;
  for (const fastblur::Variant* variant : fastblur::compiled_variants()) {
    compiled.push_back(variant->name);
    if (fastblur::cpu_supports(variant->name)) runnable.push_back(variant->name);
  }
  if (runnable.empty())
    throw py::import_error("fastblur._native: this CPU runs none of the compiled kernel "
                           "levels (" + compiled.back() + " needs SSE4.2 and POPCNT)");
  const char* requested = std::getenv("FASTBLUR_SIMD");
  const auto [name, warning] = fastblur::choose_variant(requested ? requested : "", compiled,
                                                        runnable);
  if (!warning.empty() && PyErr_WarnEx(PyExc_RuntimeWarning, warning.c_str(), 1) != 0)
    throw py::error_already_set();
  for (const fastblur::Variant* variant : fastblur::compiled_variants())
    if (variant->name == name) fastblur::set_active_variant(*variant);
  const fastblur::Variant& active = fastblur::active_variant();
  m.attr("variant") = active.name;
  m.attr("simd_bytes") = active.simd_bytes;
  m.attr("compiled_variants") = py::tuple(py::cast(compiled));
  m.attr("cpu_variants") = py::tuple(py::cast(runnable));
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "fastblur C++ kernels (csrc/) bound with pybind11.";
  bind_dtype<float>(m);
  bind_dtype<double>(m);
  select_variant(m);
  m.def("_choose_variant", &fastblur::choose_variant, py::arg("requested"),
        py::arg("compiled"), py::arg("runnable"),
        "(level, warning) for the FASTBLUR_SIMD value `requested`, given the compiled "
        "levels and those this CPU runs (best first): the rule applied at import.");
  m.def("quantize_by_thresholds", &quantize_by_thresholds, py::arg("values"),
        py::arg("buckets"), py::arg("shift"), py::arg("clamp_bits"), py::arg("num_threads") = 1,
        "uint8 codes of float32 values by per-code thresholds (negative values 0, bits clamped "
        "to clamp_bits): buckets[bits >> shift] holds the code of the bucket's first value "
        "(low 8 bits) and the offset where the next starts (see csrc/quantize.hpp).");
  m.attr("has_openmp") = fastblur::has_openmp();
  m.def("threads_disabled_by_fork", &fastblur::threads_disabled_by_fork,
        "Whether this process was forked after the OpenMP pool started: GNU OpenMP does "
        "not survive fork(), so its calls run on one thread.");
}
