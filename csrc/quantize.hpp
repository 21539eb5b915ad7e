// 8-bit codes of float32 values by thresholds: the inverse camera response and the
// writer's clip-and-truncate in one pass, for any monotonic response.
#pragma once

#include <cstdint>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

// codes[i] = the number of per-code thresholds (k = 1..255) that bits(values[i]) reaches,
// after clamping: negative values (sign bit set) count as 0 and bits above `clamp_bits` as
// `clamp_bits`. Non-negative float32 values order as their bits, and no bucket of
// 2^shift consecutive bit patterns holds more than one threshold, so one table entry a
// bucket says it all: `buckets[b >> shift]` is the code of the bucket's first value
// (low 8 bits) and the offset in the bucket where the next code starts (bits 8 and up;
// 2^shift where it does not start in the bucket). Every b <= clamp_bits has a bucket.
void quantize_by_thresholds(const float* values, std::int64_t count,
                            const std::uint32_t* buckets, int shift, std::uint32_t clamp_bits,
                            std::uint8_t* codes, int num_threads);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
