#pragma once
/// \file
/// What the parts of `vdist demo` share: their children (started with a pipe for their output,
/// shown line by line, killed and reaped on every path), a private epmd, and output lines
/// prefixed with who printed them.

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vdist::cli {

using demo_clock = std::chrono::steady_clock;

/// How long a child may take to exit after SIGTERM before it gets SIGKILL.
inline constexpr auto stop_timeout = std::chrono::seconds(3);

/// Prints one line of `who` (a child's label or "demo"), prefixed, and flushes: the demo's
/// output is read live.
void show(std::string_view who, std::string_view line);
/// "exited with status N", "ended by SIGKILL", ...
[[nodiscard]] std::string describe_status(const std::optional<int>& status);
/// The full path of `program` on PATH, or empty.
[[nodiscard]] std::string find_on_path(std::string_view program);
/// A TCP port nothing listens on right now (bound, then released: someone could take it
/// before its user does, which shows as that user failing to start).
[[nodiscard]] std::uint16_t free_port();
/// A cookie for this run only: the nodes listen on every interface while the demo runs.
[[nodiscard]] std::string random_cookie();
/// The environment of the children: ours, with ERL_EPMD_PORT set to the private epmd.
[[nodiscard]] std::vector<std::string> child_environment(std::uint16_t epmd_port);

/// One child of the demo: stdin on /dev/null, stdout and stderr on one pipe read line by
/// line. The destructor kills (SIGKILL) and reaps it if that has not happened yet; the child
/// also gets SIGKILL if the demo dies first (PR_SET_PDEATHSIG), so no path leaves one behind.
class child {
  public:
    /// Starts `argv[0]` (searched on PATH when it has no '/') with `environment`. Null when
    /// no pipe or process could be made; a failed exec shows as exit status 127.
    static std::unique_ptr<child> start(std::string label, std::vector<std::string> argv,
                                        std::vector<std::string> environment);

    child(const child&) = delete;
    child& operator=(const child&) = delete;
    ~child() {
        if (!status_) {
            ::kill(pid_, SIGKILL);
            (void)wait(stop_timeout);
        }
        close_output();
    }

    [[nodiscard]] const std::string& label() const noexcept { return label_; }
    /// The pipe to poll; -1 once the child closed its output.
    [[nodiscard]] int output() const noexcept { return output_; }
    [[nodiscard]] const std::optional<int>& status() const noexcept { return status_; }

    /// Reads what the child wrote (call when output() is readable): its complete lines, and
    /// at end of output the unterminated rest; then output() is -1.
    [[nodiscard]] std::vector<std::string> read_lines() {
        std::vector<std::string> lines;
        char buffer[4096];
        const ssize_t n = ::read(output_, buffer, sizeof buffer);
        if (n > 0) {
            pending_.append(buffer, static_cast<std::size_t>(n));
        }
        for (auto newline = pending_.find('\n'); newline != std::string::npos;
             newline = pending_.find('\n')) {
            lines.push_back(pending_.substr(0, newline));
            pending_.erase(0, newline + 1);
        }
        if (n <= 0) {
            if (!pending_.empty()) {
                lines.push_back(std::move(pending_));
                pending_.clear();
            }
            close_output();
        }
        return lines;
    }

    void signal(int number) const noexcept {
        if (!status_) {
            ::kill(pid_, number);
        }
    }

    /// Waits up to `timeout` for the child to exit: its status as waitpid gives it, or nullopt.
    std::optional<int> wait(demo_clock::duration timeout) {
        const auto deadline = demo_clock::now() + timeout;
        while (!status_) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                status_ = status;
            } else if (demo_clock::now() >= deadline) {
                break;
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        }
        return status_;
    }

  private:
    child(std::string label, pid_t pid, int output)
        : label_(std::move(label)), pid_(pid), output_(output) {}

    void close_output() noexcept {
        if (output_ >= 0) {
            ::close(output_);
            output_ = -1;
        }
    }

    std::string label_;
    pid_t pid_;
    int output_;
    std::string pending_;
    std::optional<int> status_;
};

/// Shows what `c` prints until it closes its output or `timeout` passes, then reaps it
/// (SIGKILL if it has not exited by then). Its exit status.
std::optional<int> drain_and_reap(child& c, demo_clock::duration timeout);
/// Asks `c` to stop (SIGTERM), shows its last lines, reaps it.
std::optional<int> stop(child* c);
/// Starts epmd in the foreground on `port` (our child, so ours to stop) and waits until it
/// answers NAMES. Null, with the reason shown, if it does not.
[[nodiscard]] std::unique_ptr<child> start_epmd(const std::string& program, std::uint16_t port,
                                                const std::vector<std::string>& environment);

}  // namespace vdist::cli
