#pragma once
/// \file
/// Control messages and the packets that carry them after the handshake, sans-IO.
///
/// `control_message` is the typed form of every control tuple vdist handles (opcodes and
/// tuples in protocol.hpp and `erl_dist_protocol.xml` §"Protocol between connected nodes").
/// `packet_writer` turns one into a packet (4-byte length, then pass-through or a distribution
/// header with no atom cache references, as the negotiated flags say); `packet_reader` takes
/// the byte stream, splits it into packets, answers nothing itself, counts ticks, resolves the
/// atom cache, reassembles fragments, and hands out typed messages. Neither touches a socket.
///
/// What is sent: never fragments, never atom cache references (a header with
/// NumberOfAtomCacheRefs = 0 is valid and OTP takes it); SEND_SENDER when negotiated, the
/// PAYLOAD_* exits under EXIT_PAYLOAD, UNLINK_ID (old UNLINK only to a peer without it).
/// What is received: all of the above in either framing, the atom cache, fragments, and the
/// trace-token (_TT) variants (the token is ignored).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/protocol.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::dist {

/// Why a packet from a connected peer was refused. Each is fatal for the connection: the
/// caller logs `detail` and disconnects (as erts does with "Got message from incompatible
/// erlang" or a bad control message).
enum class packet_errc {
    packet_too_large = 1,  ///< a length above packet_limits::max_packet_bytes
    bad_framing,           ///< neither 112 nor 131 68/69/70 where the flags say it must be
    bad_atom_cache,        ///< an atom cache header that is malformed or refers to nothing
    bad_term,              ///< the control or message term does not decode (detail: the etf error)
    bad_control,           ///< a control term that is no valid control message
    missing_payload,       ///< a control message that needs a message term came without one
    unexpected_payload,    ///< bytes after a control message that takes none
    bad_fragment,          ///< a continuation for no sequence, or ids out of order
    too_many_fragments,    ///< more open fragmented sequences, or bytes, than the limits allow
    not_encodable,         ///< (writing) a term ETF cannot carry, or a packet over 4 GiB
};

/// The category of packet_errc ("vdist.packet").
[[nodiscard]] const std::error_category& packet_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(packet_errc e) noexcept {
    return {static_cast<int>(e), packet_category()};
}

/// A refused packet: what, and a line for the log.
struct packet_error {
    packet_errc code;
    std::string detail;
};

// -- the control messages ------------------------------------------------------------------------

/// LINK {1, From, To}.
struct link_message {
    pid from, to;
};
/// SEND {2, '', To} / SEND_SENDER {22, From, To}, + Msg. `from` is set for SEND_SENDER.
struct send_message {
    std::optional<pid> from;
    pid to;
    term message;
};
/// REG_SEND {6, From, '', ToName} + Msg.
struct reg_send_message {
    pid from;
    atom to_name;
    term message;
};
/// EXIT {3, ...} (a linked process ended) or EXIT2 {8, ...} (exit/2), or their PAYLOAD_ forms.
struct exit_message {
    pid from, to;
    term reason;
    bool exit2 = false;  ///< exit/2 rather than a link
};
/// UNLINK_ID {35, Id, From, To} or UNLINK_ID_ACK {36, ...}; the old UNLINK {4} has id 0.
struct unlink_message {
    std::uint64_t id = 0;
    pid from, to;
    bool ack = false;
};
/// MONITOR_P {19, From, To, Ref} / DEMONITOR_P {20, ...}; To is a pid or a registered name.
struct monitor_message {
    pid from;
    std::variant<pid, atom> to;
    reference ref;
    bool demonitor = false;
};
/// MONITOR_P_EXIT {21, From, To, Ref, Reason} or PAYLOAD_MONITOR_P_EXIT {28, ...} + Reason.
/// From is the monitored pid or name; To the watcher.
struct monitor_exit_message {
    std::variant<pid, atom> from;
    pid to;
    reference ref;
    term reason;
};
/// GROUP_LEADER {7, From, To}: received and ignored by vdist (it has no group leaders).
struct group_leader_message {
    pid from, to;
};
/// SPAWN_REQUEST {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts} + Args.
struct spawn_request_message {
    reference request;
    pid from;
    pid group_leader;
    atom module, function;
    std::uint64_t arity = 0;
    term options;    ///< the option list as sent (link, monitor, ...)
    term arguments;  ///< a proper list of `arity` elements
};
/// SPAWN_REPLY {31, ReqId, To, Flags, Result}; Result is the new pid or an error atom.
struct spawn_reply_message {
    reference request;
    pid to;
    std::uint64_t flags = 0;  ///< ERTS_DIST_SPAWN_FLAG_LINK | ERTS_DIST_SPAWN_FLAG_MONITOR
    term result;
};
/// ALIAS_SEND {33, From, Alias} + Msg.
struct alias_send_message {
    pid from;
    reference alias;
    term message;
};

using control_message =
    std::variant<link_message, send_message, reg_send_message, exit_message, unlink_message,
                 monitor_message, monitor_exit_message, group_leader_message, spawn_request_message,
                 spawn_reply_message, alias_send_message>;

/// The typed form of a control term and its message term (absent when the packet had none).
/// Trace tokens are dropped. Fails with bad_control, missing_payload or unexpected_payload.
[[nodiscard]] std::expected<control_message, packet_error> parse_control(
    const term& control, std::optional<term> payload);

// -- writing -------------------------------------------------------------------------------------

/// Encodes control messages into packets for one connection.
///
/// The tuple follows the negotiated flags: SEND_SENDER {22, From, To} for a send_message with
/// `from` when DFLAG_SEND_SENDER is set (else SEND {2, '', To}); PAYLOAD_EXIT / PAYLOAD_EXIT2 /
/// PAYLOAD_MONITOR_P_EXIT with the reason as the message term under DFLAG_EXIT_PAYLOAD (else
/// the reason inside the tuple); UNLINK_ID / UNLINK_ID_ACK under DFLAG_UNLINK_ID, else the old
/// UNLINK {4, From, To} for an unlink and *nothing* for an ack (a peer without UNLINK_ID has
/// no acks: the old protocol removes the link at once). SPAWN_* and ALIAS_SEND are written as
/// asked; that the peer has DFLAG_SPAWN / DFLAG_ALIAS is the caller's business.
///
/// Cost: the tuple goes straight into `out` (etf_writer), the message term with one size pass
/// and one write, the length after the fact; nothing is allocated but `out`'s growth (and a
/// bignum's digits for an unlink id above 2^63 - 1).
///
/// Threads: one writer per connection, used by its sending thread.
class packet_writer {
  public:
    /// `flags`: the negotiated flags of the connection. The writer needs no atom table: the
    /// atoms of control tuples ('' and the names in messages) are written as text.
    explicit packet_writer(std::uint64_t flags);

    /// Appends one packet (4-byte length included) carrying `message` to `out` (which may
    /// already hold packets). Fails only if a term cannot be encoded (not_encodable); `out` is
    /// then unchanged. An unlink ack to a peer without DFLAG_UNLINK_ID appends nothing.
    [[nodiscard]] std::expected<void, packet_error> write(std::vector<std::byte>& out,
                                                          const control_message& message);
    /// A tick: four zero bytes.
    static void write_tick(std::vector<std::byte>& out);

    [[nodiscard]] std::uint64_t flags() const noexcept { return flags_; }

  private:
    std::uint64_t flags_;
    atom empty_;  // '' (the "Unused" field of SEND and REG_SEND)
};

// -- reading -------------------------------------------------------------------------------------

/// Caps on what a peer may make us hold.
struct packet_limits {
    std::size_t max_packet_bytes = std::size_t{256}
                                   << 20;   ///< one packet (or a reassembled message)
    std::size_t max_open_sequences = 1024;  ///< fragmented messages in flight
    std::size_t max_fragment_bytes = std::size_t{1} << 30;  ///< bytes of all of them together
    decode_limits terms{};
};

/// Splits the stream of one connection into messages.
///
/// Buffers: packets are received into one stream buffer, reused (compacted when its tail is
/// too short, released when it empties above 1 MiB), and decoded from there with binaries
/// copied. A packet of own_buffer_threshold bytes or more that is not a fragment gets a
/// buffer of its own as soon as its first bytes are seen; prepare() then hands out that
/// buffer's missing part, so the socket is read straight into it, and binaries of 64 bytes or
/// more in the message share it (the buffer lives as long as one of them does). Such buffers
/// of up to 1 MiB are reused once no binary holds them any more (at most 4 MiB of them kept
/// per reader). Fragments are copied once into their sequence's buffer, which the reassembled
/// message's binaries share in the same way.
///
/// The atom cache (2048 entries) and the open fragment sequences belong to this reader: one
/// reader per connection and direction. Threads: used by one thread.
class packet_reader {
  public:
    /// Packets at least this long (and not fragments) are received into a buffer of their own.
    static constexpr std::size_t own_buffer_threshold = std::size_t{64} << 10;

    packet_reader(std::uint64_t flags, atom_table& atoms, packet_limits limits = {});
    packet_reader(packet_reader&&) noexcept;
    packet_reader& operator=(packet_reader&&) noexcept;
    ~packet_reader();

    /// Room to receive into: a span of at least `min_size` writable bytes at the end of the
    /// buffered stream (read the socket straight into it, then commit()). While a large
    /// packet is being received it is the rest of that packet's own buffer (if at least
    /// `min_size` bytes), so that what follows the packet is never read into it.
    [[nodiscard]] std::span<std::byte> prepare(std::size_t min_size = 65536);
    /// `n` bytes were written into the last prepare()d span (at most its size); once per
    /// prepare(). next() may be called in between.
    void commit(std::size_t n);
    /// Same as prepare + copy + commit (in steps of at most 64 KiB, so that a large packet
    /// goes into its own buffer).
    void feed(std::span<const std::byte> bytes);

    /// The next message: a control message, nullopt when the buffered bytes hold no complete
    /// message (ticks are consumed and counted), or the error that ends the connection (the
    /// reader then stays failed).
    [[nodiscard]] std::expected<std::optional<control_message>, packet_error> next();

    /// Ticks (empty packets) taken from the stream so far.
    [[nodiscard]] std::uint64_t ticks_received() const noexcept { return ticks_; }
    /// Packets other than ticks taken from the stream so far (each fragment counts).
    [[nodiscard]] std::uint64_t packets_received() const noexcept { return packets_; }

  private:
    struct impl;
    std::uint64_t ticks_ = 0;
    std::uint64_t packets_ = 0;
    std::unique_ptr<impl> impl_;  // flags, limits, buffers, atom cache, open fragment sequences
};

// -- ticks ---------------------------------------------------------------------------------------

/// net_ticktime semantics (`dist_util:con_loop/2`), sans-IO: poll() every
/// net_ticktime / intensity; a tick goes out when nothing was written since the last poll;
/// the connection is dead when nothing was read for `intensity` polls in a row (so between
/// (intensity - 1) / intensity and 1 of net_ticktime, 45-60 s by default... plus the poll period).
class ticker {
  public:
    using duration = std::chrono::nanoseconds;

    explicit ticker(duration net_ticktime = std::chrono::seconds(60), unsigned intensity = 4);

    /// Bytes were read / written (any: a tick or a message).
    void on_read() noexcept { read_since_poll_ = true; }
    void on_write() noexcept { written_since_poll_ = true; }

    enum class action { none, send_tick, timed_out };
    /// The periodic check, at period() intervals.
    [[nodiscard]] action poll() noexcept;
    [[nodiscard]] duration period() const noexcept { return period_; }

  private:
    duration period_;
    unsigned intensity_;
    unsigned silent_polls_ = 0;
    bool read_since_poll_ = false;
    bool written_since_poll_ = false;
};

}  // namespace vdist::dist

template <>
struct std::is_error_code_enum<vdist::dist::packet_errc> : std::true_type {};
