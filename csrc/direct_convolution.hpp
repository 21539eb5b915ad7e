// Direct (spatial-domain) convolution of channels-last images, `valid` mode.
//
// Layout: image (height, width, channels), row-major, contiguous; kernel (kh, kw);
// output (height - kh + 1, width - kw + 1, channels). True convolution:
//   out[y, x, c] = sum_{a, b} kernel[a, b] * image[y + kh - 1 - a, x + kw - 1 - b, c]
#pragma once

#include <cstdint>
#include <vector>

namespace fastblur {

// One non-zero kernel tap, as an offset into the padded input row grid.
template <typename T>
struct Tap {
  std::int64_t dy;  // input row offset from the output row
  std::int64_t dx;  // input column offset from the output column
  T value;
};

// The non-zero taps of a (kh, kw) kernel, with offsets already flipped for convolution.
template <typename T>
std::vector<Tap<T>> sparse_taps(const T* kernel, std::int64_t kh, std::int64_t kw);

// Sparse-tap direct convolution; cost is proportional to the number of non-zero taps.
template <typename T>
void convolve_valid(const T* image, std::int64_t height, std::int64_t width,
                    std::int64_t channels, const T* kernel, std::int64_t kh,
                    std::int64_t kw, T* out, int num_threads);

}  // namespace fastblur
