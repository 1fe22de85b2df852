// Unit tests of the version-6 distribution handshake (handshake.hpp): the bytes captured
// between OTP 25.2.3 and a test node (research/dist-anchors.md §2.2) and the digest OTP
// accepted, a whole exchange between our initiator and our acceptor checked byte for byte at
// each step, the stream cut anywhere, the bytes after the last message, every status, and every
// way it fails. The same exchange against a real erl is in handshake_erlang_test.cpp.

#include "vdist/dist/handshake.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "vdist/dist/protocol.hpp"
#include "vdist/test/bytes.hpp"

namespace vdist::dist {
namespace {

using namespace std::string_literals;
using test::bytes;
using test::concat;
using test::text;
using test::wire;

// --- wire helpers ------------------------------------------------------------------------

/// The bytes of hex `digits` (spaces ignored).
[[nodiscard]] bytes hex(std::string_view digits) {
    bytes out;
    int high = -1;
    for (const char c : digits) {
        if (c == ' ') {
            continue;
        }
        const int nibble = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        if (high < 0) {
            high = nibble;
        } else {
            out.push_back(static_cast<std::byte>(high * 16 + nibble));
            high = -1;
        }
    }
    return out;
}

/// `value` as `size` big-endian bytes.
[[nodiscard]] bytes be(std::uint64_t value, std::size_t size) {
    bytes out(size);
    for (std::size_t i = 0; i < size; ++i) {
        out[size - 1 - i] = static_cast<std::byte>((value >> (8 * i)) & 0xff);
    }
    return out;
}

/// `message` with its 2-byte length.
[[nodiscard]] bytes framed(const bytes& message) {
    return concat(be(message.size(), 2), message);
}

[[nodiscard]] bytes send_name_message(std::uint64_t flags, std::uint32_t creation,
                                      std::string_view name, const bytes& trailing = {}) {
    return framed(concat(concat(concat(concat(wire({'N'}), be(flags, 8)), be(creation, 4)),
                                concat(be(name.size(), 2), text(name))),
                         trailing));
}

[[nodiscard]] bytes status_message(std::string_view status) {
    return framed(concat(wire({'s'}), text(status)));
}

[[nodiscard]] bytes challenge_message(std::uint64_t flags, std::uint32_t challenge,
                                      std::uint32_t creation, std::string_view name,
                                      const bytes& trailing = {}) {
    return framed(
        concat(concat(concat(wire({'N'}), be(flags, 8)), concat(be(challenge, 4), be(creation, 4))),
               concat(concat(be(name.size(), 2), text(name)), trailing)));
}

[[nodiscard]] bytes digest_bytes(std::uint32_t challenge, std::string_view cookie) {
    const auto digest = handshake_digest(challenge, cookie);
    return {digest.begin(), digest.end()};
}

[[nodiscard]] bytes ack_message(std::uint32_t challenge, std::string_view cookie) {
    return framed(concat(wire({'a'}), digest_bytes(challenge, cookie)));
}

// --- the two nodes of the capture --------------------------------------------------------

// The test node of the capture ("py", ei's preferred flags) and OTP 25.2.3 ("e1").
constexpr std::uint64_t py_flags = 0x0000000407074f9c;
constexpr std::uint32_t py_creation = 0x12345678;
constexpr std::uint32_t py_challenge = 0xcafebabe;  // 3405691582
constexpr std::uint64_t otp_flags = 0x0000000d07df7fbd;
constexpr std::uint32_t otp_creation = 0x6b090cf3;
constexpr std::uint32_t otp_challenge = 1200541992;  // 0x478ed128
constexpr std::string_view py_node = "py@127.0.0.1";
constexpr std::string_view e1_node = "e1@127.0.0.1";

[[nodiscard]] handshake_config py_config(std::string cookie = "secret") {
    handshake_config config;
    config.this_node = std::string(py_node);
    config.creation = py_creation;
    config.cookie = std::move(cookie);
    config.flags = py_flags;
    config.random_challenge = [] { return py_challenge; };
    return config;
}

[[nodiscard]] handshake_config e1_config(std::string cookie = "secret") {
    handshake_config config;
    config.this_node = std::string(e1_node);
    config.creation = otp_creation;
    config.cookie = std::move(cookie);
    config.flags = otp_flags;
    config.random_challenge = [] { return otp_challenge; };
    return config;
}

// Captured on loopback (dist-anchors.md §2.2), and what follows from it.
const bytes captured_send_name =
    hex("001b 4e 000000040707 4f9c 12345678 000c 7079403132372e302e302e31");
const bytes captured_status_ok = hex("0003 73 6f6b");
const bytes otp_challenge_bytes =
    hex("001f 4e 0000000d07df7fbd 478ed128 6b090cf3 000c 6531403132372e302e302e31");
// MD5("secret1200541992"), the digest OTP 25.2.3 accepted.
const bytes py_reply_bytes = hex("0015 72 cafebabe aeb1076c83add9930f346128b2d0e487");
// MD5("secret3405691582").
const bytes otp_ack_bytes = hex("0011 61 52d44ecb249cb4af5680121ffb96e958");

/// Feeds all of `stream`, expecting every byte to be consumed.
void feed_all(handshake& hs, const bytes& stream) {
    EXPECT_EQ(hs.feed(stream), stream.size());
}

/// Runs `a` (initiator) against `b` (acceptor) until neither has anything to say, answering
/// needs_status with `status`.
void run(handshake& a, handshake& b, handshake_status status = handshake_status::ok) {
    for (int round = 0; round < 10; ++round) {
        const bytes to_b = a.take_output();
        if (!to_b.empty() && b.state() == handshake_state::in_progress) {
            feed_all(b, to_b);
        }
        if (b.state() == handshake_state::needs_status) {
            b.set_status(status);
        }
        const bytes to_a = b.take_output();
        if (!to_a.empty() && a.state() == handshake_state::in_progress) {
            feed_all(a, to_a);
        }
        if (to_a.empty() && to_b.empty()) {
            return;
        }
    }
}

/// A parameterised case's name in the test's name (every case struct has `name`).
const auto case_name = [](const auto& param_info) { return std::string(param_info.param.name); };

// --- the digest --------------------------------------------------------------------------

struct digest_case {
    const char* name;
    std::uint32_t challenge;
    const char* cookie;
    const char* md5;
};

void PrintTo(const digest_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeDigestTest : public ::testing::TestWithParam<digest_case> {};

TEST_P(HandshakeDigestTest, shouldBeMd5OfCookieThenDecimalChallengeWhenComputed) {
    const auto& c = GetParam();
    EXPECT_EQ(digest_bytes(c.challenge, c.cookie), hex(c.md5));
}

INSTANTIATE_TEST_SUITE_P(
    Vectors, HandshakeDigestTest,
    ::testing::Values(
        // verified live against OTP 25.2.3
        digest_case{"captured", otp_challenge, "secret", "aeb1076c83add9930f346128b2d0e487"},
        // one digit, no padding
        digest_case{"zero", 0, "secret", "175ec77a7f63082590987d0d8b051aff"},
        // ten digits, unsigned
        digest_case{"max", 0xffffffff, "secret", "5dfd181e69aa587cc812eb333e6536b6"},
        digest_case{"empty_cookie", 42, "", "a1d0c6e83f027327d8461063f4ac58a6"}),
    case_name);

// --- the captured bytes ------------------------------------------------------------------

TEST(HandshakeTest, shouldDecodeTheCapturedSendNameWhenAccepting) {
    auto acceptor = handshake::accept(e1_config());
    ASSERT_EQ(acceptor.state(), handshake_state::in_progress);
    EXPECT_TRUE(acceptor.take_output().empty());

    EXPECT_EQ(acceptor.feed(captured_send_name), captured_send_name.size());

    EXPECT_EQ(acceptor.state(), handshake_state::needs_status);
    EXPECT_FALSE(acceptor.initiating());
    EXPECT_EQ(acceptor.peer_name(), py_node);
    EXPECT_EQ(acceptor.peer_creation(), py_creation);
    // The shorthand bit is set, so the eleven OTP 25 flags are there (they already are here).
    EXPECT_EQ(acceptor.peer_flags(), expand_mandatory_flags(py_flags));
    EXPECT_EQ(acceptor.peer_flags() & mandatory_flags_25, mandatory_flags_25);
    EXPECT_NE(acceptor.peer_flags() & DFLAG_V4_NC, 0u);
    EXPECT_EQ(acceptor.peer_flags() & DFLAG_PUBLISHED, 0u);
    EXPECT_TRUE(acceptor.take_output().empty());

    acceptor.set_status(handshake_status::ok);
    EXPECT_EQ(acceptor.take_output(), concat(captured_status_ok, otp_challenge_bytes));
}

TEST(HandshakeTest, shouldAnswerTheCapturedChallengeWithTheDigestOtpAcceptedWhenInitiating) {
    auto initiator = handshake::initiate(py_config(), e1_node);
    EXPECT_TRUE(initiator.initiating());
    EXPECT_EQ(initiator.peer_name(), e1_node);
    EXPECT_EQ(initiator.take_output(), captured_send_name);

    feed_all(initiator, concat(captured_status_ok, otp_challenge_bytes));

    EXPECT_EQ(initiator.state(), handshake_state::in_progress);
    EXPECT_EQ(initiator.peer_flags(), otp_flags);
    EXPECT_EQ(initiator.peer_creation(), otp_creation);
    EXPECT_EQ(initiator.take_output(), py_reply_bytes);
}

// --- whole exchanges ---------------------------------------------------------------------

TEST(HandshakeTest, shouldExchangeExactBytesWhenInitiatorMeetsAcceptor) {
    auto a = handshake::initiate(py_config(), e1_node);
    auto b = handshake::accept(e1_config());

    const bytes send_name = a.take_output();
    EXPECT_EQ(send_name, captured_send_name);
    EXPECT_TRUE(a.take_output().empty());  // taken once

    feed_all(b, send_name);
    ASSERT_EQ(b.state(), handshake_state::needs_status);
    b.set_status(handshake_status::ok);
    EXPECT_EQ(b.state(), handshake_state::in_progress);
    const bytes status_and_challenge = b.take_output();
    EXPECT_EQ(status_and_challenge, concat(captured_status_ok, otp_challenge_bytes));

    feed_all(a, status_and_challenge);
    EXPECT_EQ(a.state(), handshake_state::in_progress);
    const bytes reply = a.take_output();
    EXPECT_EQ(reply, py_reply_bytes);

    feed_all(b, reply);
    EXPECT_EQ(b.state(), handshake_state::done);
    const bytes ack = b.take_output();
    EXPECT_EQ(ack, otp_ack_bytes);

    feed_all(a, ack);
    EXPECT_EQ(a.state(), handshake_state::done);
    EXPECT_TRUE(a.take_output().empty());

    EXPECT_EQ(a.result().peer_node, e1_node);
    EXPECT_EQ(a.result().peer_creation, otp_creation);
    EXPECT_EQ(a.result().peer_flags, otp_flags);
    EXPECT_EQ(a.result().flags, 0x0000000407074f9cu);
    EXPECT_FALSE(a.result().peer_hidden());  // OTP sets PUBLISHED even towards hidden nodes
    EXPECT_EQ(b.result().peer_node, py_node);
    EXPECT_EQ(b.result().peer_creation, py_creation);
    EXPECT_EQ(b.result().peer_flags, py_flags);
    EXPECT_EQ(b.result().flags, a.result().flags);
    EXPECT_TRUE(b.result().peer_hidden());
    EXPECT_FALSE(a.error());
    EXPECT_TRUE(a.error_detail().empty());
}

TEST(HandshakeTest, shouldFinishWhenFedOneByteAtATime) {
    auto a = handshake::initiate(py_config(), e1_node);
    auto b = handshake::accept(e1_config());
    const auto trickle = [](handshake& hs, const bytes& stream) {
        for (const std::byte byte : stream) {
            ASSERT_EQ(hs.feed(std::span(&byte, 1)), 1u);
        }
    };

    trickle(b, a.take_output());
    ASSERT_EQ(b.state(), handshake_state::needs_status);
    b.set_status(handshake_status::ok);
    trickle(a, b.take_output());
    ASSERT_EQ(a.state(), handshake_state::in_progress);
    trickle(b, a.take_output());
    ASSERT_EQ(b.state(), handshake_state::done);
    trickle(a, b.take_output());

    EXPECT_EQ(a.state(), handshake_state::done);
    EXPECT_EQ(a.result().peer_node, e1_node);
    EXPECT_EQ(b.result().peer_node, py_node);
}

/// The initiator's stream (status, challenge, ack) cut at every point: the bytes before the
/// cut are all consumed and leave it waiting; the rest finishes it.
class HandshakeCutTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(HandshakeCutTest, shouldWaitForTheRestWhenTheStreamIsCut) {
    const bytes stream = concat(concat(captured_status_ok, otp_challenge_bytes), otp_ack_bytes);
    const std::size_t cut = GetParam();
    auto initiator = handshake::initiate(py_config(), e1_node);
    (void)initiator.take_output();

    EXPECT_EQ(initiator.feed(std::span(stream).first(cut)), cut);
    EXPECT_EQ(initiator.state(), handshake_state::in_progress);
    const std::size_t ack_at = stream.size() - otp_ack_bytes.size();
    EXPECT_EQ(initiator.take_output(), cut >= ack_at ? py_reply_bytes : bytes{});

    EXPECT_EQ(initiator.feed(std::span(stream).subspan(cut)), stream.size() - cut);
    EXPECT_EQ(initiator.state(), handshake_state::done);
}

INSTANTIATE_TEST_SUITE_P(EveryByte, HandshakeCutTest,
                         ::testing::Range<std::size_t>(0, 5 + 33 + 19));

TEST(HandshakeTest, shouldLeaveTheBytesAfterTheAckWhenTheInitiatorIsDone) {
    auto initiator = handshake::initiate(py_config(), e1_node);
    (void)initiator.take_output();
    feed_all(initiator, concat(captured_status_ok, otp_challenge_bytes));
    (void)initiator.take_output();
    // The first distribution packets may come in the same read: a tick and a packet.
    const bytes after = wire({0, 0, 0, 0, 0, 0, 0, 3, 112, 131, 106});

    EXPECT_EQ(initiator.feed(concat(otp_ack_bytes, after)), otp_ack_bytes.size());

    EXPECT_EQ(initiator.state(), handshake_state::done);
    EXPECT_EQ(initiator.feed(after), 0u);  // nothing consumed once done
    EXPECT_EQ(initiator.state(), handshake_state::done);
}

TEST(HandshakeTest, shouldLeaveTheBytesAfterTheReplyWhenTheAcceptorIsDone) {
    auto acceptor = handshake::accept(e1_config());
    feed_all(acceptor, captured_send_name);
    acceptor.set_status(handshake_status::ok);
    (void)acceptor.take_output();
    const bytes after = wire({0, 0, 0, 0});

    EXPECT_EQ(acceptor.feed(concat(py_reply_bytes, after)), py_reply_bytes.size());

    EXPECT_EQ(acceptor.state(), handshake_state::done);
    EXPECT_EQ(acceptor.take_output(), otp_ack_bytes);
}

TEST(HandshakeTest, shouldStopAfterSendNameWhenTheAcceptorNeedsAStatus) {
    auto acceptor = handshake::accept(e1_config());
    const bytes early = wire({0, 21, 'r'});  // an eager peer; stays for after set_status

    EXPECT_EQ(acceptor.feed(concat(captured_send_name, early)), captured_send_name.size());
    EXPECT_EQ(acceptor.state(), handshake_state::needs_status);
    EXPECT_EQ(acceptor.feed(early), 0u);
    EXPECT_EQ(acceptor.state(), handshake_state::needs_status);
}

TEST(HandshakeTest, shouldIgnoreBytesAfterTheNameWhenInSendNameAndChallenge) {
    // Up to the limit: a 1024-byte send_name is a 14-byte header, a 12-byte name and 998 more.
    const bytes padding(max_handshake_message_size - 15 - py_node.size(), std::byte{0xee});
    const bytes send_name = send_name_message(py_flags, py_creation, py_node, padding);
    ASSERT_EQ(send_name.size(), 2 + max_handshake_message_size);
    auto acceptor = handshake::accept(e1_config());
    feed_all(acceptor, send_name);
    EXPECT_EQ(acceptor.state(), handshake_state::needs_status);
    EXPECT_EQ(acceptor.peer_name(), py_node);

    auto initiator = handshake::initiate(py_config(), e1_node);
    feed_all(initiator,
             concat(captured_status_ok, challenge_message(otp_flags, otp_challenge, otp_creation,
                                                          e1_node, wire({1, 2, 3}))));
    EXPECT_EQ(initiator.state(), handshake_state::in_progress);
    EXPECT_EQ(concat(captured_send_name, py_reply_bytes), initiator.take_output());
}

// --- negotiation -------------------------------------------------------------------------

struct negotiation_case {
    const char* name;
    std::uint64_t initiator_flags;
    std::uint64_t acceptor_flags;
    std::uint64_t negotiated;
    bool initiator_hidden;
};

void PrintTo(const negotiation_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeNegotiationTest : public ::testing::TestWithParam<negotiation_case> {};

TEST_P(HandshakeNegotiationTest, shouldAgreeOnTheCommonFlagsWhenBothSidesFinish) {
    const auto& c = GetParam();
    auto a_config = py_config();
    a_config.flags = c.initiator_flags;
    auto b_config = e1_config();
    b_config.flags = c.acceptor_flags;
    auto a = handshake::initiate(a_config, e1_node);
    auto b = handshake::accept(b_config);

    run(a, b);

    ASSERT_EQ(a.state(), handshake_state::done) << a.error_detail();
    ASSERT_EQ(b.state(), handshake_state::done) << b.error_detail();
    EXPECT_EQ(a.result().flags, c.negotiated);
    EXPECT_EQ(b.result().flags, c.negotiated);
    EXPECT_EQ(a.result().peer_flags, expand_mandatory_flags(c.acceptor_flags));
    EXPECT_EQ(b.result().peer_flags, expand_mandatory_flags(c.initiator_flags));
    EXPECT_EQ(b.result().peer_hidden(), c.initiator_hidden);
}

INSTANTIATE_TEST_SUITE_P(
    Flags, HandshakeNegotiationTest,
    ::testing::Values(
        // The shorthand alone stands for the eleven flags (accepted live by OTP 25.2.3).
        negotiation_case{"shorthand_only", DFLAG_MANDATORY_25_DIGEST | DFLAG_V4_NC,
                         vdist_flags | DFLAG_PUBLISHED,
                         mandatory_flags_25 | DFLAG_MANDATORY_25_DIGEST | DFLAG_V4_NC, true},
        // Without the shorthand bit, the eleven bits themselves.
        negotiation_case{"eleven_flags_only", mandatory_flags_25, vdist_flags, mandatory_flags_25,
                         true},
        negotiation_case{"both_published", vdist_flags | DFLAG_PUBLISHED,
                         vdist_flags | DFLAG_PUBLISHED, vdist_flags | DFLAG_PUBLISHED, false},
        // The header flags only if both have them.
        negotiation_case{"acceptor_without_fragments", vdist_flags,
                         vdist_flags & ~(DFLAG_FRAGMENTS | DFLAG_DIST_HDR_ATOM_CACHE),
                         vdist_flags & ~(DFLAG_FRAGMENTS | DFLAG_DIST_HDR_ATOM_CACHE), true},
        negotiation_case{"ei_and_otp", py_flags, otp_flags, 0x0000000407074f9c, true}),
    case_name);

// --- statuses ----------------------------------------------------------------------------

struct received_status_case {
    const char* name;
    std::string status;
    handshake_state state;
    handshake_errc error;  // when failed
};

void PrintTo(const received_status_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeReceivedStatusTest : public ::testing::TestWithParam<received_status_case> {};

TEST_P(HandshakeReceivedStatusTest, shouldGoOnOrStopWhenTheInitiatorGetsAStatus) {
    const auto& c = GetParam();
    auto initiator = handshake::initiate(py_config(), e1_node);
    (void)initiator.take_output();
    const bytes status = status_message(c.status);

    EXPECT_EQ(initiator.feed(status), status.size());

    EXPECT_EQ(initiator.state(), c.state);
    EXPECT_TRUE(initiator.take_output().empty());
    if (c.state == handshake_state::failed) {
        EXPECT_EQ(initiator.error(), c.error) << initiator.error_detail();
        EXPECT_FALSE(initiator.error_detail().empty());
    } else {
        EXPECT_FALSE(initiator.error());
    }
    if (c.state == handshake_state::in_progress) {  // the challenge is next
        feed_all(initiator, otp_challenge_bytes);
        EXPECT_EQ(initiator.take_output(), py_reply_bytes);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Statuses, HandshakeReceivedStatusTest,
    ::testing::Values(
        received_status_case{"ok", "ok", handshake_state::in_progress, {}},
        received_status_case{
            "ok_simultaneous", "ok_simultaneous", handshake_state::in_progress, {}},
        received_status_case{"nok", "nok", handshake_state::failed, handshake_errc::refused},
        received_status_case{"not_allowed", "not_allowed", handshake_state::failed,
                             handshake_errc::refused},
        received_status_case{"alive", "alive", handshake_state::needs_alive_answer, {}},
        // The answer to NAME_ME, which vdist never asks for.
        received_status_case{"named",
                             "named:\x00\x0c"
                             "e1@127.0.0.1\x00\x00\x00\x05"s,
                             handshake_state::failed, handshake_errc::malformed_message},
        received_status_case{"unknown", "okay", handshake_state::failed,
                             handshake_errc::malformed_message},
        received_status_case{"empty", "", handshake_state::failed,
                             handshake_errc::malformed_message},
        received_status_case{"alive_answer", "true", handshake_state::failed,
                             handshake_errc::malformed_message}),
    case_name);

TEST(HandshakeTest, shouldPointAtNameMeWhenTheStatusIsNamed) {
    const std::string named =
        "named:\x00\x0c"
        "e1@127.0.0.1\x00\x00\x00\x05"s;
    auto initiator = handshake::initiate(py_config(), e1_node);
    (void)initiator.take_output();
    const bytes status = status_message(named);
    feed_all(initiator, status);
    EXPECT_NE(initiator.error_detail().find("NAME_ME"), std::string::npos)
        << initiator.error_detail();
}

struct sent_status_case {
    const char* name;
    handshake_status status;
    handshake_state state;
    handshake_errc error;  // when failed
    bool challenge;        // queued after the status
};

void PrintTo(const sent_status_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeSentStatusTest : public ::testing::TestWithParam<sent_status_case> {};

TEST_P(HandshakeSentStatusTest, shouldQueueTheStatusWhenTheAcceptorAnswers) {
    const auto& c = GetParam();
    auto acceptor = handshake::accept(e1_config());
    feed_all(acceptor, captured_send_name);

    acceptor.set_status(c.status);

    EXPECT_EQ(acceptor.state(), c.state);
    const bytes status = status_message(status_text(c.status));
    EXPECT_EQ(acceptor.take_output(), c.challenge ? concat(status, otp_challenge_bytes) : status);
    if (c.state == handshake_state::failed) {
        EXPECT_EQ(acceptor.error(), c.error);
        EXPECT_NE(acceptor.error_detail().find(py_node), std::string::npos)
            << acceptor.error_detail();
    }
}

INSTANTIATE_TEST_SUITE_P(
    Statuses, HandshakeSentStatusTest,
    ::testing::Values(
        sent_status_case{"ok", handshake_status::ok, handshake_state::in_progress, {}, true},
        sent_status_case{"ok_simultaneous",
                         handshake_status::ok_simultaneous,
                         handshake_state::in_progress,
                         {},
                         true},
        sent_status_case{"nok", handshake_status::nok, handshake_state::failed,
                         handshake_errc::refused, false},
        sent_status_case{"not_allowed", handshake_status::not_allowed, handshake_state::failed,
                         handshake_errc::refused, false},
        // waits for the peer's true/false
        sent_status_case{
            "alive", handshake_status::alive, handshake_state::in_progress, {}, false}),
    case_name);

TEST(HandshakeTest, shouldTakeOverWhenTheInitiatorAnswersTrueToAlive) {
    auto a = handshake::initiate(py_config(), e1_node);
    auto b = handshake::accept(e1_config());
    feed_all(b, a.take_output());
    b.set_status(handshake_status::alive);
    feed_all(a, b.take_output());
    ASSERT_EQ(a.state(), handshake_state::needs_alive_answer);

    a.set_alive_answer(true);

    EXPECT_EQ(a.state(), handshake_state::in_progress);
    const bytes answer = a.take_output();
    EXPECT_EQ(answer, hex("0005 73 74727565"));  // 's' "true"
    feed_all(b, answer);
    EXPECT_EQ(b.take_output(), otp_challenge_bytes);
    feed_all(a, otp_challenge_bytes);
    feed_all(b, a.take_output());
    feed_all(a, b.take_output());
    EXPECT_EQ(a.state(), handshake_state::done);
    EXPECT_EQ(b.state(), handshake_state::done);
}

TEST(HandshakeTest, shouldEndInNameConflictWhenTheInitiatorAnswersFalseToAlive) {
    auto a = handshake::initiate(py_config(), e1_node);
    auto b = handshake::accept(e1_config());
    feed_all(b, a.take_output());
    b.set_status(handshake_status::alive);
    feed_all(a, b.take_output());

    a.set_alive_answer(false);

    EXPECT_EQ(a.state(), handshake_state::failed);
    EXPECT_EQ(a.error(), handshake_errc::name_conflict);
    const bytes answer = a.take_output();
    EXPECT_EQ(answer, hex("0006 73 66616c7365"));  // 's' "false"
    feed_all(b, answer);
    EXPECT_EQ(b.state(), handshake_state::failed);
    EXPECT_EQ(b.error(), handshake_errc::name_conflict);
    EXPECT_TRUE(b.take_output().empty());
}

// --- failures ----------------------------------------------------------------------------

TEST(HandshakeTest, shouldFailWithBadDigestWhenTheInitiatorHasTheWrongCookie) {
    auto a = handshake::initiate(py_config("wrong"), e1_node);
    auto b = handshake::accept(e1_config("secret"));

    run(a, b);

    EXPECT_EQ(b.state(), handshake_state::failed);
    EXPECT_EQ(b.error(), handshake_errc::bad_digest);
    EXPECT_EQ(b.error_detail(), "node py@127.0.0.1 has the wrong cookie (invalid challenge reply)");
    EXPECT_TRUE(b.take_output().empty());                // no ack: OTP just closes
    EXPECT_EQ(a.state(), handshake_state::in_progress);  // waits for an ack that never comes
}

TEST(HandshakeTest, shouldFailWithBadDigestWhenTheAckComesFromTheWrongCookie) {
    auto initiator = handshake::initiate(py_config("secret"), e1_node);
    feed_all(initiator, concat(captured_status_ok, otp_challenge_bytes));
    (void)initiator.take_output();

    feed_all(initiator, ack_message(py_challenge, "wrong"));

    EXPECT_EQ(initiator.state(), handshake_state::failed);
    EXPECT_EQ(initiator.error(), handshake_errc::bad_digest);
    EXPECT_EQ(initiator.error_detail(),
              "node e1@127.0.0.1 has the wrong cookie (invalid challenge ack)");
}

TEST(HandshakeTest, shouldFailWithBadDigestWhenTheAckAnswersAnotherChallenge) {
    auto initiator = handshake::initiate(py_config("secret"), e1_node);
    feed_all(initiator, concat(captured_status_ok, otp_challenge_bytes));
    (void)initiator.take_output();

    feed_all(initiator, ack_message(py_challenge + 1, "secret"));

    EXPECT_EQ(initiator.error(), handshake_errc::bad_digest);
}

struct missing_flags_case {
    const char* name;
    std::uint64_t peer_flags;
    std::uint64_t required;
    const char* missing;
};

void PrintTo(const missing_flags_case& c, std::ostream* out) {
    *out << c.name;
}

const auto missing_flags_cases = ::testing::Values(
    missing_flags_case{"utf8_and_maps", mandatory_flags_25 & ~(DFLAG_UTF8_ATOMS | DFLAG_MAP_TAG),
                       mandatory_flags_25, "[UTF8_ATOMS, MAP_TAG]"},
    // an OTP 26 requirement: the shorthand covers OTP 25's flags only
    missing_flags_case{"otp_26", DFLAG_MANDATORY_25_DIGEST, mandatory_flags_26,
                       "[UNLINK_ID, V4_NC]"},
    missing_flags_case{"nothing", 0, mandatory_flags_25,
                       "[EXTENDED_REFERENCES, FUN_TAGS, NEW_FUN_TAGS, EXTENDED_PIDS_PORTS, "
                       "EXPORT_PTR_TAG, BIT_BINARIES, NEW_FLOATS, UTF8_ATOMS, MAP_TAG, "
                       "BIG_CREATION, HANDSHAKE_23]"},
    missing_flags_case{"alias", vdist_flags & ~DFLAG_ALIAS, mandatory_flags_25 | DFLAG_ALIAS,
                       "[ALIAS]"});

class HandshakeMissingFlagsTest : public ::testing::TestWithParam<missing_flags_case> {};

TEST_P(HandshakeMissingFlagsTest, shouldAnswerNotAllowedWhenTheInitiatorLacksFlags) {
    const auto& c = GetParam();
    auto config = e1_config();
    config.required_flags = c.required;
    auto acceptor = handshake::accept(config);

    feed_all(acceptor, send_name_message(c.peer_flags, py_creation, py_node));

    EXPECT_EQ(acceptor.state(), handshake_state::failed);
    EXPECT_EQ(acceptor.error(), handshake_errc::missing_flags);
    EXPECT_EQ(acceptor.error_detail(), "node py@127.0.0.1 cannot handle " + std::string(c.missing));
    EXPECT_EQ(acceptor.take_output(), status_message("not_allowed"));
}

TEST_P(HandshakeMissingFlagsTest, shouldGiveUpWhenTheChallengeLacksFlags) {
    const auto& c = GetParam();
    auto config = py_config();
    config.required_flags = c.required;
    auto initiator = handshake::initiate(config, e1_node);
    (void)initiator.take_output();

    feed_all(initiator, concat(captured_status_ok, challenge_message(c.peer_flags, otp_challenge,
                                                                     otp_creation, e1_node)));

    EXPECT_EQ(initiator.state(), handshake_state::failed);
    EXPECT_EQ(initiator.error(), handshake_errc::missing_flags);
    EXPECT_EQ(initiator.error_detail(),
              "node e1@127.0.0.1 cannot handle " + std::string(c.missing));
    EXPECT_TRUE(initiator.take_output().empty());
}

INSTANTIATE_TEST_SUITE_P(Flags, HandshakeMissingFlagsTest, missing_flags_cases, case_name);

class HandshakeWrongNodeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HandshakeWrongNodeTest, shouldFailWithWrongNodeWhenAnotherNodeAnswers) {
    auto initiator = handshake::initiate(py_config(), e1_node);
    (void)initiator.take_output();

    feed_all(initiator, concat(captured_status_ok, challenge_message(otp_flags, otp_challenge,
                                                                     otp_creation, GetParam())));

    EXPECT_EQ(initiator.state(), handshake_state::failed);
    EXPECT_EQ(initiator.error(), handshake_errc::wrong_node);
    EXPECT_TRUE(initiator.take_output().empty());
    EXPECT_NE(initiator.error_detail().find("e1@127.0.0.1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Names, HandshakeWrongNodeTest,
                         ::testing::Values("e2@127.0.0.1", "E1@127.0.0.1", "e1@127.0.0",
                                           "e1@127.0.0.10", "", "e1"));

/// Bad bytes in each place a message is awaited.
enum class stage {
    acceptor_fresh,        // awaits send_name
    acceptor_after_ok,     // awaits challenge_reply
    acceptor_after_alive,  // awaits 's' true/false
    initiator_fresh,       // awaits a status
    initiator_after_ok,    // awaits the challenge
    initiator_after_reply  // awaits the ack
};

[[nodiscard]] handshake at_stage(stage where) {
    const bool accepting = where == stage::acceptor_fresh || where == stage::acceptor_after_ok ||
                           where == stage::acceptor_after_alive;
    auto hs =
        accepting ? handshake::accept(e1_config()) : handshake::initiate(py_config(), e1_node);
    (void)hs.take_output();
    switch (where) {
        case stage::acceptor_after_ok:
        case stage::acceptor_after_alive:
            feed_all(hs, captured_send_name);
            hs.set_status(where == stage::acceptor_after_ok ? handshake_status::ok
                                                            : handshake_status::alive);
            break;
        case stage::initiator_after_ok:
            feed_all(hs, captured_status_ok);
            break;
        case stage::initiator_after_reply:
            feed_all(hs, concat(captured_status_ok, otp_challenge_bytes));
            break;
        case stage::acceptor_fresh:
        case stage::initiator_fresh:
            break;
    }
    (void)hs.take_output();
    EXPECT_EQ(hs.state(), handshake_state::in_progress);
    return hs;
}

struct bad_input_case {
    const char* name;
    stage where;
    bytes input;
    handshake_errc error;
    std::size_t consumed = 0;  // 0: all of input
    bytes answer = {};         // what is queued before failing
};

void PrintTo(const bad_input_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeBadInputTest : public ::testing::TestWithParam<bad_input_case> {};

TEST_P(HandshakeBadInputTest, shouldFailWithANamedErrorWhenInputIsBad) {
    const auto& c = GetParam();
    auto hs = at_stage(c.where);
    // More bytes behind: they are not consumed.
    const bytes stream = concat(c.input, captured_send_name);

    const std::size_t consumed = hs.feed(stream);

    EXPECT_EQ(consumed, c.consumed != 0 ? c.consumed : c.input.size());
    EXPECT_EQ(hs.state(), handshake_state::failed);
    EXPECT_EQ(hs.error(), c.error) << hs.error_detail();
    EXPECT_FALSE(hs.error_detail().empty());
    EXPECT_EQ(hs.take_output(), c.answer);
    EXPECT_EQ(hs.feed(stream), 0u);  // stays failed
}

const std::string name_256(256 - 4, 'a');

INSTANTIATE_TEST_SUITE_P(
    Messages, HandshakeBadInputTest,
    ::testing::Values(
        bad_input_case{"empty_message", stage::acceptor_fresh, wire({0, 0}),
                       handshake_errc::malformed_message},
        bad_input_case{"length_over_the_limit", stage::acceptor_fresh, wire({0x04, 0x01, 'N'}),
                       handshake_errc::message_too_large, 2},
        bad_input_case{"length_max", stage::initiator_after_ok, wire({0xff, 0xff}),
                       handshake_errc::message_too_large},
        bad_input_case{"send_name_wrong_tag", stage::acceptor_fresh,
                       framed(concat(wire({'x'}), bytes(20))), handshake_errc::malformed_message},
        bad_input_case{"send_name_too_short", stage::acceptor_fresh,
                       framed(concat(wire({'N'}), bytes(13))), handshake_errc::malformed_message},
        bad_input_case{"send_name_name_beyond_the_message", stage::acceptor_fresh,
                       framed(concat(concat(concat(wire({'N'}), be(py_flags, 8)), be(1, 4)),
                                     concat(be(13, 2), text(py_node)))),
                       handshake_errc::malformed_message},
        // Version 5: 'n' Version:16 Flags:32 Name. OTP 25.0-25.2 close without an answer.
        bad_input_case{"version_5", stage::acceptor_fresh,
                       framed(concat(concat(wire({'n', 0, 5}), be(0x0007df7d, 4)), text(py_node))),
                       handshake_errc::unsupported_version},
        bad_input_case{"name_without_at", stage::acceptor_fresh,
                       send_name_message(py_flags, 1, "py"), handshake_errc::invalid_name},
        bad_input_case{"name_without_alive", stage::acceptor_fresh,
                       send_name_message(py_flags, 1, "@127.0.0.1"), handshake_errc::invalid_name},
        bad_input_case{"name_without_host", stage::acceptor_fresh,
                       send_name_message(py_flags, 1, "py@"), handshake_errc::invalid_name},
        bad_input_case{"name_with_two_ats", stage::acceptor_fresh,
                       send_name_message(py_flags, 1, "py@a@b"), handshake_errc::invalid_name},
        bad_input_case{"name_256_bytes", stage::acceptor_fresh,
                       send_name_message(py_flags, 1, "py@h" + name_256),
                       handshake_errc::invalid_name},
        bad_input_case{"empty_name", stage::acceptor_fresh, send_name_message(py_flags, 1, ""),
                       handshake_errc::invalid_name},
        // A peer asking for a dynamic name is told not_allowed.
        bad_input_case{"name_me", stage::acceptor_fresh,
                       send_name_message(py_flags | DFLAG_NAME_ME, 1, "127.0.0.1"),
                       handshake_errc::invalid_name, 0, status_message("not_allowed")},
        bad_input_case{"reply_wrong_tag", stage::acceptor_after_ok,
                       framed(concat(wire({'a'}), bytes(20))), handshake_errc::malformed_message},
        bad_input_case{"reply_too_short", stage::acceptor_after_ok,
                       framed(concat(wire({'r'}), bytes(19))), handshake_errc::malformed_message},
        bad_input_case{"reply_too_long", stage::acceptor_after_ok,
                       framed(concat(wire({'r'}), bytes(21))), handshake_errc::malformed_message},
        bad_input_case{"alive_answer_unknown", stage::acceptor_after_alive, status_message("maybe"),
                       handshake_errc::malformed_message},
        bad_input_case{"alive_answer_wrong_tag", stage::acceptor_after_alive,
                       framed(concat(wire({'S'}), text("true"))),
                       handshake_errc::malformed_message},
        bad_input_case{"status_wrong_tag", stage::initiator_fresh,
                       framed(concat(wire({'N'}), text("ok"))), handshake_errc::malformed_message},
        bad_input_case{"challenge_wrong_tag", stage::initiator_after_ok, status_message("ok"),
                       handshake_errc::malformed_message},
        bad_input_case{"challenge_too_short", stage::initiator_after_ok,
                       framed(concat(wire({'N'}), bytes(17))), handshake_errc::malformed_message},
        bad_input_case{
            "challenge_name_beyond_the_message", stage::initiator_after_ok,
            framed(concat(concat(wire({'N'}), bytes(16)), concat(be(13, 2), text(e1_node)))),
            handshake_errc::malformed_message},
        bad_input_case{"ack_wrong_tag", stage::initiator_after_reply,
                       framed(concat(wire({'r'}), bytes(16))), handshake_errc::malformed_message},
        bad_input_case{"ack_too_short", stage::initiator_after_reply,
                       framed(concat(wire({'a'}), bytes(15))), handshake_errc::malformed_message},
        bad_input_case{"ack_too_long", stage::initiator_after_reply,
                       framed(concat(wire({'a'}), bytes(17))), handshake_errc::malformed_message}),
    case_name);

/// Random bytes at every stage, sometimes behind a plausible length and tag: the handshake
/// never consumes more than it is given, never consumes anything once stopped, and ends in a
/// defined state. (Run under VDIST_SANITIZE for memory errors.)
TEST(HandshakeTest, shouldStayDefinedWhenFedRandomBytes) {
    std::mt19937 random(20261127);
    const std::array stages{stage::acceptor_fresh,       stage::acceptor_after_ok,
                            stage::acceptor_after_alive, stage::initiator_fresh,
                            stage::initiator_after_ok,   stage::initiator_after_reply};
    const std::array tags{'N', 'n', 's', 'r', 'a', 'x'};
    for (int round = 0; round < 3000; ++round) {
        auto hs = at_stage(stages[random() % stages.size()]);
        bytes input(random() % 64);
        for (auto& byte : input) {
            byte = static_cast<std::byte>(random());
        }
        if (random() % 2 == 0) {  // a length that fits, and a known tag
            input = concat(concat(be(input.size() + 1, 2),
                                  wire({static_cast<int>(tags[random() % tags.size()])})),
                           input);
        }
        std::size_t at = 0;
        while (at < input.size()) {
            const std::size_t piece = std::min<std::size_t>(1 + random() % 8, input.size() - at);
            const std::size_t used = hs.feed(std::span(input).subspan(at, piece));
            ASSERT_LE(used, piece);
            if (hs.state() != handshake_state::in_progress) {
                ASSERT_EQ(hs.feed(std::span(input).subspan(at + used)), 0u);
                break;
            }
            ASSERT_EQ(used, piece);  // in progress: everything taken
            at += piece;
        }
        if (hs.state() == handshake_state::failed) {
            ASSERT_TRUE(hs.error());
            ASSERT_FALSE(hs.error_detail().empty());
        }
        (void)hs.take_output();
    }
}

// --- calls out of order ------------------------------------------------------------------

struct call_case {
    const char* name;
    std::function<handshake()> setup;
    std::function<void(handshake&)> call;
    handshake_errc error;
};

void PrintTo(const call_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeCallOrderTest : public ::testing::TestWithParam<call_case> {};

TEST_P(HandshakeCallOrderTest, shouldFailWithInvalidStateWhenCalledOutOfOrder) {
    const auto& c = GetParam();
    auto hs = c.setup();
    (void)hs.take_output();

    c.call(hs);

    EXPECT_EQ(hs.state(), handshake_state::failed);
    EXPECT_EQ(hs.error(), c.error) << hs.error_detail();
    EXPECT_TRUE(hs.take_output().empty());  // nothing queued by the bad call
}

[[nodiscard]] handshake fresh_initiator() {
    return handshake::initiate(py_config(), e1_node);
}

[[nodiscard]] handshake fresh_acceptor() {
    return handshake::accept(e1_config());
}

[[nodiscard]] handshake acceptor_needing_status() {
    auto hs = fresh_acceptor();
    feed_all(hs, captured_send_name);
    return hs;
}

[[nodiscard]] handshake done_initiator() {
    auto hs = fresh_initiator();
    feed_all(hs, concat(concat(captured_status_ok, otp_challenge_bytes), otp_ack_bytes));
    EXPECT_EQ(hs.state(), handshake_state::done);
    return hs;
}

[[nodiscard]] handshake failed_initiator() {
    auto hs = fresh_initiator();
    feed_all(hs, status_message("nok"));
    return hs;
}

const auto ok = [](handshake& hs) { hs.set_status(handshake_status::ok); };
const auto take_over = [](handshake& hs) { hs.set_alive_answer(true); };

INSTANTIATE_TEST_SUITE_P(
    Calls, HandshakeCallOrderTest,
    ::testing::Values(
        call_case{"set_status_on_an_initiator", fresh_initiator, ok, handshake_errc::invalid_state},
        call_case{"set_status_before_send_name", fresh_acceptor, ok, handshake_errc::invalid_state},
        call_case{"set_status_twice",
                  [] {
                      auto hs = acceptor_needing_status();
                      hs.set_status(handshake_status::ok);
                      return hs;
                  },
                  ok, handshake_errc::invalid_state},
        call_case{"set_alive_answer_on_an_acceptor", acceptor_needing_status, take_over,
                  handshake_errc::invalid_state},
        call_case{"set_alive_answer_without_alive", fresh_initiator, take_over,
                  handshake_errc::invalid_state},
        // A caller that gets this wrong no longer knows the connection's state.
        call_case{"set_alive_answer_after_done", done_initiator, take_over,
                  handshake_errc::invalid_state},
        // The first error stays the cause.
        call_case{"set_alive_answer_after_failure", failed_initiator, take_over,
                  handshake_errc::refused}),
    case_name);

TEST(HandshakeTest, shouldConsumeNothingWhenWaitingForTheNode) {
    auto acceptor = acceptor_needing_status();
    EXPECT_EQ(acceptor.feed(py_reply_bytes), 0u);
    EXPECT_EQ(acceptor.state(), handshake_state::needs_status);

    auto initiator = fresh_initiator();
    feed_all(initiator, status_message("alive"));
    EXPECT_EQ(initiator.feed(otp_challenge_bytes), 0u);
    EXPECT_EQ(initiator.state(), handshake_state::needs_alive_answer);
}

struct config_case {
    const char* name;
    bool initiating;
    const char* this_node;
    const char* peer_node;
};

void PrintTo(const config_case& c, std::ostream* out) {
    *out << c.name;
}

class HandshakeConfigTest : public ::testing::TestWithParam<config_case> {};

TEST_P(HandshakeConfigTest, shouldFailWithInvalidNameWhenANameIsNotAliveAtHost) {
    const auto& c = GetParam();
    auto config = py_config();
    config.this_node = c.this_node;

    auto hs = c.initiating ? handshake::initiate(config, c.peer_node) : handshake::accept(config);

    EXPECT_EQ(hs.state(), handshake_state::failed);
    EXPECT_EQ(hs.error(), handshake_errc::invalid_name);
    EXPECT_TRUE(hs.take_output().empty());
    EXPECT_EQ(hs.feed(captured_send_name), 0u);
}

INSTANTIATE_TEST_SUITE_P(Names, HandshakeConfigTest,
                         ::testing::Values(config_case{"our_name", true, "py", "e1@127.0.0.1"},
                                           config_case{"peer_name", true, "py@h", "e1@"},
                                           config_case{"acceptor_name", false, "@h", ""}),
                         case_name);

// --- helpers -----------------------------------------------------------------------------

struct name_case {
    const char* name;
    std::string text;
    bool valid;
};

void PrintTo(const name_case& c, std::ostream* out) {
    *out << c.name;
}

class NodeNameTest : public ::testing::TestWithParam<name_case> {};

TEST_P(NodeNameTest, shouldAcceptOnlyAliveAtHostWhenCheckingANodeName) {
    EXPECT_EQ(is_node_name(GetParam().text), GetParam().valid);
}

INSTANTIATE_TEST_SUITE_P(
    Names, NodeNameTest,
    ::testing::Values(name_case{"short", "a@b", true}, name_case{"ip", "e1@127.0.0.1", true},
                      name_case{"max_255", "a@" + std::string(253, 'h'), true},
                      name_case{"over_255", "a@" + std::string(254, 'h'), false},
                      name_case{"empty", "", false}, name_case{"no_at", "ab", false},
                      name_case{"no_alive", "@b", false}, name_case{"no_host", "a@", false},
                      name_case{"two_ats", "a@b@c", false}, name_case{"only_at", "@", false}),
    case_name);

TEST(HandshakeTest, shouldNameFlagsAsOtpDoesWhenListingThem) {
    EXPECT_EQ(flag_names(0), "[]");
    EXPECT_EQ(flag_names(DFLAG_MAP_TAG | DFLAG_UTF8_ATOMS), "[UTF8_ATOMS, MAP_TAG]");
    EXPECT_EQ(flag_names(DFLAG_PUBLISHED | DFLAG_ALIAS | (std::uint64_t{1} << 40)),
              "[PUBLISHED, ALIAS, UNKNOWN<10000000000>]");
}

TEST(HandshakeTest, shouldSpellStatusesAsOtpWhenWritingThem) {
    EXPECT_EQ(status_text(handshake_status::ok), "ok");
    EXPECT_EQ(status_text(handshake_status::ok_simultaneous), "ok_simultaneous");
    EXPECT_EQ(status_text(handshake_status::nok), "nok");
    EXPECT_EQ(status_text(handshake_status::not_allowed), "not_allowed");
    EXPECT_EQ(status_text(handshake_status::alive), "alive");
}

TEST(HandshakeTest, shouldDescribeEveryErrorWhenAskedForItsMessage) {
    EXPECT_STREQ(handshake_category().name(), "vdist.handshake");
    for (int value = static_cast<int>(handshake_errc::malformed_message);
         value <= static_cast<int>(handshake_errc::invalid_state); ++value) {
        const std::error_code code(value, handshake_category());
        EXPECT_EQ(code.message().find("unknown"), std::string::npos) << value;
    }
    const std::error_code code = handshake_errc::bad_digest;
    EXPECT_EQ(code, handshake_errc::bad_digest);
    EXPECT_EQ(&code.category(), &handshake_category());
}

TEST(HandshakeTest, shouldEscapeUnprintableBytesWhenANameGoesIntoTheDetail) {
    auto acceptor = handshake::accept(e1_config());
    feed_all(acceptor, send_name_message(py_flags, 1, std::string("bad\nname\x01", 9)));
    EXPECT_EQ(acceptor.error(), handshake_errc::invalid_name);
    EXPECT_NE(acceptor.error_detail().find("bad\\x0aname\\x01"), std::string::npos)
        << acceptor.error_detail();
}

TEST(HandshakeTest, shouldUseARandomChallengeWhenNoneIsInjected) {
    // Two acceptors without random_challenge: their challenges differ (2^-32 to fail).
    auto config = e1_config();
    config.random_challenge = nullptr;
    std::vector<bytes> challenges;
    for (int i = 0; i < 2; ++i) {
        auto acceptor = handshake::accept(config);
        feed_all(acceptor, captured_send_name);
        acceptor.set_status(handshake_status::ok);
        const bytes out = acceptor.take_output();
        challenges.emplace_back(out.begin() + 5 + 2 + 9, out.begin() + 5 + 2 + 13);
    }
    EXPECT_NE(challenges[0], challenges[1]);
}

}  // namespace
}  // namespace vdist::dist
