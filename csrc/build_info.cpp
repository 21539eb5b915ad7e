#include "build_info.hpp"

#include "parallel.hpp"
#include "simd.hpp"

namespace fastblur {

int simd_bytes() {
#ifdef FASTBLUR_VECTOR_EXTENSION
  return static_cast<int>(simd::kBytes);
#else
  return 0;
#endif
}

bool threads_disabled_by_fork() { return forked_after_threads(); }

bool has_openmp() {
#ifdef FASTBLUR_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace fastblur
