// The EPMD client against the real thing: Debian's epmd (erlang-nox) on a private port, and a
// real OTP 25 `erl` registered in it. Each test starts its own epmd in the foreground as a
// child process (so that it dies with the test even if `epmd -kill` fails), stops it with
// `epmd -port P -kill`, and kills every erl it started. Every wait is bounded.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vdist/dist/epmd.hpp"
#include "vdist/test/child_process.hpp"
#include "vdist/test/eventually.hpp"
#include "vdist/test/socket.hpp"

namespace vdist::dist {
namespace {

using namespace std::chrono_literals;
using test::child_process;

using name_list = std::vector<std::pair<std::string, std::uint16_t>>;

constexpr auto request_timeout = 5s;
constexpr const char* localhost = "127.0.0.1";

using test::eventually;
using test::free_port;
using test::on_path;

/// `epmd -port P -kill`: stops the EPMD on P (refused while nodes are registered, unless that
/// EPMD runs with -relaxed_command_check). True if it answered "Killed".
bool kill_epmd(const std::string& epmd, std::uint16_t port) {
    child_process killer(epmd, {"-port", std::to_string(port), "-kill"});
    const std::string said = killer.output(10s);
    (void)killer.wait(10s);
    return said.find("Killed") != std::string::npos;
}

/// Every process whose command line is an `epmd ... -daemon ... -port P` (a daemon
/// ensure_epmd started and that no longer answers -kill).
[[nodiscard]] std::vector<pid_t> epmd_daemons_on(std::uint16_t port) {
    std::vector<pid_t> found;
    std::error_code error;
    for (std::filesystem::directory_iterator entry("/proc", error), end; !error && entry != end;
         entry.increment(error)) {
        const std::string pid_text = entry->path().filename().string();
        if (pid_text.empty() ||
            !std::ranges::all_of(pid_text, [](char c) { return c >= '0' && c <= '9'; })) {
            continue;
        }
        std::ifstream file("/proc/" + pid_text + "/cmdline", std::ios::binary);
        std::vector<std::string> argv;
        for (std::string argument; std::getline(file, argument, '\0');) {
            argv.push_back(argument);
        }
        const auto has = [&](const std::string& what) {
            return std::find(argv.begin(), argv.end(), what) != argv.end();
        };
        if (!argv.empty() && argv[0].ends_with("epmd") && has("-daemon") &&
            has(std::to_string(port))) {
            found.push_back(static_cast<pid_t>(std::stol(pid_text)));
        }
    }
    return found;
}

class EpmdRealTest : public ::testing::Test {
  protected:
    void SetUp() override {
        epmd_ = on_path("epmd");
        erl_ = on_path("erl");
        if (epmd_.empty() || erl_.empty()) {
            GTEST_SKIP() << "needs epmd and erl on PATH (Debian's erlang-nox)";
        }
    }

    /// Starts a private EPMD on a free port, in the foreground, and waits until it answers.
    void start_private_epmd() {
        port_ = free_port();
        daemon_ = std::make_unique<child_process>(
            epmd_,
            std::vector<std::string>{"-port", std::to_string(port_), "-relaxed_command_check"});
        ASSERT_TRUE(eventually([&] { return epmd_names(localhost, 1s, port_).has_value(); }))
            << "the private epmd on port " << port_ << " did not answer";
    }

    void TearDown() override {
        for (auto& node : erl_nodes_) {
            node->kill(SIGKILL);
            (void)node->wait(10s);
        }
        if (daemon_) {
            EXPECT_TRUE(kill_epmd(epmd_, port_)) << "epmd -port " << port_ << " -kill failed";
            if (!daemon_->wait(10s)) {
                ADD_FAILURE() << "the private epmd did not stop; killing it";
                daemon_->kill(SIGKILL);
            }
        }
    }

    /// Starts `erl` with ERL_EPMD_PORT set to our EPMD and `arguments`; killed at TearDown.
    child_process& start_erl(const std::vector<std::string>& arguments) {
        std::vector<std::string> all{"ERL_EPMD_PORT=" + std::to_string(port_), erl_, "-noshell",
                                     "-start_epmd", "false"};
        all.insert(all.end(), arguments.begin(), arguments.end());
        // env execs erl, which execs erlexec, which execs beam.smp: one pid to kill.
        erl_nodes_.push_back(std::make_unique<child_process>("/usr/bin/env", all));
        return *erl_nodes_.back();
    }

    [[nodiscard]] epmd_result<epmd_registration> register_node(std::string_view alive,
                                                               std::uint16_t listen_port,
                                                               bool hidden = false) {
        return epmd_registration::register_node(alive, listen_port, hidden, request_timeout, port_,
                                                localhost);
    }

    std::string epmd_;
    std::string erl_;
    std::uint16_t port_ = 0;
    std::unique_ptr<child_process> daemon_;
    std::vector<std::unique_ptr<child_process>> erl_nodes_;
};

TEST_F(EpmdRealTest, shouldBeFoundByPortPleaseWithItsPortAndVersionsWhenRegistered) {
    start_private_epmd();
    auto registration = register_node("vdist_a", 12345);
    ASSERT_TRUE(registration) << registration.error().message();
    EXPECT_NE(registration->creation(), 0u);

    const auto node = epmd_port_please(localhost, "vdist_a", request_timeout, port_);
    ASSERT_TRUE(node) << node.error().message();
    EXPECT_EQ(*node, (epmd_node_info{.name = "vdist_a",
                                     .port = 12345,
                                     .hidden = false,
                                     .protocol = 0,
                                     .highest_version = 6,
                                     .lowest_version = 6,
                                     .extra = ""}));
}

TEST_F(EpmdRealTest, shouldBeListedByNamesWhenRegistered) {
    start_private_epmd();
    auto first = register_node("vdist_a", 12345);
    auto second = register_node("vdist_b", 23456, true);
    ASSERT_TRUE(first && second);
    auto names = epmd_names(localhost, request_timeout, port_);
    ASSERT_TRUE(names) << names.error().message();
    std::ranges::sort(*names);
    EXPECT_EQ(*names, (name_list{{"vdist_a", 12345}, {"vdist_b", 23456}}));
    const auto hidden = epmd_port_please(localhost, "vdist_b", request_timeout, port_);
    ASSERT_TRUE(hidden) << hidden.error().message();
    EXPECT_TRUE(hidden->hidden);
}

TEST_F(EpmdRealTest, shouldFailWithDuplicateNameWhenTheNameIsTaken) {
    start_private_epmd();
    auto first = register_node("vdist_a", 12345);
    ASSERT_TRUE(first) << first.error().message();
    const auto second = register_node("vdist_a", 23456);
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error(), epmd_errc::duplicate_name);
}

TEST_F(EpmdRealTest, shouldRegisterInTwoHalvesAndRefuseATakenNameAtTheSecond) {
    start_private_epmd();
    auto first =
        epmd_registration::begin("vdist_a", 12345, false, request_timeout, port_, localhost);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_FALSE(first->answered());
    ASSERT_TRUE(first->finish(request_timeout));
    EXPECT_TRUE(first->answered());
    EXPECT_NE(first->creation(), 0u);
    const auto found = epmd_port_please(localhost, "vdist_a", request_timeout, port_);
    ASSERT_TRUE(found) << found.error().message();
    EXPECT_EQ(found->port, 12345);

    // The name is taken: sending succeeds, EPMD's answer refuses.
    auto second =
        epmd_registration::begin("vdist_a", 23456, false, request_timeout, port_, localhost);
    ASSERT_TRUE(second) << second.error().message();
    const auto refused = second->finish(request_timeout);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), epmd_errc::duplicate_name);
    EXPECT_FALSE(second->answered());
}

TEST_F(EpmdRealTest, shouldUnregisterWhenTheRegistrationIsClosed) {
    start_private_epmd();
    {
        auto registration = register_node("vdist_a", 12345);
        ASSERT_TRUE(registration) << registration.error().message();
    }
    // EPMD sees the close on its next select(): ask until it answers not_found.
    EXPECT_TRUE(eventually([&] {
        const auto node = epmd_port_please(localhost, "vdist_a", request_timeout, port_);
        return !node && node.error() == epmd_errc::not_found;
    }));
    auto again = register_node("vdist_a", 12346);
    EXPECT_TRUE(again) << "the name is free again";
}

TEST_F(EpmdRealTest, shouldFailWithNotFoundWhenTheNameIsUnknown) {
    start_private_epmd();
    const auto node = epmd_port_please(localhost, "vdist_nobody", request_timeout, port_);
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::not_found);
}

TEST_F(EpmdRealTest, shouldFailWithUnreachableNotTimedOutWhenNoEpmdListens) {
    const auto port = free_port();
    const auto node = epmd_port_please(localhost, "vdist_a", 30s, port);
    ASSERT_FALSE(node);
    EXPECT_EQ(node.error(), epmd_errc::unreachable);
}

TEST_F(EpmdRealTest, shouldMakeTheHandleReadableWhenEpmdGoesAway) {
    start_private_epmd();
    auto registration = register_node("vdist_a", 12345);
    ASSERT_TRUE(registration) << registration.error().message();
    ASSERT_TRUE(kill_epmd(epmd_, port_));  // allowed with live nodes: -relaxed_command_check
    pollfd watched{registration->native_handle(), POLLIN, 0};
    ASSERT_EQ(::poll(&watched, 1, 10'000), 1);
    std::byte scratch[1];
    EXPECT_EQ(::recv(registration->native_handle(), scratch, 1, 0), 0);
    EXPECT_TRUE(daemon_->wait(10s).has_value());
    daemon_.reset();  // stopped already
}

TEST_F(EpmdRealTest, shouldStartAnEpmdWhenNoneAnswersAndFindTheRunningOneOtherwise) {
    const auto port = free_port();
    ASSERT_FALSE(epmd_names(localhost, 1s, port));
    const auto started = ensure_epmd(port, 10s);
    ASSERT_TRUE(started) << started.error().message();
    {
        const auto names = epmd_names(localhost, request_timeout, port);
        ASSERT_TRUE(names) << names.error().message();
        EXPECT_TRUE(names->empty());
        auto registration = epmd_registration::register_node("vdist_a", 12345, false,
                                                             request_timeout, port, localhost);
        ASSERT_TRUE(registration) << registration.error().message();
        EXPECT_TRUE(ensure_epmd(port, 10s)) << "the running one answers";
    }
    // Without -relaxed_command_check, epmd stops only once no node is registered.
    EXPECT_TRUE(eventually([&] { return kill_epmd(epmd_, port); }));
    EXPECT_TRUE(eventually([&] {
        const auto names = epmd_names(localhost, 1s, port);
        return !names && names.error() == epmd_errc::unreachable;
    }));
    for (const pid_t stray : epmd_daemons_on(port)) {
        ADD_FAILURE() << "epmd daemon " << stray << " still running; killing it";
        ::kill(stray, SIGKILL);
    }
}

TEST_F(EpmdRealTest, shouldFindARealErlangNodeWithHighestVersionSix) {
    start_private_epmd();
    start_erl({"-name", "vdist_erl@127.0.0.1", "-setcookie", "vdist_epmd_test", "-eval",
               "receive after 120000 -> halt() end."});  // ends itself if we cannot kill it
    epmd_result<epmd_node_info> node = std::unexpected(make_error_code(epmd_errc::not_found));
    ASSERT_TRUE(eventually(
        [&] {
            node = epmd_port_please(localhost, "vdist_erl", request_timeout, port_);
            return node.has_value();
        },
        30s))
        << node.error().message();
    EXPECT_EQ(node->name, "vdist_erl");
    EXPECT_NE(node->port, 0);
    EXPECT_FALSE(node->hidden);  // OTP always registers NodeType 77
    EXPECT_EQ(node->protocol, 0);
    EXPECT_EQ(node->highest_version, 6);
    EXPECT_EQ(node->lowest_version, 5);  // OTP 25.2.3; vdist registers 6
    const auto names = epmd_names(localhost, request_timeout, port_);
    ASSERT_TRUE(names) << names.error().message();
    EXPECT_NE(
        std::ranges::find(*names, std::pair<std::string, std::uint16_t>("vdist_erl", node->port)),
        names->end());
}

TEST_F(EpmdRealTest, shouldBeFoundByOtpsOwnEpmdClientWhenRegistered) {
    start_private_epmd();
    auto registration = register_node("vdist_c", 12345);
    ASSERT_TRUE(registration) << registration.error().message();
    auto& erl =
        start_erl({"-eval",
                   "io:format(\"~p~n~p~n\", [erl_epmd:port_please(\"vdist_c\", \"127.0.0.1\"),"
                   " erl_epmd:names(\"127.0.0.1\")]), halt()."});
    const std::string said = erl.output(60s);
    // OTP picks min(its highest, ours) = 6 from our 6..6.
    EXPECT_NE(said.find("{port,12345,6}"), std::string::npos) << said;
    EXPECT_NE(said.find("{ok,[{\"vdist_c\",12345}]}"), std::string::npos) << said;
}

}  // namespace
}  // namespace vdist::dist
