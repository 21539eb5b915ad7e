#include "direct_convolution.hpp"

#include <algorithm>

#ifdef FASTBLUR_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastblur {

template <typename T>
std::vector<Tap<T>> sparse_taps(const T* kernel, std::int64_t kh, std::int64_t kw) {
  std::vector<Tap<T>> taps;
  for (std::int64_t a = 0; a < kh; ++a) {
    for (std::int64_t b = 0; b < kw; ++b) {
      const T value = kernel[a * kw + b];
      if (value != T(0)) taps.push_back({kh - 1 - a, kw - 1 - b, value});
    }
  }
  return taps;
}

template <typename T>
void convolve_valid(const T* image, std::int64_t height, std::int64_t width,
                    std::int64_t channels, const T* kernel, std::int64_t kh,
                    std::int64_t kw, T* out, int num_threads) {
  const std::int64_t out_height = height - kh + 1;
  const std::int64_t out_width = width - kw + 1;
  if (out_height <= 0 || out_width <= 0) return;
  const std::vector<Tap<T>> taps = sparse_taps(kernel, kh, kw);
  const std::int64_t row_span = out_width * channels;  // contiguous values per output row
  const std::int64_t in_stride = width * channels;

#ifdef FASTBLUR_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(std::max(1, num_threads))
#endif
  for (std::int64_t y = 0; y < out_height; ++y) {
    T* __restrict out_row = out + y * row_span;
    std::fill(out_row, out_row + row_span, T(0));
    for (const Tap<T>& tap : taps) {
      const T* __restrict in_row = image + (y + tap.dy) * in_stride + tap.dx * channels;
      const T v = tap.value;
      for (std::int64_t i = 0; i < row_span; ++i) out_row[i] += v * in_row[i];
    }
  }
}

template std::vector<Tap<float>> sparse_taps(const float*, std::int64_t, std::int64_t);
template std::vector<Tap<double>> sparse_taps(const double*, std::int64_t, std::int64_t);
template void convolve_valid(const float*, std::int64_t, std::int64_t, std::int64_t,
                             const float*, std::int64_t, std::int64_t, float*, int);
template void convolve_valid(const double*, std::int64_t, std::int64_t, std::int64_t,
                             const double*, std::int64_t, std::int64_t, double*, int);

}  // namespace fastblur
