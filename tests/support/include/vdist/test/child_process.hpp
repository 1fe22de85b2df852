#pragma once
/// \file
/// A child process started with fork + exec, its stdout captured, always reaped: killed on
/// destruction if still running, so that no test leaves a process behind.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace vdist::test {

class child_process {
  public:
    /// Start `program` with `args`; its stdout goes to a pipe read by output().
    child_process(const std::string& program, const std::vector<std::string>& args) {
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
            return;
        }
        std::vector<std::string> argv_storage{program};
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& arg : argv_storage) {
            argv.push_back(arg.data());
        }
        argv.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(pipe_fds[1], STDOUT_FILENO);
            ::execv(program.c_str(), argv.data());
            ::_exit(127);
        }
        ::close(pipe_fds[1]);
        stdout_fd_ = pipe_fds[0];
    }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    ~child_process() {
        kill(SIGKILL);
        (void)wait(std::chrono::seconds(10));
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

  private:
    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    std::optional<int> status_;
};

}  // namespace vdist::test
