#include "direct_convolution.hpp"

#include <algorithm>

#include "parallel.hpp"
#include "taps.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

namespace {

// Output tiles: bands of rows for load balance, strips of a few KiB of each row so that
// the input rows a band reads stay in the core's L2.
constexpr std::int64_t kBandRows = 16;
constexpr std::int64_t kStripBytes = 8192;

struct NoScratch {};

}  // namespace

template <typename T>
void convolve_valid(const T* image, std::int64_t height, std::int64_t width,
                    std::int64_t channels, const T* kernel, std::int64_t kh,
                    std::int64_t kw, T* out, int num_threads) {
  const std::int64_t out_height = height - kh + 1;
  const std::int64_t out_width = width - kw + 1;
  if (out_height <= 0 || out_width <= 0 || channels <= 0) return;
  const std::int64_t in_stride = width * channels;
  const std::int64_t row_span = out_width * channels;  // contiguous values per output row
  const Taps<T> taps = make_taps(kernel, kh, kw, in_stride, channels);
  const std::int64_t strip = std::max<std::int64_t>(
      kBlockValues<T>, kStripBytes / static_cast<std::int64_t>(sizeof(T)));
  const auto tiles = make_tiles(out_height, row_span, kBandRows, strip);

  parallel_for<NoScratch>(static_cast<std::int64_t>(tiles.size()), num_threads,
                          [&](std::int64_t index, NoScratch&) {
    const Tile& tile = tiles[index];
    for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
      T* out_row = out + y * row_span + tile.c0;
      tap_sums(image + y * in_stride + tile.c0, taps, tile.c1 - tile.c0,
               [out_row](std::int64_t first, const T* sums, std::int64_t count) {
                 std::copy(sums, sums + count, out_row + first);
               });
    }
  });
}

template void convolve_valid(const float*, std::int64_t, std::int64_t, std::int64_t,
                             const float*, std::int64_t, std::int64_t, float*, int);
template void convolve_valid(const double*, std::int64_t, std::int64_t, std::int64_t,
                             const double*, std::int64_t, std::int64_t, double*, int);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
