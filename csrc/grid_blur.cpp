#include "grid_blur.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
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

// Whether any of v[0:n] is non-zero (-0 counts as zero): an OR of the bit patterns
// without the sign, which vectorises (a float sum would be a serial chain).
template <typename T>
bool any_nonzero(const T* v, std::int64_t n) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr Bits magnitude = ~Bits(0) >> 1;
  Bits acc = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    Bits bits;
    std::memcpy(&bits, v + k, sizeof bits);
    acc |= bits;
  }
  return (acc & magnitude) != 0;
}

// The non-zero taps of a (kh, kw) kernel in increasing (dy, dx) order: flat kernel index.
template <typename T>
void nonzero_taps(const T* kernel, std::int64_t kh, std::int64_t kw,
                  std::vector<std::int32_t>& taps) {
  taps.clear();
  for (std::int64_t a = kh - 1; a >= 0; --a) {  // dy = kh - 1 - a increasing
    const T* row = kernel + a * kw;
    if (!any_nonzero(row, kw)) continue;
    for (std::int64_t b = kw - 1; b >= 0; --b)
      if (row[b] != T(0)) taps.push_back(static_cast<std::int32_t>(a * kw + b));
  }
}

// The union of two kernels' taps (lists from nonzero_taps; `bottom` may be null).
template <typename T>
PairTaps<T> make_pair_taps(const T* top, const std::vector<std::int32_t>& top_taps,
                           const T* bottom, const std::vector<std::int32_t>& bottom_taps,
                           std::int64_t kh, std::int64_t kw, std::int64_t row_stride,
                           std::int64_t channels) {
  PairTaps<T> taps;
  const std::size_t reserve = top_taps.size() + (bottom ? bottom_taps.size() : 0);
  taps.offset.reserve(reserve);
  taps.top.reserve(reserve);
  taps.bottom.reserve(reserve);
  // Flat indices decrease as (dy, dx) increase: merge in decreasing index order.
  std::size_t p = 0, q = 0;
  const std::size_t np = top_taps.size(), nq = bottom ? bottom_taps.size() : 0;
  while (p < np || q < nq) {
    std::int32_t k;
    if (q >= nq || (p < np && top_taps[p] > bottom_taps[q])) k = top_taps[p++];
    else if (p >= np || bottom_taps[q] > top_taps[p]) k = bottom_taps[q++];
    else { k = top_taps[p++]; ++q; }
    const std::int64_t dy = kh - 1 - k / kw, dx = kw - 1 - k % kw;
    taps.offset.push_back(dy * row_stride + dx * channels);
    taps.top.push_back(top[k]);
    taps.bottom.push_back(bottom ? bottom[k] : T(0));
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

template <typename T>
struct GridScratch {
  std::vector<Taps<T>> blended;  // a row's vertically blended kernel per node column
};

// taps = wt * pair.top + wb * pair.bottom, zero values dropped.
template <typename T>
void blend(const PairTaps<T>& pair, T wt, T wb, Taps<T>& taps) {
  const std::size_t n = pair.offset.size();
  taps.offset.resize(n);
  taps.value.resize(n);
  std::size_t kept = 0;
  for (std::size_t t = 0; t < n; ++t) {
    const T v = wt * pair.top[t] + wb * pair.bottom[t];
    taps.offset[kept] = pair.offset[t];
    taps.value[kept] = v;
    kept += v != T(0);
  }
  taps.offset.resize(kept);
  taps.value.resize(kept);
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
  std::vector<std::vector<std::int32_t>> nonzero(static_cast<std::size_t>(ny * nx));
  parallel_for<char>(ny, num_threads, [&](std::int64_t j, char&) {
    for (std::int64_t i = 0; i < nx; ++i)
      nonzero_taps(kernels + (j * nx + i) * kernel_size, kh, kw, nonzero[j * nx + i]);
  });
  std::vector<PairTaps<T>> pairs(static_cast<std::size_t>(row_cells * nx));
  parallel_for<char>(row_cells, num_threads, [&](std::int64_t j, char&) {
    for (std::int64_t i = 0; i < nx; ++i) {
      const std::int64_t below = ny > 1 ? (j + 1) * nx + i : j * nx + i;
      pairs[j * nx + i] = make_pair_taps(
          kernels + (j * nx + i) * kernel_size, nonzero[j * nx + i],
          ny > 1 ? kernels + below * kernel_size : nullptr, nonzero[below], kh, kw, in_stride, C);
    }
  });

  const Axis rows(node_rows, ny, out_height);
  const Axis cols(node_cols, nx, out_width);
  // Columns [begin[k], begin[k + 1]) form cell k (cells are monotone in x).
  const std::int64_t cells = std::max<std::int64_t>(1, nx - 1);
  std::vector<std::int64_t> begin(static_cast<std::size_t>(cells + 1), out_width);
  for (std::int64_t x = out_width - 1; x >= 0; --x) begin[cols.cell[x]] = x;
  for (std::int64_t k = cells - 1; k >= 0; --k) begin[k] = std::min(begin[k], begin[k + 1]);
  // Node column i weighs columns [support[i], support[i + 1]) (cells i - 1 and i) by its
  // hat, stored per value from weight_at[i]: each pixel is two runs' sum, and a run
  // spans two cells, so the row kernel works on runs twice as long as a cell.
  std::vector<std::int64_t> first(static_cast<std::size_t>(nx)), last(static_cast<std::size_t>(nx));
  std::vector<std::int64_t> weight_at(static_cast<std::size_t>(nx));
  std::vector<T> weights;
  for (std::int64_t i = 0; i < nx; ++i) {
    first[i] = begin[std::max<std::int64_t>(0, i - 1)];
    last[i] = begin[std::min(i, cells - 1) + 1];
    weight_at[i] = static_cast<std::int64_t>(weights.size());
    for (std::int64_t x = first[i]; x < last[i]; ++x) {
      const T w = static_cast<T>(cols.cell[x] == i ? cols.low[x] : cols.high[x]);
      for (std::int64_t c = 0; c < C; ++c) weights.push_back(w);
    }
  }
  const std::int64_t cell_columns = std::max<std::int64_t>(1, out_width / cells);
  const std::int64_t strip = std::max<std::int64_t>(1, kStripColumns / cell_columns);
  const auto tiles = make_tiles(out_height, cells, kBandRows, strip);

  parallel_for<GridScratch<T>>(
      static_cast<std::int64_t>(tiles.size()), num_threads,
      [&](std::int64_t index, GridScratch<T>& scratch) {
        const Tile& tile = tiles[index];
        // The tile's columns, and the node columns weighing them.
        const std::int64_t x0 = begin[tile.c0], x1 = begin[tile.c1];
        if (x0 >= x1) return;
        const std::int64_t i0 = tile.c0, i1 = std::min(nx - 1, tile.c1);
        scratch.blended.resize(static_cast<std::size_t>(i1 - i0 + 1));
        for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
          const std::int64_t j = rows.cell[y];
          const T wt = static_cast<T>(rows.low[y]), wb = static_cast<T>(rows.high[y]);
          const T* in_row = image + y * in_stride;
          T* out_row = out + y * out_width * C;
          std::fill(out_row + x0 * C, out_row + x1 * C, T(0));
          for (std::int64_t i = i0; i <= i1; ++i) {
            const std::int64_t a = std::max(x0, first[i]), b = std::min(x1, last[i]);
            if (a >= b) continue;
            Taps<T>& taps = scratch.blended[i - i0];
            blend(pairs[j * nx + i], wt, wb, taps);
            if (taps.empty()) continue;
            T* dst = out_row + a * C;
            const T* w = weights.data() + weight_at[i] + (a - first[i]) * C;
            tap_sums(in_row + a * C, taps, (b - a) * C,
                     [dst, w](std::int64_t at, const T* sums, std::int64_t k) {
                       T* __restrict o = dst + at;
                       const T* __restrict wv = w + at;
                       for (std::int64_t v = 0; v < k; ++v) o[v] += wv[v] * sums[v];
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
