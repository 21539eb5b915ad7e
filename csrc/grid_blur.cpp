#include "grid_blur.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel.hpp"
#include "taps.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

namespace {

constexpr std::int64_t kBandRows = 8;
// Output columns a tile spans (about; tiles hold whole cells): input rows of a tile
// stay in cache while its rows are computed.
constexpr std::int64_t kStripColumns = 256;

// The union of the taps of two kernels (a node and the node below it), each tap with
// both values, in increasing offset order.
template <typename T>
struct PairTaps {
  std::vector<std::int64_t> offset;
  std::vector<T> top, bottom;
};

template <typename T>
PairTaps<T> make_pair_taps(const T* top, const T* bottom, std::int64_t kh, std::int64_t kw,
                           std::int64_t row_stride, std::int64_t channels) {
  PairTaps<T> taps;
  for (std::int64_t dy = 0; dy < kh; ++dy) {
    for (std::int64_t dx = 0; dx < kw; ++dx) {
      const std::int64_t k = (kh - 1 - dy) * kw + (kw - 1 - dx);
      const T a = top[k], b = bottom ? bottom[k] : T(0);
      if (a == T(0) && b == T(0)) continue;
      taps.offset.push_back(dy * row_stride + dx * channels);
      taps.top.push_back(a);
      taps.bottom.push_back(b);
    }
  }
  return taps;
}

// Cell and the two hat weights of every position 0..n-1 along an axis of nodes.
struct Axis {
  std::vector<std::int64_t> cell;
  std::vector<double> low, high;  // weights of nodes cell and cell + 1

  Axis(const double* nodes, std::int64_t count, std::int64_t n)
      : cell(n), low(n), high(n, 0.0) {
    if (count == 1) {
      std::fill(cell.begin(), cell.end(), 0);
      std::fill(low.begin(), low.end(), 1.0);
      return;
    }
    const double step = nodes[1] - nodes[0];
    for (std::int64_t v = 0; v < n; ++v) {
      const double position = static_cast<double>(v);
      std::int64_t c = static_cast<std::int64_t>(std::floor((position - nodes[0]) / step));
      c = std::clamp<std::int64_t>(c, 0, count - 2);
      cell[v] = c;
      low[v] = std::max(0.0, 1.0 - std::abs(position - nodes[c]) / step);
      high[v] = std::max(0.0, 1.0 - std::abs(position - nodes[c + 1]) / step);
    }
  }
};

// Runs [first, end) of consecutive positions in one cell.
struct CellRun {
  std::int64_t cell, first, end;
};

template <typename T>
struct GridScratch {
  std::vector<Taps<T>> blended;  // a row's vertically blended kernel per node column
};

// taps = wt * pair.top + wb * pair.bottom, zero values dropped.
template <typename T>
void blend(const PairTaps<T>& pair, T wt, T wb, Taps<T>& taps) {
  taps.offset.clear();
  taps.value.clear();
  for (std::size_t t = 0; t < pair.offset.size(); ++t) {
    const T v = wt * pair.top[t] + wb * pair.bottom[t];
    if (v == T(0)) continue;
    taps.offset.push_back(pair.offset[t]);
    taps.value.push_back(v);
  }
}

}  // namespace

template <typename T>
void blur_grid_valid(const T* image, std::int64_t height, std::int64_t width,
                     std::int64_t channels, const T* kernels, std::int64_t ny, std::int64_t nx,
                     std::int64_t kh, std::int64_t kw, const double* node_rows,
                     const double* node_cols, T* out, int num_threads) {
  const std::int64_t out_height = height - kh + 1;
  const std::int64_t out_width = width - kw + 1;
  if (out_height <= 0 || out_width <= 0 || channels <= 0 || ny <= 0 || nx <= 0) return;
  const std::int64_t C = channels;
  const std::int64_t in_stride = width * C;
  const std::int64_t kernel_size = kh * kw;

  // Taps of every vertical pair of nodes: row cell j, node column i.
  const std::int64_t row_cells = std::max<std::int64_t>(1, ny - 1);
  std::vector<PairTaps<T>> pairs(static_cast<std::size_t>(row_cells * nx));
  parallel_for<char>(row_cells, num_threads, [&](std::int64_t j, char&) {
    for (std::int64_t i = 0; i < nx; ++i) {
      const T* top = kernels + (j * nx + i) * kernel_size;
      const T* bottom = ny > 1 ? top + nx * kernel_size : nullptr;
      pairs[j * nx + i] = make_pair_taps(top, bottom, kh, kw, in_stride, C);
    }
  });

  const Axis rows(node_rows, ny, out_height);
  const Axis cols(node_cols, nx, out_width);
  // Column runs of one cell each, and the hat weights repeated per channel.
  std::vector<CellRun> runs;
  for (std::int64_t x = 0; x < out_width; ++x) {
    if (runs.empty() || runs.back().cell != cols.cell[x])
      runs.push_back({cols.cell[x], x, x + 1});
    else
      runs.back().end = x + 1;
  }
  std::vector<T> left(static_cast<std::size_t>(out_width * C));
  std::vector<T> right(static_cast<std::size_t>(out_width * C));
  for (std::int64_t x = 0; x < out_width; ++x)
    for (std::int64_t c = 0; c < C; ++c) {
      left[x * C + c] = static_cast<T>(cols.low[x]);
      right[x * C + c] = static_cast<T>(cols.high[x]);
    }
  const std::int64_t run_columns = std::max<std::int64_t>(1, out_width / static_cast<std::int64_t>(runs.size()));
  const std::int64_t strip = std::max<std::int64_t>(1, kStripColumns / run_columns);
  const auto tiles = make_tiles(out_height, static_cast<std::int64_t>(runs.size()), kBandRows, strip);

  parallel_for<GridScratch<T>>(
      static_cast<std::int64_t>(tiles.size()), num_threads,
      [&](std::int64_t index, GridScratch<T>& scratch) {
        const Tile& tile = tiles[index];
        // Node columns the tile's runs use: first .. last + 1 (within the grid).
        const std::int64_t first_node = runs[tile.c0].cell;
        const std::int64_t last_node = std::min(nx - 1, runs[tile.c1 - 1].cell + 1);
        scratch.blended.resize(static_cast<std::size_t>(last_node - first_node + 1));
        for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
          const std::int64_t j = rows.cell[y];
          const T wt = static_cast<T>(rows.low[y]), wb = static_cast<T>(rows.high[y]);
          for (std::int64_t i = first_node; i <= last_node; ++i)
            blend(pairs[j * nx + i], wt, wb, scratch.blended[i - first_node]);
          const T* in_row = image + y * in_stride;
          T* out_row = out + y * out_width * C;
          for (std::int64_t r = tile.c0; r < tile.c1; ++r) {
            const CellRun& run = runs[r];
            const std::int64_t begin = run.first * C;
            const std::int64_t n = (run.end - run.first) * C;
            T* dst = out_row + begin;
            const Taps<T>& low = scratch.blended[run.cell - first_node];
            const T* wl = left.data() + begin;
            if (low.empty()) {
              std::fill_n(dst, n, T(0));
            } else {
              tap_sums(in_row + begin, low, n,
                       [dst, wl](std::int64_t at, const T* sums, std::int64_t k) {
                         T* __restrict o = dst + at;
                         const T* __restrict w = wl + at;
                         for (std::int64_t v = 0; v < k; ++v) o[v] = w[v] * sums[v];
                       });
            }
            if (nx == 1) continue;
            const Taps<T>& high = scratch.blended[run.cell + 1 - first_node];
            if (high.empty()) continue;
            const T* wr = right.data() + begin;
            tap_sums(in_row + begin, high, n,
                     [dst, wr](std::int64_t at, const T* sums, std::int64_t k) {
                       T* __restrict o = dst + at;
                       const T* __restrict w = wr + at;
                       for (std::int64_t v = 0; v < k; ++v) o[v] += w[v] * sums[v];
                     });
          }
        }
      });
}

#define FASTBLUR_INSTANTIATE(T)                                                           \
  template void blur_grid_valid(const T*, std::int64_t, std::int64_t, std::int64_t,       \
                                const T*, std::int64_t, std::int64_t, std::int64_t,       \
                                std::int64_t, const double*, const double*, T*, int);
FASTBLUR_INSTANTIATE(float)
FASTBLUR_INSTANTIATE(double)
#undef FASTBLUR_INSTANTIATE

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
