// The handshake against a real Erlang/OTP 25 node over TCP, both ways. Each test starts its own
// epmd on a free port (ERL_EPMD_PORT for erl) and its own `erl -name ...` on a fixed free
// distribution port, so nothing is shared with a system epmd or with other tests:
// - our initiator connects to erl's distribution port (a plain blocking socket, 2-byte framing
//   done by the handshake itself), with the right cookie, a wrong one, and without the flags
//   OTP requires;
// - erl connects to our acceptor with net_kernel:connect_node/1, after we registered "cpp" in
//   the private epmd by hand (one ALIVE2_REQ on a socket kept open, dist-anchors.md §4).
// Every wait is bounded (poll timeouts; erl halts itself after a minute); erl and epmd are
// children of the test, killed and reaped when each test ends, pass or fail.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vdist/dist/handshake.hpp"
#include "vdist/dist/protocol.hpp"
#include "vdist/test/bytes.hpp"
#include "vdist/test/child_process.hpp"
#include "vdist/test/erlang.hpp"
#include "vdist/test/handshake_driver.hpp"
#include "vdist/test/socket.hpp"

namespace vdist::dist {
namespace {

using namespace std::chrono_literals;
using test::bytes;

constexpr auto io_timeout = 15s;      // any one read, accept or connect
constexpr auto erlang_timeout = 30s;  // erl starting, or printing what it did
constexpr const char* cookie = "secret";
constexpr const char* cpp_node = "cpp@127.0.0.1";

using test::accept_from;
using test::connect_to;
using test::fd_guard;
using test::free_port;
using test::listen_on;
using test::on_path;
using test::port_of;
using test::read_exactly;
using test::send_all;

/// Drives `hs` over `fd` with every read bounded by io_timeout.
[[nodiscard]] test::drive_outcome drive(handshake& hs, int fd, bytes pending = {}) {
    return test::drive(hs, fd, io_timeout, std::move(pending));
}

// Halts erl after a minute whatever happens (the watchdog of a test that hangs or crashes).
constexpr const char* erlang_watchdog = "spawn(fun() -> receive after 60000 -> halt() end end), ";

// Prints "ready", then "nodeup N" / "nodedown N" for every connection, hidden ones included.
constexpr const char* report_connections =
    "net_kernel:monitor_nodes(true, [{node_type, all}]), io:format(\"ready~n\"), "
    "(fun Loop() -> receive "
    "{nodeup, N, _} -> io:format(\"nodeup ~s~n\", [N]), Loop(); "
    "{nodedown, N, _} -> io:format(\"nodedown ~s~n\", [N]), Loop() "
    "end end)().";

class HandshakeErlangTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (on_path("erl").empty() || on_path("epmd").empty()) {
            GTEST_SKIP() << "erl and epmd (Debian erlang-nox) are not installed";
        }
        // In the foreground, as our child: its pid is ours to kill, with no daemon to find.
        epmd_.emplace();
        epmd_port_ = epmd_->port();
        ASSERT_TRUE(epmd_->answers()) << "epmd did not start";
    }

    void TearDown() override {
        erlang_.reset();  // SIGKILL, reaped
        epmd_.reset();
    }

    /// erl as `e1@127.0.0.1` with `erl_cookie`, distribution on a known free port, reporting
    /// its connections; returns that port once erl is up.
    std::uint16_t start_listening_erlang(const std::string& erl_cookie = cookie) {
        const std::uint16_t port = free_port();
        erlang_.emplace(
            epmd_port_,
            std::vector<std::string>{"-noshell", "-name", "e1@127.0.0.1", "-setcookie", erl_cookie,
                                     "-kernel", "inet_dist_listen_min", std::to_string(port),
                                     "inet_dist_listen_max", std::to_string(port), "-eval",
                                     std::string(erlang_watchdog) + report_connections});
        EXPECT_TRUE(erlang_->wait_for("ready")) << erlang_->output();
        return port;
    }

    /// erl as `e2@127.0.0.1` with `erl_cookie`, calling net_kernel:connect_node('cpp@...')
    /// and printing "connect true" or "connect false".
    void start_connecting_erlang(const std::string& erl_cookie = cookie) {
        erlang_.emplace(epmd_port_,
                        std::vector<std::string>{
                            "-noshell", "-name", "e2@127.0.0.1", "-setcookie", erl_cookie, "-eval",
                            std::string(erlang_watchdog) +
                                "io:format(\"connect ~p~n\", "
                                "[net_kernel:connect_node('" +
                                cpp_node + "')]), receive after infinity -> ok end."});
    }

    /// Registers "cpp" at `port` in the private epmd (ALIVE2_REQ, dist-anchors.md §4); the
    /// registration lasts as long as the returned socket. Our creation goes to `creation`.
    fd_guard register_cpp(std::uint16_t port, std::uint32_t& creation) {
        fd_guard epmd = connect_to(epmd_port_, io_timeout);
        EXPECT_TRUE(epmd.valid());
        const std::string alive = "cpp";
        bytes request = test::wire(
            {'x', port >> 8, port & 0xff, 77, 0, 0, 6, 0, 5, 0, static_cast<int>(alive.size())});
        request = test::concat(request, test::text(alive));
        request = test::concat(request, test::wire({0, 0}));
        const bytes framed = test::concat(
            test::wire({static_cast<int>(request.size() >> 8), static_cast<int>(request.size())}),
            request);
        EXPECT_TRUE(send_all(epmd.get(), framed));
        // ALIVE2_X_RESP: 'v' Result:8 Creation:32
        const auto reply = read_exactly(epmd.get(), 6, io_timeout);
        EXPECT_TRUE(reply && (*reply)[0] == std::byte{'v'} && (*reply)[1] == std::byte{0});
        creation = 0;
        if (reply) {
            for (std::size_t i = 2; i < 6; ++i) {
                creation = (creation << 8) | std::to_integer<std::uint32_t>((*reply)[i]);
            }
        }
        return epmd;
    }

    [[nodiscard]] static handshake_config cpp_config(std::string cpp_cookie = cookie) {
        handshake_config config;
        config.this_node = cpp_node;
        config.creation = 0x00c0ffee;
        config.cookie = std::move(cpp_cookie);
        config.flags = vdist_flags;  // hidden
        return config;
    }

    std::uint16_t epmd_port_ = 0;
    std::optional<test::private_epmd> epmd_;
    std::optional<test::erlang_node> erlang_;
};

// --- our initiator, erl accepting --------------------------------------------------------

TEST_F(HandshakeErlangTest, shouldConnectToErlangWhenTheCookieMatches) {
    const std::uint16_t port = start_listening_erlang();
    const fd_guard socket = connect_to(port, io_timeout);
    ASSERT_TRUE(socket.valid());
    auto hs = handshake::initiate(cpp_config(), "e1@127.0.0.1");

    const auto outcome = drive(hs, socket.get());

    ASSERT_EQ(hs.state(), handshake_state::done)
        << hs.error_detail() << " closed=" << outcome.peer_closed << "\n"
        << erlang_->output();
    EXPECT_TRUE(outcome.leftover.empty());
    const auto& result = hs.result();
    EXPECT_EQ(result.peer_node, "e1@127.0.0.1");
    EXPECT_NE(result.peer_creation, 0u);
    // What OTP 25.2.3 advertised on loopback: 0x0000000d07df7fbd (dist-anchors.md §2.3).
    const std::uint64_t otp_25_flags = mandatory_flags_25 | DFLAG_MANDATORY_25_DIGEST |
                                       DFLAG_DIST_MONITOR | DFLAG_DIST_MONITOR_NAME |
                                       DFLAG_UNLINK_ID | DFLAG_V4_NC | DFLAG_SPAWN | DFLAG_ALIAS |
                                       DFLAG_FRAGMENTS | DFLAG_DIST_HDR_ATOM_CACHE;
    EXPECT_EQ(result.peer_flags & otp_25_flags, otp_25_flags) << std::hex << result.peer_flags;
    EXPECT_EQ(result.flags & mandatory_flags_25, mandatory_flags_25) << std::hex << result.flags;
    EXPECT_EQ(result.flags, expand_mandatory_flags(vdist_flags) & result.peer_flags);
    EXPECT_TRUE(erlang_->wait_for("nodeup cpp@127.0.0.1")) << erlang_->output();
}

TEST_F(HandshakeErlangTest, shouldBeRejectedByErlangWhenOurCookieIsWrong) {
    const std::uint16_t port = start_listening_erlang();
    const fd_guard socket = connect_to(port, io_timeout);
    ASSERT_TRUE(socket.valid());
    auto hs = handshake::initiate(cpp_config("wrong"), "e1@127.0.0.1");

    const auto outcome = drive(hs, socket.get());

    // erl checks our reply, logs and closes: no ack comes.
    EXPECT_TRUE(outcome.peer_closed) << hs.error_detail();
    EXPECT_EQ(hs.state(), handshake_state::in_progress);
    EXPECT_TRUE(erlang_->wait_for("Invalid challenge reply")) << erlang_->output();
    EXPECT_EQ(erlang_->output().find("nodeup"), std::string::npos);
}

TEST_F(HandshakeErlangTest, shouldBeRefusedByErlangWhenWeLackTheMandatoryFlags) {
    const std::uint16_t port = start_listening_erlang();
    const fd_guard socket = connect_to(port, io_timeout);
    ASSERT_TRUE(socket.valid());
    auto config = cpp_config();
    config.flags = DFLAG_HANDSHAKE_23 | DFLAG_V4_NC;  // no MAP_TAG, UTF8_ATOMS, ...
    auto hs = handshake::initiate(config, "e1@127.0.0.1");

    (void)drive(hs, socket.get());

    EXPECT_EQ(hs.state(), handshake_state::failed);
    EXPECT_EQ(hs.error(), handshake_errc::refused) << hs.error_detail();
    EXPECT_NE(hs.error_detail().find("not_allowed"), std::string::npos) << hs.error_detail();
    EXPECT_TRUE(erlang_->wait_for("cannot handle")) << erlang_->output();
}

// --- erl initiating, our acceptor --------------------------------------------------------

class HandshakeErlangAcceptTest : public HandshakeErlangTest {
  protected:
    /// Listens, registers cpp, starts erl connecting with `erl_cookie`, and accepts it.
    void accept_erlang(const std::string& erl_cookie = cookie) {
        listener_ = listen_on(0);
        ASSERT_TRUE(listener_.valid());
        registration_ = register_cpp(port_of(listener_.get()), creation_);
        ASSERT_TRUE(registration_.valid());
        start_connecting_erlang(erl_cookie);
        connection_ = accept_from(listener_.get(), erlang_timeout);
        ASSERT_TRUE(connection_.valid()) << "erl did not connect\n" << erlang_->output();
    }

    fd_guard listener_;
    fd_guard registration_;
    fd_guard connection_;
    std::uint32_t creation_ = 0;
};

TEST_F(HandshakeErlangAcceptTest, shouldAcceptErlangWhenTheCookieMatches) {
    accept_erlang();
    auto config = cpp_config();
    config.creation = creation_;
    auto hs = handshake::accept(config);

    auto outcome = drive(hs, connection_.get());
    ASSERT_EQ(hs.state(), handshake_state::needs_status) << hs.error_detail() << "\n"
                                                         << erlang_->output();
    EXPECT_EQ(hs.peer_name(), "e2@127.0.0.1");
    hs.set_status(handshake_status::ok);
    outcome = drive(hs, connection_.get(), std::move(outcome.leftover));

    ASSERT_EQ(hs.state(), handshake_state::done) << hs.error_detail() << "\n" << erlang_->output();
    EXPECT_EQ(hs.result().peer_node, "e2@127.0.0.1");
    EXPECT_NE(hs.result().peer_creation, 0u);
    EXPECT_EQ(hs.result().flags & mandatory_flags_25, mandatory_flags_25);
    EXPECT_TRUE(erlang_->wait_for("connect true")) << erlang_->output();
}

TEST_F(HandshakeErlangAcceptTest, shouldRejectErlangWhenItsCookieIsWrong) {
    accept_erlang("wrong");
    auto hs = handshake::accept(cpp_config());

    const auto outcome = drive(hs, connection_.get());
    ASSERT_EQ(hs.state(), handshake_state::needs_status) << hs.error_detail();
    hs.set_status(handshake_status::ok);
    (void)drive(hs, connection_.get(), outcome.leftover);

    EXPECT_EQ(hs.state(), handshake_state::failed);
    EXPECT_EQ(hs.error(), handshake_errc::bad_digest);
    EXPECT_EQ(hs.error_detail(),
              "node e2@127.0.0.1 has the wrong cookie (invalid challenge reply)");
    connection_ = fd_guard();  // close, as OTP does
    EXPECT_TRUE(erlang_->wait_for("connect false")) << erlang_->output();
}

TEST_F(HandshakeErlangAcceptTest, shouldTurnErlangAwayWhenTheStatusIsNotAllowed) {
    accept_erlang();
    auto hs = handshake::accept(cpp_config());

    const auto outcome = drive(hs, connection_.get());
    ASSERT_EQ(hs.state(), handshake_state::needs_status) << hs.error_detail();
    hs.set_status(handshake_status::not_allowed);
    (void)drive(hs, connection_.get(), outcome.leftover);

    EXPECT_EQ(hs.error(), handshake_errc::refused);
    EXPECT_TRUE(erlang_->wait_for("connect false")) << erlang_->output();
}

}  // namespace
}  // namespace vdist::dist
