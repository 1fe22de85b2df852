#pragma once
/// \file
/// Line-by-line talk with a child process over its stdin and stdout pipes, for the
/// benchmarks that drive other programs (a BEAM running an escript, a C++ agent): one command
/// line out, one reply line back, every read bounded by a timeout so that a stuck child is an
/// error, never a hang.

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "vdist/transport/unique_fd.hpp"

namespace vdist::bench {

/// The two pipe ends to one child, and the bytes read past the last line.
class line_pipe {
  public:
    line_pipe() = default;
    /// Takes the write end of the child's stdin and the read end of its stdout.
    line_pipe(int to_child, int from_child) : to_child_(to_child), from_child_(from_child) {}

    /// Whether the child's stdin is still open.
    [[nodiscard]] bool open() const noexcept { return static_cast<bool>(to_child_); }

    /// Writes every byte of `bytes` (EINTR retried). False once the child stopped reading.
    [[nodiscard]] bool write_all(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::write(to_child_.get(), bytes.data(), bytes.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return false;
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    /// `line` and a newline.
    [[nodiscard]] bool write_line(std::string_view line) {
        std::string text(line);
        text.push_back('\n');
        return write_all(text);
    }

    /// The next line of the child's output (without the newline), or nullopt at the end of its
    /// output or when none came within `timeout`.
    [[nodiscard]] std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (const auto end = buffered_.find('\n'); end != std::string::npos) {
                std::string line = buffered_.substr(0, end);
                buffered_.erase(0, end + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !from_child_) {
                return std::nullopt;
            }
            pollfd readable{from_child_.get(), POLLIN, 0};
            const int ready = ::poll(&readable, 1, static_cast<int>(left.count()));
            if (ready < 0 && errno == EINTR) {
                continue;
            }
            if (ready <= 0) {
                return std::nullopt;
            }
            char chunk[65536];
            const ssize_t n = ::read(from_child_.get(), chunk, sizeof chunk);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return std::nullopt;
            }
            buffered_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    /// Closes the child's stdin (it sees end of input).
    void close_input() noexcept { to_child_.reset(); }
    /// Closes both ends.
    void close() noexcept {
        to_child_.reset();
        from_child_.reset();
    }

  private:
    transport::unique_fd to_child_;
    transport::unique_fd from_child_;
    std::string buffered_;
};

}  // namespace vdist::bench
