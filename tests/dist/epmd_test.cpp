// Unit tests of the EPMD client (epmd.hpp): every codec byte for byte, with the bytes captured
// from OTP 25.2.3 and its EPMD (research/dist-anchors.md §4); every truncation of every reply;
// malformed and hostile replies. Then the network functions against a scripted fake EPMD on
// loopback: replies dribbled byte by byte, silence, early close, wrong answers. The real
// Debian epmd and erl are in epmd_real_test.cpp.

#include "vdist/dist/epmd.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vdist/test/bytes.hpp"

namespace vdist::dist {
namespace {

using namespace std::chrono_literals;
using test::bytes;
using test::concat;
using test::text;
using test::wire;

using name_list = std::vector<std::pair<std::string, std::uint16_t>>;

[[nodiscard]] std::span<const std::byte> prefix(const bytes& b, std::size_t length) {
    return std::span<const std::byte>(b).first(length);
}

// Captured from OTP 25.2.3 (research/dist-anchors.md §4).
const bytes captured_alive2_request = wire({0x00, 0x0e, 0x78, 0x9d, 0x81, 0x4d, 0x00, 0x00, 0x06,
                                            0x00, 0x05, 0x00, 0x01, 0x78, 0x00, 0x00});
const bytes captured_alive2_x_response = wire({0x76, 0x00, 0x6b, 0x09, 0x0d, 0x64});
const bytes captured_port2_response = wire({0x77, 0x00, 0xa8, 0x61, 0x4d, 0x00, 0x00, 0x06, 0x00,
                                            0x05, 0x00, 0x02, 0x65, 0x31, 0x00, 0x00});
const bytes captured_port2_unknown = wire({0x77, 0x01});
const bytes captured_names_response =
    concat(wire({0x00, 0x00, 0x11, 0x11}), text("name e9 at port 35165\n"));

// ---- requests ----

TEST(EpmdCodecTest, shouldEncodeAlive2LikeOtpWhenGivenTheCapturedRegistration) {
    const epmd_node_info node{.name = "x",
                              .port = 0x9d81,
                              .hidden = false,
                              .protocol = 0,
                              .highest_version = 6,
                              .lowest_version = 5,
                              .extra = ""};
    EXPECT_EQ(encode_alive2_request(node), captured_alive2_request);
}

TEST(EpmdCodecTest, shouldEncodeNodeTypeHiddenAndTheExtraWhenGiven) {
    const epmd_node_info node{.name = "ab",
                              .port = 4370,
                              .hidden = true,
                              .protocol = 0,
                              .highest_version = 6,
                              .lowest_version = 6,
                              .extra = "xyz"};
    EXPECT_EQ(encode_alive2_request(node),
              concat(wire({0x00, 0x12, 120, 0x11, 0x12, 72, 0, 0, 6, 0, 6, 0, 2}),
                     concat(text("ab"), concat(wire({0, 3}), text("xyz")))));
}

TEST(EpmdCodecTest, shouldRegisterVersionSixToSixByDefault) {
    const epmd_node_info node{.name = "n", .port = 1};
    const auto request = encode_alive2_request(node);
    ASSERT_EQ(request.size(), 16u);
    // NodeType 77 (normal), Protocol 0, HighestVersion 6, LowestVersion 6.
    EXPECT_EQ(bytes(request.begin() + 5, request.begin() + 11), wire({77, 0, 0, 6, 0, 6}));
}

TEST(EpmdCodecTest, shouldEncodeNothingWhenTheRequestDoesNotFitASixteenBitLength) {
    epmd_node_info node{.name = std::string(0xffff - 13, 'a'), .port = 1};
    EXPECT_EQ(encode_alive2_request(node).size(), 2u + 0xffff);
    node.name.push_back('a');
    EXPECT_TRUE(encode_alive2_request(node).empty());
    EXPECT_EQ(encode_port_please2_request(std::string(0xfffe, 'a')).size(), 2u + 0xffff);
    EXPECT_TRUE(encode_port_please2_request(std::string(0xffff, 'a')).empty());
}

TEST(EpmdCodecTest, shouldEncodePortPlease2WithTheAlivePartOnly) {
    EXPECT_EQ(encode_port_please2_request("e1"), wire({0x00, 0x03, 122, 0x65, 0x31}));
}

TEST(EpmdCodecTest, shouldEncodeNamesAsOneByte) {
    EXPECT_EQ(encode_names_request(), wire({0x00, 0x01, 110}));
}

// ---- ALIVE2 replies ----

TEST(EpmdCodecTest, shouldDecodeTheThirtyTwoBitCreationWhenGivenTheCapturedAlive2XResp) {
    const auto creation = decode_alive2_response(captured_alive2_x_response);
    ASSERT_TRUE(creation);
    EXPECT_EQ(*creation, std::optional<std::uint32_t>(0x6b090d64));
}

TEST(EpmdCodecTest, shouldDecodeTheSixteenBitCreationWhenGivenAnOldAlive2Resp) {
    const auto creation = decode_alive2_response(wire({121, 0, 0x00, 0x03}));
    ASSERT_TRUE(creation);
    EXPECT_EQ(*creation, std::optional<std::uint32_t>(3));
}

TEST(EpmdCodecTest, shouldNeedMoreWhenAnAlive2ReplyIsCutAtAnyLength) {
    for (const bytes& reply : {captured_alive2_x_response, wire({121, 0, 0x00, 0x03})}) {
        for (std::size_t length = 0; length < reply.size(); ++length) {
            const auto decoded = decode_alive2_response(prefix(reply, length));
            ASSERT_TRUE(decoded) << "length " << length;
            EXPECT_FALSE(decoded->has_value()) << "length " << length;
        }
    }
}

TEST(EpmdCodecTest, shouldFailWithDuplicateNameWhenTheResultIsNotZero) {
    // What epmd sends for a taken name: Result 1, creation 99.
    for (const bytes& reply :
         {wire({118, 1, 0, 0, 0, 99}), wire({121, 1, 0, 99}), wire({118, 1}), wire({121, 0xff})}) {
        const auto decoded = decode_alive2_response(reply);
        ASSERT_FALSE(decoded);
        EXPECT_EQ(decoded.error(), epmd_errc::duplicate_name);
    }
}

TEST(EpmdCodecTest, shouldFailWithMalformedReplyWhenAnAlive2ReplyHasAnotherTagOrTrailingBytes) {
    for (const bytes& reply :
         {wire({119, 0, 0, 0, 0, 1}), wire({0}), wire({'O', 'K'}), wire({118, 0, 0, 0, 0, 1, 0}),
          wire({121, 0, 0, 1, 0}), concat(captured_alive2_x_response, captured_port2_unknown)}) {
        const auto decoded = decode_alive2_response(reply);
        ASSERT_FALSE(decoded);
        EXPECT_EQ(decoded.error(), epmd_errc::malformed_reply);
    }
}

// ---- PORT2 replies ----

TEST(EpmdCodecTest, shouldDecodeEveryFieldWhenGivenTheCapturedPort2Resp) {
    const auto decoded = decode_port2_response(captured_port2_response);
    ASSERT_TRUE(decoded);
    ASSERT_TRUE(decoded->has_value());
    EXPECT_EQ(**decoded, (epmd_node_info{.name = "e1",
                                         .port = 0xa861,
                                         .hidden = false,
                                         .protocol = 0,
                                         .highest_version = 6,
                                         .lowest_version = 5,
                                         .extra = ""}));
}

TEST(EpmdCodecTest, shouldDecodeAHiddenNodeAndItsExtraWhenPresent) {
    const bytes reply = concat(wire({119, 0, 0x12, 0x34, 72, 0, 0, 6, 0, 6, 0, 3}),
                               concat(text("abc"), concat(wire({0, 2}), text("xy"))));
    const auto decoded = decode_port2_response(reply);
    ASSERT_TRUE(decoded);
    ASSERT_TRUE(decoded->has_value());
    EXPECT_EQ(**decoded, (epmd_node_info{.name = "abc",
                                         .port = 0x1234,
                                         .hidden = true,
                                         .protocol = 0,
                                         .highest_version = 6,
                                         .lowest_version = 6,
                                         .extra = "xy"}));
}

TEST(EpmdCodecTest, shouldNeedMoreWhenAPort2ReplyIsCutAtAnyLength) {
    const bytes with_extra = concat(wire({119, 0, 0x12, 0x34, 72, 0, 0, 6, 0, 6, 0, 3}),
                                    concat(text("abc"), concat(wire({0, 2}), text("xy"))));
    for (const bytes& reply : {captured_port2_response, with_extra}) {
        for (std::size_t length = 0; length < reply.size(); ++length) {
            const auto decoded = decode_port2_response(prefix(reply, length));
            ASSERT_TRUE(decoded) << "length " << length;
            EXPECT_FALSE(decoded->has_value()) << "length " << length;
        }
    }
}

TEST(EpmdCodecTest, shouldFailWithNotFoundWhenGivenTheCapturedUnknownNameReply) {
    for (const bytes& reply : {captured_port2_unknown, wire({119, 0xff})}) {
        const auto decoded = decode_port2_response(reply);
        ASSERT_FALSE(decoded);
        EXPECT_EQ(decoded.error(), epmd_errc::not_found);
    }
}

TEST(EpmdCodecTest, shouldNeedMoreNotReadPastTheEndWhenLengthsPointBeyondTheBytes) {
    // Nlen 0xffff with two name bytes; then Elen 0xffff with one extra byte.
    for (const bytes& reply :
         {wire({119, 0, 0, 1, 77, 0, 0, 6, 0, 6, 0xff, 0xff, 'a', 'b'}),
          wire({119, 0, 0, 1, 77, 0, 0, 6, 0, 6, 0, 1, 'a', 0xff, 0xff, 'x'})}) {
        const auto decoded = decode_port2_response(reply);
        ASSERT_TRUE(decoded);
        EXPECT_FALSE(decoded->has_value());
    }
}

TEST(EpmdCodecTest, shouldFailWithMalformedReplyWhenAPort2ReplyIsWrong) {
    for (const bytes& reply :
         {wire({118, 0, 0, 0, 0, 1}),                                   // an ALIVE2 reply
          wire({0}),                                                    // no tag at all
          wire({119, 0, 0, 1, 77, 0, 0, 6, 0, 6, 0, 0, 0, 0}),          // an empty name
          concat(captured_port2_response, wire({0})),                   // a trailing byte
          concat(captured_port2_response, captured_port2_response)}) {  // two replies
        const auto decoded = decode_port2_response(reply);
        ASSERT_FALSE(decoded);
        EXPECT_EQ(decoded.error(), epmd_errc::malformed_reply);
    }
}

// ---- NAMES replies ----

TEST(EpmdCodecTest, shouldListTheNameWhenGivenTheCapturedNamesReply) {
    const auto names = decode_names_response(captured_names_response);
    ASSERT_TRUE(names);
    EXPECT_EQ(*names, (name_list{{"e9", 35165}}));
}

TEST(EpmdCodecTest, shouldListNothingWhenOnlyThePortComes) {
    const auto names = decode_names_response(wire({0, 0, 0x11, 0x11}));
    ASSERT_TRUE(names);
    EXPECT_TRUE(names->empty());
}

TEST(EpmdCodecTest, shouldListEveryLineInOrderWhenSeveralNodesAreRegistered) {
    const auto names = decode_names_response(
        concat(wire({0, 0, 0x11, 0x11}),
               text("name b at port 1\nname a at port 65535\nname x at port y at port 0\n")));
    ASSERT_TRUE(names);
    // The name is what precedes the last " at port ".
    EXPECT_EQ(*names, (name_list{{"b", 1}, {"a", 65535}, {"x at port y", 0}}));
}

TEST(EpmdCodecTest, shouldAcceptOnlyCutsAtLineEndsWhenTheNamesReplyIsCut) {
    const bytes reply =
        concat(wire({0, 0, 0x11, 0x11}), text("name e9 at port 35165\nname a at port 7\n"));
    for (std::size_t length = 0; length <= reply.size(); ++length) {
        const auto names = decode_names_response(prefix(reply, length));
        if (length == 4 || length == 4 + 22 || length == reply.size()) {
            ASSERT_TRUE(names) << "length " << length;
            EXPECT_EQ(names->size(), length == 4 ? 0u : length == 26 ? 1u : 2u);
        } else {
            ASSERT_FALSE(names) << "length " << length;
            EXPECT_EQ(names.error(), epmd_errc::malformed_reply) << "length " << length;
        }
    }
}

TEST(EpmdCodecTest, shouldFailWithMalformedReplyWhenANamesLineIsWrong) {
    for (const char* line :
         {"\n", "nam e9 at port 1\n", "name e9\n", "name  at port 1\n", "name e9 at port \n",
          "name e9 at port 65536\n", "name e9 at port 99999999999999999999\n",
          "name e9 at port 12a\n", "name e9 at port -1\n", "name e9 at port +1\n",
          "name e9 at port 1 \n", "active name     <e9> at port 1, fd = 5\n"}) {
        const auto names = decode_names_response(concat(wire({0, 0, 0x11, 0x11}), text(line)));
        ASSERT_FALSE(names) << line;
        EXPECT_EQ(names.error(), epmd_errc::malformed_reply) << line;
    }
}

// ---- corruptions ----

/// Every decoder, on every corruption of every byte of each captured reply: some outcome,
/// never a read past the end (run under VDIST_SANITIZE to see it), and a decoded PORT2 reply
/// accounts for exactly the bytes given.
TEST(EpmdCodecTest, shouldDecodeOrFailCleanlyWhenAnyByteOfACapturedReplyIsCorrupted) {
    for (const bytes& reply : {captured_alive2_x_response, captured_port2_response,
                               captured_port2_unknown, captured_names_response}) {
        for (std::size_t at = 0; at < reply.size(); ++at) {
            const int original = std::to_integer<int>(reply[at]);
            for (const int value :
                 {0, 1, 0x0a, 0x7f, 0x80, 0xff, (original + 1) & 0xff, (original + 0xff) & 0xff}) {
                bytes corrupted = reply;
                corrupted[at] = static_cast<std::byte>(value);
                for (std::size_t length = 0; length <= corrupted.size(); ++length) {
                    const auto cut = prefix(corrupted, length);
                    (void)decode_alive2_response(cut);
                    (void)decode_names_response(cut);
                    const auto node = decode_port2_response(cut);
                    if (node && node->has_value()) {
                        EXPECT_EQ(14 + (*node)->name.size() + (*node)->extra.size(), length);
                    }
                }
            }
        }
    }
}

// ---- names, the environment, errors ----

TEST(EpmdTest, shouldAcceptOnlyNamesEpmdAcceptsWhenValidatingAnAlivePart) {
    EXPECT_TRUE(is_valid_epmd_alive("x"));
    EXPECT_TRUE(is_valid_epmd_alive("vdist_node-1.a"));
    EXPECT_TRUE(is_valid_epmd_alive("\xc3\xa9t\xc3\xa9"));  // été
    EXPECT_TRUE(is_valid_epmd_alive(std::string(255, 'a')));
    std::string accents;
    for (int i = 0; i < 255; ++i) {
        accents += "\xc3\xa9";
    }
    EXPECT_TRUE(is_valid_epmd_alive(accents));  // 255 characters in 510 bytes
    EXPECT_FALSE(is_valid_epmd_alive(accents + "\xc3\xa9"));
    EXPECT_FALSE(is_valid_epmd_alive("a\xc3"));  // cut inside a character
    EXPECT_FALSE(is_valid_epmd_alive(""));
    EXPECT_FALSE(is_valid_epmd_alive(std::string(256, 'a')));
    EXPECT_FALSE(is_valid_epmd_alive("a@b"));
    EXPECT_FALSE(is_valid_epmd_alive(std::string("a\0b", 3)));
    EXPECT_FALSE(is_valid_epmd_alive("\xff"));
}

class EpmdEnvironmentTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (const char* value = std::getenv("ERL_EPMD_PORT"); value != nullptr) {
            saved_ = value;
        }
    }
    void TearDown() override {
        if (saved_) {
            ::setenv("ERL_EPMD_PORT", saved_->c_str(), 1);
        } else {
            ::unsetenv("ERL_EPMD_PORT");
        }
    }

  private:
    std::optional<std::string> saved_;
};

TEST_F(EpmdEnvironmentTest, shouldReadErlEpmdPortWhenItIsAPortNumber) {
    ::unsetenv("ERL_EPMD_PORT");
    EXPECT_EQ(epmd_port_from_environment(), 4369);
    ::setenv("ERL_EPMD_PORT", "4370", 1);
    EXPECT_EQ(epmd_port_from_environment(), 4370);
    ::setenv("ERL_EPMD_PORT", "65535", 1);
    EXPECT_EQ(epmd_port_from_environment(), 65535);
}

TEST_F(EpmdEnvironmentTest, shouldFallBackToTheDefaultPortWhenErlEpmdPortIsNoPort) {
    for (const char* value : {"", "0", "65536", "abc", "43 69", " 4370", "4370x", "-1"}) {
        ::setenv("ERL_EPMD_PORT", value, 1);
        EXPECT_EQ(epmd_port_from_environment(), default_epmd_port) << '"' << value << '"';
    }
}

TEST(EpmdTest, shouldNameEachErrorWhenAskedForItsMessage) {
    EXPECT_STREQ(epmd_category().name(), "vdist.epmd");
    for (int value = 1; value <= static_cast<int>(epmd_errc::invalid_argument); ++value) {
        const std::error_code code = static_cast<epmd_errc>(value);
        EXPECT_EQ(code.category(), epmd_category());
        EXPECT_EQ(code.message().find("unknown"), std::string::npos) << value;
    }
    EXPECT_NE(std::error_code(99, epmd_category()).message().find("unknown"), std::string::npos);
}

// ---- against a scripted fake EPMD ----

/// A TCP listener on 127.0.0.1 that serves one connection on its own thread: it reads one
/// request (by its length prefix), keeps it, and runs `script` on the connection. Every wait
/// is bounded, and the destructor is a watchdog: a thread still running after 30 s aborts.
class fake_epmd {
  public:
    using script = std::function<void(int connection)>;

    explicit fake_epmd(script behaviour) {
        listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) ||
            ::listen(listener_, 4) ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length)) {
            ADD_FAILURE() << "fake epmd: cannot listen";
            return;
        }
        port_ = ntohs(address.sin_port);
        serving_ = std::async(std::launch::async,
                              [this, behaviour = std::move(behaviour)] { serve(behaviour); });
    }
    fake_epmd(const fake_epmd&) = delete;
    fake_epmd& operator=(const fake_epmd&) = delete;
    ~fake_epmd() {
        finish();
        ::close(listener_);
    }

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }

    /// Waits for the script to end (watchdog: abort after 30 s); then request() is valid.
    void finish() {
        if (!serving_.valid()) {
            return;
        }
        if (serving_.wait_for(30s) != std::future_status::ready) {
            std::fprintf(stderr, "watchdog: the fake epmd is stuck; aborting\n");
            std::abort();
        }
        serving_.get();
    }
    [[nodiscard]] const bytes& request() const noexcept { return request_; }

    // -- what scripts do --

    static void send_bytes(int connection, const bytes& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            const ssize_t n =
                ::send(connection, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) {
                return;  // the client went away: fine for a fake
            }
            sent += static_cast<std::size_t>(n);
        }
    }
    /// Sends `data` one byte at a time, pausing between bytes so that each arrives alone.
    static void dribble(int connection, const bytes& data) {
        for (const std::byte b : data) {
            send_bytes(connection, bytes{b});
            std::this_thread::sleep_for(2ms);
        }
    }
    /// Waits (at most 10 s) until the client closes; true if it did.
    static bool wait_for_close(int connection) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        std::byte scratch[256];
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd watched{connection, POLLIN, 0};
            if (::poll(&watched, 1, 100) > 0 &&
                ::recv(connection, scratch, sizeof scratch, 0) <= 0) {
                return true;
            }
        }
        return false;
    }

  private:
    void serve(const script& behaviour) {
        pollfd watched{listener_, POLLIN, 0};
        if (::poll(&watched, 1, 10'000) <= 0) {
            return;  // no client came (a test that expects none)
        }
        const int connection = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0) {
            return;
        }
        read_request(connection);
        behaviour(connection);
        ::close(connection);
    }
    void read_request(int connection) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        std::byte buffer[4096];
        while (std::chrono::steady_clock::now() < deadline) {
            if (request_.size() >= 2) {
                const std::size_t want = 2 + (std::to_integer<std::size_t>(request_[0]) << 8 |
                                              std::to_integer<std::size_t>(request_[1]));
                if (request_.size() >= want) {
                    return;
                }
            }
            pollfd watched{connection, POLLIN, 0};
            if (::poll(&watched, 1, 100) <= 0) {
                continue;
            }
            const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
            if (n <= 0) {
                return;
            }
            request_.insert(request_.end(), buffer, buffer + n);
        }
    }

    int listener_ = -1;
    std::uint16_t port_ = 0;
    bytes request_;
    std::future<void> serving_;
};

/// A port on 127.0.0.1 where nothing listens (bound, then released).
[[nodiscard]] std::uint16_t closed_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    (void)::bind(s, reinterpret_cast<sockaddr*>(&address), length);
    (void)::getsockname(s, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(s);
    return ntohs(address.sin_port);
}

TEST(EpmdClientTest, shouldFindTheNodeWhenThePort2ReplyArrivesOneByteAtATime) {
    fake_epmd epmd([](int c) { fake_epmd::dribble(c, captured_port2_response); });
    const auto node = epmd_port_please("127.0.0.1", "e1", 10s, epmd.port());
    epmd.finish();
    EXPECT_EQ(epmd.request(), encode_port_please2_request("e1"));
    ASSERT_TRUE(node) << node.error().message();
    EXPECT_EQ(node->port, 0xa861);
    EXPECT_EQ(node->highest_version, 6);
    EXPECT_EQ(node->lowest_version, 5);
}

TEST(EpmdClientTest, shouldFailWithNotFoundWhenEpmdAnswersTheCapturedUnknownReply) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, captured_port2_unknown); });
    const auto node = epmd_port_please("127.0.0.1", "nobody", 10s, epmd.port());
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::not_found);
}

TEST(EpmdClientTest, shouldFailWithMalformedReplyWhenEpmdAnswersForAnotherName) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, captured_port2_response); });
    const auto node = epmd_port_please("127.0.0.1", "e2", 10s, epmd.port());
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::malformed_reply);
}

TEST(EpmdClientTest, shouldFailWithMalformedReplyWhenEpmdClosesMidReply) {
    fake_epmd epmd([](int c) {
        fake_epmd::send_bytes(
            c, bytes(captured_port2_response.begin(), captured_port2_response.begin() + 9));
    });
    const auto node = epmd_port_please("127.0.0.1", "e1", 10s, epmd.port());
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::malformed_reply);
}

TEST(EpmdClientTest, shouldFailWithMalformedReplyWhenEpmdClosesWithoutAReply) {
    fake_epmd epmd([](int) {});
    const auto node = epmd_port_please("127.0.0.1", "e1", 10s, epmd.port());
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::malformed_reply);
}

TEST(EpmdClientTest, shouldFailWithMalformedReplyWhenSomethingElseAnswers) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, text("HTTP/1.0 400 Bad Request\r\n")); });
    const auto node = epmd_port_please("127.0.0.1", "e1", 10s, epmd.port());
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::malformed_reply);
}

TEST(EpmdClientTest, shouldFailWithTimedOutWhenEpmdNeverAnswers) {
    fake_epmd epmd([](int c) { (void)fake_epmd::wait_for_close(c); });
    const auto node = epmd_port_please("127.0.0.1", "e1", 200ms, epmd.port());
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::timed_out);
}

TEST(EpmdClientTest, shouldFailWithUnreachableWhenNothingListens) {
    const auto port = closed_port();
    const auto node = epmd_port_please("127.0.0.1", "e1", 10s, port);
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::unreachable);
    const auto names = epmd_names("127.0.0.1", 10s, port);
    ASSERT_FALSE(names);
    EXPECT_EQ(names.error(), epmd_errc::unreachable);
    const auto registration =
        epmd_registration::register_node("a", 1, false, 10s, port, "127.0.0.1");
    ASSERT_FALSE(registration);
    EXPECT_EQ(registration.error(), epmd_errc::unreachable);
}

TEST(EpmdClientTest, shouldFailWithInvalidArgumentBeforeConnectingWhenTheNameIsInvalid) {
    const auto port = closed_port();  // a connection attempt would say unreachable
    for (const std::string_view alive : {"", "a@b", "\xff"}) {
        const auto node = epmd_port_please("127.0.0.1", alive, 1s, port);
        ASSERT_FALSE(node);
        EXPECT_EQ(node.error(), epmd_errc::invalid_argument);
        const auto registration =
            epmd_registration::register_node(alive, 1, false, 1s, port, "127.0.0.1");
        ASSERT_FALSE(registration);
        EXPECT_EQ(registration.error(), epmd_errc::invalid_argument);
    }
    const auto no_port = epmd_registration::register_node("a", 0, false, 1s, port, "127.0.0.1");
    ASSERT_FALSE(no_port);
    EXPECT_EQ(no_port.error(), epmd_errc::invalid_argument);
}

TEST(EpmdClientTest, shouldListNamesWhenTheReplyComesInPiecesUntilClose) {
    fake_epmd epmd([](int c) {
        fake_epmd::send_bytes(c, wire({0, 0, 0x11, 0x11}));
        std::this_thread::sleep_for(5ms);
        fake_epmd::send_bytes(c, text("name e9 at po"));
        std::this_thread::sleep_for(5ms);
        fake_epmd::send_bytes(c, text("rt 35165\nname b at port 2\n"));
    });
    const auto names = epmd_names("127.0.0.1", 10s, epmd.port());
    epmd.finish();
    EXPECT_EQ(epmd.request(), encode_names_request());
    ASSERT_TRUE(names) << names.error().message();
    EXPECT_EQ(*names, (name_list{{"e9", 35165}, {"b", 2}}));
}

TEST(EpmdClientTest, shouldFailWithMalformedReplyWhenTheNamesReplyNeverEnds) {
    fake_epmd epmd([](int c) {
        fake_epmd::send_bytes(c, wire({0, 0, 0x11, 0x11}));
        const bytes line = text("name abcdefghijklmnopqrstuvwxyz at port 12345\n");
        bytes chunk;
        while (chunk.size() < 64 * 1024) {
            chunk.insert(chunk.end(), line.begin(), line.end());
        }
        for (std::size_t sent = 0; sent <= epmd_max_names_reply_bytes; sent += chunk.size()) {
            fake_epmd::send_bytes(c, chunk);
        }
    });
    const auto names = epmd_names("127.0.0.1", 10s, epmd.port());
    ASSERT_FALSE(names);
    EXPECT_EQ(names.error(), epmd_errc::malformed_reply);
}

TEST(EpmdClientTest, shouldRegisterAndKeepTheConnectionUntilTheRegistrationIsDestroyed) {
    bool closed_by_client = false;
    fake_epmd epmd([&](int c) {
        fake_epmd::dribble(c, captured_alive2_x_response);
        closed_by_client = fake_epmd::wait_for_close(c);
    });
    {
        auto registration =
            epmd_registration::register_node("x", 0x9d81, false, 10s, epmd.port(), "127.0.0.1");
        ASSERT_TRUE(registration) << registration.error().message();
        EXPECT_EQ(registration->creation(), 0x6b090d64u);
        EXPECT_GE(registration->native_handle(), 0);
        // Moved, it is still one registration: the moved-from one closes nothing.
        epmd_registration moved = std::move(*registration);
        EXPECT_EQ(registration->native_handle(), -1);
        EXPECT_EQ(moved.creation(), 0x6b090d64u);
    }
    epmd.finish();
    EXPECT_EQ(epmd.request(),
              encode_alive2_request({.name = "x", .port = 0x9d81, .hidden = false}));
    EXPECT_TRUE(closed_by_client);
}

TEST(EpmdClientTest, shouldSignalEofOnTheHandleWhenEpmdGoesAway) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, wire({121, 0, 0, 2})); });
    auto registration =
        epmd_registration::register_node("x", 1, true, 10s, epmd.port(), "127.0.0.1");
    ASSERT_TRUE(registration) << registration.error().message();
    EXPECT_EQ(registration->creation(), 2u);
    epmd.finish();
    EXPECT_EQ(std::to_integer<int>(epmd.request()[5]), EPMD_NODE_TYPE_HIDDEN);
    pollfd watched{registration->native_handle(), POLLIN, 0};
    ASSERT_EQ(::poll(&watched, 1, 10'000), 1);
    std::byte scratch[1];
    EXPECT_EQ(::recv(registration->native_handle(), scratch, 1, 0), 0);
}

TEST(EpmdClientTest, shouldFailWithDuplicateNameWhenEpmdRefusesTheRegistration) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, wire({118, 1, 0, 0, 0, 99})); });
    const auto registration =
        epmd_registration::register_node("x", 1, false, 10s, epmd.port(), "127.0.0.1");
    ASSERT_FALSE(registration);
    EXPECT_EQ(registration.error(), epmd_errc::duplicate_name);
}

TEST(EpmdClientTest, shouldFailWithTimedOutWhenTheRegistrationIsNeverAnswered) {
    fake_epmd epmd([](int c) { (void)fake_epmd::wait_for_close(c); });
    const auto registration =
        epmd_registration::register_node("x", 1, false, 200ms, epmd.port(), "127.0.0.1");
    ASSERT_FALSE(registration);
    EXPECT_EQ(registration.error(), epmd_errc::timed_out);
}

TEST(EpmdClientTest, shouldReportTheProbeErrorWhenSomethingElseHoldsTheEpmdPort) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, text("xy")); });
    const auto ensured = ensure_epmd(epmd.port(), 10s);
    ASSERT_FALSE(ensured);
    EXPECT_EQ(ensured.error(), epmd_errc::malformed_reply);
}

TEST(EpmdClientTest, shouldNotStartAnEpmdWhenOneAnswers) {
    fake_epmd epmd([](int c) { fake_epmd::send_bytes(c, wire({0, 0, 0x11, 0x11})); });
    EXPECT_TRUE(ensure_epmd(epmd.port(), 10s));
}

}  // namespace
}  // namespace vdist::dist
