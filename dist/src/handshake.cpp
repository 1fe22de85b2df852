#include "vdist/dist/handshake.hpp"

// OpenSSL's low-level MD5 (deprecated since 3.0 in favour of EVP, still provided): see
// handshake_digest.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <random>
#include <string>
#include <utility>

namespace vdist::dist {
namespace {

// Message sizes after the 2-byte length (erl_dist_protocol.xml, "Distribution Handshake").
constexpr std::size_t send_name_fixed = 1 + 8 + 4 + 2;           // 'N' Flags Creation Nlen
constexpr std::size_t send_challenge_fixed = 1 + 8 + 4 + 4 + 2;  // 'N' Flags Chal Creation Nlen
constexpr std::size_t digest_size = 16;
constexpr std::size_t challenge_reply_size = 1 + 4 + digest_size;  // 'r' Challenge Digest
constexpr std::size_t challenge_ack_size = 1 + digest_size;        // 'a' Digest
constexpr std::string_view named_status_prefix = "named:";

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.handshake"; }

    std::string message(int value) const override {
        switch (static_cast<handshake_errc>(value)) {
            case handshake_errc::malformed_message:
                return "malformed handshake message";
            case handshake_errc::message_too_large:
                return "handshake message longer than any valid one";
            case handshake_errc::unsupported_version:
                return "the peer speaks only handshake version 5";
            case handshake_errc::invalid_name:
                return "invalid node name (not alive@host)";
            case handshake_errc::wrong_node:
                return "the challenge came from another node than the one asked for";
            case handshake_errc::missing_flags:
                return "the peer lacks required distribution flags";
            case handshake_errc::bad_digest:
                return "wrong digest (the cookies differ)";
            case handshake_errc::refused:
                return "connection refused by the acceptor";
            case handshake_errc::name_conflict:
                return "a connection with this node already exists";
            case handshake_errc::invalid_state:
                return "handshake call out of order";
        }
        return "unknown handshake error " + std::to_string(value);
    }
};

[[nodiscard]] std::uint16_t read_u16(std::span<const std::byte> at) noexcept {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(at[0]) << 8) |
                                      std::to_integer<unsigned>(at[1]));
}

[[nodiscard]] std::uint32_t read_u32(std::span<const std::byte> at) noexcept {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        value = (value << 8) | std::to_integer<std::uint32_t>(at[i]);
    }
    return value;
}

[[nodiscard]] std::uint64_t read_u64(std::span<const std::byte> at) noexcept {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < 8; ++i) {
        value = (value << 8) | std::to_integer<std::uint64_t>(at[i]);
    }
    return value;
}

template <typename Unsigned>
void put_be(std::vector<std::byte>& out, Unsigned value) {
    for (std::size_t shift = sizeof(Unsigned) * 8; shift > 0; shift -= 8) {
        out.push_back(static_cast<std::byte>((value >> (shift - 8)) & 0xff));
    }
}

void put_text(std::vector<std::byte>& out, std::string_view text) {
    const auto raw = std::as_bytes(std::span(text));
    out.insert(out.end(), raw.begin(), raw.end());
}

[[nodiscard]] std::string_view as_text(std::span<const std::byte> bytes) noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A name from the wire as it may go into a log line: printable ASCII kept, the rest \xNN.
[[nodiscard]] std::string printable(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (const char c : raw) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
            out.push_back(c);
        } else {
            char escaped[5];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
            out += escaped;
        }
    }
    return out;
}

[[nodiscard]] std::string node_text(std::string_view name) {
    return name.empty() ? std::string("the peer") : "node " + printable(name);
}

// OTP's names (dist_util:dflag2str/1) of the flags vdist knows.
[[nodiscard]] std::string_view flag_name(std::uint64_t flag) noexcept {
    switch (flag) {
        case DFLAG_PUBLISHED:
            return "PUBLISHED";
        case DFLAG_ATOM_CACHE:
            return "ATOM_CACHE";
        case DFLAG_EXTENDED_REFERENCES:
            return "EXTENDED_REFERENCES";
        case DFLAG_DIST_MONITOR:
            return "DIST_MONITOR";
        case DFLAG_FUN_TAGS:
            return "FUN_TAGS";
        case DFLAG_DIST_MONITOR_NAME:
            return "DIST_MONITOR_NAME";
        case DFLAG_HIDDEN_ATOM_CACHE:
            return "HIDDEN_ATOM_CACHE";
        case DFLAG_NEW_FUN_TAGS:
            return "NEW_FUN_TAGS";
        case DFLAG_EXTENDED_PIDS_PORTS:
            return "EXTENDED_PIDS_PORTS";
        case DFLAG_EXPORT_PTR_TAG:
            return "EXPORT_PTR_TAG";
        case DFLAG_BIT_BINARIES:
            return "BIT_BINARIES";
        case DFLAG_NEW_FLOATS:
            return "NEW_FLOATS";
        case DFLAG_UNICODE_IO:
            return "UNICODE_IO";
        case DFLAG_DIST_HDR_ATOM_CACHE:
            return "DIST_HDR_ATOM_CACHE";
        case DFLAG_SMALL_ATOM_TAGS:
            return "SMALL_ATOM_TAGS";
        case DFLAG_UTF8_ATOMS:
            return "UTF8_ATOMS";
        case DFLAG_MAP_TAG:
            return "MAP_TAG";
        case DFLAG_BIG_CREATION:
            return "BIG_CREATION";
        case DFLAG_SEND_SENDER:
            return "SEND_SENDER";
        case DFLAG_BIG_SEQTRACE_LABELS:
            return "BIG_SEQTRACE_LABELS";
        case DFLAG_EXIT_PAYLOAD:
            return "EXIT_PAYLOAD";
        case DFLAG_FRAGMENTS:
            return "FRAGMENTS";
        case DFLAG_HANDSHAKE_23:
            return "HANDSHAKE_23";
        case DFLAG_UNLINK_ID:
            return "UNLINK_ID";
        case DFLAG_MANDATORY_25_DIGEST:
            return "MANDATORY_25_DIGEST";
        case DFLAG_SPAWN:
            return "SPAWN";
        case DFLAG_NAME_ME:
            return "NAME_ME";
        case DFLAG_V4_NC:
            return "V4_NC";
        case DFLAG_ALIAS:
            return "ALIAS";
        default:
            return {};
    }
}

[[nodiscard]] std::string_view state_text(handshake_state state) noexcept {
    switch (state) {
        case handshake_state::in_progress:
            return "in_progress";
        case handshake_state::needs_status:
            return "needs_status";
        case handshake_state::needs_alive_answer:
            return "needs_alive_answer";
        case handshake_state::done:
            return "done";
        case handshake_state::failed:
            return "failed";
    }
    return "?";
}

}  // namespace

const std::error_category& handshake_category() noexcept {
    static const category instance;
    return instance;
}

std::string_view status_text(handshake_status status) noexcept {
    switch (status) {
        case handshake_status::ok:
            return "ok";
        case handshake_status::ok_simultaneous:
            return "ok_simultaneous";
        case handshake_status::nok:
            return "nok";
        case handshake_status::not_allowed:
            return "not_allowed";
        case handshake_status::alive:
            return "alive";
    }
    return {};
}

std::array<std::byte, 16> handshake_digest(std::uint32_t challenge, std::string_view cookie) {
    std::array<char, 10> decimal{};  // 4294967295 has ten digits
    const auto [end, ec] =
        std::to_chars(decimal.data(), decimal.data() + decimal.size(), challenge);
    (void)ec;  // ten digits always fit

    // Not EVP: its fetch goes through OpenSSL's provider machinery, and a node's first digest
    // touched some 150 pages of libcrypto's code for it (each first touch costs a fresh
    // process about 5 µs on these VMs); MD5_* touch a few, need no configuration loaded,
    // and cannot fail.
    std::array<std::byte, 16> digest{};
    MD5_CTX context;
    MD5_Init(&context);
    MD5_Update(&context, cookie.data(), cookie.size());
    MD5_Update(&context, decimal.data(), static_cast<std::size_t>(end - decimal.data()));
    MD5_Final(reinterpret_cast<unsigned char*>(digest.data()), &context);
    return digest;
}

bool is_node_name(std::string_view name) noexcept {
    const auto at = name.find('@');
    return name.size() <= max_node_name_size && at != std::string_view::npos && at > 0 &&
           at + 1 < name.size() && name.find('@', at + 1) == std::string_view::npos;
}

std::string flag_names(std::uint64_t flags) {
    std::string out = "[";
    for (std::uint64_t bit = 1; bit != 0; bit <<= 1) {
        if ((flags & bit) == 0) {
            continue;
        }
        if (out.size() > 1) {
            out += ", ";
        }
        const auto name = flag_name(bit);
        if (!name.empty()) {
            out += name;
        } else {
            char unknown[32];
            std::snprintf(unknown, sizeof unknown, "UNKNOWN<%llX>",
                          static_cast<unsigned long long>(bit));
            out += unknown;
        }
    }
    return out + "]";
}

// --- construction --------------------------------------------------------------------------

handshake::handshake(handshake_config config, bool initiating)
    : config_(std::move(config)), initiating_(initiating) {}

handshake handshake::initiate(handshake_config config, std::string_view peer_node) {
    handshake hs(std::move(config), true);
    hs.peer_name_ = std::string(peer_node);
    if (!is_node_name(hs.config_.this_node)) {
        hs.fail(handshake_errc::invalid_name,
                "our own node name \"" + printable(hs.config_.this_node) + "\" is not alive@host");
        return hs;
    }
    if (!is_node_name(peer_node)) {
        hs.fail(handshake_errc::invalid_name,
                "cannot connect to \"" + printable(peer_node) + "\": not alive@host");
        return hs;
    }
    // send_name: 'N' Flags:64 Creation:32 Nlen:16 Name
    std::vector<std::byte> message;
    message.reserve(send_name_fixed + hs.config_.this_node.size());
    message.push_back(std::byte{HS_SEND_NAME});
    put_be(message, hs.config_.flags);
    put_be(message, hs.config_.creation);
    put_be(message, static_cast<std::uint16_t>(hs.config_.this_node.size()));
    put_text(message, hs.config_.this_node);
    hs.queue(message);
    hs.step_ = step::await_status;
    return hs;
}

handshake handshake::accept(handshake_config config) {
    handshake hs(std::move(config), false);
    if (!is_node_name(hs.config_.this_node)) {
        hs.fail(handshake_errc::invalid_name,
                "our own node name \"" + printable(hs.config_.this_node) + "\" is not alive@host");
        return hs;
    }
    hs.step_ = step::await_name;
    return hs;
}

// --- the byte stream -----------------------------------------------------------------------

std::size_t handshake::feed(std::span<const std::byte> bytes) {
    std::size_t consumed = 0;
    while (state_ == handshake_state::in_progress && consumed < bytes.size()) {
        const auto rest = bytes.subspan(consumed);
        if (in_.size() < 2) {
            const std::size_t take = std::min(2 - in_.size(), rest.size());
            in_.insert(in_.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take));
            consumed += take;
            if (in_.size() < 2) {
                break;
            }
            const std::size_t length = read_u16(in_);
            if (length == 0) {
                fail(handshake_errc::malformed_message,
                     "empty handshake message from " + node_text(peer_name_));
                break;
            }
            if (length > max_handshake_message_size) {
                fail(handshake_errc::message_too_large,
                     "handshake message of " + std::to_string(length) + " bytes from " +
                         node_text(peer_name_) + " (limit " +
                         std::to_string(max_handshake_message_size) + ")");
                break;
            }
            in_.reserve(2 + length);
            continue;
        }
        const std::size_t wanted = 2 + read_u16(in_) - in_.size();
        const std::size_t take = std::min(wanted, rest.size());
        in_.insert(in_.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take));
        consumed += take;
        if (take == wanted) {
            const std::vector<std::byte> message = std::exchange(in_, {});
            on_message(std::span(message).subspan(2));
        }
    }
    return consumed;
}

std::vector<std::byte> handshake::take_output() {
    return std::exchange(out_, {});
}

void handshake::on_message(std::span<const std::byte> message) {
    switch (step_) {
        case step::await_name:
            return on_name(message);
        case step::await_status:
            return on_status(message);
        case step::await_challenge:
            return on_challenge(message);
        case step::await_alive_reply:
            return on_alive_reply(message);
        case step::await_reply:
            return on_reply(message);
        case step::await_ack:
            return on_ack(message);
        case step::finished:
            break;
    }
    fail(handshake_errc::invalid_state, "handshake message with nothing awaited");
}

// --- acceptor ------------------------------------------------------------------------------

void handshake::on_name(std::span<const std::byte> message) {
    const auto tag = std::to_integer<std::uint8_t>(message[0]);
    if (tag == HS_OLD_SEND_NAME) {
        // OTP 25.0-25.2 close here too; answering would need the version-5 challenge and
        // the 'c' complement, which only OTP 22 and older need.
        const auto name = message.size() > 7 ? as_text(message.subspan(7)) : std::string_view{};
        fail(handshake_errc::unsupported_version,
             node_text(name) + " sent a version-5 send_name ('n'); vdist speaks version 6 only");
        return;
    }
    if (tag != HS_SEND_NAME || message.size() < send_name_fixed) {
        fail(handshake_errc::malformed_message, "malformed send_name (" +
                                                    std::to_string(message.size()) +
                                                    " bytes, tag " + std::to_string(tag) + ")");
        return;
    }
    const std::uint64_t flags = read_u64(message.subspan(1));
    const std::uint32_t creation = read_u32(message.subspan(9));
    const std::size_t name_length = read_u16(message.subspan(13));
    if (message.size() - send_name_fixed < name_length) {
        fail(handshake_errc::malformed_message,
             "malformed send_name: a name of " + std::to_string(name_length) +
                 " bytes in a message of " + std::to_string(message.size()));
        return;
    }
    // Bytes after the name are ignored, as dist_util:recv_name_new/2 does.
    const auto name = as_text(message.subspan(send_name_fixed, name_length));
    if ((flags & DFLAG_NAME_ME) != 0) {
        queue_status(status_text(handshake_status::not_allowed));
        fail(handshake_errc::invalid_name, "host " + printable(name) +
                                               " asked for a dynamic name (NAME_ME); vdist "
                                               "hands out none");
        return;
    }
    if (!is_node_name(name)) {
        fail(handshake_errc::invalid_name,
             "send_name with the name \"" + printable(name) + "\": not alive@host");
        return;
    }
    peer_name_ = std::string(name);
    peer_flags_ = expand_mandatory_flags(flags);
    peer_creation_ = creation;
    const std::uint64_t missing = config_.required_flags & ~peer_flags_;
    if (missing != 0) {
        queue_status(status_text(handshake_status::not_allowed));
        fail(handshake_errc::missing_flags,
             node_text(peer_name_) + " cannot handle " + flag_names(missing));
        return;
    }
    step_ = step::finished;
    state_ = handshake_state::needs_status;
}

void handshake::set_status(handshake_status status) {
    if (initiating_ || state_ != handshake_state::needs_status) {
        fail(handshake_errc::invalid_state, "set_status() in state " +
                                                std::string(state_text(state_)) +
                                                (initiating_ ? " of an initiator" : ""));
        return;
    }
    queue_status(status_text(status));
    switch (status) {
        case handshake_status::ok:
        case handshake_status::ok_simultaneous:
            state_ = handshake_state::in_progress;
            queue_challenge();
            return;
        case handshake_status::nok:
        case handshake_status::not_allowed:
            fail(handshake_errc::refused, "refused " + node_text(peer_name_) + " (status " +
                                              std::string(status_text(status)) + ")");
            return;
        case handshake_status::alive:
            state_ = handshake_state::in_progress;
            step_ = step::await_alive_reply;
            return;
    }
    fail(handshake_errc::invalid_state, "set_status() with an unknown status");
}

void handshake::on_alive_reply(std::span<const std::byte> message) {
    const auto tag = std::to_integer<std::uint8_t>(message[0]);
    const auto answer = as_text(message.subspan(1));
    if (tag == HS_STATUS && answer == "true") {
        queue_challenge();
    } else if (tag == HS_STATUS && answer == "false") {
        fail(handshake_errc::name_conflict, node_text(peer_name_) +
                                                " answered false to alive: the existing "
                                                "connection stays");
    } else {
        fail(handshake_errc::malformed_message, "malformed answer to alive from " +
                                                    node_text(peer_name_) + ": \"" +
                                                    printable(as_text(message)) + "\"");
    }
}

void handshake::queue_challenge() {
    // send_challenge: 'N' Flags:64 Challenge:32 Creation:32 Nlen:16 Name
    our_challenge_ = new_challenge();
    std::vector<std::byte> message;
    message.reserve(send_challenge_fixed + config_.this_node.size());
    message.push_back(std::byte{HS_SEND_NAME});
    put_be(message, config_.flags);
    put_be(message, our_challenge_);
    put_be(message, config_.creation);
    put_be(message, static_cast<std::uint16_t>(config_.this_node.size()));
    put_text(message, config_.this_node);
    queue(message);
    step_ = step::await_reply;
}

void handshake::on_reply(std::span<const std::byte> message) {
    if (std::to_integer<std::uint8_t>(message[0]) != HS_CHALLENGE_REPLY ||
        message.size() != challenge_reply_size) {
        fail(handshake_errc::malformed_message, "malformed challenge_reply from " +
                                                    node_text(peer_name_) + " (" +
                                                    std::to_string(message.size()) + " bytes)");
        return;
    }
    const std::uint32_t peer_challenge = read_u32(message.subspan(1));
    const auto expected = handshake_digest(our_challenge_, config_.cookie);
    if (CRYPTO_memcmp(expected.data(), message.subspan(5).data(), digest_size) != 0) {
        fail(handshake_errc::bad_digest,
             node_text(peer_name_) + " has the wrong cookie (invalid challenge reply)");
        return;
    }
    // challenge_ack: 'a' Digest
    std::vector<std::byte> ack;
    ack.reserve(challenge_ack_size);
    ack.push_back(std::byte{HS_CHALLENGE_ACK});
    const auto digest = handshake_digest(peer_challenge, config_.cookie);
    ack.insert(ack.end(), digest.begin(), digest.end());
    queue(ack);
    succeed();
}

// --- initiator -----------------------------------------------------------------------------

void handshake::on_status(std::span<const std::byte> message) {
    if (std::to_integer<std::uint8_t>(message[0]) != HS_STATUS) {
        fail(handshake_errc::malformed_message,
             "expected a status from " + node_text(peer_name_) + ", got tag " +
                 std::to_string(std::to_integer<unsigned>(message[0])));
        return;
    }
    const auto status = as_text(message.subspan(1));
    for (const auto known :
         {handshake_status::ok, handshake_status::ok_simultaneous, handshake_status::nok,
          handshake_status::not_allowed, handshake_status::alive}) {
        if (status == status_text(known)) {
            received_status_ = known;
        }
    }
    if (status == status_text(handshake_status::ok) ||
        status == status_text(handshake_status::ok_simultaneous)) {
        step_ = step::await_challenge;
    } else if (status == status_text(handshake_status::nok) ||
               status == status_text(handshake_status::not_allowed)) {
        fail(handshake_errc::refused, node_text(peer_name_) + " refused the connection (status " +
                                          std::string(status) + ")");
    } else if (status == status_text(handshake_status::alive)) {
        step_ = step::finished;
        state_ = handshake_state::needs_alive_answer;
    } else if (status.starts_with(named_status_prefix)) {
        fail(handshake_errc::malformed_message,
             node_text(peer_name_) +
                 " answered \"named:\", the answer to a NAME_ME request vdist never makes");
    } else {
        fail(handshake_errc::malformed_message,
             "unknown status \"" + printable(status) + "\" from " + node_text(peer_name_));
    }
}

void handshake::set_alive_answer(bool take_over) {
    if (!initiating_ || state_ != handshake_state::needs_alive_answer) {
        fail(handshake_errc::invalid_state, "set_alive_answer() in state " +
                                                std::string(state_text(state_)) +
                                                (initiating_ ? "" : " of an acceptor"));
        return;
    }
    queue_status(take_over ? "true" : "false");
    if (take_over) {
        state_ = handshake_state::in_progress;
        step_ = step::await_challenge;
    } else {
        fail(handshake_errc::name_conflict,
             node_text(peer_name_) + " already has a connection from us (alive); gave up");
    }
}

void handshake::on_challenge(std::span<const std::byte> message) {
    if (std::to_integer<std::uint8_t>(message[0]) != HS_SEND_NAME ||
        message.size() < send_challenge_fixed) {
        fail(handshake_errc::malformed_message,
             "malformed send_challenge from " + node_text(peer_name_) + " (" +
                 std::to_string(message.size()) + " bytes, tag " +
                 std::to_string(std::to_integer<unsigned>(message[0])) + ")");
        return;
    }
    const std::uint64_t flags = read_u64(message.subspan(1));
    const std::uint32_t peer_challenge = read_u32(message.subspan(9));
    const std::uint32_t creation = read_u32(message.subspan(13));
    const std::size_t name_length = read_u16(message.subspan(17));
    if (message.size() - send_challenge_fixed < name_length) {
        fail(handshake_errc::malformed_message,
             "malformed send_challenge from " + node_text(peer_name_) + ": a name of " +
                 std::to_string(name_length) + " bytes in a message of " +
                 std::to_string(message.size()));
        return;
    }
    // Bytes after the name are ignored, as dist_util:recv_challenge_new/2 does.
    const auto name = as_text(message.subspan(send_challenge_fixed, name_length));
    if (name != peer_name_) {
        fail(handshake_errc::wrong_node, "asked for node " + printable(peer_name_) + ", but node " +
                                             printable(name) + " answered");
        return;
    }
    peer_flags_ = expand_mandatory_flags(flags);
    peer_creation_ = creation;
    const std::uint64_t missing = config_.required_flags & ~peer_flags_;
    if (missing != 0) {
        fail(handshake_errc::missing_flags,
             node_text(peer_name_) + " cannot handle " + flag_names(missing));
        return;
    }
    // challenge_reply: 'r' Challenge:32 Digest
    our_challenge_ = new_challenge();
    std::vector<std::byte> reply;
    reply.reserve(challenge_reply_size);
    reply.push_back(std::byte{HS_CHALLENGE_REPLY});
    put_be(reply, our_challenge_);
    const auto digest = handshake_digest(peer_challenge, config_.cookie);
    reply.insert(reply.end(), digest.begin(), digest.end());
    queue(reply);
    step_ = step::await_ack;
}

void handshake::on_ack(std::span<const std::byte> message) {
    if (std::to_integer<std::uint8_t>(message[0]) != HS_CHALLENGE_ACK ||
        message.size() != challenge_ack_size) {
        fail(handshake_errc::malformed_message, "malformed challenge_ack from " +
                                                    node_text(peer_name_) + " (" +
                                                    std::to_string(message.size()) + " bytes)");
        return;
    }
    const auto expected = handshake_digest(our_challenge_, config_.cookie);
    if (CRYPTO_memcmp(expected.data(), message.subspan(1).data(), digest_size) != 0) {
        fail(handshake_errc::bad_digest,
             node_text(peer_name_) + " has the wrong cookie (invalid challenge ack)");
        return;
    }
    succeed();
}

// --- both ----------------------------------------------------------------------------------

void handshake::queue(std::span<const std::byte> message) {
    put_be(out_, static_cast<std::uint16_t>(message.size()));
    out_.insert(out_.end(), message.begin(), message.end());
}

void handshake::queue_status(std::string_view text) {
    std::vector<std::byte> message;
    message.reserve(1 + text.size());
    message.push_back(std::byte{HS_STATUS});
    put_text(message, text);
    queue(message);
}

void handshake::succeed() {
    result_.peer_node = peer_name_;
    result_.peer_creation = peer_creation_;
    result_.peer_flags = peer_flags_;
    result_.flags = expand_mandatory_flags(config_.flags) & peer_flags_;
    step_ = step::finished;
    state_ = handshake_state::done;
}

void handshake::fail(handshake_errc code, std::string detail) {
    if (state_ == handshake_state::failed) {
        return;  // the first error is the cause
    }
    in_.clear();
    step_ = step::finished;
    state_ = handshake_state::failed;
    error_ = code;
    error_detail_ = std::move(detail);
}

std::uint32_t handshake::new_challenge() {
    return config_.random_challenge ? config_.random_challenge() : random_word();
}

std::uint32_t random_word() {
    std::uint32_t word = 0;
    for (;;) {
        const auto n = ::getrandom(&word, sizeof word, 0);
        if (n == sizeof word) {
            return word;
        }
        if (n < 0 && errno != EINTR) {
            std::random_device device;  // no getrandom (a kernel before 3.17)
            return static_cast<std::uint32_t>(device());
        }
    }
}

}  // namespace vdist::dist
