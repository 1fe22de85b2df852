#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <string>
#include <thread>

namespace vdist::bench::internal {
namespace {

[[nodiscard]] std::error_code last_error() noexcept {
    return {errno, std::system_category()};
}

[[nodiscard]] std::string describe_exit(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return "killed by signal " + std::to_string(WTERMSIG(status));
    }
    return "stopped";
}

}  // namespace

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (::sched_getaffinity(0, sizeof set, &set) != 0) {
        return cpus;
    }
    for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) {
            cpus.push_back(static_cast<int>(cpu));
        }
    }
    return cpus;
}

cpu_pair choose_cpus() {
    const auto cpus = allowed_cpus();
    if (std::ranges::find(cpus, 0) != cpus.end() && std::ranges::find(cpus, 1) != cpus.end()) {
        return {0, 1};
    }
    if (cpus.size() >= 2) {
        return {cpus[0], cpus[1]};
    }
    return {};
}

outcome<void> pin_this_thread(int cpu) {
    if (cpu < 0) {
        return {};
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<std::size_t>(cpu), &set);
    // pid 0: the calling thread only.
    if (::sched_setaffinity(0, sizeof set, &set) != 0) {
        return failure("sched_setaffinity(CPU " + std::to_string(cpu) + ")", last_error());
    }
    return {};
}

affinity_guard::affinity_guard() noexcept {
    CPU_ZERO(&saved_);
    valid_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
}

affinity_guard::~affinity_guard() {
    if (valid_) {
        (void)::sched_setaffinity(0, sizeof saved_, &saved_);
    }
}

child_process::~child_process() {
    kill_and_reap();
}

void child_process::kill_and_reap() noexcept {
    if (pid_ <= 0) {
        return;
    }
    (void)::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
}

outcome<void> child_process::finish(std::chrono::nanoseconds timeout) {
    const auto deadline = clock::now() + timeout;
    auto remaining_ms = [&] {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1000));
    };
    // The report ends when the child exits (the pipe's only writer is gone).
    std::string report;
    bool report_complete = !status_;
    while (!report_complete && clock::now() < deadline) {
        pollfd readable{status_.get(), POLLIN, 0};
        const int ready = ::poll(&readable, 1, remaining_ms());
        if (ready < 0 && errno != EINTR) {
            break;
        }
        if (ready <= 0) {
            continue;
        }
        char chunk[256];
        const ssize_t got = ::read(status_.get(), chunk, sizeof chunk);
        if (got > 0) {
            report.append(chunk, static_cast<std::size_t>(got));
        } else if (got == 0 || errno != EINTR) {
            report_complete = true;
        }
    }
    int status = 0;
    for (;;) {
        const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
        if (reaped == pid_) {
            pid_ = -1;
            break;
        }
        if (reaped < 0 && errno != EINTR) {
            pid_ = -1;
            return failure("waitpid", last_error());
        }
        if (clock::now() >= deadline) {
            kill_and_reap();
            return failure("side B did not finish in time and was killed" +
                           (report.empty() ? std::string() : " (it reported: " + report + ")"));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!report.empty()) {
        return failure("side B: " + report);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return failure("side B " + describe_exit(status));
    }
    return {};
}

namespace detail {

outcome<void> start_child(pid_t parent, int cpu) noexcept {
    // Die with the parent, even if it is killed before it can reap us.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) {
        ::_exit(3);
    }
    return pin_this_thread(cpu);
}

void end_child(int status_fd, const outcome<void>& result) noexcept {
    if (!result) {
        const std::string& report = result.error();
        std::size_t written = 0;
        while (written < report.size()) {
            const ssize_t n = ::write(status_fd, report.data() + written, report.size() - written);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                break;
            }
            written += static_cast<std::size_t>(n);
        }
    }
    // _exit: the parent's stdio buffers and atexit handlers are not ours to run.
    ::_exit(result ? 0 : 1);
}

outcome<std::pair<pid_t, int>> fork_with_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        return failure("pipe2", last_error());
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        const auto error = last_error();
        ::close(fds[0]);
        ::close(fds[1]);
        return failure("fork", error);
    }
    if (pid == 0) {
        ::close(fds[0]);
        return std::pair{pid, fds[1]};
    }
    ::close(fds[1]);
    return std::pair{pid, fds[0]};
}

}  // namespace detail
}  // namespace vdist::bench::internal
