#include "vdist/transport/tcp_channel.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace vdist::transport {
namespace {

using steady_clock = std::chrono::steady_clock;

// The writer and reader halves of a channel run on different threads; keep them on separate
// cache lines so one side's bookkeeping does not keep invalidating the other's.
constexpr std::size_t cache_line = 64;

/// `timeout` from now, saturating so that transport::forever never overflows.
steady_clock::time_point deadline_after(std::chrono::nanoseconds timeout) noexcept {
    const auto now = steady_clock::now();
    if (timeout <= std::chrono::nanoseconds::zero()) {
        return now;
    }
    if (timeout >= steady_clock::time_point::max() - now) {
        return steady_clock::time_point::max();
    }
    return now + std::chrono::duration_cast<steady_clock::duration>(timeout);
}

/// Wait until `socket` reports one of `events` (or hang-up / error, which the caller's next
/// system call turns into a result), or fail with timed_out at `deadline`.
result<void> wait_for(int socket, short events, steady_clock::time_point deadline) {
    for (;;) {
        int timeout_ms = -1;
        if (deadline != steady_clock::time_point::max()) {
            const auto left = deadline - steady_clock::now();
            if (left <= steady_clock::duration::zero()) {
                return fail(errc::timed_out);
            }
            // Rounded up: rounding down would spin on poll(0) through the last millisecond.
            const auto left_ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
            timeout_ms =
                static_cast<int>(std::min<std::chrono::milliseconds::rep>(left_ms, INT_MAX));
        }
        pollfd watched{socket, events, 0};
        const int ready = ::poll(&watched, 1, timeout_ms);
        if (ready > 0) {
            return {};
        }
        if (ready < 0 && errno != EINTR) {
            return fail_errno();
        }
    }
}

std::uint32_t load_le32(const std::byte* bytes) noexcept {
    return std::to_integer<std::uint32_t>(bytes[0]) |
           std::to_integer<std::uint32_t>(bytes[1]) << 8 |
           std::to_integer<std::uint32_t>(bytes[2]) << 16 |
           std::to_integer<std::uint32_t>(bytes[3]) << 24;
}

void store_le32(std::byte* bytes, std::uint32_t value) noexcept {
    bytes[0] = static_cast<std::byte>(value);
    bytes[1] = static_cast<std::byte>(value >> 8);
    bytes[2] = static_cast<std::byte>(value >> 16);
    bytes[3] = static_cast<std::byte>(value >> 24);
}

/// A file descriptor closed on destruction unless released.
class unique_fd {
  public:
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    unique_fd& operator=(unique_fd&&) = delete;
    ~unique_fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  private:
    int fd_;
};

/// getaddrinfo() reports its own error numbers (EAI_*), not errno values.
class resolver_category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int value) const override { return ::gai_strerror(value); }
};

const std::error_category& resolver_errors() noexcept {
    static const resolver_category instance;
    return instance;
}

using address_list = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

result<address_list> resolve(std::string_view host, std::uint16_t port, int flags) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    const std::string host_name(host);
    const std::string service = std::to_string(port);
    addrinfo* found = nullptr;
    const int status = ::getaddrinfo(host_name.empty() ? nullptr : host_name.c_str(),
                                     service.c_str(), &hints, &found);
    if (status == EAI_SYSTEM) {
        return fail_errno();
    }
    if (status != 0) {
        return std::unexpected(std::error_code(status, resolver_errors()));
    }
    return address_list(found, &::freeaddrinfo);
}

result<void> validate(const tcp_options& options) {
    if (options.max_message_size == 0 || options.max_message_size > tcp_max_message_limit) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    return {};
}

std::uint16_t port_of(const sockaddr_storage& address) noexcept {
    if (address.ss_family == AF_INET6) {
        sockaddr_in6 v6{};
        std::memcpy(&v6, &address, sizeof v6);
        return ntohs(v6.sin6_port);
    }
    sockaddr_in v4{};
    std::memcpy(&v4, &address, sizeof v4);
    return ntohs(v4.sin_port);
}

result<void> set_no_delay(int socket) {
    const int on = 1;
    if (::setsockopt(socket, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) {
        return fail_errno();
    }
    return {};
}

/// One non-blocking connect attempt to `address`, waiting for it until `deadline`.
result<unique_fd> connect_to(const addrinfo& address, steady_clock::time_point deadline) {
    unique_fd socket(::socket(address.ai_family, address.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                              address.ai_protocol));
    if (socket.get() < 0) {
        return fail_errno();
    }
    if (::connect(socket.get(), address.ai_addr, address.ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            return fail_errno();
        }
        if (auto writable = wait_for(socket.get(), POLLOUT, deadline); !writable) {
            return std::unexpected(writable.error());
        }
        int error = 0;
        socklen_t length = sizeof error;
        if (::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
            return fail_errno();
        }
        if (error != 0) {
            return std::unexpected(std::error_code(error, std::system_category()));
        }
    }
    if (auto configured = set_no_delay(socket.get()); !configured) {
        return std::unexpected(configured.error());
    }
    return socket;
}

}  // namespace

struct tcp_channel::state {
    state(int socket, std::size_t message_limit)
        : fd(socket),
          max_message_size(message_limit),
          out(frame_footprint(message_limit)),
          in(frame_footprint(message_limit)) {}
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    ~state() { ::close(fd); }

    const int fd;
    const std::size_t max_message_size;
    std::atomic<bool> closed{false};

    // Writer side.
    alignas(cache_line) std::vector<std::byte> out;
    std::size_t out_begin = 0;  // first queued byte the kernel has not taken
    std::size_t out_end = 0;    // end of the queue; a reserved frame starts here
    std::size_t reserved = 0;   // footprint of the reserved, uncommitted frame
    unsigned batch_depth = 0;
    std::atomic<std::uint64_t> bytes_sent{0};
    std::atomic<std::uint64_t> frames_sent{0};

    // Reader side.
    alignas(cache_line) std::vector<std::byte> in;
    std::size_t in_begin = 0;  // first byte not yet read
    std::size_t in_end = 0;    // end of received bytes
    std::size_t held = 0;      // footprint of the read, unreleased frame at in_begin
    bool end_of_stream = false;
    std::atomic<std::uint64_t> bytes_received{0};
    std::atomic<std::uint64_t> frames_received{0};

    // ---- writer side ----

    [[nodiscard]] result<void> check_writable() const {
        if (closed.load(std::memory_order_acquire)) {
            return fail(errc::peer_gone);
        }
        if (reserved != 0) {
            return fail(errc::misaligned_frame);
        }
        return {};
    }

    [[nodiscard]] std::size_t pending() const noexcept { return out_end - out_begin; }

    /// One send(); 0 when the kernel's buffer is full.
    [[nodiscard]] result<std::size_t> send_now(std::span<const std::byte> bytes) {
        for (;;) {
            const auto sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent >= 0) {
                bytes_sent.fetch_add(static_cast<std::uint64_t>(sent), std::memory_order_relaxed);
                return static_cast<std::size_t>(sent);
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            if (errno == EPIPE || errno == ECONNRESET) {
                return fail(errc::peer_gone);
            }
            return fail_errno();
        }
    }

    /// Hand queued bytes to the kernel until it is full or the queue is empty.
    [[nodiscard]] result<void> push() {
        while (pending() != 0) {
            auto sent = send_now({out.data() + out_begin, pending()});
            if (!sent) {
                return std::unexpected(sent.error());
            }
            if (*sent == 0) {
                return {};
            }
            out_begin += *sent;
        }
        if (reserved == 0) {
            out_begin = out_end = 0;
        }
        return {};
    }

    /// Push until the queue is empty; timed_out at `deadline`.
    [[nodiscard]] result<void> drain(steady_clock::time_point deadline) {
        for (;;) {
            if (auto pushed = push(); !pushed) {
                return pushed;
            }
            if (pending() == 0) {
                return {};
            }
            if (auto writable = wait_for(fd, POLLOUT, deadline); !writable) {
                return writable;
            }
        }
    }

    /// The end of a blocking write that has been accepted: push the queue while time is left.
    [[nodiscard]] result<void> finish_blocking_write(steady_clock::time_point deadline) {
        if (batch_depth != 0) {
            return {};
        }
        auto drained = drain(deadline);
        // The write's bytes are accepted whole; reporting timed_out would invite the caller
        // to send them a second time. What is left goes out with the next call or flush.
        if (!drained && drained.error() == errc::timed_out) {
            return {};
        }
        return drained;
    }

    /// Free bytes after the queue, pushing and compacting first when fewer than `wanted`.
    /// Only without a reservation, which must not move.
    [[nodiscard]] result<std::size_t> room_for(std::size_t wanted) {
        if (out.size() - out_end < wanted) {
            if (auto pushed = push(); !pushed) {
                return std::unexpected(pushed.error());
            }
            if (out_begin != 0) {
                std::memmove(out.data(), out.data() + out_begin, pending());
                out_end -= out_begin;
                out_begin = 0;
            }
        }
        return out.size() - out_end;
    }

    void enqueue(std::span<const std::byte> bytes) noexcept {
        if (!bytes.empty()) {
            std::memcpy(out.data() + out_end, bytes.data(), bytes.size());
            out_end += bytes.size();
        }
    }

    // ---- reader side ----

    [[nodiscard]] result<void> check_readable() const {
        if (closed.load(std::memory_order_acquire)) {
            return fail(errc::peer_gone);
        }
        if (held != 0) {
            return fail(errc::misaligned_frame);
        }
        return {};
    }

    [[nodiscard]] std::size_t buffered() const noexcept { return in_end - in_begin; }

    /// One recv() into a non-empty span; 0 when nothing has arrived or the stream has ended
    /// (end_of_stream tells which).
    [[nodiscard]] result<std::size_t> receive_now(std::span<std::byte> into) {
        for (;;) {
            const auto got = ::recv(fd, into.data(), into.size(), MSG_DONTWAIT);
            if (got > 0) {
                bytes_received.fetch_add(static_cast<std::uint64_t>(got),
                                         std::memory_order_relaxed);
                return static_cast<std::size_t>(got);
            }
            if (got == 0) {
                end_of_stream = true;
                return 0;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            if (errno == ECONNRESET || errno == EPIPE) {
                end_of_stream = true;
                return 0;
            }
            return fail_errno();
        }
    }

    /// Receive without blocking until `wanted` (<= in.size()) contiguous bytes are buffered,
    /// nothing more has arrived, or the stream has ended. Only without a held frame.
    [[nodiscard]] result<void> fill(std::size_t wanted) {
        while (buffered() < wanted && !end_of_stream) {
            if (in_begin + wanted > in.size()) {
                std::memmove(in.data(), in.data() + in_begin, buffered());
                in_end -= in_begin;
                in_begin = 0;
            }
            auto got = receive_now({in.data() + in_end, in.size() - in_end});
            if (!got) {
                return std::unexpected(got.error());
            }
            if (*got == 0) {
                return {};
            }
            in_end += *got;
        }
        return {};
    }

    void consume(std::size_t count) noexcept {
        in_begin += count;
        if (in_begin == in_end) {
            in_begin = in_end = 0;
        }
    }

    std::size_t take(std::span<std::byte> into) noexcept {
        const auto count = std::min(into.size(), buffered());
        std::memcpy(into.data(), in.data() + in_begin, count);
        consume(count);
        return count;
    }
};

tcp_channel::tcp_channel(int socket, tcp_options options)
    : state_(std::make_unique<state>(socket, options.max_message_size)) {}

tcp_channel::tcp_channel(tcp_channel&&) noexcept = default;
tcp_channel& tcp_channel::operator=(tcp_channel&&) noexcept = default;
tcp_channel::~tcp_channel() = default;

result<tcp_channel> tcp_channel::connect(std::string_view host, std::uint16_t port,
                                         std::chrono::nanoseconds timeout, tcp_options options) {
    if (auto valid = validate(options); !valid) {
        return std::unexpected(valid.error());
    }
    const auto deadline = deadline_after(timeout);
    auto addresses = resolve(host, port, 0);
    if (!addresses) {
        return std::unexpected(addresses.error());
    }
    std::error_code last_error = std::make_error_code(std::errc::host_unreachable);
    for (const addrinfo* address = addresses->get(); address != nullptr;
         address = address->ai_next) {
        auto socket = connect_to(*address, deadline);
        if (socket) {
            tcp_channel channel(socket->get(), options);
            (void)socket->release();  // the channel owns it now
            return channel;
        }
        last_error = socket.error();
        if (last_error == errc::timed_out) {
            break;
        }
    }
    return std::unexpected(last_error);
}

// ---- writer side ----

result<std::size_t> tcp_channel::write_some(std::span<const std::byte> bytes) {
    state& s = *state_;
    if (auto writable = s.check_writable(); !writable) {
        return std::unexpected(writable.error());
    }
    if (bytes.empty()) {
        return 0;
    }
    if (s.batch_depth == 0) {
        // Straight to the kernel: no copy, and a partial write leaves nothing behind in user
        // space that only a later call would push.
        if (auto pushed = s.push(); !pushed) {
            return std::unexpected(pushed.error());
        }
        if (s.pending() != 0) {
            return 0;
        }
        return s.send_now(bytes);
    }
    auto room = s.room_for(bytes.size());
    if (!room) {
        return room;
    }
    const auto count = std::min(*room, bytes.size());
    s.enqueue(bytes.first(count));
    return count;
}

result<std::size_t> tcp_channel::write(std::span<const std::byte> bytes,
                                       std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        auto written = write_some(bytes);
        if (!written || *written != 0 || bytes.empty()) {
            return written;
        }
        if (auto writable = wait_for(state_->fd, POLLOUT, deadline); !writable) {
            return std::unexpected(writable.error());
        }
    }
}

result<void> tcp_channel::write_all(std::span<const std::byte> bytes,
                                    std::chrono::nanoseconds timeout) {
    if (auto writable = state_->check_writable(); !writable) {
        return writable;
    }
    const auto deadline = deadline_after(timeout);
    while (!bytes.empty()) {
        auto written = write_some(bytes);
        if (!written) {
            return std::unexpected(written.error());
        }
        bytes = bytes.subspan(*written);
        if (*written == 0) {
            if (auto writable = wait_for(state_->fd, POLLOUT, deadline); !writable) {
                return writable;
            }
        }
    }
    return {};
}

result<write_status> tcp_channel::try_send(std::span<const std::byte> message) {
    state& s = *state_;
    if (auto writable = s.check_writable(); !writable) {
        return std::unexpected(writable.error());
    }
    if (message.size() > s.max_message_size) {
        return fail(errc::frame_too_large);
    }
    if (s.batch_depth == 0) {
        if (auto pushed = s.push(); !pushed) {
            return std::unexpected(pushed.error());
        }
        if (s.pending() == 0) {
            auto sent = s.send_now(message);
            if (!sent) {
                return std::unexpected(sent.error());
            }
            // The empty queue always has room for the rest, so the peer never sees the
            // message cut short.
            s.enqueue(message.subspan(*sent));
            return write_status::sent;
        }
    }
    auto room = s.room_for(message.size());
    if (!room) {
        return std::unexpected(room.error());
    }
    if (*room < message.size()) {
        return write_status::full;
    }
    s.enqueue(message);
    return write_status::sent;
}

result<void> tcp_channel::send(std::span<const std::byte> message,
                               std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        auto status = try_send(message);
        if (!status) {
            return std::unexpected(status.error());
        }
        if (*status == write_status::sent) {
            return state_->finish_blocking_write(deadline);
        }
        if (auto writable = wait_for(state_->fd, POLLOUT, deadline); !writable) {
            return writable;
        }
    }
}

result<write_frame> tcp_channel::try_reserve(std::size_t payload_size) {
    state& s = *state_;
    if (auto writable = s.check_writable(); !writable) {
        return std::unexpected(writable.error());
    }
    if (payload_size > max_frame_payload()) {
        return fail(errc::frame_too_large);
    }
    const auto footprint = frame_footprint(payload_size);
    auto room = s.room_for(footprint);
    if (!room) {
        return std::unexpected(room.error());
    }
    if (*room < footprint) {
        return write_frame{};
    }
    s.reserved = footprint;
    return write_frame{{s.out.data() + s.out_end + frame_header_size, payload_size}, footprint};
}

result<write_frame> tcp_channel::reserve(std::size_t payload_size,
                                         std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        auto frame = try_reserve(payload_size);
        if (!frame || *frame) {
            return frame;
        }
        if (auto writable = wait_for(state_->fd, POLLOUT, deadline); !writable) {
            return std::unexpected(writable.error());
        }
    }
}

result<void> tcp_channel::commit(write_frame frame, std::size_t payload_size) {
    state& s = *state_;
    std::byte* const header = s.out.data() + s.out_end;
    if (s.reserved == 0 || frame.footprint != s.reserved ||
        frame.payload.data() != header + frame_header_size) {
        return fail(errc::misaligned_frame);
    }
    if (payload_size > frame.payload.size()) {
        return fail(errc::frame_too_large);
    }
    s.reserved = 0;
    if (s.closed.load(std::memory_order_acquire)) {
        return fail(errc::peer_gone);
    }
    const auto footprint = frame_footprint(payload_size);
    store_le32(header, static_cast<std::uint32_t>(payload_size));
    store_le32(header + 4, frame_kind_data);
    // Zeroed so that no stale bytes of earlier messages reach the peer.
    std::fill(header + frame_header_size + payload_size, header + footprint, std::byte{0});
    s.out_end += footprint;
    s.frames_sent.fetch_add(1, std::memory_order_relaxed);
    if (s.batch_depth == 0) {
        return s.push();
    }
    return {};
}

result<void> tcp_channel::flush() {
    if (state_->closed.load(std::memory_order_acquire)) {
        return fail(errc::peer_gone);
    }
    return state_->push();
}

result<void> tcp_channel::flush(std::chrono::nanoseconds timeout) {
    if (state_->closed.load(std::memory_order_acquire)) {
        return fail(errc::peer_gone);
    }
    return state_->drain(deadline_after(timeout));
}

void tcp_channel::begin_batch() noexcept {
    ++state_->batch_depth;
}

result<void> tcp_channel::end_batch() {
    if (state_->batch_depth != 0 && --state_->batch_depth != 0) {
        return {};
    }
    return flush();
}

std::size_t tcp_channel::pending_bytes() const noexcept {
    return state_->pending();
}

// ---- reader side ----

result<std::size_t> tcp_channel::read_some(std::span<std::byte> into) {
    state& s = *state_;
    if (auto readable = s.check_readable(); !readable) {
        return std::unexpected(readable.error());
    }
    if (into.empty()) {
        return 0;
    }
    if (s.buffered() != 0) {
        return s.take(into);
    }
    if (s.end_of_stream) {
        return fail(errc::peer_gone);
    }
    auto got = s.receive_now(into);
    if (got && *got == 0 && s.end_of_stream) {
        return fail(errc::peer_gone);
    }
    return got;
}

result<std::size_t> tcp_channel::read(std::span<std::byte> into, std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        auto got = read_some(into);
        if (!got || *got != 0 || into.empty()) {
            return got;
        }
        if (auto readable = wait_for(state_->fd, POLLIN, deadline); !readable) {
            return std::unexpected(readable.error());
        }
    }
}

result<void> tcp_channel::read_exact(std::span<std::byte> into, std::chrono::nanoseconds timeout) {
    if (auto readable = state_->check_readable(); !readable) {
        return readable;
    }
    const auto deadline = deadline_after(timeout);
    while (!into.empty()) {
        auto got = read_some(into);
        if (!got) {
            return std::unexpected(got.error());
        }
        into = into.subspan(*got);
        if (*got == 0) {
            if (auto readable = wait_for(state_->fd, POLLIN, deadline); !readable) {
                return readable;
            }
        }
    }
    return {};
}

result<read_status> tcp_channel::try_recv(std::span<std::byte> into) {
    state& s = *state_;
    if (auto readable = s.check_readable(); !readable) {
        return std::unexpected(readable.error());
    }
    if (into.size() > s.max_message_size) {
        return fail(errc::frame_too_large);
    }
    if (auto filled = s.fill(into.size()); !filled) {
        return std::unexpected(filled.error());
    }
    if (s.buffered() < into.size()) {
        if (s.end_of_stream) {
            return fail(errc::peer_gone);
        }
        return read_status::empty;
    }
    s.take(into);
    return read_status::received;
}

result<void> tcp_channel::recv(std::span<std::byte> into, std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        auto status = try_recv(into);
        if (!status) {
            return std::unexpected(status.error());
        }
        if (*status == read_status::received) {
            return {};
        }
        if (auto readable = wait_for(state_->fd, POLLIN, deadline); !readable) {
            return readable;
        }
    }
}

result<transport::read_frame> tcp_channel::try_read_frame() {
    state& s = *state_;
    if (auto readable = s.check_readable(); !readable) {
        return std::unexpected(readable.error());
    }
    if (auto filled = s.fill(frame_header_size); !filled) {
        return std::unexpected(filled.error());
    }
    if (s.buffered() < frame_header_size) {
        if (s.end_of_stream) {
            return fail(errc::peer_gone);
        }
        return transport::read_frame{};
    }
    const std::uint32_t length = load_le32(s.in.data() + s.in_begin);
    const std::uint32_t kind = load_le32(s.in.data() + s.in_begin + 4);
    // A TCP stream has no end to wrap at, so a padding frame is as impossible as an unknown
    // kind. Checked before waiting for the payload: a hostile length must not make us wait.
    if (kind != frame_kind_data || length > max_frame_payload()) {
        close();
        return fail(errc::ring_corrupt);
    }
    const auto footprint = frame_footprint(length);
    if (auto filled = s.fill(footprint); !filled) {
        return std::unexpected(filled.error());
    }
    if (s.buffered() < footprint) {
        if (s.end_of_stream) {
            return fail(errc::peer_gone);
        }
        return transport::read_frame{};
    }
    s.held = footprint;
    s.frames_received.fetch_add(1, std::memory_order_relaxed);
    return transport::read_frame{{s.in.data() + s.in_begin + frame_header_size, length}, footprint};
}

result<transport::read_frame> tcp_channel::read_frame(std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        auto frame = try_read_frame();
        if (!frame || *frame) {
            return frame;
        }
        if (auto readable = wait_for(state_->fd, POLLIN, deadline); !readable) {
            return std::unexpected(readable.error());
        }
    }
}

result<void> tcp_channel::release(transport::read_frame frame) {
    state& s = *state_;
    if (s.held == 0 || frame.footprint != s.held ||
        frame.payload.data() != s.in.data() + s.in_begin + frame_header_size) {
        return fail(errc::misaligned_frame);
    }
    s.consume(s.held);
    s.held = 0;
    return {};
}

// ---- either side ----

std::size_t tcp_channel::max_message_size() const noexcept {
    return state_->max_message_size;
}

std::size_t tcp_channel::max_frame_payload() const noexcept {
    return state_->max_message_size;
}

std::uint64_t tcp_channel::generation() const noexcept {
    return 1;
}

void tcp_channel::close() noexcept {
    if (!state_->closed.exchange(true, std::memory_order_acq_rel)) {
        // shutdown(), not close(): the descriptor stays valid for a thread still blocked in
        // poll() on it, which wakes up with POLLHUP.
        ::shutdown(state_->fd, SHUT_RDWR);
    }
}

int tcp_channel::native_handle() const noexcept {
    return state_->fd;
}

tcp_statistics tcp_channel::statistics() const noexcept {
    return {
        .bytes_sent = state_->bytes_sent.load(std::memory_order_relaxed),
        .bytes_received = state_->bytes_received.load(std::memory_order_relaxed),
        .frames_sent = state_->frames_sent.load(std::memory_order_relaxed),
        .frames_received = state_->frames_received.load(std::memory_order_relaxed),
    };
}

// ---- listener ----

result<tcp_listener> tcp_listener::listen(std::string_view host, std::uint16_t port,
                                          tcp_options options) {
    if (auto valid = validate(options); !valid) {
        return std::unexpected(valid.error());
    }
    auto addresses = resolve(host, port, AI_PASSIVE);
    if (!addresses) {
        return std::unexpected(addresses.error());
    }
    std::error_code last_error = std::make_error_code(std::errc::address_not_available);
    for (const addrinfo* address = addresses->get(); address != nullptr;
         address = address->ai_next) {
        unique_fd socket(::socket(address->ai_family,
                                  address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                  address->ai_protocol));
        const int on = 1;
        sockaddr_storage bound{};
        socklen_t bound_length = sizeof bound;
        if (socket.get() < 0 ||
            ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
            ::bind(socket.get(), address->ai_addr, address->ai_addrlen) != 0 ||
            ::listen(socket.get(), SOMAXCONN) != 0 ||
            ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) {
            last_error = std::error_code(errno, std::system_category());
            continue;
        }
        return tcp_listener(socket.release(), port_of(bound), options);
    }
    return std::unexpected(last_error);
}

tcp_listener::tcp_listener(tcp_listener&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(other.port_), options_(other.options_) {}

tcp_listener& tcp_listener::operator=(tcp_listener&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = std::exchange(other.fd_, -1);
        port_ = other.port_;
        options_ = other.options_;
    }
    return *this;
}

tcp_listener::~tcp_listener() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

result<tcp_channel> tcp_listener::accept(std::chrono::nanoseconds timeout) {
    const auto deadline = deadline_after(timeout);
    for (;;) {
        unique_fd socket(::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (socket.get() >= 0) {
            if (auto configured = set_no_delay(socket.get()); !configured) {
                return std::unexpected(configured.error());
            }
            tcp_channel channel(socket.get(), options_);
            (void)socket.release();  // the channel owns it now
            return channel;
        }
        // ECONNABORTED: a client gave up while queued; wait for the next one.
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
            return fail_errno();
        }
        if (auto readable = wait_for(fd_, POLLIN, deadline); !readable) {
            return std::unexpected(readable.error());
        }
    }
}

}  // namespace vdist::transport
