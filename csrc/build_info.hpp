// How the kernels were compiled (reported by fastblur._native for diagnostics; the
// instruction-set levels are in dispatch.hpp).
#pragma once

namespace fastblur {

// Whether the kernels were built with OpenMP (else every call runs on one thread).
bool has_openmp();

// Whether this is a child forked after the OpenMP pool started (calls run on one thread).
bool threads_disabled_by_fork();

}  // namespace fastblur
