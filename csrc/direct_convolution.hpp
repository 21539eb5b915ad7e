// Direct (spatial-domain) convolution of channels-last images, `valid` mode.
//
// Layout: image (height, width, channels), row-major, contiguous; kernel (kh, kw);
// output (height - kh + 1, width - kw + 1, channels). True convolution:
//   out[y, x, c] = sum_{a, b} kernel[a, b] * image[y + kh - 1 - a, x + kw - 1 - b, c]
// Only the non-zero taps are visited, so the cost is proportional to their number
// (motion PSFs fill a few percent of their box).
#pragma once

#include <cstdint>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

template <typename T>
void convolve_valid(const T* image, std::int64_t height, std::int64_t width,
                    std::int64_t channels, const T* kernel, std::int64_t kh,
                    std::int64_t kw, T* out, int num_threads);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
