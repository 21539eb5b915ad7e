#include "parallel.hpp"

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
}  // namespace fastblur
