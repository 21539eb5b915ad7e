#include "parallel.hpp"

#include <algorithm>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace fastblur {
namespace detail {

std::atomic<bool> thread_pool_started{false};
std::atomic<bool> forked_after_threads{false};

namespace {

void mark_forked_child() {
  if (thread_pool_started.load(std::memory_order_relaxed))
    forked_after_threads.store(true, std::memory_order_relaxed);
}

// Registered when the library is loaded (this object file is linked whenever
// parallel_for is, as it references the flags above).
struct ForkHandler {
  ForkHandler() {
#if defined(__unix__) || defined(__APPLE__)
    pthread_atfork(nullptr, nullptr, &mark_forked_child);
#endif
  }
} fork_handler;

}  // namespace
}  // namespace detail

bool forked_after_threads() {
  return detail::forked_after_threads.load(std::memory_order_relaxed);
}

std::vector<Tile> make_tiles(std::int64_t rows, std::int64_t cols, std::int64_t band,
                             std::int64_t strip) {
  std::vector<Tile> tiles;
  band = std::max<std::int64_t>(1, band);
  strip = std::max<std::int64_t>(1, strip);
  for (std::int64_t r0 = 0; r0 < rows; r0 += band)
    for (std::int64_t c0 = 0; c0 < cols; c0 += strip)
      tiles.push_back({r0, std::min(rows, r0 + band), c0, std::min(cols, c0 + strip)});
  return tiles;
}

}  // namespace fastblur
