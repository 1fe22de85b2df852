#pragma once
/// \file
/// Waiting on one file descriptor, shared by the backends' event ports.

#include <chrono>

#include "vdist/transport/errc.hpp"
#include "vdist/transport/seams.hpp"

namespace vdist::transport::internal {

/// Wait until `fd` is readable or `timeout` passes (transport::forever: no limit).
/// An interrupted wait counts as a wake-up: callers re-check their condition anyway.
[[nodiscard]] result<wait_outcome> wait_readable(int fd, std::chrono::nanoseconds timeout);

}  // namespace vdist::transport::internal
