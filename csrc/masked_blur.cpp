#include "masked_blur.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "parallel.hpp"
#include "taps.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

namespace {

constexpr std::int64_t kBandRows = 16;
constexpr std::int64_t kStripBytes = 8192;
// Scatter tiles are taller (their input blocks overlap by kh - 1 rows) and narrower
// (each thread keeps a weighted copy of its tile's input block).
constexpr std::int64_t kProductBandRows = 64;
constexpr std::int64_t kProductStripBytes = 4096;
// Runs of active pixels closer than this are evaluated as one: computing a few pixels
// whose weight is (nearly) zero costs less than a broken register block.
constexpr std::int64_t kMergeGap = 8;

using Run = std::pair<std::int64_t, std::int64_t>;

// Runs [begin, end) of w[0:n] where |w| > zero, gaps of at most kMergeGap merged.
// Chunks that are wholly active or wholly inactive (most of an SBDD weight map) are
// recognised by a vectorised count; only chunks with an edge are walked pixel by pixel.
template <typename T>
void active_runs(const T* w, std::int64_t n, T zero, std::vector<Run>& runs) {
  constexpr std::int64_t kChunk = 32;
  runs.clear();
  std::int64_t open = -1;  // start of the run being scanned, -1 outside a run
  auto close = [&](std::int64_t end) {
    if (!runs.empty() && open - runs.back().second <= kMergeGap)
      runs.back().second = end;
    else
      runs.emplace_back(open, end);
    open = -1;
  };
  std::int64_t x = 0;
  while (x < n) {
    if (x + kChunk <= n) {
      int active = 0;
      for (std::int64_t j = 0; j < kChunk; ++j) active += std::abs(w[x + j]) > zero;
      if (active == 0 || active == kChunk) {
        if (active == 0 && open >= 0) close(x);
        if (active == kChunk && open < 0) open = x;
        x += kChunk;
        continue;
      }
    }
    for (const std::int64_t end = std::min(n, x + kChunk); x < end; ++x) {
      const bool active = std::abs(w[x]) > zero;
      if (active && open < 0) open = x;
      if (!active && open >= 0) close(x);
    }
  }
  if (open >= 0) close(n);
}

// out[x * C + c] = w[x]: one weight per value of a channels-last row.
template <std::int64_t C, typename T>
void repeat_fixed(const T* __restrict w, std::int64_t n, T* __restrict out) {
  for (std::int64_t x = 0; x < n; ++x)
    for (std::int64_t c = 0; c < C; ++c) out[x * C + c] = w[x];
}

template <typename T>
void repeat_per_channel(const T* w, std::int64_t n, std::int64_t channels, T* out) {
  switch (channels) {
    case 2: return repeat_fixed<2>(w, n, out);
    case 3: return repeat_fixed<3>(w, n, out);
    case 4: return repeat_fixed<4>(w, n, out);
    default:
      for (std::int64_t x = 0; x < n; ++x)
        for (std::int64_t c = 0; c < channels; ++c) out[x * channels + c] = w[x];
  }
}

template <typename T>
bool any_active(const T* w, std::int64_t n, T zero) {
  constexpr std::int64_t kChunk = 32;
  std::int64_t x = 0;
  for (; x + kChunk <= n; x += kChunk) {
    int active = 0;
    for (std::int64_t j = 0; j < kChunk; ++j) active += std::abs(w[x + j]) > zero;
    if (active) return true;
  }
  for (; x < n; ++x)
    if (std::abs(w[x]) > zero) return true;
  return false;
}

template <typename T>
struct GatherScratch {
  std::vector<T> expanded;  // one weight per value (pixel weight repeated per channel)
  std::vector<Run> runs;
};

template <typename T>
struct ScatterScratch {
  std::vector<T> block;     // weights[i] * image over a tile's input block
  std::vector<T> expanded;  // one row of weights, repeated per channel
  std::vector<char> active_row;
  std::vector<std::int64_t> active_before;  // prefix count of active_row
};

}  // namespace

template <typename T>
void blur_masked_valid(const T* image, std::int64_t height, std::int64_t width,
                       std::int64_t channels, const T* kernels, std::int64_t count,
                       std::int64_t kh, std::int64_t kw, const T* weights, T zero_weight,
                       T* out, int num_threads) {
  const std::int64_t out_height = height - kh + 1;
  const std::int64_t out_width = width - kw + 1;
  if (out_height <= 0 || out_width <= 0 || channels <= 0) return;
  const std::int64_t C = channels;
  const std::int64_t in_stride = width * C;
  const auto taps = taps_of_stack(kernels, count, kh, kw, in_stride, C);
  const std::int64_t strip = std::max<std::int64_t>(
      1, kStripBytes / static_cast<std::int64_t>(sizeof(T)) / C);
  const auto tiles = make_tiles(out_height, out_width, kBandRows, strip);

  parallel_for<GatherScratch<T>>(
      static_cast<std::int64_t>(tiles.size()), num_threads,
      [&](std::int64_t index, GatherScratch<T>& scratch) {
        const Tile& tile = tiles[index];
        const std::int64_t tile_width = tile.c1 - tile.c0;
        scratch.expanded.resize(static_cast<std::size_t>(tile_width * C));
        for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
          T* out_row = out + (y * out_width + tile.c0) * C;
          std::fill(out_row, out_row + tile_width * C, T(0));
          for (std::int64_t i = 0; i < count; ++i) {
            if (taps[i].empty()) continue;
            const T* w = weights + (i * out_height + y) * out_width + tile.c0;
            active_runs(w, tile_width, zero_weight, scratch.runs);
            for (const Run& run : scratch.runs) {
              const std::int64_t n = (run.second - run.first) * C;
              const T* run_weights = w + run.first;
              if (C > 1) {
                repeat_per_channel(run_weights, run.second - run.first, C,
                                   scratch.expanded.data());
                run_weights = scratch.expanded.data();
              }
              T* dst = out_row + run.first * C;
              tap_sums(image + y * in_stride + (tile.c0 + run.first) * C, taps[i], n,
                       [dst, run_weights](std::int64_t first, const T* sums, std::int64_t k) {
                         T* __restrict o = dst + first;
                         const T* __restrict wv = run_weights + first;
                         for (std::int64_t j = 0; j < k; ++j) o[j] += wv[j] * sums[j];
                       });
            }
          }
        }
      });
}

template <typename T>
void blur_product_valid(const T* image, std::int64_t height, std::int64_t width,
                        std::int64_t channels, const T* kernels, std::int64_t count,
                        std::int64_t kh, std::int64_t kw, const T* weights, T zero_weight,
                        T* out, int num_threads) {
  const std::int64_t out_height = height - kh + 1;
  const std::int64_t out_width = width - kw + 1;
  if (out_height <= 0 || out_width <= 0 || channels <= 0) return;
  const std::int64_t C = channels;
  const std::int64_t strip = std::max<std::int64_t>(
      1, kProductStripBytes / static_cast<std::int64_t>(sizeof(T)) / C);
  const std::int64_t block_stride = (std::min(strip, out_width) + kw - 1) * C;
  const std::int64_t block_rows = std::min(kProductBandRows, out_height) + kh - 1;
  const auto taps = taps_of_stack(kernels, count, kh, kw, block_stride, C);
  const auto tiles = make_tiles(out_height, out_width, kProductBandRows, strip);

  parallel_for<ScatterScratch<T>>(
      static_cast<std::int64_t>(tiles.size()), num_threads,
      [&](std::int64_t index, ScatterScratch<T>& scratch) {
        const Tile& tile = tiles[index];
        const std::int64_t rows_in = tile.r1 - tile.r0 + kh - 1;
        const std::int64_t cols_in = tile.c1 - tile.c0 + kw - 1;
        const std::int64_t span = (tile.c1 - tile.c0) * C;
        scratch.block.resize(static_cast<std::size_t>(block_rows * block_stride));
        scratch.expanded.resize(static_cast<std::size_t>(block_stride));
        scratch.active_row.resize(static_cast<std::size_t>(block_rows));
        scratch.active_before.resize(static_cast<std::size_t>(block_rows + 1));
        for (std::int64_t y = tile.r0; y < tile.r1; ++y)
          std::fill_n(out + (y * out_width + tile.c0) * C, span, T(0));

        for (std::int64_t i = 0; i < count; ++i) {
          const Taps<T>& kernel_taps = taps[i];
          if (kernel_taps.empty()) continue;
          const T* w = weights + (i * height + tile.r0) * width + tile.c0;
          bool any = false;
          for (std::int64_t r = 0; r < rows_in; ++r) {
            const bool active = any_active(w + r * width, cols_in, zero_weight);
            scratch.active_row[r] = active;
            any = any || active;
          }
          if (!any) continue;

          scratch.active_before[0] = 0;
          for (std::int64_t r = 0; r < rows_in; ++r) {
            scratch.active_before[r + 1] = scratch.active_before[r] + scratch.active_row[r];
            T* __restrict dst = scratch.block.data() + r * block_stride;
            if (!scratch.active_row[r]) {
              std::fill_n(dst, cols_in * C, T(0));
              continue;
            }
            const T* __restrict wr = w + r * width;
            if (C > 1) {
              repeat_per_channel(wr, cols_in, C, scratch.expanded.data());
              wr = scratch.expanded.data();
            }
            const T* __restrict src = image + ((tile.r0 + r) * width + tile.c0) * C;
            for (std::int64_t j = 0; j < cols_in * C; ++j) dst[j] = wr[j] * src[j];
          }

          for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
            const std::int64_t ry = y - tile.r0;
            const auto& before = scratch.active_before;
            if (before[ry + kernel_taps.dy_max + 1] == before[ry + kernel_taps.dy_min]) continue;
            T* out_row = out + (y * out_width + tile.c0) * C;
            tap_sums(scratch.block.data() + ry * block_stride, kernel_taps, span,
                     [out_row](std::int64_t first, const T* sums, std::int64_t k) {
                       T* __restrict o = out_row + first;
                       for (std::int64_t j = 0; j < k; ++j) o[j] += sums[j];
                     });
          }
        }
      });
}

#define FASTBLUR_INSTANTIATE(T)                                                            \
  template void blur_masked_valid(const T*, std::int64_t, std::int64_t, std::int64_t,      \
                                  const T*, std::int64_t, std::int64_t, std::int64_t,      \
                                  const T*, T, T*, int);                                   \
  template void blur_product_valid(const T*, std::int64_t, std::int64_t, std::int64_t,     \
                                   const T*, std::int64_t, std::int64_t, std::int64_t,     \
                                   const T*, T, T*, int);
FASTBLUR_INSTANTIATE(float)
FASTBLUR_INSTANTIATE(double)
#undef FASTBLUR_INSTANTIATE

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
