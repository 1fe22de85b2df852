#pragma once
/// \file
/// The channel (channel.hpp) between peers on different hosts: one TCP connection, with
/// user-space buffers that give it the ring channel's all-or-nothing and in-place frame
/// semantics.
///
/// ```
///  writer side (writing thread only)            reader side (reading thread only)
///  out: frame_footprint(max_message_size)       in: frame_footprint(max_message_size)
///  +--------+-----------------+----------+      +----------+-----------------+--------+
///  | sent   | queued for the  | free /   |      | consumed | received, not   | free   |
///  |        | kernel          | reserved |      |          | yet read        |        |
///  +--------+-----------------+----------+      +----------+-----------------+--------+
///           begin             end                          begin             end
/// ```
///
/// Writing. Outside a batch, partial writes (write_some, write, write_all) hand bytes straight
/// to the kernel and never leave any behind in user space. All-or-nothing writes (try_send,
/// send) and committed frames are queued whole in `out` when the kernel does not take them at
/// once, so the peer never sees half a message; the queue goes out on the next write-side call
/// or flush(). Blocking writes (send, write, write_all) also push the queue until it is empty
/// or their deadline passes; non-blocking ones leave it to the next call: check
/// pending_bytes() and call flush(timeout) before waiting on a reply. Inside a batch every
/// write only queues (pushing just to make room) and end_batch() or flush() sends.
///
/// Reading. Bytes are taken from the kernel into `in` as they arrive; try_recv and frames
/// complete only once every byte they need is there, so `in` bounds the largest message and
/// frame: max_message_size() == max_frame_payload(). Both ends must use the same
/// tcp_options::max_message_size.
///
/// Frames use the wire format of channel.hpp (little-endian length and kind, payload padded
/// to 8 bytes). A TCP stream has no end to wrap at, so padding frames are never sent.
///
/// Errors. The TCP peer is untrusted like a ring's: a frame header with kind other than data
/// (padding included) or a length above max_frame_payload() is "an impossible frame" and is
/// reported as errc::ring_corrupt, after which the channel is closed. End of stream,
/// ECONNRESET and EPIPE become errc::peer_gone once every byte already received has been read;
/// an all-or-nothing read or a frame that the end of stream cut short fails with peer_gone at
/// once (read_some still returns its bytes). SIGPIPE is never raised. Deadlines expire with
/// errc::timed_out. A channel closed with close() (or after ring_corrupt) fails every later
/// operation except release() with errc::peer_gone.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "vdist/transport/channel.hpp"
#include "vdist/transport/errc.hpp"

namespace vdist::transport {

/// Configuration of a TCP channel; both ends of a connection must agree on it.
struct tcp_options {
    /// Largest all-or-nothing message and frame payload. Each direction keeps a user-space
    /// buffer of frame_footprint(max_message_size) bytes. Must be in 1..tcp_max_message_limit.
    std::size_t max_message_size = std::size_t{1} << 20;
};

/// Upper bound of tcp_options::max_message_size (1 GiB); larger sizes are invalid_argument.
inline constexpr std::size_t tcp_max_message_limit = std::size_t{1} << 30;

/// Traffic counters of a tcp_channel since it was created.
struct tcp_statistics {
    std::uint64_t bytes_sent = 0;       ///< bytes the kernel accepted from us
    std::uint64_t bytes_received = 0;   ///< bytes we took from the kernel
    std::uint64_t frames_sent = 0;      ///< frames committed
    std::uint64_t frames_received = 0;  ///< frames returned by try_read_frame/read_frame
};

class tcp_listener;

/// One TCP connection as a channel. Operations are single-threaded per direction: one writer
/// thread may write while one reader thread reads. close(), statistics(), native_handle(),
/// max_message_size(), max_frame_payload() and generation() may be called from any thread.
/// A moved-from channel may only be destroyed or assigned to.
class tcp_channel {
  public:
    /// Connect to `host` (a name or numeric address) on `port`, trying each address the
    /// resolver returns until one connects or the deadline passes. Name resolution itself is
    /// a blocking getaddrinfo() call and is not bounded by `timeout`.
    [[nodiscard]] static result<tcp_channel> connect(std::string_view host, std::uint16_t port,
                                                     std::chrono::nanoseconds timeout,
                                                     tcp_options options = {});

    tcp_channel(tcp_channel&&) noexcept;
    tcp_channel& operator=(tcp_channel&&) noexcept;
    tcp_channel(const tcp_channel&) = delete;
    tcp_channel& operator=(const tcp_channel&) = delete;
    /// Closes the socket; bytes still queued in user space are dropped (flush first).
    ~tcp_channel();

    /// Non-blocking partial write; 0 when nothing can be taken now: the socket is full and,
    /// in a batch, so is the queue (outside a batch, queued bytes go first, so 0 while any are
    /// left). Writer thread only; misaligned_frame while a reserved frame is not committed.
    [[nodiscard]] result<std::size_t> write_some(std::span<const std::byte> bytes);
    /// Partial write waiting for room for at least one byte. Writer thread only.
    [[nodiscard]] result<std::size_t> write(std::span<const std::byte> bytes,
                                            std::chrono::nanoseconds timeout);
    /// Write every byte, waiting for room as needed. On timed_out or an error a prefix may
    /// have been sent, as on any byte stream. Writer thread only.
    [[nodiscard]] result<void> write_all(std::span<const std::byte> bytes,
                                         std::chrono::nanoseconds timeout);
    /// Non-blocking all-or-nothing write: sent when the whole message was handed to the kernel
    /// or queued, full when the queue has no room for all of it; frame_too_large when larger
    /// than max_message_size(). Writer thread only.
    [[nodiscard]] result<write_status> try_send(std::span<const std::byte> message);
    /// All-or-nothing write waiting for room, then pushing the queue until it is empty or the
    /// deadline passes. Success means the message is accepted whole even if part of it is
    /// still queued when the deadline passes. Writer thread only.
    [[nodiscard]] result<void> send(std::span<const std::byte> message,
                                    std::chrono::nanoseconds timeout);

    /// Non-blocking partial read; 0 when nothing has arrived. Reader thread only;
    /// misaligned_frame while a read frame is not released.
    [[nodiscard]] result<std::size_t> read_some(std::span<std::byte> into);
    /// Partial read waiting for at least one byte. Reader thread only.
    [[nodiscard]] result<std::size_t> read(std::span<std::byte> into,
                                           std::chrono::nanoseconds timeout);
    /// Read exactly into.size() bytes, waiting as needed. On timed_out or an error a prefix
    /// of `into` may have been filled and consumed. Reader thread only.
    [[nodiscard]] result<void> read_exact(std::span<std::byte> into,
                                          std::chrono::nanoseconds timeout);
    /// Non-blocking all-or-nothing read: received once into.size() bytes have arrived, empty
    /// before; frame_too_large when into.size() > max_message_size(). Reader thread only.
    [[nodiscard]] result<read_status> try_recv(std::span<std::byte> into);
    /// All-or-nothing read waiting for into.size() bytes. Reader thread only.
    [[nodiscard]] result<void> recv(std::span<std::byte> into, std::chrono::nanoseconds timeout);

    /// Reserve a frame of `payload_size` bytes in the outgoing queue without blocking; a false
    /// frame when the queue has no room. One reservation at a time. Writer thread only.
    [[nodiscard]] result<write_frame> try_reserve(std::size_t payload_size);
    /// Reserve a frame, waiting for room in the queue. Writer thread only.
    [[nodiscard]] result<write_frame> reserve(std::size_t payload_size,
                                              std::chrono::nanoseconds timeout);
    /// Publish the reserved frame, shrunk to its first `payload_size` bytes (frame_too_large
    /// when more than were reserved), and push it unless in a batch. Writer thread only.
    [[nodiscard]] result<void> commit(write_frame frame, std::size_t payload_size);
    /// Next frame without blocking; a false frame until all of it has arrived. The payload is
    /// a view into the receive buffer, valid until release(); release it before reading the
    /// next frame or bytes (misaligned_frame otherwise). Reader thread only.
    [[nodiscard]] result<transport::read_frame> try_read_frame();
    /// Next frame, waiting for all of it. Reader thread only.
    [[nodiscard]] result<transport::read_frame> read_frame(std::chrono::nanoseconds timeout);
    /// Give the frame's buffer space back. Reader thread only.
    [[nodiscard]] result<void> release(transport::read_frame frame);

    /// Push queued bytes without blocking; some may stay queued (see pending_bytes()).
    /// Writer thread only.
    [[nodiscard]] result<void> flush();
    /// Push queued bytes until none are left; timed_out when the deadline passes first.
    /// Writer thread only.
    [[nodiscard]] result<void> flush(std::chrono::nanoseconds timeout);
    /// Queue writes instead of sending them, until the matching end_batch (batches nest).
    /// Writer thread only.
    void begin_batch() noexcept;
    /// End a batch; the outermost end pushes the queue without blocking, like flush().
    [[nodiscard]] result<void> end_batch();
    /// Bytes accepted by writes but not yet handed to the kernel. Writer thread only.
    [[nodiscard]] std::size_t pending_bytes() const noexcept;

    /// Largest all-or-nothing message (tcp_options::max_message_size).
    [[nodiscard]] std::size_t max_message_size() const noexcept;
    /// Largest frame payload; equal to max_message_size().
    [[nodiscard]] std::size_t max_frame_payload() const noexcept;
    /// Always 1: a TCP connection is never re-attached, a reconnect is a new channel.
    [[nodiscard]] std::uint64_t generation() const noexcept;
    /// Shut the connection down in both directions; blocked calls on other threads wake up
    /// and every later operation fails with peer_gone. Queued bytes are not flushed. Any thread.
    void close() noexcept;
    /// The socket's file descriptor, owned by the channel.
    [[nodiscard]] int native_handle() const noexcept;
    /// A snapshot of the traffic counters. Any thread.
    [[nodiscard]] tcp_statistics statistics() const noexcept;

  private:
    friend class tcp_listener;
    struct state;

    tcp_channel(int socket, tcp_options options);

    std::unique_ptr<state> state_;
};

static_assert(channel<tcp_channel>);

/// A listening TCP socket that accepts tcp_channels. Closed on destruction.
class tcp_listener {
  public:
    /// Listen on `host` (empty: every local address) and `port` (0: an ephemeral port; see
    /// local_port()). Accepted channels use `options`.
    [[nodiscard]] static result<tcp_listener> listen(std::string_view host, std::uint16_t port,
                                                     tcp_options options = {});

    tcp_listener(tcp_listener&& other) noexcept;
    tcp_listener& operator=(tcp_listener&& other) noexcept;
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;
    ~tcp_listener();

    /// The port actually bound (the ephemeral one when listen() was given 0).
    [[nodiscard]] std::uint16_t local_port() const noexcept { return port_; }
    /// Accept the next connection, waiting up to `timeout`.
    [[nodiscard]] result<tcp_channel> accept(std::chrono::nanoseconds timeout);
    /// The listening socket's file descriptor, owned by the listener.
    [[nodiscard]] int native_handle() const noexcept { return fd_; }

  private:
    tcp_listener(int socket, std::uint16_t port, tcp_options options) noexcept
        : fd_(socket), port_(port), options_(options) {}

    int fd_ = -1;
    std::uint16_t port_ = 0;
    tcp_options options_;
};

}  // namespace vdist::transport
