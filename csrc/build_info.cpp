#include "build_info.hpp"

#include "parallel.hpp"

namespace fastblur {

bool threads_disabled_by_fork() { return forked_after_threads(); }

bool has_openmp() {
#ifdef FASTBLUR_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace fastblur
