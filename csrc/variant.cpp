// The table of entry points of the level this copy is compiled for (see dispatch.hpp).
#include "variant.hpp"

#include "direct_convolution.hpp"
#include "dispatch.hpp"
#include "grid_blur.hpp"
#include "mask_convolution.hpp"
#include "masked_blur.hpp"
#include "quantize.hpp"
#include "simd.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

namespace {

template <typename T>
constexpr Kernels<T> kernels_of() {
  return {&convolve_valid<T>, &blur_masked_valid<T>, &blur_product_valid<T>,
          &convolve_masks_valid<T>, &blur_grid_valid<T>, &smooth_masks_valid<T>};
}

#ifdef FASTBLUR_VECTOR_EXTENSION
constexpr int kSimdBytes = static_cast<int>(simd::kBytes);
#else
constexpr int kSimdBytes = 0;
#endif

}  // namespace

const Variant& variant() {
  static constexpr Variant table{FASTBLUR_VARIANT_NAME, kSimdBytes, kernels_of<float>(),
                                 kernels_of<double>(), &quantize_by_thresholds};
  return table;
}

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
