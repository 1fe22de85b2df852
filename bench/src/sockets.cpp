/// \file
/// Stream-socket baselines between two processes: socketpair(AF_UNIX, SOCK_STREAM) and TCP
/// over 127.0.0.1 (TCP_NODELAY). Blocking sockets with SO_RCVTIMEO / SO_SNDTIMEO as the
/// bound on every wait.
///
/// The stream writer copies up to config.batch messages (at most 64 KiB) into one buffer and
/// writes it with one write(); messages of 32 KiB and more are written one write() each,
/// straight from the message buffer. The reader reads chunks of up to 256 KiB and walks the
/// message boundaries in them.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "transports.hpp"

namespace vdist::bench::internal {
namespace {

using transport::unique_fd;

constexpr std::size_t write_batch_bytes = 64 * 1024;
constexpr std::size_t read_chunk_bytes = 256 * 1024;

[[nodiscard]] std::error_code last_error() noexcept {
    return {errno, std::system_category()};
}

[[nodiscard]] outcome<void> write_all(int fd, std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return failure("write", last_error());
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

/// A read of up to bytes.size(); fails on end of stream.
[[nodiscard]] outcome<std::size_t> read_some(int fd, std::span<std::byte> bytes) {
    for (;;) {
        const ssize_t n = ::read(fd, bytes.data(), bytes.size());
        if (n > 0) {
            return static_cast<std::size_t>(n);
        }
        if (n == 0) {
            return failure("read: the peer closed the stream");
        }
        if (errno != EINTR) {
            return failure("read", last_error());
        }
    }
}

[[nodiscard]] outcome<void> configure(int fd, const cell_config& config, bool tcp) {
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(config.io_timeout).count();
    timeval timeout{};
    timeout.tv_sec = static_cast<time_t>(micros / 1'000'000);
    timeout.tv_usec = static_cast<suseconds_t>(micros % 1'000'000);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0) {
        return failure("setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)", last_error());
    }
    if (tcp) {
        const int one = 1;
        if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
            return failure("setsockopt(TCP_NODELAY)", last_error());
        }
    }
    return {};
}

/// One end of a connected stream socket.
class socket_endpoint {
  public:
    socket_endpoint(int fd, const cell_config& config)
        : fd_(fd),
          message_(config.message_size),
          batch_messages_(
              std::clamp<std::size_t>(write_batch_bytes / config.message_size, 1, config.batch)),
          chunk_(std::max(read_chunk_bytes, config.message_size)) {
        if (batch_messages_ > 1) {
            batch_.resize(batch_messages_ * config.message_size);
        }
    }

    [[nodiscard]] std::span<std::byte> buffer() noexcept { return message_; }
    [[nodiscard]] outcome<void> send() { return write_all(fd_, message_); }

    [[nodiscard]] outcome<void> recv() {
        std::span<std::byte> rest = message_;
        while (!rest.empty()) {
            auto got = read_some(fd_, rest);
            if (!got) {
                return std::unexpected(got.error());
            }
            rest = rest.subspan(*got);
        }
        return {};
    }

    [[nodiscard]] outcome<void> stream_out(clock::time_point until) {
        message_[0] = data_flag;
        if (batch_messages_ == 1) {
            return send_until(*this, until, 1);
        }
        const std::size_t size = message_.size();
        do {
            for (std::size_t i = 0; i < batch_messages_; ++i) {
                std::memcpy(batch_.data() + i * size, message_.data(), size);
            }
            if (auto written = write_all(fd_, batch_); !written) {
                return written;
            }
        } while (clock::now() < until);
        message_[0] = stop_flag;
        return send();
    }

    [[nodiscard]] outcome<stream_count> stream_in() {
        const std::size_t size = message_.size();
        stream_counter counter;
        std::size_t offset = 0;  // bytes of the current message seen so far
        bool stopping = false;
        for (;;) {
            auto got = read_some(fd_, chunk_);
            if (!got) {
                return std::unexpected(got.error());
            }
            std::size_t position = 0;
            while (position < *got) {
                if (offset == 0) {
                    stopping = chunk_[position] == stop_flag;
                }
                const std::size_t take = std::min(size - offset, *got - position);
                offset += take;
                position += take;
                if (offset == size) {
                    offset = 0;
                    if (stopping) {
                        return counter.finish();
                    }
                    counter.on_message();
                }
            }
        }
    }

  private:
    int fd_;
    std::vector<std::byte> message_;
    std::size_t batch_messages_;
    std::vector<std::byte> batch_;
    std::vector<std::byte> chunk_;
};

}  // namespace

outcome<cell_result> run_unix_socket(const cell_config& config) {
    int ends[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
        return failure("socketpair", last_error());
    }
    unique_fd a(ends[0]);
    unique_fd b(ends[1]);
    return run_two_processes(
        config,
        [&]() -> outcome<cell_result> {
            b.reset();  // the child's end: closed here so that its death is an end of stream
            if (auto ok = configure(a.get(), config, false); !ok) {
                return std::unexpected(ok.error());
            }
            socket_endpoint endpoint(a.get(), config);
            return measure_side_a(endpoint, config);
        },
        [&]() -> outcome<void> {
            a.reset();
            if (auto ok = configure(b.get(), config, false); !ok) {
                return ok;
            }
            socket_endpoint endpoint(b.get(), config);
            return run_side_b(endpoint, config);
        });
}

outcome<cell_result> run_tcp_loopback(const cell_config& config) {
    unique_fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener) {
        return failure("socket", last_error());
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener.get(), 1) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        return failure("listen on 127.0.0.1", last_error());
    }
    return run_two_processes(
        config,
        [&]() -> outcome<cell_result> {
            const auto wait_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(config.io_timeout).count();
            pollfd ready{listener.get(), POLLIN, 0};
            if (::poll(&ready, 1, static_cast<int>(wait_ms)) != 1) {
                return failure("accept: no connection from side B");
            }
            unique_fd connection(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!connection) {
                return failure("accept", last_error());
            }
            listener.reset();
            if (auto ok = configure(connection.get(), config, true); !ok) {
                return std::unexpected(ok.error());
            }
            socket_endpoint endpoint(connection.get(), config);
            return measure_side_a(endpoint, config);
        },
        [&]() -> outcome<void> {
            listener.reset();
            unique_fd connection(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
            if (!connection) {
                return failure("socket", last_error());
            }
            if (::connect(connection.get(), reinterpret_cast<const sockaddr*>(&address),
                          sizeof address) != 0) {
                return failure("connect to 127.0.0.1", last_error());
            }
            if (auto ok = configure(connection.get(), config, true); !ok) {
                return ok;
            }
            socket_endpoint endpoint(connection.get(), config);
            return run_side_b(endpoint, config);
        });
}

}  // namespace vdist::bench::internal
