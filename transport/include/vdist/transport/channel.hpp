#pragma once
/// \file
/// The channel interface shared by the ring channel (same host) and the TCP channel (other
/// hosts): a byte stream with partial and all-or-nothing, blocking and non-blocking reads and
/// writes, and a frame API on top of it.
///
/// Frames are length-prefixed records, written in place with reserve/commit and read in place
/// as views that are released after use:
///
/// ```
///   0        4        8                    8 + length          footprint (multiple of 8)
///   +--------+--------+--------------------+-------------------+
///   | length | kind   | payload            | pad to 8 bytes    |
///   +--------+--------+--------------------+-------------------+
///   length, kind: uint32 little-endian; kind 0 = data, 1 = padding (skip to the ring's end)
/// ```
///
/// On a ring a frame never wraps: when it does not fit before the end of the ring, the writer
/// fills the rest with one padding frame and starts at offset 0. The largest payload is
/// therefore `ring size - 8`; larger frames are refused with errc::frame_too_large (use the
/// byte stream, write_all/read_exact, for unbounded data). A channel carries either frames or a
/// raw byte stream at a time, not both interleaved.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "vdist/transport/errc.hpp"

namespace vdist::transport {

/// How a blocked operation waits for its peer.
enum class wait_mode {
    busy_poll,        ///< spin on the shared indices; never sleeps, never asks for events
    spin_then_block,  ///< spin for wait_policy::spin, then arm notification and sleep
    block,            ///< arm notification and sleep at once
};

/// The short name of a wait mode on command lines: "busy", "spin" or "block".
[[nodiscard]] constexpr std::string_view wait_mode_name(wait_mode mode) noexcept {
    switch (mode) {
        case wait_mode::busy_poll:
            return "busy";
        case wait_mode::spin_then_block:
            return "spin";
        case wait_mode::block:
            return "block";
    }
    return "spin";
}

/// The wait mode named by wait_mode_name(), or nullopt.
[[nodiscard]] constexpr std::optional<wait_mode> parse_wait_mode(std::string_view name) noexcept {
    for (auto mode : {wait_mode::busy_poll, wait_mode::spin_then_block, wait_mode::block}) {
        if (wait_mode_name(mode) == name) {
            return mode;
        }
    }
    return std::nullopt;
}

/// Per-channel waiting behaviour.
struct wait_policy {
    wait_mode mode = wait_mode::spin_then_block;
    std::chrono::nanoseconds spin = std::chrono::microseconds(50);
    /// A sleeping side wakes at least this often to re-check the ring and the peer's liveness,
    /// so that a lost notification costs latency, never a hang. transport::forever disables
    /// it (tests use that to prove no wake-up is lost).
    std::chrono::nanoseconds recheck = std::chrono::milliseconds(50);
};

/// Outcome of a non-blocking all-or-nothing write (back-pressure is a value, not an error).
enum class write_status { sent, full };
/// Outcome of a non-blocking all-or-nothing read.
enum class read_status { received, empty };

inline constexpr std::size_t frame_header_size = 8;
inline constexpr std::size_t frame_alignment = 8;
inline constexpr std::uint32_t frame_kind_data = 0;
inline constexpr std::uint32_t frame_kind_padding = 1;

/// Bytes a frame with `payload` bytes occupies in the stream.
[[nodiscard]] constexpr std::size_t frame_footprint(std::size_t payload) noexcept {
    return (frame_header_size + payload + frame_alignment - 1) & ~(frame_alignment - 1);
}

/// Space reserved for one outgoing frame. False when the channel had no room (try_reserve).
struct write_frame {
    std::span<std::byte> payload;  ///< write the frame's bytes here, then commit
    std::size_t footprint = 0;     ///< bytes reserved in the stream, 0 when nothing reserved

    [[nodiscard]] explicit operator bool() const noexcept { return footprint != 0; }
};

/// A received frame, valid until released. False when no frame was ready (try_read_frame).
/// On a ring the payload is the peer's memory: read each byte once, trust no length in it.
struct read_frame {
    std::span<const std::byte> payload;
    std::size_t footprint = 0;

    [[nodiscard]] explicit operator bool() const noexcept { return footprint != 0; }
};

/// The channel interface. A channel is used by one thread at a time, as libxenvchan is: a vdist
/// node is single-core and drives all its channels from one event loop (both directions share
/// one event channel, so two threads blocked on one ring could take each other's wake-ups).
/// `timeout` is relative; transport::forever waits forever.
template <class C>
concept channel = requires(C& c, std::span<const std::byte> out, std::span<std::byte> in,
                           std::chrono::nanoseconds timeout, std::size_t n, write_frame wf,
                           read_frame rf) {
    /// Non-blocking partial write; 0 when the channel is full.
    { c.write_some(out) } -> std::same_as<result<std::size_t>>;
    /// Blocking partial write: waits for room for at least one byte.
    { c.write(out, timeout) } -> std::same_as<result<std::size_t>>;
    /// Blocking write of everything, streamed through the ring in pieces if needed.
    { c.write_all(out, timeout) } -> std::same_as<result<void>>;
    /// Non-blocking all-or-nothing write.
    { c.try_send(out) } -> std::same_as<result<write_status>>;
    /// Blocking all-or-nothing write; frame_too_large if it can never fit.
    { c.send(out, timeout) } -> std::same_as<result<void>>;

    /// Non-blocking partial read; 0 when nothing is ready.
    { c.read_some(in) } -> std::same_as<result<std::size_t>>;
    /// Blocking partial read: waits for at least one byte.
    { c.read(in, timeout) } -> std::same_as<result<std::size_t>>;
    /// Blocking read of exactly in.size() bytes, streamed in pieces if needed.
    { c.read_exact(in, timeout) } -> std::same_as<result<void>>;
    /// Non-blocking all-or-nothing read.
    { c.try_recv(in) } -> std::same_as<result<read_status>>;
    /// Blocking all-or-nothing read; frame_too_large if it can never fit.
    { c.recv(in, timeout) } -> std::same_as<result<void>>;

    /// Reserve a frame of `n` payload bytes without blocking (false frame when full).
    { c.try_reserve(n) } -> std::same_as<result<write_frame>>;
    /// Reserve a frame, waiting for room.
    { c.reserve(n, timeout) } -> std::same_as<result<write_frame>>;
    /// Publish a reserved frame, shrunk to its first `n` payload bytes.
    { c.commit(wf, n) } -> std::same_as<result<void>>;
    /// Next frame without blocking (false frame when none is ready).
    { c.try_read_frame() } -> std::same_as<result<read_frame>>;
    /// Next frame, waiting for one.
    { c.read_frame(timeout) } -> std::same_as<result<read_frame>>;
    /// Give a read frame's space back to the writer.
    { c.release(rf) } -> std::same_as<result<void>>;

    /// Deliver the notifications held back by a batch (see begin_batch/end_batch).
    { c.flush() } -> std::same_as<result<void>>;
    /// Hold back notifications until end_batch: one check per batch instead of per message.
    c.begin_batch();
    { c.end_batch() } -> std::same_as<result<void>>;

    /// Largest all-or-nothing message / frame payload this channel can ever carry.
    { c.max_message_size() } -> std::same_as<std::size_t>;
    { c.max_frame_payload() } -> std::same_as<std::size_t>;
    /// Incremented each time the channel is re-attached (see channel_handle).
    { c.generation() } -> std::same_as<std::uint64_t>;
    /// Tell the peer we are gone; later operations fail with peer_gone.
    c.close();
};

/// RAII batch: notifications are checked once when it ends.
template <channel C>
class batch_scope {
  public:
    explicit batch_scope(C& c) noexcept : channel_(c) { channel_.begin_batch(); }
    ~batch_scope() { (void)channel_.end_batch(); }
    batch_scope(const batch_scope&) = delete;
    batch_scope& operator=(const batch_scope&) = delete;

  private:
    C& channel_;
};

}  // namespace vdist::transport
