// One cluster over rings, end to end: real `vdist host` agents (each an emulated Xen host with
// its host store), real node processes they spawn, a driver node (C++, TCP distribution) that
// starts vdist_traffic on every node and collects the reports. Checked: nothing lost,
// duplicated or reordered; in-host traffic over rings and cross-host over TCP (from the nodes'
// own connection counters, `vdist ls`); a node killed with SIGKILL under load is seen down,
// restarted with a new domid and generation, rejoins, and its resources are released; after
// shutdown no store key, rendezvous socket or process is left.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vdist/discovery/agent_control.hpp"
#include "vdist/runtime/threaded_node.hpp"
#include "vdist/runtime/traffic.hpp"
#include "vdist/test/agent_listing.hpp"
#include "vdist/test/child_process.hpp"
#include "vdist/test/erlang.hpp"
#include "vdist/test/eventually.hpp"

namespace vdist::discovery {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::term;
using dist::tuple;
using runtime::threaded_node;

constexpr auto cookie = "cluster";

[[nodiscard]] std::vector<std::string> words_of(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) {
        words.push_back(std::move(w));
    }
    return words;
}

// One `vdist host` process: an emulated host, its log in its directory.
class host {
  public:
    host(const std::filesystem::path& dir, const std::string& name) : dir_(dir) {
        std::filesystem::create_directories(dir);
        const std::string command = "exec '" + std::string(VDIST_CLI) + "' host --dir '" +
                                    dir.string() + "' --host " + name + " --cookie " + cookie +
                                    " >'" + (dir / "agent.log").string() + "' 2>&1";
        process_ = std::make_unique<test::child_process>("/bin/sh",
                                                         std::vector<std::string>{"-c", command});
        ready_ = test::eventually([&] { return control_request(dir_, "ls").has_value(); }, 20s);
    }
    ~host() {
        (void)control_request(dir_, "stop");
        if (!process_->wait(10s)) {
            process_->kill(SIGKILL);
            (void)process_->wait(5s);
        }
    }

    [[nodiscard]] bool ready() const noexcept { return ready_; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

    /// Spawns a node; its name.
    [[nodiscard]] std::optional<std::string> spawn(const std::string& restart = "permanent") {
        auto answer = control_request(dir_, "spawn - " + restart);
        if (!answer || answer->empty()) {
            return std::nullopt;
        }
        const auto w = words_of(answer->front());
        if (w.size() < 2 || w[0] != "ok") {
            ADD_FAILURE() << "spawn: " << answer->front();
            return std::nullopt;
        }
        return w[1];
    }

    struct slot {
        std::string name;
        std::string domid;
        std::string os_pid;
        std::string generation;
        std::string state;
    };
    struct channel {
        std::string node, peer, carrier;
        std::uint64_t messages_in = 0, messages_out = 0;
    };
    struct listing {
        std::vector<slot> nodes;
        std::vector<channel> channels;
    };
    [[nodiscard]] listing ls() const {
        listing out;
        auto answer = control_request(dir_, "ls");
        if (!answer) {
            return out;
        }
        for (const auto& line : *answer) {
            const auto w = words_of(line);
            if (w.size() >= 6 && w[0] == "node") {
                out.nodes.push_back({w[1], w[2], w[3], w[4], w[5]});
            } else if (w.size() >= 6 && w[0] == "conn") {
                out.channels.push_back({w[1], w[2], w[3], std::stoull(w[4]), std::stoull(w[5])});
            }
        }
        return out;
    }
    /// Store paths but what the domain shells kept ready own.
    [[nodiscard]] std::vector<std::string> store_paths() const {
        std::vector<std::string> paths;
        if (auto answer = control_request(dir_, "store")) {
            for (const auto& line : *answer) {
                const auto w = words_of(line);
                if (w.size() == 2 && w[0] == "key") {
                    paths.push_back(w[1]);
                }
            }
        }
        const auto answer_ls = control_request(dir_, "ls");
        return test::without_shells(
            std::move(paths), test::shells_in(answer_ls ? *answer_ls : std::vector<std::string>{}));
    }
    [[nodiscard]] bool kill(const std::string& name, int signal) const {
        auto answer = control_request(dir_, "kill " + name + " " + std::to_string(signal));
        return answer && !answer->empty() && answer->front() == "ok";
    }
    /// Rendezvous sockets left in the run directory.
    [[nodiscard]] std::vector<std::string> vchan_sockets() const {
        std::vector<std::string> found;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
            const auto file = entry.path().filename().string();
            if (file.starts_with("vchan.")) {
                found.push_back(file);
            }
        }
        return found;
    }
    [[nodiscard]] std::string log() const {
        std::ifstream in(dir_ / "agent.log");
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

  private:
    std::filesystem::path dir_;
    std::unique_ptr<test::child_process> process_;
    bool ready_ = false;
};

struct report {
    std::int64_t sent = 0, received = 0, lost = 0, backwards = 0, streams = 0, peers_down = 0;
};

class ClusterTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NE(epmd_.port(), 0);
        ::setenv("ERL_EPMD_PORT", std::to_string(epmd_.port()).c_str(), 1);
        char pattern[] = "/tmp/vdist-cluster-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        root_ = pattern;
        driver_ = std::make_unique<threaded_node>("driver@localhost", cookie, epmd_.port());
    }
    void TearDown() override {
        driver_.reset();
        if (!HasFailure()) {
            std::error_code ignored;
            std::filesystem::remove_all(root_, ignored);
        } else {
            std::printf("logs kept in %s\n", root_.c_str());
        }
    }

    std::unique_ptr<host> start_host(const std::string& name) {
        auto h = std::make_unique<host>(root_ / name, name);
        EXPECT_TRUE(h->ready()) << h->log();
        return h;
    }

    // Every node of `senders` sends to every node of `nodes` (all of them by default).
    void start_traffic(const std::vector<std::string>& nodes, std::int64_t per_peer,
                       std::int64_t size, std::vector<std::string> senders = {}) {
        list peers;
        for (const auto& n : nodes) {
            peers.elements.emplace_back(driver_->a(n));
        }
        if (senders.empty()) {
            senders = nodes;
        }
        for (const auto& n : senders) {
            driver_->send("vdist_traffic", n, tuple{driver_->a("start"), peers, per_peer, size});
        }
    }

    std::optional<report> report_of(const std::string& node) {
        driver_->send("vdist_traffic", node, tuple{driver_->a("report"), driver_->self()});
        const auto replies = driver_->wait_for(1, 10s);
        if (replies.size() != 1) {
            return std::nullopt;
        }
        const auto* r = replies[0].get_if<tuple>();
        if (r == nullptr || r->elements.size() != 8) {
            return std::nullopt;
        }
        const auto number = [&](std::size_t i) {
            const auto* v = r->elements[i].get_if<std::int64_t>();
            return v == nullptr ? -1 : *v;
        };
        return report{number(2), number(3), number(4), number(5), number(6), number(7)};
    }

    // Waits until `node` received at least `count`; its last report.
    /// The node's report once it received `count` messages over at least `streams` streams.
    std::optional<report> wait_received(const std::string& node, std::int64_t count,
                                        std::chrono::seconds limit = 120s,
                                        std::int64_t streams = 0) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        std::optional<report> last;
        while (std::chrono::steady_clock::now() < deadline) {
            last = report_of(node);
            if (last && last->received >= count && last->streams >= streams) {
                return last;
            }
            std::this_thread::sleep_for(100ms);
        }
        return last;
    }

    test::private_epmd epmd_;
    std::filesystem::path root_;
    std::unique_ptr<threaded_node> driver_;
};

TEST_F(ClusterTest, shouldDeliverEverythingInOrderOverRingsWhenSixteenNodesSendAllToAll) {
    auto h = start_host("h1");
    ASSERT_TRUE(h->ready());
    const auto base_paths = h->store_paths();
    std::vector<std::string> nodes;
    for (int i = 0; i < 16; ++i) {
        auto name = h->spawn();
        ASSERT_TRUE(name.has_value()) << h->log();
        nodes.push_back(*name);
    }
    constexpr std::int64_t per_peer = 1000;
    start_traffic(nodes, per_peer, 64);
    for (const auto& n : nodes) {
        const auto r = wait_received(n, 15 * per_peer);
        ASSERT_TRUE(r.has_value()) << n;
        EXPECT_EQ(r->received, 15 * per_peer) << n;
        EXPECT_EQ(r->sent, 15 * per_peer) << n;
        EXPECT_EQ(r->lost, 0) << n;
        EXPECT_EQ(r->backwards, 0) << n;
        EXPECT_EQ(r->streams, 15) << n;
    }
    // Every node-to-node channel is a ring; only the driver (not on this host) is TCP.
    const auto listing = h->ls();
    std::map<std::string, int> rings;
    for (const auto& c : listing.channels) {
        if (c.peer == "driver@localhost") {
            EXPECT_EQ(c.carrier, "tcp");
        } else {
            EXPECT_EQ(c.carrier, "ring") << c.node << " -> " << c.peer;
            ++rings[c.node];
        }
    }
    for (const auto& n : nodes) {
        EXPECT_EQ(rings[n], 15) << n;
    }
    // Stop every node: every ring, rendezvous socket and store key of theirs goes.
    for (const auto& n : nodes) {
        EXPECT_TRUE(h->kill(n, 0)) << n;
    }
    EXPECT_TRUE(test::eventually([&] { return h->ls().nodes.empty(); }, 20s));
    EXPECT_TRUE(test::eventually([&] { return h->store_paths() == base_paths; }, 10s))
        << ::testing::PrintToString(h->store_paths());
    EXPECT_TRUE(h->vchan_sockets().empty()) << ::testing::PrintToString(h->vchan_sockets());
}

TEST_F(ClusterTest, shouldUseRingsInsideAHostAndTcpBetweenHostsWhenTwoHostsHaveFourNodesEach) {
    auto h1 = start_host("h1");
    auto h2 = start_host("h2");
    ASSERT_TRUE(h1->ready() && h2->ready());
    std::vector<std::string> nodes;
    std::map<std::string, std::string> host_of;
    for (auto* h : {h1.get(), h2.get()}) {
        for (int i = 0; i < 4; ++i) {
            auto name = h->spawn();
            ASSERT_TRUE(name.has_value()) << h->log();
            nodes.push_back(*name);
            host_of[*name] = h == h1.get() ? "h1" : "h2";
        }
    }
    constexpr std::int64_t per_peer = 500;
    start_traffic(nodes, per_peer, 256);
    for (const auto& n : nodes) {
        const auto r = wait_received(n, 7 * per_peer);
        ASSERT_TRUE(r.has_value()) << n;
        EXPECT_EQ(r->received, 7 * per_peer) << n;
        EXPECT_EQ(r->lost, 0) << n;
        EXPECT_EQ(r->backwards, 0) << n;
    }
    int ring_channels = 0;
    int tcp_channels = 0;
    for (auto* h : {h1.get(), h2.get()}) {
        for (const auto& c : h->ls().channels) {
            if (c.peer == "driver@localhost") {
                continue;
            }
            const bool same_host = host_of[c.node] == host_of[c.peer];
            EXPECT_EQ(c.carrier, same_host ? "ring" : "tcp") << c.node << " -> " << c.peer;
            EXPECT_GT(c.messages_in, 0u) << c.node << " <- " << c.peer;
            EXPECT_GT(c.messages_out, 0u) << c.node << " -> " << c.peer;
            ++(same_host ? ring_channels : tcp_channels);
        }
    }
    EXPECT_EQ(ring_channels, 2 * 4 * 3);  // each node: 3 peers on its host
    EXPECT_EQ(tcp_channels, 2 * 4 * 4);   // and 4 on the other
}

TEST_F(ClusterTest, shouldRestartAndRejoinWhenANodeIsKilledUnderLoad) {
    auto h = start_host("h1");
    ASSERT_TRUE(h->ready());
    std::vector<std::string> nodes;
    for (int i = 0; i < 4; ++i) {
        auto name = h->spawn();
        ASSERT_TRUE(name.has_value()) << h->log();
        nodes.push_back(*name);
    }
    start_traffic(nodes, 0, 64);  // until stopped
    for (const auto& n : nodes) {
        ASSERT_TRUE(wait_received(n, 3000).has_value()) << n;
    }
    const std::string victim = nodes[3];
    const auto before = h->ls();
    const auto old_slot = std::ranges::find(before.nodes, victim, &host::slot::name);
    ASSERT_NE(old_slot, before.nodes.end());
    const std::string old_domid = old_slot->domid;

    ASSERT_TRUE(h->kill(victim, SIGKILL));
    // Its peers see it go ('DOWN' of its vdist_traffic: noconnection) ...
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(test::eventually(
            [&] {
                const auto r = report_of(nodes[static_cast<std::size_t>(i)]);
                return r && r->peers_down >= 1;
            },
            10s))
            << nodes[static_cast<std::size_t>(i)];
    }
    // ... the agent restarts it as a new domain of a new generation ...
    std::optional<host::slot> restarted;
    EXPECT_TRUE(test::eventually(
        [&] {
            for (const auto& s : h->ls().nodes) {
                if (s.name == victim && s.domid != old_domid && s.state == "running") {
                    restarted = s;
                    return true;
                }
            }
            return false;
        },
        20s))
        << h->log();
    ASSERT_TRUE(restarted.has_value());
    EXPECT_EQ(restarted->generation, "2");
    // ... nothing of the old domain is left ...
    for (const auto& path : h->store_paths()) {
        EXPECT_FALSE(path.starts_with("/local/domain/" + old_domid + "/") ||
                     path == "/local/domain/" + old_domid)
            << path;
        EXPECT_EQ(path.find("/connect/" + old_domid + "-"), std::string::npos) << path;
    }
    // Its own rendezvous sockets go at once; a survivor that offered it a ring just before it
    // died (its store record still there) withdraws that offer when net_setuptime passes.
    for (const auto& socket : h->vchan_sockets()) {
        EXPECT_FALSE(socket.starts_with("vchan." + old_domid + ".")) << socket;
    }
    EXPECT_TRUE(test::eventually(
        [&] {
            return std::ranges::none_of(h->vchan_sockets(), [&](const std::string& socket) {
                return socket.find("." + old_domid + ".") != std::string::npos;
            });
        },
        15s))
        << ::testing::PrintToString(h->vchan_sockets());
    // ... and traffic resumes: the new incarnation receives from all three, in order. A
    // survivor that reconnected while the agent had not yet removed the dead incarnation's
    // record offered its ring to the dead domain; it gives that attempt up once the name
    // locates the new domain (distribution::recheck_offer, every 100 ms), and what it sent
    // meanwhile is lost with the attempt, as over TCP: its stream may start after the others'
    // first 3000 messages, so the wait is for all three streams.
    start_traffic(nodes, 0, 64, {victim});  // the new incarnation sends too
    const auto r = wait_received(victim, 3000, 60s, 3);
    ASSERT_TRUE(r.has_value());
    EXPECT_GE(r->received, 3000);
    EXPECT_EQ(r->lost, 0);
    EXPECT_EQ(r->backwards, 0);
    EXPECT_EQ(r->streams, 3);
    for (const auto& n : nodes) {
        driver_->send("vdist_traffic", n, driver_->a("stop"));
    }
    for (const auto& n : nodes) {
        const auto last = report_of(n);
        ASSERT_TRUE(last.has_value()) << n;
        EXPECT_EQ(last->lost, 0) << n;
        EXPECT_EQ(last->backwards, 0) << n;
    }
}

TEST_F(ClusterTest, shouldLookLikeOrdinaryNodesToErlWhenReachedOverTcp) {
    if (test::on_path("erl").empty()) {
        GTEST_SKIP() << "erl not installed";
    }
    auto h = start_host("h1");
    ASSERT_TRUE(h->ready());
    const auto n1 = h->spawn();
    const auto n2 = h->spawn();
    ASSERT_TRUE(n1 && n2) << h->log();
    const std::string a = "'" + *n1 + "'";
    const std::string b = "'" + *n2 + "'";
    test::erlang_node erl(epmd_.port(), {"-sname", "probe", "-setcookie", cookie},
                          test::erlang_node::interactive);
    EXPECT_EQ(erl.eval("net_adm:ping(" + a + ")."), "pong");
    EXPECT_EQ(erl.eval("rpc:call(" + a + ", erlang, node, [])."), a);
    EXPECT_EQ(erl.eval("erpc:call(" + b + ", vdist, echo, [{hello, self()}]) =:= {hello, self()}."),
              "true");
    // erl drives the two agent nodes, which talk to each other over a ring, and reads their
    // reports.
    EXPECT_EQ(erl.eval("[{vdist_traffic, N} ! {start, [" + a + ", " + b + "], 500, 32} || N <- [" +
                       a + ", " + b + "]], ok."),
              "ok");
    const std::string report =
        "fun(N) -> {vdist_traffic, N} ! {report, self()}, "
        "receive R -> R after 5000 -> timeout end end";
    EXPECT_TRUE(test::eventually(
        [&] {
            return erl.eval("(" + report + ")(" + b + ").") ==
                   "{traffic_report," + b + ",500,500,0,0,1,0}";
        },
        20s));
    // Killed with SIGKILL, an agent node is an ordinary lost node to erl.
    EXPECT_EQ(erl.eval("erlang:monitor_node(" + b + ", true)."), "true");
    ASSERT_TRUE(h->kill(*n2, SIGKILL));
    EXPECT_EQ(erl.eval("receive {nodedown, N} -> N after 10000 -> timeout end."), b);
    const auto listing = h->ls();
    for (const auto& c : listing.channels) {
        if (c.node == *n1 && c.peer == *n2) {
            EXPECT_EQ(c.carrier, "ring");
        }
    }
}

}  // namespace
}  // namespace vdist::discovery
