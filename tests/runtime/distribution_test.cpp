// Distribution between two C++ nodes over TCP (each node on its own thread, as two single-core
// VMs would run): connections set up on first use, simultaneous connects, remote links and
// monitors with Erlang's reasons, node down, a wrong cookie. A private EPMD on a free port per
// test; nothing is left running.

#include "vdist/runtime/distribution.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vdist/dist/epmd.hpp"
#include "vdist/runtime/gen_server.hpp"
#include "vdist/runtime/node_services.hpp"
#include "vdist/test/erlang.hpp"
#include "vdist/test/inbox.hpp"

namespace vdist::runtime {
namespace {

using test::inbox;

using namespace std::chrono_literals;
using dist::tuple;

// One node with distribution, running on its own thread once started.
class running_node {
  public:
    running_node(std::string name, std::string cookie, std::uint16_t epmd_port,
                 std::chrono::milliseconds ticktime = 60s)
        : node_(node_config{.name = std::move(name)}) {
        auto started =
            distribution::start(node_, distribution_config{.cookie = std::move(cookie),
                                                           .epmd_port = epmd_port,
                                                           .net_ticktime = ticktime,
                                                           .log = [this](std::string_view line) {
                                                               std::lock_guard lock(log_mutex_);
                                                               log_.emplace_back(line);
                                                           }});
        if (!started) {
            throw std::runtime_error("distribution did not start: " + started.error().message());
        }
        dist_ = std::move(*started);
        start_node_services(node_, *dist_, rpc_functions::with_builtins(dist_.get()));
        stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        node_.watch_fd(stop_fd_, [this] { node_.stop(); });
    }
    ~running_node() {
        stop();
        dist_.reset();
        ::close(stop_fd_);
    }

    /// Before start(): the node, to spawn its first processes.
    [[nodiscard]] node& host() noexcept { return node_; }
    [[nodiscard]] distribution& dist() noexcept { return *dist_; }
    [[nodiscard]] atom name() const noexcept { return node_.name(); }

    void start() {
        thread_ = std::thread([this] { node_.run(); });
    }
    /// Stops the loop and joins; the node may be inspected afterwards.
    void stop() {
        if (thread_.joinable()) {
            const std::uint64_t one = 1;
            (void)::write(stop_fd_, &one, sizeof one);
            thread_.join();
        }
    }
    [[nodiscard]] std::vector<std::string> log() {
        std::lock_guard lock(log_mutex_);
        return log_;
    }
    [[nodiscard]] bool logged(std::string_view part) {
        for (const auto& line : log()) {
            if (line.find(part) != std::string::npos) {
                return true;
            }
        }
        return false;
    }

  private:
    node node_;
    std::unique_ptr<distribution> dist_;
    int stop_fd_ = -1;
    std::thread thread_;
    std::mutex log_mutex_;
    std::vector<std::string> log_;
};

class DistributionTest : public ::testing::Test {
  protected:
    test::private_epmd epmd_;
};

TEST_F(DistributionTest, shouldConnectOnFirstSendWhenAProcessCallsAServerOfAnotherNode) {
    running_node a("a@127.0.0.1", "cookie", epmd_.port());
    running_node b("b@127.0.0.1", "cookie", epmd_.port());
    inbox seen;
    const atom b_name = a.host().a("b@127.0.0.1");
    (void)a.host().spawn([&seen, b_name](process& self) {
        gen_server::call(
            self, gen_server::remote_name{self.host().a("echo"), b_name},
            tuple{self.host().a("hello"), std::int64_t{42}}, 5s,
            [&seen](process&, term reply) { seen.put(std::move(reply)); },
            [&seen](process& me, term reason) {
                seen.put(tuple{me.host().a("error"), reason});
            });
    });
    a.start();
    b.start();
    const auto replies = seen.wait_for(1);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0], term(tuple{a.host().a("hello"), std::int64_t{42}}));
    a.stop();
    b.stop();
    EXPECT_EQ(a.dist().nodes(true).size(), 1u) << "b is hidden, connected";
    EXPECT_TRUE(a.logged("connection to b@127.0.0.1 up"));
    EXPECT_TRUE(b.logged("connection from a@127.0.0.1 up"));
}

TEST_F(DistributionTest, shouldKeepOneConnectionWhenBothNodesConnectAtOnce) {
    running_node a("a@127.0.0.1", "cookie", epmd_.port());
    running_node b("b@127.0.0.1", "cookie", epmd_.port());
    inbox seen_a, seen_b;
    // Each node sends 100 numbered messages to the other's echo at start: both sides set up a
    // connection at the same moment; every message must come back once, in order.
    const auto pinger = [](inbox& seen, atom peer) {
        return [&seen, peer](process& self) {
            for (std::int64_t i = 0; i < 100; ++i) {
                self.send(self.host().a("echo"), peer, tuple{self.self(), i});
            }
            self.become([&seen](process&, term m) { seen.put(std::move(m)); });
        };
    };
    (void)a.host().spawn(pinger(seen_a, a.host().a("b@127.0.0.1")));
    (void)b.host().spawn(pinger(seen_b, b.host().a("a@127.0.0.1")));
    a.start();
    b.start();
    const auto at_a = seen_a.wait_for(100);
    const auto at_b = seen_b.wait_for(100);
    ASSERT_EQ(at_a.size(), 100u);
    ASSERT_EQ(at_b.size(), 100u) << ::testing::PrintToString(a.log()) << "\n"
                                 << ::testing::PrintToString(b.log());
    for (std::int64_t i = 0; i < 100; ++i) {
        EXPECT_EQ(at_a[static_cast<std::size_t>(i)], term(i));
        EXPECT_EQ(at_b[static_cast<std::size_t>(i)], term(i));
    }
    a.stop();
    b.stop();
    EXPECT_EQ(a.dist().connections().size(), 1u);
    EXPECT_EQ(b.dist().connections().size(), 1u);
}

TEST_F(DistributionTest, shouldDeliverExitAndDownWithTheReasonWhenARemoteProcessEnds) {
    running_node a("a@127.0.0.1", "cookie", epmd_.port());
    running_node b("b@127.0.0.1", "cookie", epmd_.port());
    inbox seen;
    // On b: a process registered as `victim` that exits with {shot, Why} when told.
    (void)b.host().spawn([](process& self) {
        (void)self.register_name(self.host().a("victim"));
        self.receive([](process& me, term why) { me.exit(tuple{me.host().a("shot"), why}); });
    });
    const atom b_name = a.host().a("b@127.0.0.1");
    // On a: link to the victim (pid learnt from a call to echo? no: by name monitor first, then
    // the pid from rpc), monitor it by name and by pid, then shoot it.
    (void)a.host().spawn([&seen, b_name](process& self) {
        node& n = self.host();
        self.trap_exit(true);
        const reference by_name = self.monitor(n.a("victim"), b_name);
        const reference no_such = self.monitor(n.a("nobody"), b_name);
        (void)no_such;
        self.send(n.a("victim"), b_name, n.a("boom"));
        self.become([&seen, by_name](process&, term m) { seen.put(std::move(m)); });
    });
    a.start();
    b.start();
    const auto got = seen.wait_for(2);
    ASSERT_EQ(got.size(), 2u);
    const atom down = a.host().a("DOWN");
    const term victim = tuple{a.host().a("victim"), b_name};
    const term nobody = tuple{a.host().a("nobody"), b_name};
    bool saw_noproc = false, saw_shot = false;
    for (const auto& m : got) {
        const auto* t = m.get_if<tuple>();
        ASSERT_NE(t, nullptr);
        ASSERT_EQ(t->elements.size(), 5u);
        EXPECT_EQ(t->elements[0], term(down));
        if (t->elements[3] == nobody) {
            saw_noproc = t->elements[4] == term(a.host().a("noproc"));
        } else if (t->elements[3] == victim) {
            saw_shot = t->elements[4] == term(tuple{a.host().a("shot"), a.host().a("boom")});
        }
    }
    EXPECT_TRUE(saw_noproc) << "a name nobody has: 'DOWN' with noproc at once";
    EXPECT_TRUE(saw_shot) << "the name's process ended: 'DOWN' with its reason";
}

TEST_F(DistributionTest, shouldSignalNoconnectionToLinksAndMonitorsWhenThePeerNodeGoesAway) {
    running_node a("a@127.0.0.1", "cookie", epmd_.port());
    auto b = std::make_unique<running_node>("b@127.0.0.1", "cookie", epmd_.port());
    inbox seen;
    std::promise<pid> b_process;
    (void)b->host().spawn([&b_process](process& self) {
        b_process.set_value(self.self());
        self.become([](process&, term) {});
    });
    b->start();
    const pid in_b = b_process.get_future().get();
    const atom b_name = a.host().a("b@127.0.0.1");
    // The pid as node a knows it: its node atom in a's table (b's table goes away with b).
    const pid remote{b_name, in_b.id, in_b.serial, in_b.creation};
    (void)a.host().spawn([&seen, remote, b_name](process& self) {
        self.trap_exit(true);
        self.link(remote);
        (void)self.monitor(remote);
        net_adm_ping(self, b_name, 5s, [&seen](process& me, atom result) {
            seen.put(result);
            me.become([&seen](process&, term m) { seen.put(std::move(m)); });
        });
    });
    a.start();
    ASSERT_EQ(seen.wait_for(1).at(0), term(a.host().a("pong")));
    b.reset();  // b's node stops: its connections close
    const auto got = seen.wait_for(3);
    ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(a.log());
    const term noconnection = a.host().a("noconnection");
    int exits = 0, downs = 0;
    for (std::size_t i = 1; i < got.size(); ++i) {
        const auto* t = got[i].get_if<tuple>();
        ASSERT_NE(t, nullptr);
        if (t->elements.size() == 3 && is_atom(t->elements[0], "EXIT")) {
            EXPECT_EQ(t->elements[1], term(remote));
            EXPECT_EQ(t->elements[2], noconnection);
            ++exits;
        } else if (t->elements.size() == 5 && is_atom(t->elements[0], "DOWN")) {
            EXPECT_EQ(t->elements[4], noconnection);
            ++downs;
        }
    }
    EXPECT_EQ(exits, 1);
    EXPECT_EQ(downs, 1);
    EXPECT_TRUE(a.logged("connection to b@127.0.0.1 down"));
}

TEST_F(DistributionTest, shouldRefuseTheConnectionAndLogItWhenTheCookiesDiffer) {
    running_node a("a@127.0.0.1", "one cookie", epmd_.port());
    running_node b("b@127.0.0.1", "another cookie", epmd_.port());
    inbox seen;
    const atom b_name = a.host().a("b@127.0.0.1");
    (void)a.host().spawn([&seen, b_name](process& self) {
        net_adm_ping(self, b_name, 5s, [&seen](process&, atom result) { seen.put(result); });
    });
    a.start();
    b.start();
    const auto got = seen.wait_for(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], term(a.host().a("pang")));
    a.stop();
    b.stop();
    EXPECT_TRUE(b.logged("invalid challenge reply")) << "the acceptor says why it refused";
    EXPECT_TRUE(a.dist().connections().empty());
    EXPECT_TRUE(b.dist().connections().empty());
}

}  // namespace
}  // namespace vdist::runtime
