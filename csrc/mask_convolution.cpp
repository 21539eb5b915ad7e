#include "mask_convolution.hpp"

#include <algorithm>
#include <vector>

#include "parallel.hpp"
#include "taps.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

namespace {

// Tall bands: a mixed tile first counts a whole bounding box of rows per column.
constexpr std::int64_t kBandRows = 64;
constexpr std::int64_t kStripColumns = 256;

enum class Fill { kZero, kFull, kMixed };

// Whether the box of mask rows [r0, r1) x columns [c0, c1) is all 0, all 1 or mixed.
inline Fill classify_box(const std::uint8_t* mask, std::int64_t width, std::int64_t r0,
                         std::int64_t r1, std::int64_t c0, std::int64_t c1) {
  std::int64_t set = 0;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::uint8_t* row = mask + r * width;
    std::int64_t row_set = 0;
    for (std::int64_t c = c0; c < c1; ++c) row_set += row[c] != 0;
    set += row_set;
    if (set != 0 && set != (r - r0 + 1) * (c1 - c0)) return Fill::kMixed;
  }
  return set == 0 ? Fill::kZero : Fill::kFull;
}

template <typename T>
struct MaskScratch {
  std::vector<std::int32_t> column_count;  // set pixels per column over the box rows
  std::vector<std::int64_t> prefix;        // prefix sums of column_count
  std::vector<T> block;                    // the tile's input block as 0/1 values of T
  std::vector<T> total;                    // a tile row's sum over a group of planes
};

// kernels[i] * masks[i] on one output tile: the work of one task of both entry points.
template <typename T>
class MaskTileConvolver {
 public:
  MaskTileConvolver(const std::uint8_t* masks, std::int64_t height, std::int64_t width,
                    const T* kernels, std::int64_t count, std::int64_t kh, std::int64_t kw,
                    T* out)
      : masks_(masks), height_(height), width_(width), kh_(kh), kw_(kw),
        out_height_(height - kh + 1), out_width_(width - kw + 1), out_(out),
        // Edge runs are evaluated on a float copy of the tile's input block (converting
        // bytes inside the tap loop would cost more than the multiply-adds), hence taps
        // for its stride.
        block_stride_(std::min(kStripColumns, out_width_) + kw - 1),
        block_rows_(std::min(kBandRows, out_height_) + kh - 1),
        taps_(taps_of_stack(kernels, count, kh, kw, block_stride_, 1)),
        tiles_(make_tiles(out_height_, out_width_, kBandRows, kStripColumns)) {}

  std::int64_t tile_count() const { return static_cast<std::int64_t>(tiles_.size()); }
  const Tile& tile(std::int64_t t) const { return tiles_[t]; }
  T* plane(std::int64_t i) const { return out_ + i * out_height_ * out_width_; }
  std::int64_t out_width() const { return out_width_; }

  void run(std::int64_t i, const Tile& tile, MaskScratch<T>& scratch) const {
    const Taps<T>& kernel_taps = taps_[i];
    const std::uint8_t* mask = masks_ + i * height_ * width_;
    const std::int64_t width = width_, out_width = out_width_;
    T* result = plane(i);
    auto fill_tile = [&](T value) {
      for (std::int64_t y = tile.r0; y < tile.r1; ++y)
        std::fill(result + y * out_width + tile.c0, result + y * out_width + tile.c1, value);
    };
    if (kernel_taps.empty()) return fill_tile(T(0));

    // Output (y, x) reads mask rows y + dy_min .. y + dy_max, columns x + dx_min .. dx_max.
    const std::int64_t box_h = kernel_taps.dy_max - kernel_taps.dy_min + 1;
    const std::int64_t box_w = kernel_taps.dx_max - kernel_taps.dx_min + 1;
    const std::int64_t first_col = tile.c0 + kernel_taps.dx_min;
    const std::int64_t cols = tile.c1 - tile.c0 + box_w - 1;
    const Fill fill = classify_box(mask, width, tile.r0 + kernel_taps.dy_min,
                                   tile.r1 + kernel_taps.dy_max, first_col, first_col + cols);
    if (fill == Fill::kZero) return fill_tile(T(0));
    if (fill == Fill::kFull) return fill_tile(kernel_taps.sum);

    const std::int64_t area = box_h * box_w;
    const std::int64_t rows_in = tile.r1 - tile.r0 + kh_ - 1;
    const std::int64_t cols_in = tile.c1 - tile.c0 + kw_ - 1;
    scratch.block.resize(static_cast<std::size_t>(block_rows_ * block_stride_));
    for (std::int64_t r = 0; r < rows_in; ++r) {
      const std::uint8_t* __restrict src = mask + (tile.r0 + r) * width + tile.c0;
      T* __restrict dst = scratch.block.data() + r * block_stride_;
      for (std::int64_t c = 0; c < cols_in; ++c) dst[c] = static_cast<T>(src[c] != 0);
    }
    scratch.column_count.assign(static_cast<std::size_t>(cols), 0);
    scratch.prefix.resize(static_cast<std::size_t>(cols + 1));
    std::int32_t* column_count = scratch.column_count.data();
    for (std::int64_t r = tile.r0 + kernel_taps.dy_min; r <= tile.r0 + kernel_taps.dy_max; ++r) {
      const std::uint8_t* row = mask + r * width + first_col;
      for (std::int64_t c = 0; c < cols; ++c) column_count[c] += row[c] != 0;
    }
    for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
      if (y > tile.r0) {  // slide the box down one row
        const std::uint8_t* leaving = mask + (y - 1 + kernel_taps.dy_min) * width + first_col;
        const std::uint8_t* entering = mask + (y + kernel_taps.dy_max) * width + first_col;
        for (std::int64_t c = 0; c < cols; ++c)
          column_count[c] += (entering[c] != 0) - (leaving[c] != 0);
      }
      std::int64_t* prefix = scratch.prefix.data();
      prefix[0] = 0;
      for (std::int64_t c = 0; c < cols; ++c) prefix[c + 1] = prefix[c] + column_count[c];

      T* out_row = result + y * out_width + tile.c0;
      const T* block_row = scratch.block.data() + (y - tile.r0) * block_stride_;
      const std::int64_t n = tile.c1 - tile.c0;
      std::int64_t x = 0;
      while (x < n) {
        const std::int64_t set = prefix[x + box_w] - prefix[x];
        if (set == 0 || set == area) {
          out_row[x++] = set == 0 ? T(0) : kernel_taps.sum;
          continue;
        }
        const std::int64_t begin = x;
        while (x < n) {
          const std::int64_t s = prefix[x + box_w] - prefix[x];
          if (s == 0 || s == area) break;
          ++x;
        }
        T* dst = out_row + begin;
        tap_sums(block_row + begin, kernel_taps, x - begin,
                 [dst](std::int64_t first, const T* sums, std::int64_t k) {
                   std::copy(sums, sums + k, dst + first);
                 });
      }
    }
  }

 private:
  const std::uint8_t* masks_;
  std::int64_t height_, width_, kh_, kw_, out_height_, out_width_;
  T* out_;
  std::int64_t block_stride_, block_rows_;
  std::vector<Taps<T>> taps_;
  std::vector<Tile> tiles_;
};

// planes[j][tile] /= (sum_j planes[j][tile] + eps), summed in order of j.
template <typename T>
void normalise_tile(const MaskTileConvolver<T>& convolver, std::int64_t first, std::int64_t group,
                    const Tile& tile, T eps, std::vector<T>& total) {
  const std::int64_t n = tile.c1 - tile.c0, stride = convolver.out_width();
  total.resize(static_cast<std::size_t>(n));
  for (std::int64_t y = tile.r0; y < tile.r1; ++y) {
    const std::int64_t offset = y * stride + tile.c0;
    T* __restrict sum = total.data();
    const T* __restrict row0 = convolver.plane(first) + offset;
    std::copy(row0, row0 + n, sum);
    for (std::int64_t j = 1; j < group; ++j) {
      const T* __restrict row = convolver.plane(first + j) + offset;
      for (std::int64_t x = 0; x < n; ++x) sum[x] += row[x];
    }
    for (std::int64_t x = 0; x < n; ++x) sum[x] += eps;
    for (std::int64_t j = 0; j < group; ++j) {
      T* __restrict row = convolver.plane(first + j) + offset;
      for (std::int64_t x = 0; x < n; ++x) row[x] /= sum[x];
    }
  }
}

}  // namespace

template <typename T>
void convolve_masks_valid(const std::uint8_t* masks, std::int64_t count, std::int64_t height,
                          std::int64_t width, const T* kernels, std::int64_t kh,
                          std::int64_t kw, T* out, int num_threads) {
  if (height - kh + 1 <= 0 || width - kw + 1 <= 0) return;
  const MaskTileConvolver<T> convolver(masks, height, width, kernels, count, kh, kw, out);
  const std::int64_t per_mask = convolver.tile_count();
  parallel_for<MaskScratch<T>>(count * per_mask, num_threads,
                               [&](std::int64_t index, MaskScratch<T>& scratch) {
    convolver.run(index / per_mask, convolver.tile(index % per_mask), scratch);
  });
}

template <typename T>
void smooth_masks_valid(const std::uint8_t* masks, std::int64_t count, std::int64_t group,
                        std::int64_t height, std::int64_t width, const T* kernels,
                        std::int64_t kh, std::int64_t kw, T eps, T* out, int num_threads) {
  if (height - kh + 1 <= 0 || width - kw + 1 <= 0) return;
  const MaskTileConvolver<T> convolver(masks, height, width, kernels, count, kh, kw, out);
  const std::int64_t tiles = convolver.tile_count();
  // A task is one tile of one item: its planes are normalised while in cache.
  parallel_for<MaskScratch<T>>((count / group) * tiles, num_threads,
                               [&](std::int64_t index, MaskScratch<T>& scratch) {
    const std::int64_t first = (index / tiles) * group;
    const Tile& tile = convolver.tile(index % tiles);
    for (std::int64_t j = 0; j < group; ++j) convolver.run(first + j, tile, scratch);
    normalise_tile(convolver, first, group, tile, eps, scratch.total);
  });
}

template void convolve_masks_valid(const std::uint8_t*, std::int64_t, std::int64_t,
                                   std::int64_t, const float*, std::int64_t, std::int64_t,
                                   float*, int);
template void convolve_masks_valid(const std::uint8_t*, std::int64_t, std::int64_t,
                                   std::int64_t, const double*, std::int64_t, std::int64_t,
                                   double*, int);
template void smooth_masks_valid(const std::uint8_t*, std::int64_t, std::int64_t, std::int64_t,
                                 std::int64_t, const float*, std::int64_t, std::int64_t, float,
                                 float*, int);
template void smooth_masks_valid(const std::uint8_t*, std::int64_t, std::int64_t, std::int64_t,
                                 std::int64_t, const double*, std::int64_t, std::int64_t, double,
                                 double*, int);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
