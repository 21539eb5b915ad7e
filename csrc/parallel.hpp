// Output tiles and the OpenMP loop that hands them to threads.
//
// Shared by every kernel level (see dispatch.hpp): the functions here are compiled once,
// in parallel.cpp, for the baseline; parallel_for is instantiated with each level's own
// loop bodies, so its instances are distinct per level.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#ifdef FASTBLUR_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastblur {

namespace detail {
// GNU OpenMP's thread pool does not survive fork(): a child that enters a parallel
// region waits forever for threads that were not copied (PyTorch DataLoader workers,
// multiprocessing with "fork"). Once the pool exists, a forked child runs serially.
extern std::atomic<bool> thread_pool_started;
extern std::atomic<bool> forked_after_threads;
}  // namespace detail

// Whether this process was forked from one that had started the thread pool (its
// calls then use one thread).
bool forked_after_threads();

// Output rows [r0, r1) x columns [c0, c1) (columns in whatever unit the caller tiles).
struct Tile {
  std::int64_t r0, r1, c0, c1;
};

// Bands of `band` rows cut into strips of `strip` columns, row-major.
std::vector<Tile> make_tiles(std::int64_t rows, std::int64_t cols, std::int64_t band,
                             std::int64_t strip);

// body(i, state) for i in [0, count), dynamically scheduled over up to `num_threads`
// threads; every thread owns one default-constructed State (its scratch buffers).
template <typename State, typename Body>
void parallel_for(std::int64_t count, int num_threads, Body&& body) {
  if (count <= 0) return;
  const int threads =
      static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(num_threads, count)));
#ifdef FASTBLUR_HAVE_OPENMP
  if (threads > 1 && !forked_after_threads()) {
    detail::thread_pool_started.store(true, std::memory_order_relaxed);
#pragma omp parallel num_threads(threads)
    {
      State state;
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t i = 0; i < count; ++i) body(i, state);
    }
    return;
  }
#endif
  (void)threads;
  State state;
  for (std::int64_t i = 0; i < count; ++i) body(i, state);
}

}  // namespace fastblur
