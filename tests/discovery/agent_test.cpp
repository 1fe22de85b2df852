// The host agent end to end: `vdist host` as a child process, its nodes as its children.
// Every test runs its own agent (its own DIR and host name, so node names stay unique on the
// shared epmd) and checks that nothing is left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "vdist/discovery/agent_control.hpp"
#include "vdist/discovery/agent_protocol.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/test/agent_listing.hpp"
#include "vdist/test/child_process.hpp"
#include "vdist/test/erlang.hpp"
#include "vdist/test/eventually.hpp"

namespace vdist::discovery {
namespace {

using namespace std::chrono_literals;

struct node_row {
    std::string name;
    std::uint32_t domid = 0;
    pid_t pid = 0;
    std::uint32_t generation = 0;
    std::string state;
};

std::vector<std::string> words_of(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) {
        words.push_back(w);
    }
    return words;
}

bool process_gone(pid_t pid) {
    return ::kill(pid, 0) != 0 && errno == ESRCH;
}

class HostAgentTest : public ::testing::Test {
  protected:
    void SetUp() override {
        // The nodes register with EPMD: a private one, so that no epmd outlives the test.
        ASSERT_NE(epmd_.port(), 0);
        ::setenv("ERL_EPMD_PORT", std::to_string(epmd_.port()).c_str(), 1);
        start_agent({});
    }

    void start_agent(std::vector<std::string> extra) {
        static int counter = 0;
        host_ = "t" + std::to_string(::getpid()) + "x" + std::to_string(++counter);
        dir_ = std::filesystem::temp_directory_path() / ("vdist-agent-test-" + host_);
        std::filesystem::remove_all(dir_);
        std::vector<std::string> args{"host", "--dir", dir_.string(), "--host", host_};
        args.insert(args.end(), extra.begin(), extra.end());
        agent_.emplace(VDIST_BINARY, args);
        ASSERT_TRUE(test::eventually([&] { return std::filesystem::exists(dir_ / "agent.sock"); }))
            << "the agent did not create its control socket";
    }

    void TearDown() override { stop_agent(); }

    /// Stops the agent with SIGTERM; none of its node processes may survive it. Its directory
    /// goes too.
    void stop_agent() {
        const auto nodes = ls_pids();
        if (agent_) {
            agent_->kill(SIGTERM);
            EXPECT_TRUE(agent_->wait(10s)) << "the agent did not stop on SIGTERM";
            agent_.reset();
        }
        for (const pid_t pid : nodes) {
            EXPECT_TRUE(test::eventually([&] { return process_gone(pid); }, 5s))
                << "node process " << pid << " survived its agent";
        }
        std::filesystem::remove_all(dir_);
    }

    /// The fixture's agent, stopped, and a new one with `extra` options.
    void restart_agent(std::vector<std::string> extra) {
        stop_agent();
        start_agent(std::move(extra));
    }

    std::vector<std::string> request(const std::string& line) {
        auto answer = control_request(dir_, line);
        EXPECT_TRUE(answer) << line << ": " << (answer ? "" : answer.error().message());
        return answer ? *answer : std::vector<std::string>{};
    }

    node_row spawn(const std::string& name, const std::string& restart) {
        const auto answer = request("spawn " + name + " " + restart);
        const auto w = answer.empty() ? std::vector<std::string>{} : words_of(answer.front());
        EXPECT_EQ(w.size(), 5u) << (answer.empty() ? "" : answer.front());
        if (w.size() != 5 || w[0] != "ok") {
            return {};
        }
        return {w[1], static_cast<std::uint32_t>(std::stoul(w[2])),
                static_cast<pid_t>(std::stol(w[3])), 1, "running"};
    }

    std::map<std::string, node_row> ls() {
        std::map<std::string, node_row> rows;
        for (const auto& line : request("ls")) {
            const auto w = words_of(line);
            if (w.size() == 7 && w[0] == "node") {
                rows[w[1]] = {w[1], static_cast<std::uint32_t>(std::stoul(w[2])),
                              static_cast<pid_t>(std::stol(w[3])),
                              static_cast<std::uint32_t>(std::stoul(w[4])), w[5]};
            }
        }
        return rows;
    }

    std::vector<pid_t> ls_pids() {
        std::vector<pid_t> pids;
        if (!std::filesystem::exists(dir_ / "agent.sock")) {
            return pids;
        }
        auto answer = control_request(dir_, "ls");
        for (const auto& line : answer ? *answer : std::vector<std::string>{}) {
            const auto w = words_of(line);
            const pid_t pid = w.size() == 7 && w[0] == "node"    ? std::stoi(w[3])
                              : w.size() == 3 && w[0] == "shell" ? std::stoi(w[2])  // shells go too
                                                                 : 0;
            EXPECT_GE(pid, 0) << "a listed process the agent does not know: " << line;
            if (pid > 0) {
                pids.push_back(pid);
            }
        }
        return pids;
    }

    /// Store keys but the root and what the domain shells kept ready own: what nodes left.
    std::vector<std::string> store_keys() {
        std::vector<std::string> keys;
        for (const auto& line : request("store")) {
            if (line.starts_with("key ") && line != "key /") {
                keys.push_back(line.substr(4));
            }
        }
        return test::without_shells(std::move(keys), test::shells_in(request("ls")));
    }

    bool has_key_under(const std::string& prefix) {
        for (const auto& key : store_keys()) {
            if (key == prefix || key.starts_with(prefix + "/")) {
                return true;
            }
        }
        return false;
    }

    std::string host_;
    test::private_epmd epmd_;
    std::filesystem::path dir_;
    std::optional<test::child_process> agent_;
};

TEST_F(HostAgentTest, shouldStartANodeInADomainShellMadeAheadAndMakeAnotherOne) {
    // Two shells by default: domains forked ahead, store open, no node yet.
    std::set<std::uint32_t> shells;
    ASSERT_TRUE(test::eventually([&] {
        shells = test::shells_in(request("ls"));
        return shells.size() == 2;
    })) << "no domain shells made";
    const auto all_keys = request("store");  // shells' keys included
    for (const auto domid : shells) {
        const std::string inbox =
            "key /local/domain/" + std::to_string(domid) + "/data/vdist/connect";
        EXPECT_NE(std::ranges::find(all_keys, inbox), all_keys.end())
            << "a shell has its inbox from the start";
    }
    const auto node = spawn("-", "temporary");
    EXPECT_EQ(node.domid, *shells.begin()) << "the spawn did not take the first shell";
    EXPECT_EQ(node.name, "n" + std::to_string(node.domid) + "-" + host_ + "@localhost");
    EXPECT_TRUE(test::eventually([&] {
        const auto now = test::shells_in(request("ls"));
        return now.size() == 2 && !now.contains(node.domid);
    })) << "the shell taken was not replaced";
}

/// A field of /proc/<pid>/status ("Threads:", "PPid:"), or "".
std::string status_field(pid_t pid, std::string_view field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with(field)) {
            return words_of(line).back();
        }
    }
    return "";
}

TEST_F(HostAgentTest, shouldRunEachNodeAsASingleThreadedProcess) {
    // Its store connection watches its inbox without a thread of libxenstore's (store_way).
    const auto node = spawn("-", "temporary");
    ASSERT_GT(node.pid, 0);
    EXPECT_EQ(status_field(node.pid, "Threads:"), "1") << "node process " << node.pid;
}

TEST_F(HostAgentTest, shouldForkItsNodesFromAZygoteExecdAfreshNotFromACopyOfTheAgent) {
    // A copy of the agent would hand each node the agent's heap to make its own (zygote.hpp).
    const auto node = spawn("-", "temporary");
    ASSERT_GT(node.pid, 0);
    const std::string parent = status_field(node.pid, "PPid:");
    ASSERT_FALSE(parent.empty()) << "node process " << node.pid;
    std::ifstream cmdline("/proc/" + parent + "/cmdline");
    std::vector<std::string> argv;
    for (std::string arg; std::getline(cmdline, arg, '\0');) {
        argv.push_back(arg);
    }
    ASSERT_EQ(argv.size(), 3u) << "the node's parent " << parent << " is not an exec'd zygote";
    EXPECT_EQ(argv[1], "--zygote");
}

/// A process's mappings: path ("" for anonymous), permissions, size and AnonHugePages in KiB.
struct mapping {
    std::string path;
    std::string permissions;
    std::uint64_t kib = 0;
    std::uint64_t huge_kib = 0;
};

std::vector<mapping> mappings_of(pid_t pid) {
    std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
    std::vector<mapping> found;
    for (std::string line; std::getline(smaps, line);) {
        const auto w = words_of(line);
        if (w.size() >= 5 && w[0].find('-') != std::string::npos && w[1].size() == 4) {
            found.push_back({w.size() > 5 ? w[5] : "", w[1], 0, 0});
        } else if (!found.empty() && w.size() == 3 && w[0] == "Size:") {
            found.back().kib = std::stoull(w[1]);
        } else if (!found.empty() && w.size() == 3 && w[0] == "AnonHugePages:") {
            found.back().huge_kib = std::stoull(w[1]);
        }
    }
    return found;
}

TEST_F(HostAgentTest, shouldRunItsNodesWithAllTheirCodeAndConstantsOnHugePages) {
#if !VDIST_FULLY_STATIC
    GTEST_SKIP() << "this vdist is not linked for it (CMakeLists.txt, VDIST_FULLY_STATIC)";
#endif
    const auto node = spawn("-", "temporary");
    ASSERT_GT(node.pid, 0);
    const auto mappings = mappings_of(node.pid);
    ASSERT_FALSE(mappings.empty()) << "no mappings read for node process " << node.pid;
    for (const auto& m : mappings) {
        if (m.permissions == "r-xp" && m.path != "[vdso]" && m.path != "[vsyscall]") {
            EXPECT_TRUE(m.path.empty()) << "code still mapped from " << m.path;
        }
    }
    std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string modes;
    std::getline(thp, modes);
    const bool huge_pages = !modes.empty() && modes.find("[never]") == std::string::npos;
    for (const std::string permissions : {"r-xp", "r--p"}) {
        const auto moved = std::ranges::find_if(mappings, [&](const mapping& m) {
            return m.path.empty() && m.permissions == permissions && m.kib >= 2048;
        });
        ASSERT_NE(moved, mappings.end()) << "no anonymous " << permissions << " mapping of 2 MiB";
        if (huge_pages) {
            EXPECT_GE(moved->huge_kib, 2048u) << permissions << " is not on huge pages";
        }
    }
}

TEST_F(HostAgentTest, shouldListEveryNodeWithItsDomidWhenThreeAreSpawned) {
    std::vector<node_row> spawned;
    for (int i = 0; i < 3; ++i) {
        spawned.push_back(spawn("-", "permanent"));
    }
    const auto rows = ls();
    ASSERT_EQ(rows.size(), 3u);
    std::set<std::uint32_t> domids;
    for (const auto& s : spawned) {
        ASSERT_TRUE(rows.contains(s.name)) << s.name;
        EXPECT_EQ(rows.at(s.name).domid, s.domid);
        EXPECT_EQ(rows.at(s.name).pid, s.pid);
        EXPECT_EQ(rows.at(s.name).state, "running");
        EXPECT_NE(s.domid, 0u);
        domids.insert(s.domid);
        EXPECT_TRUE(
            has_key_under("/local/domain/" + std::to_string(s.domid) + "/data/vdist/node/name"));
    }
    EXPECT_EQ(domids.size(), 3u) << "domids are host-unique";
}

TEST_F(HostAgentTest, shouldRestartWithNewDomidAndNextGenerationWhenKilledWithSignal9) {
    const auto first = spawn("p", "permanent");
    ASSERT_NE(first.domid, 0u);
    ASSERT_EQ(request("kill p 9").front(), "ok");
    ASSERT_TRUE(test::eventually([&] {
        const auto rows = ls();
        return rows.contains(first.name) && rows.at(first.name).domid != first.domid &&
               rows.at(first.name).state == "running";
    })) << "not restarted";
    const auto again = ls().at(first.name);
    EXPECT_EQ(again.generation, 2u);
    EXPECT_GT(again.domid, first.domid) << "domids are not reused";
    EXPECT_NE(again.pid, first.pid);
    EXPECT_TRUE(process_gone(first.pid));
    EXPECT_FALSE(has_key_under("/local/domain/" + std::to_string(first.domid)))
        << "the dead domain's keys stay";
    EXPECT_TRUE(has_key_under("/local/domain/" + std::to_string(again.domid)));
}

TEST_F(HostAgentTest, shouldNotRestartWhenTemporaryNodeIsKilled) {
    const auto node = spawn("temp", "temporary");
    ASSERT_NE(node.domid, 0u);
    ASSERT_EQ(request("kill temp 9").front(), "ok");
    ASSERT_TRUE(test::eventually([&] { return ls().empty(); }));
    EXPECT_FALSE(has_key_under("/local/domain/" + std::to_string(node.domid)));
    EXPECT_TRUE(store_keys().empty()) << "the store keeps keys of a gone node";
}

TEST_F(HostAgentTest, shouldStopCleanlyAndNotRestartWhenKilledWithoutSignal) {
    const auto node = spawn("clean", "permanent");
    ASSERT_NE(node.domid, 0u);
    ASSERT_EQ(request("kill clean 0").front(), "ok");
    ASSERT_TRUE(test::eventually([&] { return ls().empty(); }));
    EXPECT_TRUE(process_gone(node.pid));
}

TEST_F(HostAgentTest, shouldGiveUpWhenRestartIntensityIsExceeded) {
    restart_agent({"--max-restarts", "2", "--period", "60"});
    ASSERT_NE(spawn("flaky", "permanent").domid, 0u);
    for (int kill = 0; kill < 3; ++kill) {
        const auto before = ls().at("flaky@localhost");
        ASSERT_EQ(before.state, "running");
        ASSERT_EQ(request("kill flaky 9").front(), "ok");
        ASSERT_TRUE(test::eventually([&] {
            const auto row = ls().at("flaky@localhost");
            return row.domid != before.domid && (row.state == "running" || row.state == "given_up");
        }));
    }
    const auto row = ls().at("flaky@localhost");
    EXPECT_EQ(row.state, "given_up");
    EXPECT_EQ(row.domid, 0u);
    EXPECT_TRUE(store_keys().empty());
}

TEST_F(HostAgentTest, shouldLeaveNoChildKeyOrSocketWhenAgentIsStopped) {
    std::vector<pid_t> pids;
    for (int i = 0; i < 3; ++i) {
        pids.push_back(spawn("-", i == 0 ? "temporary" : "permanent").pid);
    }
    agent_->kill(SIGTERM);
    const auto status = agent_->wait(10s);
    ASSERT_TRUE(status);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    for (const pid_t pid : pids) {
        EXPECT_TRUE(process_gone(pid)) << pid;
    }
    EXPECT_FALSE(std::filesystem::exists(dir_ / "agent.sock"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "store.sock"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "run"));
    agent_.reset();
}

TEST_F(HostAgentTest, shouldSpawnAndStopNodesWhenTheyAreExecutedRatherThanForked) {
    restart_agent({"--exec"});
    const auto node = spawn("-", "permanent");
    ASSERT_NE(node.domid, 0u);
    EXPECT_EQ(ls().at(node.name).state, "running");
    ASSERT_EQ(request("kill " + node.name + " 9").front(), "ok");
    ASSERT_TRUE(test::eventually([&] {
        const auto rows = ls();
        return rows.contains(node.name) && rows.at(node.name).generation == 2 &&
               rows.at(node.name).state == "running";
    }));
}

// A node asks its agent for a child (vdist_agent: {spawn, From, Ref}); the child's pid answers
// a message; the asking node then reaches the child over a ring (same host), as ls shows.
TEST_F(HostAgentTest, shouldReturnPidThatAnswersWhenNodeAsksForChild) {
    const auto parent = spawn("a" + host_, "temporary");
    ASSERT_NE(parent.domid, 0u);
    runtime::node tester(runtime::node_config{.name = "tester" + host_ + "@localhost"});
    auto dist = runtime::distribution::start(
        tester, runtime::distribution_config{.cookie = "vdist", .log = [](std::string_view) {}});
    ASSERT_TRUE(dist) << dist.error().message();
    const dist::atom parent_atom = tester.a(parent.name);
    std::string child_name;
    bool echoed = false;
    (void)tester.spawn([&](runtime::process& self) {
        const dist::reference ref = self.make_ref();
        self.send(tester.a("vdist_agent"), parent_atom,
                  dist::tuple{tester.a("spawn"), self.self(), ref});
        self.receive([&, ref](runtime::process& me, dist::term reply) {
            const auto* t = reply.get_if<dist::tuple>();
            if (t == nullptr || t->elements.size() != 4 || !(t->elements[1] == dist::term(ref)) ||
                !t->elements[3].is<dist::pid>()) {
                tester.stop();
                return;
            }
            child_name = std::string(t->elements[2].get_if<dist::atom>()->text());
            const dist::pid child_echo = *t->elements[3].get_if<dist::pid>();
            me.send(child_echo, dist::tuple{me.self(), tester.a("ping")});
            // The parent's echo sends to the child: a connection between two nodes of this host.
            me.send(tester.a("echo"), parent_atom, dist::tuple{child_echo, tester.a("hi")});
            me.receive([&](runtime::process&, dist::term back) {
                echoed = back == dist::term(tester.a("ping"));
                tester.stop();
            });
        });
    });
    tester.call_after(std::chrono::seconds(20), [&] { tester.stop(); });
    tester.run();
    EXPECT_TRUE(echoed) << "the child's pid did not answer";
    ASSERT_FALSE(child_name.empty()) << "no {spawned, ...} reply";
    EXPECT_TRUE(ls().contains(child_name));
    EXPECT_TRUE(test::eventually(
        [&] {
            for (const auto& line : request("ls")) {
                const auto w = words_of(line);
                // Up and used: the parent's echo sent the child `hi` over it.
                if (w.size() == 8 && w[0] == "conn" && w[1] == parent.name && w[2] == child_name) {
                    return w[3] == "ring" && w[5] != "0";
                }
            }
            return false;
        },
        5s))
        << "no ring connection from the parent to its child that carried a message";
    dist->reset();

    // The parent dies: its offers in other inboxes and its rendezvous sockets go with it.
    ASSERT_EQ(request("kill " + parent.name + " 9").front(), "ok");
    ASSERT_TRUE(test::eventually([&] { return !ls().contains(parent.name); }));
    const std::string offer_prefix = "/" + std::to_string(parent.domid) + "-";
    for (const auto& key : store_keys()) {
        EXPECT_EQ(key.find("/data/vdist/connect" + offer_prefix), std::string::npos) << key;
        EXPECT_FALSE(key.starts_with("/local/domain/" + std::to_string(parent.domid) + "/")) << key;
    }
    const std::string socket_prefix = "vchan." + std::to_string(parent.domid) + ".";
    for (const auto& file : std::filesystem::directory_iterator(dir_ / "run")) {
        EXPECT_FALSE(file.path().filename().string().starts_with(socket_prefix)) << file.path();
    }
}

// A node given a malformed first frame says why and exits (status 2), without starting.
TEST(FirstChannelTest, shouldExitWithClearErrorWhenFrameIsMalformed) {
    for (const std::string& garbage :
         {std::string("\xff\xff\xff\xff", 4), std::string("\0\0\0\3abc", 7)}) {
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
        // The child_process helper gives the child fd 3 when we dup our end there first.
        const int saved = ::dup(3);
        ASSERT_GE(::dup2(pair[1], 3), 0);
        test::child_process node(VDIST_BINARY, {"node", "--agent-fd", "3"},
                                 test::child_options{.merge_stderr = true});
        if (saved >= 0) {
            ::dup2(saved, 3);
            ::close(saved);
        } else {
            ::close(3);
        }
        ::close(pair[1]);
        ASSERT_EQ(::send(pair[0], garbage.data(), garbage.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(garbage.size()));
        const auto status = node.wait(10s);
        ASSERT_TRUE(status) << "the node did not exit";
        EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
        EXPECT_NE(node.output(2s).find("first channel"), std::string::npos);
        ::close(pair[0]);
    }
}

}  // namespace
}  // namespace vdist::discovery
