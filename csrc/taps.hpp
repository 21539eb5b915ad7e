// Sparse kernel taps and the register-blocked row kernel every direct operation uses.
//
// A (kh, kw) kernel applied by true convolution to a row-major input with `row_stride`
// values a row and `channels` values a pixel reads, for the output value at flat
// position p of the output row, the input values at p + offset[t]:
//   offset[t] = dy * row_stride + dx * channels,  dy = kh - 1 - a,  dx = kw - 1 - b
// for every non-zero kernel[a, b]. Output rows are contiguous runs of values, so one
// output row is a dot product of the tap values with `ntaps` shifted input runs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "simd.hpp"
#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {

template <typename T>
struct Taps {
  std::vector<std::int64_t> offset;  // flat input offset of each tap
  std::vector<T> value;              // its kernel value
  // Bounding box of the taps in (dy, dx); empty (dy_max < dy_min) without taps.
  std::int64_t dy_min = 0, dy_max = -1, dx_min = 0, dx_max = -1;
  T sum = T(0);  // sum of the values, accumulated in tap order

  std::size_t size() const { return value.size(); }
  bool empty() const { return value.empty(); }
};

// The non-zero taps of `kernel` in increasing offset order (rows, then columns).
template <typename T>
Taps<T> make_taps(const T* kernel, std::int64_t kh, std::int64_t kw, std::int64_t row_stride,
                  std::int64_t channels) {
  Taps<T> taps;
  for (std::int64_t dy = 0; dy < kh; ++dy) {
    for (std::int64_t dx = 0; dx < kw; ++dx) {
      const T v = kernel[(kh - 1 - dy) * kw + (kw - 1 - dx)];
      if (v == T(0)) continue;
      taps.offset.push_back(dy * row_stride + dx * channels);
      taps.value.push_back(v);
      if (taps.dy_max < taps.dy_min) {
        taps.dy_min = taps.dy_max = dy;
        taps.dx_min = taps.dx_max = dx;
      } else {
        taps.dy_max = dy;  // rows come in increasing order
        taps.dx_min = std::min(taps.dx_min, dx);
        taps.dx_max = std::max(taps.dx_max, dx);
      }
      taps.sum += v;
    }
  }
  return taps;
}

// make_taps of each kernel of a (count, kh, kw) stack.
template <typename T>
std::vector<Taps<T>> taps_of_stack(const T* kernels, std::int64_t count, std::int64_t kh,
                                   std::int64_t kw, std::int64_t row_stride,
                                   std::int64_t channels) {
  std::vector<Taps<T>> taps;
  taps.reserve(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i)
    taps.push_back(make_taps(kernels + i * kh * kw, kh, kw, row_stride, channels));
  return taps;
}

namespace detail {

// Independent accumulator vectors of one block: enough to cover the FMA latency.
inline constexpr std::int64_t kAccumulators = 8;

// out[start[k] + i] = sum_t value[t] * in[offset[t] + start[k] + i], i < L, for NV vectors.
template <typename T, std::int64_t NV>
inline void tail_vectors(const T* in, const std::int64_t* offset, const T* value,
                         std::size_t ntaps, const std::int64_t* start, T* out) {
  using V = simd::Vec<T>;
  V acc[NV];
  for (std::int64_t k = 0; k < NV; ++k) acc[k] = V{};
  for (std::size_t t = 0; t < ntaps; ++t) {
    const T* p = in + offset[t];
    const V v = simd::broadcast<T>(value[t]);
    for (std::int64_t k = 0; k < NV; ++k) acc[k] += v * simd::load<T>(p + start[k]);
  }
  for (std::int64_t k = 0; k < NV; ++k) simd::store<T>(out + start[k], acc[k]);
}

template <typename T>
inline void tail_dispatch(std::int64_t vectors, const T* in, const std::int64_t* offset,
                          const T* value, std::size_t ntaps, const std::int64_t* start, T* out) {
  switch (vectors) {
    case 1: return tail_vectors<T, 1>(in, offset, value, ntaps, start, out);
    case 2: return tail_vectors<T, 2>(in, offset, value, ntaps, start, out);
    case 3: return tail_vectors<T, 3>(in, offset, value, ntaps, start, out);
    case 4: return tail_vectors<T, 4>(in, offset, value, ntaps, start, out);
    case 5: return tail_vectors<T, 5>(in, offset, value, ntaps, start, out);
    case 6: return tail_vectors<T, 6>(in, offset, value, ntaps, start, out);
    case 7: return tail_vectors<T, 7>(in, offset, value, ntaps, start, out);
    default: return tail_vectors<T, kAccumulators>(in, offset, value, ntaps, start, out);
  }
}
}  // namespace detail

// Values a full block of the row kernel covers.
template <typename T>
inline constexpr std::int64_t kBlockValues = detail::kAccumulators * simd::kLanes<T>;

// sums[j] = sum_t value[t] * in[offset[t] + j] for j in [0, n), delivered block by block
// through emit(first, sums, count) with count <= kBlockValues<T>. Each block is
// accumulated over all taps in registers and written once.
template <typename T, typename Emit>
inline void tap_sums(const T* in, const Taps<T>& taps, std::int64_t n, Emit&& emit) {
  using V = simd::Vec<T>;
  constexpr std::int64_t L = simd::kLanes<T>;
  constexpr std::int64_t A = detail::kAccumulators;
  constexpr std::int64_t B = kBlockValues<T>;
  const std::size_t ntaps = taps.size();
  const std::int64_t* offset = taps.offset.data();
  const T* value = taps.value.data();
  alignas(64) T sums[B];

  std::int64_t j0 = 0;
  for (; j0 + B <= n; j0 += B) {
    V acc[A];
    for (std::int64_t k = 0; k < A; ++k) acc[k] = V{};
    for (std::size_t t = 0; t < ntaps; ++t) {
      const T* p = in + offset[t] + j0;
      const V v = simd::broadcast<T>(value[t]);
      for (std::int64_t k = 0; k < A; ++k) acc[k] += v * simd::load<T>(p + k * L);
    }
    for (std::int64_t k = 0; k < A; ++k) simd::store<T>(sums + k * L, acc[k]);
    emit(j0, static_cast<const T*>(sums), B);
  }
  if (j0 == n) return;

  const std::int64_t count = n - j0;
  if (n >= L) {
    // Tail within reach of whole vectors: its vectors, the last one ending at n (it
    // overlaps values summed already, identically), accumulated at once in independent
    // registers rather than one latency-bound running sum at a time.
    const std::int64_t vectors = (count + L - 1) / L;  // at most A
    std::int64_t start[A];  // relative to j0; the last one may be negative
    for (std::int64_t k = 0; k < vectors; ++k) start[k] = k * L;
    start[vectors - 1] = count - L;
    alignas(64) T buffer[B + L];  // value j0 + j at buffer[L + j]
    detail::tail_dispatch<T>(vectors, in + j0, offset, value, ntaps, start, buffer + L);
    emit(j0, static_cast<const T*>(buffer + L), count);
    return;
  }
  // A run shorter than one vector: single values.
  for (std::int64_t j = 0; j < count; ++j) {
    T acc = T(0);
    for (std::size_t t = 0; t < ntaps; ++t)
      acc += value[t] * in[offset[t] + j0 + j];
    sums[j] = acc;
  }
  emit(j0, static_cast<const T*>(sums), count);
}

}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
