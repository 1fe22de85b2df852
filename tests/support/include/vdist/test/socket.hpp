#pragma once
/// \file
/// Plain blocking TCP sockets on loopback for tests that play a peer by hand (a handshake, an
/// EPMD, a hostile client): an owned fd, listen/connect/accept, whole sends and bounded reads.
/// Every wait has a timeout.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <thread>
#include <utility>

#include "vdist/test/bytes.hpp"

namespace vdist::test {

/// An owned file descriptor.
class fd_guard {
  public:
    fd_guard() = default;
    explicit fd_guard(int fd) : fd_(fd) {}
    fd_guard(fd_guard&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    fd_guard& operator=(fd_guard&& other) noexcept {
        std::swap(fd_, other.fd_);
        return *this;
    }
    ~fd_guard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }

  private:
    int fd_ = -1;
};

[[nodiscard]] inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/// A TCP socket listening on 127.0.0.1:`port` (0: any free port).
[[nodiscard]] inline fd_guard listen_on(std::uint16_t port) {
    fd_guard fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    const auto address = loopback(port);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd.get(), 4) != 0) {
        return {};
    }
    return fd;
}

/// The local port of a bound socket.
[[nodiscard]] inline std::uint16_t port_of(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

/// A port nobody listens on right now (the kernel's pick; another process could take it
/// before us, which a test then reports as a failure to start).
[[nodiscard]] inline std::uint16_t free_port() {
    const auto fd = listen_on(0);
    return fd.valid() ? port_of(fd.get()) : 0;
}

/// A connection to 127.0.0.1:`port`, retried until `timeout` (the server may be starting).
[[nodiscard]] inline fd_guard connect_to(std::uint16_t port, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
        fd_guard fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        const auto address = loopback(port);
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
            return fd;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return {};
}

/// A connection accepted on `listener` within `timeout`.
[[nodiscard]] inline fd_guard accept_from(int listener, std::chrono::milliseconds timeout) {
    pollfd ready{listener, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) {
        return {};
    }
    return fd_guard(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
}

/// Sends all of `data`; false if the peer is gone.
[[nodiscard]] inline bool send_all(int fd, std::span<const std::byte> data) {
    while (!data.empty()) {
        const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (sent <= 0) {
            return false;
        }
        data = data.subspan(static_cast<std::size_t>(sent));
    }
    return true;
}

/// What arrived: bytes, an empty vector at end of stream (or a reset), nullopt on timeout.
[[nodiscard]] inline std::optional<bytes> read_some(int fd, std::chrono::milliseconds timeout) {
    pollfd ready{fd, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) {
        return std::nullopt;
    }
    bytes buffer(4096);
    const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
    buffer.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
    return buffer;
}

/// Exactly `count` bytes, or nullopt (end of stream, or nothing for `timeout`).
[[nodiscard]] inline std::optional<bytes> read_exactly(int fd, std::size_t count,
                                                       std::chrono::milliseconds timeout) {
    bytes out;
    while (out.size() < count) {
        pollfd ready{fd, POLLIN, 0};
        if (::poll(&ready, 1, static_cast<int>(timeout.count())) != 1) {
            return std::nullopt;
        }
        bytes buffer(count - out.size());
        const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (got <= 0) {
            return std::nullopt;
        }
        out.insert(out.end(), buffer.begin(), buffer.begin() + got);
    }
    return out;
}

/// Reads and drops whatever arrives until the peer closes the connection (true) or nothing
/// has come for `timeout` (false: the connection is still open).
[[nodiscard]] inline bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
    for (;;) {
        const auto got = read_some(fd, timeout);
        if (!got) {
            return false;
        }
        if (got->empty()) {
            return true;
        }
    }
}

}  // namespace vdist::test
