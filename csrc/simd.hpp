// Fixed-width vectors for the inner loops, through the GCC/Clang vector extension.
//
// GCC left to itself vectorises the register-blocked tap loop across taps (with
// gathers), which is five times slower than vectorising along the row; an explicit
// vector type pins the layout while the compiler still picks the instructions for the
// target (-m flags of the level, see variant.hpp). The width follows the widest SIMD
// the level enables; compilers without the extension get a plain-array fallback that
// they may auto-vectorise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "variant.hpp"

namespace fastblur {
namespace FASTBLUR_VARIANT {
namespace simd {

#if defined(__AVX512F__)
inline constexpr std::size_t kBytes = 64;
#elif defined(__AVX__)
inline constexpr std::size_t kBytes = 32;
#else
inline constexpr std::size_t kBytes = 16;
#endif

template <typename T>
inline constexpr std::int64_t kLanes = static_cast<std::int64_t>(kBytes / sizeof(T));

#if defined(__GNUC__) || defined(__clang__)
#define FASTBLUR_VECTOR_EXTENSION 1

template <typename T>
struct VecType;
template <>
struct VecType<float> {
  typedef float type __attribute__((vector_size(kBytes)));
};
template <>
struct VecType<double> {
  typedef double type __attribute__((vector_size(kBytes)));
};

template <typename T>
using Vec = typename VecType<T>::type;

template <typename T>
inline Vec<T> broadcast(T x) {
  return Vec<T>{} + x;
}

#else

template <typename T>
struct Vec {
  T lane[kLanes<T>];
  Vec& operator+=(const Vec& o) {
    for (std::int64_t i = 0; i < kLanes<T>; ++i) lane[i] += o.lane[i];
    return *this;
  }
  friend Vec operator*(const Vec& a, const Vec& b) {
    Vec r;
    for (std::int64_t i = 0; i < kLanes<T>; ++i) r.lane[i] = a.lane[i] * b.lane[i];
    return r;
  }
  friend Vec operator+(const Vec& a, const Vec& b) {
    Vec r = a;
    r += b;
    return r;
  }
};

template <typename T>
inline Vec<T> broadcast(T x) {
  Vec<T> v;
  for (std::int64_t i = 0; i < kLanes<T>; ++i) v.lane[i] = x;
  return v;
}

#endif

// Unaligned loads and stores (memcpy compiles to one vector move).
template <typename T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace simd
}  // namespace FASTBLUR_VARIANT
}  // namespace fastblur
