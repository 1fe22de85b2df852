#pragma once
/// \file
/// The distribution handshake, version 6 (DFLAG_HANDSHAKE_23, the only one OTP 25.0-25.2
/// speaks), as a sans-IO state machine: it is fed the bytes that arrived and hands out the
/// bytes to send; it never touches a socket, a ring or a clock (the caller bounds the whole
/// handshake by net_setuptime).
///
/// ```
///  A (initiator)                                                  B (acceptor)
///  send_name 'N' Flags:64 Creation:32 Nlen:16 Name       ------>
///             <------  send_status 's' "ok" | "ok_simultaneous" | "nok" | "not_allowed" | "alive"
///  (after "alive": 's' "true" | "false")                 ------>
///             <------  send_challenge 'N' Flags:64 Challenge:32 Creation:32 Nlen:16 Name
///  challenge_reply 'r' ChallengeA:32 Digest:16B          ------>
///                                 (B checks Digest = MD5(Cookie ++ decimal(ChallengeB)))
///             <------  challenge_ack 'a' Digest:16B
///  (A checks Digest = MD5(Cookie ++ decimal(ChallengeA)))
///  every message: Len:16 | message      (after the handshake: Len:32, see protocol.hpp)
/// ```
///
/// The acceptor cannot decide the status alone: whether a connection to the peer already
/// exists or is being set up is the node's knowledge. After send_name it stops in
/// `needs_status` with peer_name() known, and the node answers with set_status(). Likewise an
/// initiator told "alive" stops in `needs_alive_answer`.
///
/// What is accepted, and what is refused (OTP 25.2's `dist_util` unless noted):
/// - every message is `Len:16 | message`; Len 0 or Len > max_handshake_message_size fails
///   (malformed_message, message_too_large) as soon as the length is read;
/// - bytes after the name in send_name and in send_challenge are ignored, as OTP does;
///   challenge_reply, challenge_ack and statuses must have their exact length;
/// - a version-5 send_name ('n') fails with unsupported_version and nothing is answered: OTP
///   25.0-25.2 close the connection the same way (25.3 accepts it again, with the 'c'
///   complement; vdist does not);
/// - a send_name with DFLAG_NAME_ME (a peer asking us to name it) is answered "not_allowed"
///   and fails with invalid_name: vdist hands out no dynamic names;
/// - the status "named:" (the answer to NAME_ME, which vdist never sends) and any unknown
///   status fail with malformed_message;
/// - names are `alive@host`: exactly one '@', both parts non-empty, at most 255 bytes
///   (max_node_name_size); an invalid name of our own or of the peer we initiate to fails
///   initiate()/accept() at once (invalid_name, nothing queued);
/// - any creation is recorded as sent, 0 included (OTP does not check it either).

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "vdist/dist/protocol.hpp"

namespace vdist::dist {

/// Why a handshake failed.
enum class handshake_errc {
    malformed_message = 1,  ///< a message too short, of the wrong tag, or with a bad length
    message_too_large,      ///< a handshake message longer than any valid one (DoS guard)
    unsupported_version,    ///< the peer speaks version 5 ('n') only
    invalid_name,           ///< a node name that is not `alive@host` with both parts non-empty
    wrong_node,             ///< the challenge came from another node than the one asked for
    missing_flags,          ///< the peer lacks a flag we require ("cannot handle [...]")
    bad_digest,             ///< the peer's digest does not match our cookie (wrong cookie)
    refused,                ///< the acceptor answered nok / not_allowed, or we did (set_status)
    /// "alive" ended with "false": the initiator gave up (set_alive_answer(false)), or, on the
    /// acceptor, the initiator answered "false"; the existing connection stays either way
    name_conflict,
    invalid_state,  ///< an API call out of order (a bug in the caller)
};

/// The category of handshake_errc ("vdist.handshake").
[[nodiscard]] const std::error_category& handshake_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(handshake_errc e) noexcept {
    return {static_cast<int>(e), handshake_category()};
}

/// The acceptor's answer to a send_name.
enum class handshake_status {
    ok,               ///< go on
    ok_simultaneous,  ///< go on; the acceptor drops its own attempt to the peer
    nok,              ///< stop: the acceptor's own attempt wins a simultaneous connect
    not_allowed,      ///< refused (e.g. the peer lacks mandatory flags, or is not allowed)
    alive,            ///< a connection from this name exists: the initiator answers true/false
};

/// The text of a status on the wire ("ok", "ok_simultaneous", ...).
[[nodiscard]] std::string_view status_text(handshake_status status) noexcept;

/// MD5(cookie ++ decimal(challenge)) (`dist_util:gen_digest/2`), through OpenSSL's libcrypto.
[[nodiscard]] std::array<std::byte, 16> handshake_digest(std::uint32_t challenge,
                                                         std::string_view cookie);

/// The longest handshake message accepted (after the 2-byte length). The longest valid one
/// is a send_challenge with a 255-byte name (274 bytes); the rest is room for the bytes after
/// the name that OTP ignores.
inline constexpr std::size_t max_handshake_message_size = 1024;
/// The longest node name accepted (an atom: 255 bytes here, as OTP sends names in Latin-1).
inline constexpr std::size_t max_node_name_size = 255;

/// Whether `name` is a node name: `alive@host`, exactly one '@', both parts non-empty, at most
/// max_node_name_size bytes (`dist_util:is_name_ok/2`).
[[nodiscard]] bool is_node_name(std::string_view name) noexcept;

/// OTP's names of the flags set in `flags`, lowest bit first, as in OTP's "cannot handle"
/// message: "[UTF8_ATOMS, MAP_TAG]"; unknown bits as "UNKNOWN<hex>".
[[nodiscard]] std::string flag_names(std::uint64_t flags);

/// What one side brings to a handshake.
struct handshake_config {
    std::string this_node;       ///< our full name, `alive@host`
    std::uint32_t creation = 1;  ///< our creation (from EPMD's ALIVE2_X_RESP), never 0
    std::string cookie;
    std::uint64_t flags = vdist_flags;  ///< advertised (add DFLAG_PUBLISHED for a visible node)
    /// Flags the peer must have, after expanding DFLAG_MANDATORY_25_DIGEST; lacking one fails
    /// with missing_flags (an acceptor answers not_allowed first).
    std::uint64_t required_flags = mandatory_flags_25;
    /// Source of our challenge (a random 32-bit number; default: random_word()); tests inject a
    /// fixed one.
    std::function<std::uint32_t()> random_challenge;
};

/// 32 random bits from the kernel (getrandom), for challenges and seeds. Not std::random_device:
/// its construction asks the CPU (cpuid, then rdrand), which a virtual machine traps, and a node
/// spawned on demand paid tens of microseconds for it.
[[nodiscard]] std::uint32_t random_word();

/// The outcome of a successful handshake.
struct handshake_result {
    std::string peer_node;  ///< `alive@host`, as the peer spells it
    std::uint32_t peer_creation = 0;
    std::uint64_t peer_flags = 0;  ///< as advertised, DFLAG_MANDATORY_25_DIGEST expanded
    std::uint64_t flags = 0;       ///< negotiated: ours & the peer's (both expanded)
    [[nodiscard]] bool peer_hidden() const noexcept { return (peer_flags & DFLAG_PUBLISHED) == 0; }
};

/// Where a handshake is.
enum class handshake_state {
    in_progress,         ///< feed more bytes (and send take_output())
    needs_status,        ///< acceptor: peer_name() is known, call set_status()
    needs_alive_answer,  ///< initiator: the acceptor said alive, call set_alive_answer()
    done,    ///< result() is valid; bytes after the last message belong to the connection
    failed,  ///< error() says why; send take_output() (maybe a status), then close
};

/// One handshake, initiating or accepting.
class handshake {
  public:
    /// We connect to `peer_node` (`alive@host`); take_output() holds send_name at once.
    [[nodiscard]] static handshake initiate(handshake_config config, std::string_view peer_node);
    /// A peer connected to us; we wait for its send_name.
    [[nodiscard]] static handshake accept(handshake_config config);

    /// Consumes stream bytes, in pieces of any size. Returns how many were consumed: it
    /// stops after the message that finished the handshake (done), or that made it stop
    /// (needs_*, failed; after a length over the limit, right after the length); the rest is
    /// for whoever comes next (after done: the first distribution packets). Bytes fed in any
    /// state but in_progress are not consumed.
    std::size_t feed(std::span<const std::byte> bytes);
    /// Bytes to send now (each message with its 2-byte length); the buffer is emptied.
    [[nodiscard]] std::vector<std::byte> take_output();

    /// Acceptor in needs_status: answer the peer. ok and ok_simultaneous go on (challenge
    /// queued in take_output()); the others queue the status and end in failed (refused for
    /// nok/not_allowed) — except alive, which waits for the peer's true/false ("false" ends in
    /// name_conflict). In any other state: failed with invalid_state (a failed handshake keeps
    /// its first error), nothing queued.
    void set_status(handshake_status status);
    /// Initiator in needs_alive_answer: true takes over the old connection ('s' "true"
    /// queued, the handshake goes on), false gives up ('s' "false" queued, failed with
    /// name_conflict). In any other state: failed with invalid_state, as set_status().
    void set_alive_answer(bool take_over);

    [[nodiscard]] handshake_state state() const noexcept { return state_; }
    [[nodiscard]] bool initiating() const noexcept { return initiating_; }
    /// The peer's name: the one asked for (initiator), or the one in send_name (acceptor,
    /// from needs_status on).
    [[nodiscard]] const std::string& peer_name() const noexcept { return peer_name_; }
    /// The peer's advertised flags, once known (expanded).
    [[nodiscard]] std::uint64_t peer_flags() const noexcept { return peer_flags_; }
    /// The peer's creation, once known (acceptor: from needs_status; initiator: from the
    /// challenge on).
    [[nodiscard]] std::uint32_t peer_creation() const noexcept { return peer_creation_; }
    /// Valid in done.
    [[nodiscard]] const handshake_result& result() const noexcept { return result_; }
    /// Valid in failed.
    [[nodiscard]] std::error_code error() const noexcept { return error_; }
    /// A human-readable reason for the failure, for the node's log: e.g. "node x@h has the
    /// wrong cookie (invalid challenge reply)", "node x@h cannot handle [UTF8_ATOMS]".
    [[nodiscard]] const std::string& error_detail() const noexcept { return error_detail_; }
    /// Initiator: the status the acceptor answered, once received. `nok` means a simultaneous
    /// connect that the acceptor's own attempt wins: the node should wait for that connection
    /// rather than give the peer up.
    [[nodiscard]] std::optional<handshake_status> received_status() const noexcept {
        return received_status_;
    }

  private:
    /// Which message is awaited next (the state within in_progress).
    enum class step : std::uint8_t {
        await_name,         // acceptor: send_name
        await_status,       // initiator: send_status
        await_challenge,    // initiator: send_challenge
        await_alive_reply,  // acceptor, after "alive": 's' "true" | "false"
        await_reply,        // acceptor: challenge_reply
        await_ack,          // initiator: challenge_ack
        finished,           // done, failed or needs_*: nothing awaited from the peer
    };

    handshake(handshake_config config, bool initiating);

    void on_message(std::span<const std::byte> message);
    void on_name(std::span<const std::byte> message);
    void on_status(std::span<const std::byte> message);
    void on_alive_reply(std::span<const std::byte> message);
    void on_challenge(std::span<const std::byte> message);
    void on_reply(std::span<const std::byte> message);
    void on_ack(std::span<const std::byte> message);
    void queue(std::span<const std::byte> message);
    void queue_status(std::string_view text);
    void queue_challenge();
    void succeed();
    void fail(handshake_errc code, std::string detail);
    [[nodiscard]] std::uint32_t new_challenge();

    handshake_config config_;
    bool initiating_;
    handshake_state state_ = handshake_state::in_progress;
    step step_ = step::finished;
    std::string peer_name_;
    std::uint64_t peer_flags_ = 0;
    std::uint32_t peer_creation_ = 0;
    std::uint32_t our_challenge_ = 0;
    std::vector<std::byte> in_;  // the message being received, its 2-byte length included
    std::vector<std::byte> out_;
    handshake_result result_;
    std::error_code error_;
    std::string error_detail_;
    std::optional<handshake_status> received_status_;
};

}  // namespace vdist::dist

template <>
struct std::is_error_code_enum<vdist::dist::handshake_errc> : std::true_type {};
