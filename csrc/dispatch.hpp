// Runtime dispatch of the hot kernels.
//
// Each hot source is compiled once per instruction-set level into its own namespace
// (fastblur::sse4, fastblur::avx2, fastblur::avx512; fastblur::baseline on other
// processors; fastblur::native with FASTBLUR_NATIVE_ARCH), see CMakeLists.txt. Every
// level fills one table of entry points (variant.cpp), and calls go through the table of
// the level chosen when the module loads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fastblur {

// The entry points of one level for one dtype (signatures as in direct_convolution.hpp,
// masked_blur.hpp, mask_convolution.hpp and grid_blur.hpp).
template <typename T>
struct Kernels {
  void (*convolve_valid)(const T* image, std::int64_t height, std::int64_t width,
                         std::int64_t channels, const T* kernel, std::int64_t kh,
                         std::int64_t kw, T* out, int num_threads);
  void (*blur_masked_valid)(const T* image, std::int64_t height, std::int64_t width,
                            std::int64_t channels, const T* kernels, std::int64_t count,
                            std::int64_t kh, std::int64_t kw, const T* weights, T zero_weight,
                            T* out, int num_threads);
  void (*blur_product_valid)(const T* image, std::int64_t height, std::int64_t width,
                             std::int64_t channels, const T* kernels, std::int64_t count,
                             std::int64_t kh, std::int64_t kw, const T* weights,
                             T zero_weight, T* out, int num_threads);
  void (*convolve_masks_valid)(const std::uint8_t* masks, std::int64_t count,
                               std::int64_t height, std::int64_t width, const T* kernels,
                               std::int64_t kh, std::int64_t kw, T* out, int num_threads);
  void (*blur_grid_valid)(const T* image, std::int64_t height, std::int64_t width,
                          std::int64_t channels, const T* kernels, std::int64_t ny,
                          std::int64_t nx, std::int64_t kh, std::int64_t kw,
                          const double* node_rows, const double* node_cols, T* out,
                          int num_threads);
  void (*smooth_masks_valid)(const std::uint8_t* masks, std::int64_t count, std::int64_t group,
                             std::int64_t height, std::int64_t width, const T* kernels,
                             std::int64_t kh, std::int64_t kw, T eps, T* out, int num_threads);
};

// One compiled level of the kernels.
struct Variant {
  const char* name;  // "avx512", "avx2", "sse4", "baseline" or "native"
  int simd_bytes;    // width of the inner loops' vectors (0: no vector extension)
  Kernels<float> f32;
  Kernels<double> f64;
  // quantize.hpp
  void (*quantize_by_thresholds)(const float* values, std::int64_t count,
                                 const std::uint32_t* buckets, int shift,
                                 std::uint32_t clamp_bits, std::uint8_t* codes, int num_threads);
};

// The levels this build holds, best first.
const std::vector<const Variant*>& compiled_variants();

// Whether this CPU (and its operating system) can run the level called `name`.
bool cpu_supports(const std::string& name);

// The level to run, and a warning ("" if none), for the FASTBLUR_SIMD value `requested`:
// "" or "auto" takes the first of `runnable` (the compiled levels this CPU runs, best
// first); a level name takes that level, and one the build or the CPU lacks takes the
// first of `runnable` with a warning saying so. "baseline" names the lowest compiled
// level. Throws std::invalid_argument for any other value.
std::pair<std::string, std::string> choose_variant(const std::string& requested,
                                                   const std::vector<std::string>& compiled,
                                                   const std::vector<std::string>& runnable);

// The level calls run on (set once, when the module loads).
const Variant& active_variant();
void set_active_variant(const Variant& variant);

// The active level's entry points for dtype T (float or double).
template <typename T>
const Kernels<T>& kernels();
template <>
const Kernels<float>& kernels<float>();
template <>
const Kernels<double>& kernels<double>();

}  // namespace fastblur
