// 8-bit codes of float32 values by thresholds: the inverse camera response and the
// writer's clip-and-truncate in one pass, for any monotonic response.
#pragma once

#include <cstdint>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

// codes[i] = the number of k in 1..255 with bits(values[i]) >= threshold_bits[k], after
// clamping: negative values (sign bit set) count as 0 and bits above `clamp_bits` as
// `clamp_bits`. `threshold_bits` holds 257 non-decreasing entries (entry 0 is 0, entry
// 256 is UINT32_MAX); `bucket_codes[b >> shift]` is the code of the smallest value of
// the bucket b falls in, for every b <= clamp_bits, and no bucket holds more than one
// threshold: a value's code is its bucket's, plus one where it reaches the next
// threshold (non-negative float32 values order as their bits).
void quantize_by_thresholds(const float* values, std::int64_t count,
                            const std::uint32_t* threshold_bits, const std::uint32_t* bucket_codes,
                            int shift, std::uint32_t clamp_bits, std::uint8_t* codes,
                            int num_threads);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
