// Convolution of binary masks by their kernels, `valid` mode, direct:
//   out[i] = kernels[i] * masks[i]
// with masks (count, height, width) of 0/1 bytes, kernels (count, kh, kw) and out
// (count, height - kh + 1, width - kw + 1).
//
// Away from the mask's edges the result is exactly 0 (no set pixel under the taps) or
// the sum of the taps (all set): a sliding count of set pixels under the taps' bounding
// box finds those pixels, and the taps are evaluated only on the runs in between.
#pragma once

#include <cstdint>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

template <typename T>
void convolve_masks_valid(const std::uint8_t* masks, std::int64_t count, std::int64_t height,
                          std::int64_t width, const T* kernels, std::int64_t kh,
                          std::int64_t kw, T* out, int num_threads);

// The same, then each plane divided by its group's sum plus eps (SBDD's soft weights),
//   out[g * group + i] /= (sum_j out[g * group + j] + eps),
// the sum taken in order of j as numpy sums over that axis (the same bits), tile by tile
// while the tile's planes are in cache. `count` is a multiple of `group`.
template <typename T>
void smooth_masks_valid(const std::uint8_t* masks, std::int64_t count, std::int64_t group,
                        std::int64_t height, std::int64_t width, const T* kernels,
                        std::int64_t kh, std::int64_t kw, T eps, T* out, int num_threads);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
