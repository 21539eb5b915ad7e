// Spatially varying blur by a stack of kernels and weight maps, `valid` mode, direct.
//
// Layout as in direct_convolution.hpp: image (height, width, channels) channels-last;
// kernels (count, kh, kw); output (out_height, out_width, channels) with
// out_height = height - kh + 1, out_width = width - kw + 1.
//
// Both operations are mask-restricted: a kernel is evaluated only where its weight is
// above `zero_weight` in magnitude (runs of such pixels along each output row for the
// gather form, rows of each tile for the scatter form), and every kernel's result is
// accumulated straight into the output, so no per-kernel full-size temporary exists.
#pragma once

#include <cstdint>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

// Gather form (SBDD): out = sum_i weights[i] * (kernels[i] * image), with weights
// (count, out_height, out_width) on the output grid.
template <typename T>
void blur_masked_valid(const T* image, std::int64_t height, std::int64_t width,
                       std::int64_t channels, const T* kernels, std::int64_t count,
                       std::int64_t kh, std::int64_t kw, const T* weights, T zero_weight,
                       T* out, int num_threads);

// Scatter form (product-convolution): out = sum_i kernels[i] * (weights[i] * image), with
// weights (count, height, width) on the input grid.
template <typename T>
void blur_product_valid(const T* image, std::int64_t height, std::int64_t width,
                        std::int64_t channels, const T* kernels, std::int64_t count,
                        std::int64_t kh, std::int64_t kw, const T* weights, T zero_weight,
                        T* out, int num_threads);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
