// Spatially varying blur by a regular grid of kernels blended with bilinear (hat)
// weights, `valid` mode, direct: the product-convolution of projective_blur.
//
// Layout as in masked_blur.hpp: image (height, width, channels) channels-last; kernels
// (ny, nx, kh, kw), the kernel of node (j, i); output (out_height, out_width, channels)
// with out_height = height - kh + 1, out_width = width - kw + 1. Node j of a column sits
// at output row node_rows[j], node i of a row at output column node_cols[i] (evenly
// spaced, increasing; fractional allowed). Output pixel (y, x) is
//   sum_{j,i} hat_y[j](y) * hat_x[i](x) * (kernels[j, i] * image)(y, x),
// hat[k](v) = max(0, 1 - |v - node[k]| / step), step = node[1] - node[0] (weight 1 for a
// single node), over the two nodes of the cell holding v (cell k: node[k] <= v <
// node[k+1], the last cell closed, values beyond the ends in the end cells): the same
// weights as blur_masked with hat-weight maps, without reading any.
//
// Bilinear weights factor, so each output row first blends every node column's two
// kernels vertically, (1 - s) K[j, i] + s K[j+1, i] on the union of their taps, and a
// pixel between node columns i and i+1 then costs two sparse convolutions, not four.
#pragma once

#include <cstdint>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

template <typename T>
void blur_grid_valid(const T* image, std::int64_t height, std::int64_t width,
                     std::int64_t channels, const T* kernels, std::int64_t ny, std::int64_t nx,
                     std::int64_t kh, std::int64_t kw, const double* node_rows,
                     const double* node_cols, T* out, int num_threads);

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
