#pragma once
/// \file
/// Pinning and forked children for the two-process measurements.
///
/// A child is forked while the parent has no other thread, pins itself to side B's CPU, runs
/// its half, writes one status report (empty = success, otherwise the error in words) into a
/// pipe and leaves with _exit. It dies with its parent (PR_SET_PDEATHSIG), and a
/// child_process that goes out of scope unfinished kills and reaps it: no exit path leaves a
/// process behind.

#include <sched.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <utility>
#include <vector>

#include "measure.hpp"
#include "vdist/transport/unique_fd.hpp"

namespace vdist::bench::internal {

/// The CPUs the calling thread may run on.
[[nodiscard]] std::vector<int> allowed_cpus();

/// CPU 0 and CPU 1 when both are allowed, else the first two allowed CPUs, else unpinned.
[[nodiscard]] cpu_pair choose_cpus();

/// Pin the calling thread to `cpu` (sched_setaffinity); -1 leaves it unpinned.
[[nodiscard]] outcome<void> pin_this_thread(int cpu);

/// Restores the calling thread's CPU affinity on destruction.
class affinity_guard {
  public:
    affinity_guard() noexcept;
    ~affinity_guard();
    affinity_guard(const affinity_guard&) = delete;
    affinity_guard& operator=(const affinity_guard&) = delete;

  private:
    cpu_set_t saved_{};
    bool valid_ = false;
};

/// A forked child running side B of one measurement. Kills and reaps it on destruction
/// unless finish() already reaped it.
class child_process {
  public:
    child_process(pid_t pid, transport::unique_fd status) noexcept
        : pid_(pid), status_(std::move(status)) {}
    child_process(child_process&& other) noexcept
        : pid_(std::exchange(other.pid_, -1)), status_(std::move(other.status_)) {}
    child_process& operator=(child_process&&) = delete;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process();

    /// Wait up to `timeout` for the child's report and exit; kill it when the time is up.
    /// Fails with the child's own error when it reported one.
    [[nodiscard]] outcome<void> finish(std::chrono::nanoseconds timeout);

  private:
    void kill_and_reap() noexcept;

    pid_t pid_ = -1;
    transport::unique_fd status_;
};

namespace detail {
/// In the child, before its body: die with `parent`, pin to `cpu`.
[[nodiscard]] outcome<void> start_child(pid_t parent, int cpu) noexcept;
/// In the child, after its body: report through `status_fd` and _exit.
[[noreturn]] void end_child(int status_fd, const outcome<void>& result) noexcept;
/// fork() with a status pipe; returns the pid (0 in the child) and this side's pipe end.
[[nodiscard]] outcome<std::pair<pid_t, int>> fork_with_pipe();
}  // namespace detail

/// Fork a child pinned to `cpu` that runs `body()` (returning outcome<void>) and exits.
/// Call only while the calling process has a single thread.
template <class Body>
[[nodiscard]] outcome<child_process> fork_child(int cpu, Body&& body) {
    const pid_t parent = ::getpid();
    auto forked = detail::fork_with_pipe();
    if (!forked) {
        return std::unexpected(forked.error());
    }
    const auto [pid, fd] = *forked;
    if (pid == 0) {
        outcome<void> result = detail::start_child(parent, cpu);
        if (result) {
            try {
                result = body();
            } catch (const std::exception& e) {
                result = failure(e.what());
            } catch (...) {
                result = failure("unknown exception");
            }
        }
        detail::end_child(fd, result);
    }
    return child_process(pid, transport::unique_fd(fd));
}

}  // namespace vdist::bench::internal
