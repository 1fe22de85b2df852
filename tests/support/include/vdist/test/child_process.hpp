#pragma once
/// \file
/// A child process started with fork + exec, its stdout captured, always reaped: killed on
/// destruction if still running, so that no test leaves a process behind. It also dies with the
/// thread that started it (PR_SET_PDEATHSIG), so a test binary that aborts (a watchdog) or
/// crashes leaves nothing behind either: start children from the test's main thread.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vdist::test {

/// The path of the executable `name` found on PATH, or empty.
[[nodiscard]] inline std::string on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::istringstream directories(path != nullptr ? path : "");
    for (std::string directory; std::getline(directories, directory, ':');) {
        const auto candidate = std::filesystem::path(directory) / name;
        if (!directory.empty() && ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return {};
}

/// How a child's standard streams are set up.
struct child_options {
    /// Give the child a pipe as stdin, fed by write_stdin() (else it inherits the test's).
    bool pipe_stdin = false;
    /// Send the child's stderr into the same pipe as its stdout (else it inherits the test's).
    bool merge_stderr = false;
};

class child_process {
  public:
    /// Start `program` with `args`; its stdout goes to a pipe read by output().
    child_process(const std::string& program, const std::vector<std::string>& args,
                  child_options options = {}) {
        int out_fds[2];
        if (::pipe2(out_fds, O_CLOEXEC) != 0) {
            return;
        }
        int in_fds[2] = {-1, -1};
        if (options.pipe_stdin && ::pipe2(in_fds, O_CLOEXEC) != 0) {
            ::close(out_fds[0]);
            ::close(out_fds[1]);
            return;
        }
        std::vector<std::string> argv_storage{program};
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& arg : argv_storage) {
            argv.push_back(arg.data());
        }
        argv.push_back(nullptr);
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) {
            // Killed when the thread that forked it ends; if that happened before prctl, leave.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(127);
            }
            ::dup2(out_fds[1], STDOUT_FILENO);
            if (options.merge_stderr) {
                ::dup2(out_fds[1], STDERR_FILENO);
            }
            if (options.pipe_stdin) {
                ::dup2(in_fds[0], STDIN_FILENO);
            }
            ::execv(program.c_str(), argv.data());
            ::_exit(127);
        }
        ::close(out_fds[1]);
        stdout_fd_ = out_fds[0];
        if (options.pipe_stdin) {
            ::close(in_fds[0]);
            stdin_fd_ = in_fds[1];
        }
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process() {
        kill(SIGKILL);
        (void)wait(std::chrono::seconds(10));
        close_stdin();
        if (stdout_fd_ >= 0) {
            ::close(stdout_fd_);
        }
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    void kill(int signal) noexcept {
        if (pid_ > 0 && !status_) {
            ::kill(pid_, signal);
        }
    }

    /// Wait for the exit status (as from waitpid), or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (pid_ > 0 && !status_) {
            int status = 0;
            const pid_t done = ::waitpid(pid_, &status, WNOHANG);
            if (done == pid_) {
                status_ = status;
                break;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                return std::nullopt;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return status_;
    }

    /// Writes `text` to the child's stdin (child_options::pipe_stdin). False if the child
    /// closed it or there is no such pipe.
    bool write_stdin(std::string_view text) noexcept {
        while (stdin_fd_ >= 0 && !text.empty()) {
            const ssize_t n = ::write(stdin_fd_, text.data(), text.size());
            if (n <= 0) {
                return false;
            }
            text.remove_prefix(static_cast<std::size_t>(n));
        }
        return stdin_fd_ >= 0;
    }
    /// Closes the child's stdin (it reads end of file).
    void close_stdin() noexcept {
        if (stdin_fd_ >= 0) {
            ::close(stdin_fd_);
            stdin_fd_ = -1;
        }
    }

    /// Everything the child wrote to stdout until it closed it (or the timeout passed).
    std::string output(std::chrono::milliseconds timeout) {
        std::string text;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        char buffer[4096];
        while (stdout_fd_ >= 0) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd fd{stdout_fd_, POLLIN, 0};
            if (left.count() <= 0 || ::poll(&fd, 1, static_cast<int>(left.count())) <= 0) {
                break;
            }
            const ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
            if (n <= 0) {
                break;
            }
            text.append(buffer, static_cast<std::size_t>(n));
        }
        return text;
    }

    /// What the child has written to stdout, waiting at most `timeout` for the first byte but
    /// not for more: "" if nothing came in time, nullopt once the child closed its stdout.
    std::optional<std::string> read_some(std::chrono::milliseconds timeout) {
        std::string text;
        char buffer[65536];
        for (int wait_ms = static_cast<int>(timeout.count()); stdout_fd_ >= 0; wait_ms = 0) {
            pollfd fd{stdout_fd_, POLLIN, 0};
            if (::poll(&fd, 1, wait_ms) <= 0) {
                return text;
            }
            const ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
            if (n <= 0) {
                ::close(stdout_fd_);
                stdout_fd_ = -1;
                break;
            }
            text.append(buffer, static_cast<std::size_t>(n));
        }
        if (text.empty()) {
            return std::nullopt;
        }
        return text;
    }

  private:
    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    int stdin_fd_ = -1;
    std::optional<int> status_;
};

}  // namespace vdist::test
