#include "quantize.hpp"

#include <algorithm>

#include "parallel.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

namespace {

struct NoState {};
constexpr std::int64_t kChunk = 1 << 16;

// Branch-free, with no aliasing, so that the loop vectorises (one gather a vector where
// the level has them).
void quantize_run(const std::uint32_t* __restrict bits_in, std::int64_t count,
                  const std::uint32_t* __restrict buckets, int shift, std::uint32_t clamp,
                  std::uint8_t* __restrict out) {
  const std::uint32_t in_bucket = (1u << shift) - 1u;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::uint32_t raw = bits_in[i];
    const std::uint32_t bits = std::min(raw, clamp) & ((raw >> 31) - 1u);  // negative: 0
    const std::uint32_t entry = buckets[bits >> shift];
    out[i] = static_cast<std::uint8_t>((entry & 0xFFu) + ((bits & in_bucket) >= (entry >> 8)));
  }
}

}  // namespace

void quantize_by_thresholds(const float* values, std::int64_t count,
                            const std::uint32_t* buckets, int shift, std::uint32_t clamp_bits,
                            std::uint8_t* codes, int num_threads) {
  const auto* bits = reinterpret_cast<const std::uint32_t*>(values);
  const std::int64_t chunks = (count + kChunk - 1) / kChunk;
  parallel_for<NoState>(chunks, num_threads, [&](std::int64_t chunk, NoState&) {
    const std::int64_t begin = chunk * kChunk, end = std::min(count, begin + kChunk);
    quantize_run(bits + begin, end - begin, buckets, shift, clamp_bits, codes + begin);
  });
}

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
