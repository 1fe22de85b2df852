// Distribution against real Erlang/OTP 25 nodes over TCP: a C++ node (runtime::distribution
// with the node services) and `erl` nodes that ping it, call it, spawn on it, link to and
// monitor its processes, die on it, stop ticking, use the wrong cookie, and send it large and
// many messages; raw sockets play hostile peers.
//
// Every test starts its own epmd on a free port (ERL_EPMD_PORT for erl, epmd_port for C++),
// its own erl nodes (interactive: the test sends Erlang expressions and reads their values,
// test/erlang.hpp) and its own C++ node. The C++ node runs in a thread of the test (cpp_node
// below) unless it must be killed with SIGKILL, then it is the `vdist node` program. Names are
// long names on 127.0.0.1, unique per test. Every wait is bounded; erl, epmd and vdist are
// children of the test, killed and reaped when the test ends, pass or fail; the node thread is
// joined under a watchdog.
//
// C++ processes that Erlang reaches are "puppets": the spawnable vdist_test:puppet(Tag,
// Controller), started by erlang:spawn/spawn_link/spawn_monitor(Cpp, vdist_test, puppet, ...)
// (SPAWN_REQUEST / SPAWN_REPLY), which does what Erlang tells it (link, monitor, exit, ...)
// and reports everything else it receives both to Controller, as {Tag, Message}, and to a
// journal the test reads on the node's thread.

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "vdist/dist/handshake.hpp"
#include "vdist/dist/protocol.hpp"
#include "vdist/dist/term_text.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/gen_server.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/runtime/node_services.hpp"
#include "vdist/test/bytes.hpp"
#include "vdist/test/child_process.hpp"
#include "vdist/test/erlang.hpp"
#include "vdist/test/eventually.hpp"
#include "vdist/test/handshake_driver.hpp"
#include "vdist/test/pattern.hpp"
#include "vdist/test/socket.hpp"

namespace vdist::runtime {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::tuple;

constexpr const char* cookie = "dtest-cookie";
constexpr auto wait_limit = 10s;      // anything that should happen at once
constexpr auto watchdog_limit = 30s;  // the node thread starting or stopping
const std::filesystem::path roundtrip_script = VDIST_ROUNDTRIP_SCRIPT;
const std::string vdist_cli = VDIST_CLI;

/// Polls `condition` every 20 ms for at most `limit` (default: wait_limit).
template <class Condition>
[[nodiscard]] bool eventually(Condition condition, std::chrono::milliseconds limit = wait_limit) {
    return test::eventually(std::move(condition), limit);
}

[[nodiscard]] bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

/// Whether a TCP connection to our listening `port` (accepted or still in the accept queue)
/// holds bytes nobody has read yet: /proc/net/tcp, local port `port`, ESTABLISHED, rx_queue > 0.
[[nodiscard]] bool unread_bytes_on_port(std::uint16_t port) {
    std::ifstream table("/proc/net/tcp");
    std::string line;
    std::getline(table, line);  // the header
    while (std::getline(table, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues;
        fields >> slot >> local >> remote >> state >> queues;
        const auto colon = local.find(':');
        const auto queue_colon = queues.find(':');
        if (colon == std::string::npos || queue_colon == std::string::npos || state != "01") {
            continue;
        }
        if (std::stoul(local.substr(colon + 1), nullptr, 16) == port &&
            std::stoul(queues.substr(queue_colon + 1), nullptr, 16) > 0) {
            return true;
        }
    }
    return false;
}

// --- the C++ node ----------------------------------------------------------------------------

/// What the test reaches on the node's thread: the node, its distribution, and what the
/// puppets recorded.
struct world {
    node& host;
    distribution& dist;
    std::map<std::string, std::vector<term>> journal;  // by puppet tag: messages, in order
    std::map<std::string, pid> puppets;                // by tag
};

/// A byte pattern Erlang rebuilds cheaply: byte i is i mod 256.
[[nodiscard]] dist::binary counting_binary(std::size_t size) {
    std::vector<std::byte> bytes(size);
    for (std::size_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<std::byte>(i & 0xff);
    }
    return dist::binary(bytes);
}

/// Whether `t` is {Name, Node}, both atoms.
[[nodiscard]] bool is_name_at_node(const term& t) {
    const auto* pair = t.get_if<tuple>();
    return pair != nullptr && pair->elements.size() == 2 && pair->elements[0].is<atom>() &&
           pair->elements[1].is<atom>();
}

/// vdist_test:puppet(Tag, Controller). Commands (anything else is journalled and forwarded to
/// Controller as {Tag, Message}):
///   {exit, R}                exit(R)
///   {link, Pid}              link, answers {Tag, linked}
///   {unlink, Pid}            unlink, answers {Tag, unlinked}
///   {monitor, Pid | {Name, Node}}   answers {Tag, {monitoring, Ref}}
///   {trap_exit, Bool}        answers {Tag, {trap_exit, Bool}}
///   {register, Name}         answers {Tag, {registered, Bool}}
///   {send_binary, To, Size}  To ! {self(), <<0, 1, ..., 255, 0, 1, ...>>} of Size bytes
///   {send_sequence, To, N}   To ! {seq, I} for I in 1..N, in one go
///   {sync, X}                answers {Tag, {sync, X}} (everything sent before has been handled)
[[nodiscard]] behavior puppet(world& w, std::string tag, pid controller) {
    return [&w, tag, controller](process& self) {
        w.puppets[tag] = self.self();
        self.become([&w, tag, controller](process& me, term message) {
            node& n = me.host();
            const auto answer = [&](term what) {
                me.send(controller, tuple{n.a(tag), std::move(what)});
            };
            const auto* t = message.get_if<tuple>();
            const auto is = [t](std::string_view name, std::size_t size) {
                return t != nullptr && t->elements.size() == size && is_atom(t->elements[0], name);
            };
            const auto argument = [t](std::size_t i) -> const term& { return t->elements[i]; };
            if (is("exit", 2)) {
                me.exit(argument(1));
            } else if (is("link", 2) && argument(1).is<pid>()) {
                me.link(*argument(1).get_if<pid>());
                answer(n.a("linked"));
            } else if (is("unlink", 2) && argument(1).is<pid>()) {
                me.unlink(*argument(1).get_if<pid>());
                answer(n.a("unlinked"));
            } else if (is("monitor", 2) && argument(1).is<pid>()) {
                answer(tuple{n.a("monitoring"), me.monitor(*argument(1).get_if<pid>())});
            } else if (is("monitor", 2) && is_name_at_node(argument(1))) {
                const auto& target = argument(1).get_if<tuple>()->elements;
                const reference ref =
                    me.monitor(*target[0].get_if<atom>(), *target[1].get_if<atom>());
                answer(tuple{n.a("monitoring"), ref});
            } else if (is("trap_exit", 2)) {
                me.trap_exit(is_atom(argument(1), "true"));
                answer(tuple{n.a("trap_exit"), argument(1)});
            } else if (is("register", 2) && argument(1).is<atom>()) {
                const bool done = me.register_name(*argument(1).get_if<atom>());
                answer(tuple{n.a("registered"), n.a(done ? "true" : "false")});
            } else if (is("send_binary", 3) && argument(1).is<pid>() &&
                       argument(2).is<std::int64_t>()) {
                const auto size = static_cast<std::size_t>(*argument(2).get_if<std::int64_t>());
                me.send(*argument(1).get_if<pid>(), tuple{me.self(), counting_binary(size)});
            } else if (is("send_sequence", 3) && argument(1).is<pid>() &&
                       argument(2).is<std::int64_t>()) {
                const auto count = *argument(2).get_if<std::int64_t>();
                for (std::int64_t i = 1; i <= count; ++i) {
                    me.send(*argument(1).get_if<pid>(), tuple{n.a("seq"), i});
                }
            } else if (is("sync", 2)) {
                answer(tuple{n.a("sync"), argument(1)});
            } else {
                w.journal[tag].push_back(message);
                answer(std::move(message));
            }
        });
    };
}

/// A C++ node with distribution and the node services (net_kernel, rex, erpc, echo) running in
/// a thread of the test, plus the spawnable vdist_test:puppet/2. The test reaches it only
/// through run_on(), which runs a task on the node's thread and hands back its result, so no
/// term or atom of the node is touched from another thread. The log is collected.
class cpp_node {
  public:
    cpp_node(std::string name, distribution_config config)
        : name_(std::move(name)), config_(std::move(config)) {
        wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        config_.log = [this](std::string_view line) {
            const std::lock_guard lock(mutex_);
            log_.emplace_back(line);
        };
        finished_ = finished_promise_.get_future();
        thread_ = std::thread([this] { run(); });
        std::unique_lock lock(mutex_);
        if (!started_.wait_for(lock, watchdog_limit,
                               [this] { return state_ != phase::starting; })) {
            std::fprintf(stderr, "watchdog: the C++ node did not start; aborting\n");
            std::abort();
        }
    }
    cpp_node(const cpp_node&) = delete;
    cpp_node& operator=(const cpp_node&) = delete;
    ~cpp_node() { stop(); }

    [[nodiscard]] bool running() const {
        const std::lock_guard lock(mutex_);
        return state_ == phase::running;
    }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] const std::string& start_error() const noexcept { return start_error_; }

    /// Runs `task(world&)` on the node's thread and returns its result, or nullopt if the node
    /// did not run it within `timeout` (or it threw: then the test fails).
    template <class Task>
    auto run_on(Task task, std::chrono::milliseconds timeout = wait_limit)
        -> std::optional<std::invoke_result_t<Task&, world&>> {
        using result = std::invoke_result_t<Task&, world&>;
        static_assert(!std::is_void_v<result>, "a task returns what the test checks");
        auto promise = std::make_shared<std::promise<result>>();
        auto future = promise->get_future();
        post([promise, task](world& w) mutable {
            try {
                promise->set_value(task(w));
            } catch (...) {
                promise->set_exception(std::current_exception());
            }
        });
        if (future.wait_for(timeout) != std::future_status::ready) {
            ADD_FAILURE() << "the C++ node did not run a task within " << timeout.count() << " ms";
            return std::nullopt;
        }
        try {
            return future.get();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "a task on the C++ node threw: " << e.what();
        } catch (...) {
            ADD_FAILURE() << "a task on the C++ node threw";
        }
        return std::nullopt;
    }

    /// The journal of puppet `tag`, as Erlang text.
    [[nodiscard]] std::vector<std::string> journal(const std::string& tag) {
        return run_on([tag](world& w) {
                   std::vector<std::string> texts;
                   for (const term& t : w.journal[tag]) {
                       texts.push_back(dist::to_erlang_text(t));
                   }
                   return texts;
               })
            .value_or(std::vector<std::string>{});
    }
    /// Waits until the journal of `tag` has at least `count` entries; returns it.
    [[nodiscard]] std::vector<std::string> await_journal(
        const std::string& tag, std::size_t count, std::chrono::milliseconds limit = wait_limit) {
        std::vector<std::string> texts;
        (void)eventually(
            [&] {
                texts = journal(tag);
                return texts.size() >= count;
            },
            limit);
        return texts;
    }

    /// Names of the peers with a connection that is up.
    [[nodiscard]] std::vector<std::string> peers(bool hidden) {
        return run_on([hidden](world& w) {
                   std::vector<std::string> names;
                   for (const atom peer : w.dist.nodes(hidden)) {
                       names.emplace_back(peer.text());
                   }
                   std::ranges::sort(names);
                   return names;
               })
            .value_or(std::vector<std::string>{});
    }
    /// Every connection (up or being set up).
    [[nodiscard]] std::size_t connection_count() {
        return run_on([](world& w) { return w.dist.connections().size(); }).value_or(0);
    }

    /// The log so far.
    [[nodiscard]] std::vector<std::string> log() const {
        const std::lock_guard lock(mutex_);
        return log_;
    }
    [[nodiscard]] std::string log_text() const {
        std::string text;
        for (const auto& line : log()) {
            text += line + "\n";
        }
        return text;
    }
    /// The first log line that contains every one of `parts`, waiting up to `limit`.
    [[nodiscard]] std::optional<std::string> await_log(
        std::vector<std::string> parts, std::chrono::milliseconds limit = wait_limit) {
        std::optional<std::string> found;
        (void)eventually(
            [&] {
                for (const auto& line : log()) {
                    if (std::ranges::all_of(parts,
                                            [&](const auto& p) { return contains(line, p); })) {
                        found = line;
                        return true;
                    }
                }
                return false;
            },
            limit);
        return found;
    }

    /// Stops the node's loop and joins its thread (watchdog: aborts after watchdog_limit).
    void stop() {
        if (!thread_.joinable()) {
            return;
        }
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake();
        if (finished_.wait_for(watchdog_limit) != std::future_status::ready) {
            std::fprintf(stderr, "watchdog: the C++ node did not stop; aborting\n");
            std::abort();
        }
        thread_.join();
        ::close(wake_fd_);
    }

  private:
    enum class phase { starting, running, failed, stopped };

    void post(std::function<void(world&)> task) {
        {
            const std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        wake();
    }
    void wake() const {
        const std::uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
    }

    void run() {
        node host(node_config{.name = name_});
        auto started = distribution::start(host, config_);
        if (!started) {
            const std::lock_guard lock(mutex_);
            start_error_ = started.error().message();
            state_ = phase::failed;
            started_.notify_all();
            finished_promise_.set_value();
            return;
        }
        distribution& dist = **started;
        start_node_services(host, dist, rpc_functions::with_builtins(&dist));
        world w{host, dist, {}, {}};
        dist.register_spawnable(
            "vdist_test", "puppet", [&w](const list& arguments) -> std::optional<behavior> {
                const auto& a = arguments.elements;
                if (a.size() != 2 || !a[0].is<atom>() || !a[1].is<pid>()) {
                    return std::nullopt;
                }
                return puppet(w, std::string(a[0].get_if<atom>()->text()), *a[1].get_if<pid>());
            });
        host.watch_fd(wake_fd_, [this, &host, &w] {
            std::uint64_t count = 0;
            (void)!::read(wake_fd_, &count, sizeof count);
            std::deque<std::function<void(world&)>> tasks;
            bool stop = false;
            {
                const std::lock_guard lock(mutex_);
                tasks.swap(tasks_);
                stop = stopping_;
            }
            for (auto& task : tasks) {
                task(w);
            }
            if (stop) {
                host.stop();
            }
        });
        {
            const std::lock_guard lock(mutex_);
            port_ = dist.listen_port();
            state_ = phase::running;
            started_.notify_all();
        }
        host.run();
        host.unwatch_fd(wake_fd_);
        started->reset();  // disconnects, unregisters; before the world and the node go
        {
            const std::lock_guard lock(mutex_);
            state_ = phase::stopped;
            tasks_.clear();  // never run: their futures report a broken promise
        }
        finished_promise_.set_value();
    }

    std::string name_;
    distribution_config config_;
    int wake_fd_ = -1;
    std::thread thread_;
    std::promise<void> finished_promise_;
    std::future<void> finished_;

    mutable std::mutex mutex_;  // guards everything below
    std::condition_variable started_;
    phase state_ = phase::starting;
    std::uint16_t port_ = 0;
    std::string start_error_;
    bool stopping_ = false;
    std::deque<std::function<void(world&)>> tasks_;
    std::vector<std::string> log_;
};

// --- the fixture ------------------------------------------------------------------------------

class DistributionErlangTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (test::on_path("erl").empty() || test::on_path("epmd").empty()) {
            GTEST_SKIP() << "erl and epmd (Debian erlang-nox) are not installed";
        }
        static int tests_in_this_process = 0;
        suffix_ = std::to_string(::getpid()) + "_" + std::to_string(++tests_in_this_process);
        epmd_.emplace();
        ASSERT_TRUE(epmd_->answers()) << "the private epmd did not start";
    }

    void TearDown() override {
        cpp_.reset();  // joined under a watchdog
        cli_.reset();  // SIGKILL, reaped
        erlangs_.clear();
        epmd_.reset();
        for (const auto& file : temporary_files_) {
            std::error_code ignored;
            std::filesystem::remove(file, ignored);
        }
    }

    /// `alive_<unique>@127.0.0.1`.
    [[nodiscard]] std::string node_name(std::string_view alive) const {
        return std::string(alive) + "_" + suffix_ + "@127.0.0.1";
    }
    [[nodiscard]] std::string cpp_name() const { return node_name("cpp"); }

    /// The C++ node in this process, registered in the private epmd as cpp_<unique>, with the
    /// test's cookie unless `adjust` changes it or other settings. Visible unless `adjust` makes
    /// it hidden (the library's default): the tests check nodes() on the Erlang side, and none
    /// calls global:sync().
    cpp_node& start_cpp(const std::function<void(distribution_config&)>& adjust = {}) {
        distribution_config config;
        config.cookie = cookie;
        config.hidden = false;
        if (adjust) {
            adjust(config);
        }
        config.listen_address = "127.0.0.1";
        config.epmd_port = epmd_->port();
        config.start_epmd = false;  // ours runs; never a daemon from a test
        cpp_.emplace(cpp_name(), std::move(config));
        EXPECT_TRUE(cpp_->running()) << cpp_->start_error();
        return *cpp_;
    }

    /// The C++ node as the `vdist node` program (when the test kills it); up once it said so.
    test::child_process& start_cli(const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{"ERL_EPMD_PORT=" + std::to_string(epmd_->port()),
                                      vdist_cli,
                                      "node",
                                      "--name",
                                      cpp_name(),
                                      "--cookie",
                                      cookie,
                                      "--visible"};
        args.insert(args.end(), extra.begin(), extra.end());
        cli_.emplace("/usr/bin/env", args, test::child_options{.merge_stderr = true});
        const std::string ready = "node " + cpp_name() + " up on port";
        const auto deadline = std::chrono::steady_clock::now() + wait_limit;
        while (!contains(cli_output_, ready) && std::chrono::steady_clock::now() < deadline) {
            const auto got = cli_->read_some(100ms);
            if (!got) {
                break;
            }
            cli_output_ += *got;
        }
        EXPECT_TRUE(contains(cli_output_, ready)) << cli_output_;
        return *cli_;
    }

    /// An interactive erl named `alive_<unique>@127.0.0.1` with `extra` arguments and its
    /// helpers bound: Cpp (the C++ node's name), Recv(Timeout) (the next message or timeout)
    /// and Flush() (every message in the mailbox).
    test::erlang_node& start_erlang(std::string_view alive, std::vector<std::string> extra = {},
                                    const std::string& erl_cookie = cookie) {
        std::vector<std::string> args{"-name", node_name(alive), "-setcookie", erl_cookie};
        args.insert(args.end(), extra.begin(), extra.end());
        auto& erl = *erlangs_.emplace_back(std::make_unique<test::erlang_node>(
            epmd_->port(), args, test::erlang_node::interactive));
        EXPECT_EQ(erl.eval("Cpp = '" + cpp_name() +
                           "', Recv = fun(T) -> receive M -> M after T -> timeout end end, "
                           "Flush = fun F() -> receive M -> [M | F()] after 0 -> [] end end, ok."),
                  "ok")
            << erl.output();
        return erl;
    }

    /// Spawns a process on the C++ node that pings `peer` (net_adm_ping) and journals the
    /// answer under `tag`.
    void ping_from_cpp(const std::string& peer, const std::string& tag) {
        (void)cpp_->run_on([peer, tag](world& w) {
            const atom peer_atom = w.host.a(peer);
            return w.host.spawn([&w, peer_atom, tag](process& self) {
                net_adm_ping(self, peer_atom, wait_limit, [&w, tag](process&, atom result) {
                    w.journal[tag].emplace_back(result);
                });
            });
        });
    }

    /// Spawns a process on the C++ node that calls the gen_server {name, node} with what
    /// `request` makes (given the caller) and journals {reply, R} or {error, Reason} under
    /// `tag`.
    void call_from_cpp(const std::string& tag, const std::string& name, const std::string& node,
                       std::function<term(process&)> request) {
        (void)cpp_->run_on([tag, name, node, request](world& w) {
            const gen_server::remote_name server{w.host.a(name), w.host.a(node)};
            return w.host.spawn([&w, tag, server, request](process& self) {
                gen_server::call(
                    self, server, request(self), wait_limit,
                    [&w, tag](process& me, term reply) {
                        w.journal[tag].emplace_back(tuple{me.host().a("reply"), std::move(reply)});
                    },
                    [&w, tag](process& me, term reason) {
                        w.journal[tag].emplace_back(tuple{me.host().a("error"), std::move(reason)});
                    });
            });
        });
    }

    std::string suffix_;
    std::optional<test::private_epmd> epmd_;
    std::optional<cpp_node> cpp_;
    std::optional<test::child_process> cli_;
    std::string cli_output_;
    std::vector<std::unique_ptr<test::erlang_node>> erlangs_;
    std::vector<std::filesystem::path> temporary_files_;  // removed at TearDown
};

// --- 1. ping, nodes(), calls from C++ ---------------------------------------------------------

TEST_F(DistributionErlangTest, shouldAnswerPongAndBeListedInNodesWhenErlangPingsAVisibleNode) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong") << cpp.log_text();

    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes())."), "true");
    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes(hidden))."), "false");
    EXPECT_EQ(cpp.peers(false), std::vector<std::string>{node_name("e1")});
    EXPECT_TRUE(cpp.peers(true).empty());
    const auto accepted = cpp.run_on([](world& w) {
        const auto all = w.dist.connections();
        return all.size() == 1 && all[0].up && !all[0].initiated && !all[0].peer_hidden;
    });
    EXPECT_EQ(accepted, true);
}

TEST_F(DistributionErlangTest, shouldBeListedOnlyInNodesHiddenWhenAHiddenNodeIsPinged) {
    auto& cpp = start_cpp([](auto& c) { c.hidden = true; });
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong") << cpp.log_text();

    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes())."), "false");
    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes(hidden))."), "true");
    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes(connected))."), "true");
    // erl itself is visible to us.
    EXPECT_EQ(cpp.peers(false), std::vector<std::string>{node_name("e1")});
}

TEST_F(DistributionErlangTest, shouldGetPongWhenTheCppNodePingsErlang) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");

    ping_from_cpp(node_name("e1"), "ping");
    ping_from_cpp(node_name("nobody"), "nobody");

    EXPECT_EQ(cpp.await_journal("ping", 1), std::vector<std::string>{"pong"}) << cpp.log_text();
    EXPECT_EQ(cpp.await_journal("nobody", 1), std::vector<std::string>{"pang"});
    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes())."), "true");
    const auto initiated = cpp.run_on([](world& w) {
        const auto all = w.dist.connections();
        return all.size() == 1 && all[0].up && all[0].initiated;
    });
    EXPECT_EQ(initiated, true);
}

TEST_F(DistributionErlangTest, shouldGetTheReplyWhenACppProcessCallsAnErlangGenServer) {
    auto& cpp = start_cpp();
    start_erlang("e1");
    const std::string e1 = node_name("e1");

    // rex, Erlang's rpc server: {call, M, F, A, GroupLeader}.
    call_from_cpp("rex", "rex", e1, [](process& self) {
        node& n = self.host();
        return term(
            tuple{n.a("call"), n.a("lists"), n.a("reverse"), list{list{1, 2, 3}}, self.self()});
    });
    call_from_cpp("nosuch", "nosuch", e1, [](process& self) { return term(self.host().a("x")); });
    call_from_cpp("nobody", "rex", node_name("nobody"),
                  [](process& self) { return term(self.host().a("x")); });

    EXPECT_EQ(cpp.await_journal("rex", 1), std::vector<std::string>{"{reply,[3,2,1]}"})
        << cpp.log_text();
    EXPECT_EQ(cpp.await_journal("nosuch", 1), std::vector<std::string>{"{error,noproc}"});
    EXPECT_EQ(cpp.await_journal("nobody", 1),
              std::vector<std::string>{"{error,{nodedown,'" + node_name("nobody") + "'}}"});
}

// --- 2. echo, rpc, erpc ----------------------------------------------------------------------

TEST_F(DistributionErlangTest, shouldEchoEveryRandomTermWhenErlangCallsAndSendsToTheEchoServer) {
    // The random terms of the ETF round trip (every tag, every encoding boundary), made by
    // Erlang with a fixed seed.
    const auto escript = test::on_path("escript");
    ASSERT_FALSE(escript.empty());
    const auto terms_file =
        std::filesystem::path(::testing::TempDir()) / ("dist_echo_terms_" + suffix_ + ".bin");
    temporary_files_.push_back(terms_file);
    test::child_process generate(
        escript, {roundtrip_script.string(), "generate", "20261201", "3000", terms_file.string()});
    const std::string generated = generate.output(60s);
    ASSERT_EQ(generate.wait(60s), 0) << generated;
    start_cpp();
    auto& erl = start_erlang("e1");

    ASSERT_EQ(erl.eval("{ok, File} = file:read_file(\"" + terms_file.string() +
                       "\"), Terms = (fun Read(<<L:32, E:L/binary, Rest/binary>>) -> "
                       "[binary_to_term(E) | Read(Rest)]; Read(<<>>) -> [] end)(File), "
                       "length(Terms)."),
              "3000");
    // Exactly the same term: =:= and, since 0.0 =:= -0.0 in OTP 25, the same minimal bytes.
    ASSERT_EQ(erl.eval("Same = fun(A, B) -> A =:= B andalso term_to_binary(A, [{minor_version, "
                       "2}]) =:= term_to_binary(B, [{minor_version, 2}]) end, ok."),
              "ok");

    EXPECT_EQ(erl.eval("CallBad = [T || T <- Terms, not Same(gen_server:call({echo, Cpp}, T, "
                       "10000), T)], length(CallBad).",
                       60s),
              "0")
        << erl.eval("hd(CallBad).");
    EXPECT_EQ(erl.eval("[{echo, Cpp} ! {self(), T} || T <- Terms], SendBad = [{T, R} || T <- "
                       "Terms, R <- [Recv(10000)], not Same(R, T)], length(SendBad).",
                       60s),
              "0")
        << erl.eval("hd(SendBad).");
}

TEST_F(DistributionErlangTest, shouldAnswerRpcAndErpcCallsWhenTheFunctionIsABuiltin) {
    start_cpp();
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("rpc:call(Cpp, erlang, node, []) =:= Cpp."), "true");
    EXPECT_EQ(erl.eval("rpc:call(Cpp, erlang, nodes, []) =:= [node()]."), "true");
    EXPECT_EQ(erl.eval("rpc:call(Cpp, lists, reverse, [[1, 2, 3]])."), "[3,2,1]");
    EXPECT_EQ(erl.eval("rpc:call(Cpp, vdist, echo, [{a, <<\"b\">>, 1.5, [c]}])."),
              "{a,<<98>>,1.5,[c]}");
    EXPECT_EQ(erl.eval("is_pid(rpc:call(Cpp, erlang, whereis, [echo]))."), "true");
    EXPECT_EQ(erl.eval("rpc:call(Cpp, erlang, whereis, [nobody])."), "undefined");
    EXPECT_EQ(erl.eval("erpc:call(Cpp, erlang, node, []) =:= Cpp."), "true");
    EXPECT_EQ(erl.eval("erpc:call(Cpp, lists, reverse, [[a, b]], 5000)."), "[b,a]");
    // The rex server directly, as nodes without DFLAG_SPAWN reach it.
    EXPECT_EQ(erl.eval("gen_server:call({rex, Cpp}, {call, lists, reverse, [[1, 2]], user})."),
              "[2,1]");
    // A cast runs and answers nothing; the connection goes on working.
    EXPECT_EQ(erl.eval("erpc:cast(Cpp, vdist, echo, [x])."), "ok");
    EXPECT_EQ(erl.eval("rpc:call(Cpp, vdist, echo, [y])."), "y");
}

TEST_F(DistributionErlangTest, shouldFailWithUndefWhenAnRpcOrErpcFunctionIsUnknown) {
    start_cpp();
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("rpc:call(Cpp, nosuch, f, [1])."),
              "{badrpc,{'EXIT',{undef,[{nosuch,f,[1],[]}]}}}");
    EXPECT_EQ(erl.eval("try erpc:call(Cpp, nosuch, f, [1]) catch Class:Reason -> {Class, Reason} "
                       "end."),
              "{error,{exception,undef,[{nosuch,f,[1],[]}]}}");
    // A builtin with the wrong arity is unknown too.
    EXPECT_EQ(erl.eval("rpc:call(Cpp, erlang, node, [x])."),
              "{badrpc,{'EXIT',{undef,[{erlang,node,[x],[]}]}}}");
    EXPECT_EQ(erl.eval("gen_server:call({rex, Cpp}, {call, nosuch, f, [], user})."),
              "{badrpc,{'EXIT',{undef,[{nosuch,f,[],[]}]}}}");
}

// --- 3. links and monitors, both ways ------------------------------------------------------

TEST_F(DistributionErlangTest, shouldDeliverTheExitReasonToALinkedErlangProcessWhenCppExits) {
    start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("process_flag(trap_exit, true), P1 = spawn_link(Cpp, vdist_test, puppet, "
                       "[p1, self()]), P2 = spawn_link(Cpp, vdist_test, puppet, [p2, self()]), "
                       "node(P1) =:= Cpp andalso node(P2) =:= Cpp."),
              "true");

    EXPECT_EQ(erl.eval("P1 ! {exit, {shutdown, because}}, receive {'EXIT', P1, R1} -> R1 after "
                       "5000 -> timeout end."),
              "{shutdown,because}");
    // An exit signal from Erlang that cannot be trapped comes back as killed.
    EXPECT_EQ(erl.eval("exit(P2, kill), receive {'EXIT', P2, R2} -> R2 after 5000 -> timeout "
                       "end."),
              "killed");
    // A process ending normally is seen by a trapping linked process too.
    EXPECT_EQ(erl.eval("P3 = spawn_link(Cpp, vdist_test, puppet, [p3, self()]), P3 ! {exit, "
                       "normal}, receive {'EXIT', P3, R3} -> R3 after 5000 -> timeout end."),
              "normal");
    EXPECT_EQ(erl.eval("Flush()."), "[]");
}

TEST_F(DistributionErlangTest, shouldPassAnErlangExitToALinkedCppProcessWhenItTrapsExits) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("E = spawn(fun() -> receive {die, Why} -> exit(Why) end end), P = "
                       "spawn(Cpp, vdist_test, puppet, [p, self()]), P ! {trap_exit, true}, P ! "
                       "{link, E}, receive {p, linked} -> ok after 5000 -> timeout end."),
              "ok");
    // And a link Erlang made to a C++ process (LINK from the other side).
    ASSERT_EQ(erl.eval("E2 = spawn(fun() -> link(P), receive {die, Why} -> exit(Why) end end), "
                       "P ! {sync, 1}, receive {p, {sync, 1}} -> ok after 5000 -> timeout end."),
              "ok");

    EXPECT_EQ(erl.eval("E ! {die, {custom, [1, 2]}}, receive {p, {'EXIT', E, R}} -> R after 5000 "
                       "-> timeout end."),
              "{custom,[1,2]}");
    EXPECT_EQ(erl.eval("E2 ! {die, boom}, receive {p, {'EXIT', E2, R2}} -> R2 after 5000 -> "
                       "timeout end."),
              "boom");
    const auto journal = cpp.journal("p");
    ASSERT_EQ(journal.size(), 2u);
    EXPECT_TRUE(journal[0].starts_with("{'EXIT',#Pid<'" + node_name("e1") + "'."));
    EXPECT_TRUE(journal[0].ends_with(",{custom,[1,2]}}")) << journal[0];
    EXPECT_TRUE(journal[1].ends_with(",boom}")) << journal[1];
}

TEST_F(DistributionErlangTest, shouldEndALinkedCppProcessWhenAnErlangProcessExitsAndItDoesNotTrap) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("E = spawn(fun() -> receive {die, Why} -> exit(Why) end end), P = "
                       "spawn(Cpp, vdist_test, puppet, [p, self()]), M = erlang:monitor(process, "
                       "P), P ! {link, E}, receive {p, linked} -> ok after 5000 -> timeout end."),
              "ok");

    EXPECT_EQ(erl.eval("E ! {die, boom}, receive {'DOWN', M, process, P, R} -> R after 5000 -> "
                       "timeout end."),
              "boom");
    // `normal` from a linked process does not end one that does not trap.
    EXPECT_EQ(
        erl.eval("E2 = spawn(fun() -> receive {die, Why} -> exit(Why) end end), Q = "
                 "spawn(Cpp, vdist_test, puppet, [q, self()]), Q ! {link, E2}, receive {q, "
                 "linked} -> ok after 5000 -> timeout end, E2 ! {die, normal}, Q ! {sync, 2}, "
                 "receive {q, {sync, 2}} -> alive after 5000 -> timeout end."),
        "alive");
    const auto alive = cpp.run_on([](world& w) {
        return std::pair{w.host.alive(w.puppets.at("p")), w.host.alive(w.puppets.at("q"))};
    });
    EXPECT_EQ(alive, std::pair(false, true));
    EXPECT_TRUE(cpp.journal("p").empty());
}

TEST_F(DistributionErlangTest, shouldDeliverNoExitSignalWhenTheLinkWasRemovedFirst) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");

    // Erlang unlinks from a C++ process, which then exits: a 'DOWN' comes, no 'EXIT'.
    EXPECT_EQ(erl.eval("process_flag(trap_exit, true), P = spawn_link(Cpp, vdist_test, puppet, "
                       "[p, self()]), unlink(P), M = erlang:monitor(process, P), P ! {exit, boom}, "
                       "receive {'DOWN', M, process, P, R} -> R after 5000 -> timeout end."),
              "boom");
    EXPECT_EQ(erl.eval("receive {'EXIT', P, _} = X -> X after 200 -> none end."), "none");

    // A C++ process unlinks from an Erlang process, which then exits: nothing reaches it.
    EXPECT_EQ(erl.eval("E = spawn(fun() -> receive {die, Why} -> exit(Why) end end), Q = "
                       "spawn(Cpp, vdist_test, puppet, [q, self()]), Q ! {trap_exit, true}, Q ! "
                       "{link, E}, Q ! {unlink, E}, receive {q, unlinked} -> ok after 5000 -> "
                       "timeout end."),
              "ok");
    EXPECT_EQ(erl.eval("ME = erlang:monitor(process, E), E ! {die, boom}, receive {'DOWN', ME, _, "
                       "_, _} -> ok after 5000 -> timeout end, Q ! {sync, 1}, receive {q, {sync, "
                       "1}} -> ok after 5000 -> timeout end."),
              "ok");
    EXPECT_EQ(erl.eval("[X || {q, {'EXIT', _, _}} = X <- Flush()]."), "[]");
    EXPECT_TRUE(cpp.journal("q").empty());
    EXPECT_EQ(cpp.run_on([](world& w) { return w.host.alive(w.puppets.at("q")); }), true);
}

TEST_F(DistributionErlangTest, shouldSendDownToErlangMonitorsWhenACppProcessExits) {
    start_cpp();
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("P = spawn(Cpp, vdist_test, puppet, [p, self()]), M = "
                       "erlang:monitor(process, P), P ! {exit, {bye, 1}}, receive {'DOWN', M, "
                       "process, P, R} -> R after 5000 -> timeout end."),
              "{bye,1}");
    // By name: the 'DOWN' names {Name, Node}.
    EXPECT_EQ(erl.eval("Q = spawn(Cpp, vdist_test, puppet, [q, self()]), Q ! {register, worker}, "
                       "receive {q, {registered, true}} -> ok after 5000 -> timeout end, MQ = "
                       "erlang:monitor(process, {worker, Cpp}), Q ! {exit, bye}, receive {'DOWN', "
                       "MQ, process, {worker, Cpp}, RQ} -> RQ after 5000 -> timeout end."),
              "bye");
    // spawn_monitor: SPAWN_REQUEST with the monitor option.
    EXPECT_EQ(erl.eval("{S, MS} = spawn_monitor(Cpp, vdist_test, puppet, [s, self()]), S ! {exit, "
                       "done}, receive {'DOWN', MS, process, S, RS} -> RS after 5000 -> timeout "
                       "end."),
              "done");
    // A monitor removed before the exit fires nothing.
    EXPECT_EQ(erl.eval("T = spawn(Cpp, vdist_test, puppet, [t, self()]), MT = "
                       "erlang:monitor(process, T), true = erlang:demonitor(MT), T ! {exit, x}, "
                       "receive {'DOWN', MT, _, _, _} = D -> D after 300 -> none end."),
              "none");
}

TEST_F(DistributionErlangTest, shouldSendDownNoprocWhenErlangMonitorsANameOrPidThatIsNotThere) {
    start_cpp();
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("M = erlang:monitor(process, {nosuch, Cpp}), receive {'DOWN', M, process, "
                       "{nosuch, Cpp}, R} -> R after 5000 -> timeout end."),
              "noproc");
    EXPECT_EQ(erl.eval("P = spawn(Cpp, vdist_test, puppet, [p, self()]), MP = "
                       "erlang:monitor(process, P), P ! {exit, gone}, receive {'DOWN', MP, _, _, "
                       "_} -> ok after 5000 -> timeout end, M2 = erlang:monitor(process, P), "
                       "receive {'DOWN', M2, process, P, R2} -> R2 after 5000 -> timeout end."),
              "noproc");
}

TEST_F(DistributionErlangTest, shouldSendDownToCppMonitorsWhenAnErlangProcessExits) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("P = spawn(Cpp, vdist_test, puppet, [p, self()]), ok."), "ok");

    EXPECT_EQ(erl.eval("E = spawn(fun() -> receive {die, Why} -> exit(Why) end end), P ! "
                       "{monitor, E}, Ref = receive {p, {monitoring, R0}} -> R0 after 5000 -> "
                       "timeout end, E ! {die, oops}, receive {p, {'DOWN', Ref, process, E, R}} -> "
                       "R after 5000 -> timeout end."),
              "oops");
    // By name ({Name, Node}), as the 'DOWN' names it.
    EXPECT_EQ(erl.eval("E2 = spawn(fun() -> register(target, self()), receive {die, Why} -> "
                       "exit(Why) end end), P ! {sync, 1}, receive {p, {sync, 1}} -> ok end, P ! "
                       "{monitor, {target, node()}}, Ref2 = receive {p, {monitoring, R1}} -> R1 "
                       "after 5000 -> timeout end, E2 ! {die, {oops, 2}}, receive {p, {'DOWN', "
                       "Ref2, process, {target, N2}, R2}} -> {N2 =:= node(), R2} after 5000 -> "
                       "timeout end."),
              "{true,{oops,2}}");
    // A name nobody has: noproc at once.
    EXPECT_EQ(erl.eval("P ! {monitor, {nosuch, node()}}, Ref3 = receive {p, {monitoring, R4}} -> "
                       "R4 after 5000 -> timeout end, receive {p, {'DOWN', Ref3, process, "
                       "{nosuch, _}, R3}} -> R3 after 5000 -> timeout end."),
              "noproc");
    const auto journal = cpp.journal("p");
    ASSERT_EQ(journal.size(), 3u);
    EXPECT_TRUE(journal[0].starts_with("{'DOWN',#Ref<'" + cpp_name() + "'.")) << journal[0];
    EXPECT_TRUE(journal[1].ends_with(",process,{target,'" + node_name("e1") + "'},{oops,2}}"))
        << journal[1];
}

TEST_F(DistributionErlangTest, shouldReplyBadargWhenErlangSpawnsAFunctionThatIsNotRegistered) {
    start_cpp();
    auto& erl = start_erlang("e1");

    EXPECT_EQ(erl.eval("Ref = erlang:spawn_request(Cpp, nosuch, f, [], []), receive "
                       "{spawn_reply, Ref, error, R} -> R after 5000 -> timeout end."),
              "badarg");
    // Wrong arguments for a registered one are refused the same way.
    EXPECT_EQ(erl.eval("Ref2 = erlang:spawn_request(Cpp, vdist_test, puppet, [only_one], []), "
                       "receive {spawn_reply, Ref2, error, R2} -> R2 after 5000 -> timeout end."),
              "badarg");
    EXPECT_EQ(erl.eval("Ref3 = erlang:spawn_request(Cpp, vdist_test, puppet, [p, self()], []), "
                       "receive {spawn_reply, Ref3, ok, P} -> node(P) =:= Cpp after 5000 -> "
                       "timeout end."),
              "true");
}

// --- both nodes connect at once -----------------------------------------------------------------

// Both nodes connect at once: our loop is held while erl starts connecting (its send_name waits
// in our accept queue), then we connect before handling it. OTP and we must settle it the same
// way: the node with the greater name keeps its own attempt and answers nok to the other's,
// the other gives way (ok_simultaneous), whichever name is greater: a1 < cpp < e1.
//
// Which of the two sockets our loop reads first is up to epoll, so the test holds erl's
// net_kernel until we have read erl's attempt; the other order is the next test's.
struct simultaneous_case {
    const char* erlang_alive;
    bool ours_kept;  // our attempt (initiated) is the one that stays

    friend void PrintTo(const simultaneous_case& c, std::ostream* out) {
        *out << c.erlang_alive << (c.ours_kept ? " (ours kept)" : " (theirs kept)");
    }
};

class DistributionErlangSimultaneousTest : public DistributionErlangTest,
                                           public ::testing::WithParamInterface<simultaneous_case> {
};

TEST_P(DistributionErlangSimultaneousTest, shouldEndWithOneWorkingConnectionWhenBothConnectAtOnce) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang(GetParam().erlang_alive);
    const std::string erl_name = node_name(GetParam().erlang_alive);
    ASSERT_EQ(erl.eval("register(inbox, spawn(fun() -> receive M -> io:format(\"inbox ~p~n\", "
                       "[M]) end end)), ok."),
              "ok");

    // Hold our loop; once erl's attempt is under way, connect and queue a message on our attempt.
    auto held = std::make_shared<std::promise<void>>();
    auto go = std::make_shared<std::promise<void>>();
    auto held_future = held->get_future();
    auto connected = std::async(std::launch::async, [&cpp, erl_name, held, go] {
        return cpp.run_on(
            [erl_name, held, go](world& w) {
                held->set_value();
                if (go->get_future().wait_for(wait_limit) != std::future_status::ready) {
                    return false;
                }
                const atom peer = w.host.a(erl_name);
                (void)w.host.spawn([peer](process& self) {
                    self.send(self.host().a("inbox"), peer, self.host().a("queued_before_up"));
                });
                return w.dist.connect(peer);
            },
            2 * wait_limit);
    });
    ASSERT_EQ(held_future.wait_for(wait_limit), std::future_status::ready);
    // erl's send_name waits unread in our socket; then erl's net_kernel is suspended, so that
    // its answer to our attempt comes only after we have read erl's.
    ASSERT_EQ(erl.eval("spawn(fun() -> net_kernel:connect_node(Cpp) end), ok."), "ok");
    EXPECT_TRUE(eventually([&] { return unread_bytes_on_port(cpp.port()); }))
        << "erl's send_name did not arrive";
    ASSERT_EQ(erl.eval("sys:suspend(net_kernel)."), "ok");
    go->set_value();
    ASSERT_EQ(connected.wait_for(2 * wait_limit), std::future_status::ready);
    EXPECT_EQ(connected.get(), true);
    // We have settled erl's attempt (refused it, or taken it instead of ours).
    EXPECT_TRUE(cpp.await_log(GetParam().ours_kept
                                  ? std::vector<std::string>{"handshake from " + erl_name,
                                                             "refused", "status nok"}
                                  : std::vector<std::string>{"simultaneous connect: keeping the "
                                                             "peer's"})
                    .has_value())
        << cpp.log_text();
    ASSERT_EQ(erl.eval("sys:resume(net_kernel)."), "ok");

    EXPECT_TRUE(erl.wait_for("inbox queued_before_up", wait_limit)) << cpp.log_text();
    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong") << cpp.log_text();
    EXPECT_TRUE(eventually([&] { return cpp.connection_count() == 1; })) << cpp.log_text();
    EXPECT_EQ(cpp.peers(false), std::vector<std::string>{erl_name}) << cpp.log_text();
    EXPECT_EQ(erl.eval("gen_server:call({echo, Cpp}, both_ways)."), "both_ways");
    ping_from_cpp(erl_name, "ping");
    EXPECT_EQ(cpp.await_journal("ping", 1), std::vector<std::string>{"pong"});
    // One connection came up, the one OTP's rule picks, and none went down.
    const std::string log = cpp.log_text();
    EXPECT_TRUE(
        contains(log, std::string(GetParam().ours_kept ? "connection to " : "connection from ") +
                          erl_name + " up"))
        << log;
    EXPECT_FALSE(contains(log, " down: ")) << log;
}

INSTANTIATE_TEST_SUITE_P(NameOrder, DistributionErlangSimultaneousTest,
                         ::testing::Values(simultaneous_case{"a1", true},
                                           simultaneous_case{"e1", false}),
                         [](const auto& test_info) {
                             return std::string(test_info.param.erlang_alive);
                         });

// The other order: erl's own attempt is pending but stuck in its EPMD lookup (epmd stopped)
// while it answers ours with nok; only then does its attempt reach us. Our attempt must wait
// for it, as OTP's does (dist_util:recv_status), and hand over what it queued.
TEST_F(DistributionErlangTest, shouldHandOverWhatWasQueuedWhenTheGreaterPeerSaysNokFirst) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");  // e1 > cpp: erl keeps its own attempt
    const std::string erl_name = node_name("e1");
    ASSERT_EQ(erl.eval("register(inbox, spawn(fun() -> receive M -> io:format(\"inbox ~p~n\", "
                       "[M]) end end)), ok."),
              "ok");

    // Our attempt: looked up in epmd and connecting, a message queued on it; the loop is held
    // until erl's attempt is pending.
    auto held = std::make_shared<std::promise<void>>();
    auto go = std::make_shared<std::promise<void>>();
    auto held_future = held->get_future();
    auto connected = std::async(std::launch::async, [&cpp, erl_name, held, go] {
        return cpp.run_on(
            [erl_name, held, go](world& w) {
                const atom peer = w.host.a(erl_name);
                const bool started = w.dist.connect(peer);
                (void)w.host.spawn([peer](process& self) {
                    self.send(self.host().a("inbox"), peer, self.host().a("queued_before_up"));
                });
                held->set_value();
                return started &&
                       go->get_future().wait_for(wait_limit) == std::future_status::ready;
            },
            2 * wait_limit);
    });
    ASSERT_EQ(held_future.wait_for(wait_limit), std::future_status::ready);
    epmd_->kill(SIGSTOP);
    const std::string pending = erl.eval(
        "spawn(fun() -> net_kernel:connect_node(Cpp) end), (fun Pending(0) -> not_pending; "
        "Pending(N) -> case ets:lookup(sys_dist, Cpp) of [] -> timer:sleep(10), Pending(N - 1); "
        "_ -> pending end end)(500).");
    go->set_value();
    const auto waiting = cpp.await_log({"handshake to " + erl_name, "status nok", "waiting"});
    epmd_->kill(SIGCONT);
    ASSERT_EQ(pending, "pending");
    ASSERT_EQ(connected.wait_for(2 * wait_limit), std::future_status::ready);
    EXPECT_EQ(connected.get(), true);
    EXPECT_TRUE(waiting.has_value()) << cpp.log_text();

    EXPECT_TRUE(erl.wait_for("inbox queued_before_up", wait_limit)) << cpp.log_text();
    EXPECT_TRUE(cpp.await_log({"simultaneous connect: keeping the peer's"}).has_value())
        << cpp.log_text();
    EXPECT_TRUE(cpp.await_log({"connection from " + erl_name + " up"}).has_value())
        << cpp.log_text();
    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong");
    EXPECT_TRUE(eventually([&] { return cpp.connection_count() == 1; })) << cpp.log_text();
    EXPECT_FALSE(contains(cpp.log_text(), " down: ")) << cpp.log_text();
}

// --- 4. a node dies ------------------------------------------------------------------------

TEST_F(DistributionErlangTest, shouldGiveErlangNodedownAndNoconnectionWhenTheCppNodeIsKilled) {
    auto& cli = start_cli();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong") << cli_output_;
    ASSERT_EQ(erl.eval("process_flag(trap_exit, true), monitor_node(Cpp, true), Echo = "
                       "rpc:call(Cpp, erlang, whereis, [echo]), link(Echo), M1 = "
                       "erlang:monitor(process, Echo), M2 = erlang:monitor(process, {net_kernel, "
                       "Cpp}), is_pid(Echo)."),
              "true");

    cli.kill(SIGKILL);
    ASSERT_TRUE(cli.wait(wait_limit));

    EXPECT_EQ(erl.eval("receive {nodedown, Cpp} -> nodedown after 10000 -> timeout end."),
              "nodedown");
    EXPECT_EQ(erl.eval("receive {'EXIT', Echo, R1} -> R1 after 10000 -> timeout end."),
              "noconnection");
    EXPECT_EQ(erl.eval("receive {'DOWN', M1, process, Echo, R2} -> R2 after 10000 -> timeout "
                       "end."),
              "noconnection");
    EXPECT_EQ(erl.eval("receive {'DOWN', M2, process, {net_kernel, Cpp}, R3} -> R3 after 10000 "
                       "-> timeout end."),
              "noconnection");
    EXPECT_EQ(erl.eval("nodes()."), "[]");
}

TEST_F(DistributionErlangTest, shouldGiveCppProcessesNoconnectionWhenTheErlangNodeIsKilled) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("T = spawn(Cpp, vdist_test, puppet, [trapper, self()]), T ! {trap_exit, "
                       "true}, T ! {link, self()}, U = spawn(Cpp, vdist_test, puppet, [plain, "
                       "self()]), U ! {link, self()}, W = spawn(Cpp, vdist_test, puppet, [watcher, "
                       "self()]), W ! {monitor, self()}, W ! {monitor, {repl, node()}}, W ! {sync, "
                       "1}, [receive {Tag, Done} -> ok after 5000 -> timeout end || {Tag, Done} <- "
                       "[{trapper, linked}, {plain, linked}, {watcher, {sync, 1}}]]."),
              "[ok,ok,ok]");

    erl.process().kill(SIGKILL);
    ASSERT_TRUE(erl.process().wait(wait_limit));

    const std::string erl_pid = "#Pid<'" + node_name("e1") + "'.";
    const auto trapped = cpp.await_journal("trapper", 1);
    ASSERT_EQ(trapped.size(), 1u) << cpp.log_text();
    EXPECT_TRUE(trapped[0].starts_with("{'EXIT'," + erl_pid)) << trapped[0];
    EXPECT_TRUE(trapped[0].ends_with(",noconnection}")) << trapped[0];
    const auto downs = cpp.await_journal("watcher", 2);
    ASSERT_EQ(downs.size(), 2u);
    EXPECT_TRUE(contains(downs[0], ",process," + erl_pid)) << downs[0];
    EXPECT_TRUE(downs[0].ends_with(",noconnection}")) << downs[0];
    EXPECT_TRUE(downs[1].ends_with(",process,{repl,'" + node_name("e1") + "'},noconnection}"))
        << downs[1];
    EXPECT_TRUE(eventually([&] {
        return cpp.run_on([](world& w) { return !w.host.alive(w.puppets.at("plain")); }) == true;
    })) << "a linked process that does not trap exits dies with noconnection";
    EXPECT_TRUE(cpp.peers(false).empty());
    EXPECT_TRUE(cpp.await_log({"connection", node_name("e1"), "down"}).has_value())
        << cpp.log_text();
}

TEST_F(DistributionErlangTest, shouldGiveBothSidesNoconnectionWhenTheCppNodeDisconnects) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("process_flag(trap_exit, true), monitor_node(Cpp, true), P = "
                       "spawn_link(Cpp, vdist_test, puppet, [p, self()]), P ! {trap_exit, true}, "
                       "receive {p, {trap_exit, true}} -> ok after 5000 -> timeout end."),
              "ok");

    EXPECT_EQ(
        cpp.run_on([e1 = node_name("e1")](world& w) { return w.dist.disconnect(w.host.a(e1)); }),
        true);

    EXPECT_EQ(erl.eval("receive {nodedown, Cpp} -> nodedown after 10000 -> timeout end."),
              "nodedown");
    EXPECT_EQ(erl.eval("receive {'EXIT', P, R} -> R after 10000 -> timeout end."), "noconnection");
    const auto journal = cpp.await_journal("p", 1);
    ASSERT_EQ(journal.size(), 1u);
    EXPECT_TRUE(journal[0].starts_with("{'EXIT',#Pid<'" + node_name("e1") + "'.")) << journal[0];
    EXPECT_TRUE(journal[0].ends_with(",noconnection}")) << journal[0];
    // The puppet forwarding that 'EXIT' to erl connected again; either way a ping gets through.
    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong") << cpp.log_text();
}

TEST_F(DistributionErlangTest, shouldTreatPidsOfTheEarlierIncarnationAsGoneWhenTheCppNodeRestarts) {
    start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("net_kernel:monitor_nodes(true), Old = spawn(Cpp, vdist_test, puppet, [p, "
                       "self()]), is_pid(Old)."),
              "true");

    cpp_.reset();  // stops: disconnects, unregisters
    ASSERT_EQ(erl.eval("receive {nodedown, Cpp} -> nodedown after 10000 -> timeout end."),
              "nodedown");
    auto& cpp = start_cpp();  // the same name, a new creation from epmd

    // The new node's first puppet has the old one's number; only the creation tells them apart.
    ASSERT_EQ(erl.eval("New = spawn(Cpp, vdist_test, puppet, [p, self()]), {Old =:= New, "
                       "pid_to_list(Old) =:= pid_to_list(New)}."),
              "{false,true}");
    // As between OTP nodes: a message to the old pid is dropped, a monitor or link of it gets
    // noproc.
    EXPECT_EQ(erl.eval("Old ! {sync, old}, New ! {sync, new}, receive {p, {sync, S}} -> S after "
                       "5000 -> timeout end."),
              "new");
    EXPECT_EQ(
        erl.eval("M = erlang:monitor(process, Old), receive {'DOWN', M, process, Old, R} -> R "
                 "after 5000 -> timeout end."),
        "noproc");
    EXPECT_EQ(erl.eval("process_flag(trap_exit, true), link(Old), receive {'EXIT', Old, R2} -> R2 "
                       "after 5000 -> timeout end."),
              "noproc");
    EXPECT_EQ(erl.eval("exit(Old, kill), New ! {sync, after_kill}, receive {p, {sync, S2}} -> S2 "
                       "after 5000 -> timeout end."),
              "after_kill");
    EXPECT_EQ(cpp.run_on([](world& w) { return w.host.alive(w.puppets.at("p")); }), true);
    EXPECT_EQ(erl.eval("[M || M <- Flush(), element(1, M) =/= nodeup]."), "[]");
}

// --- 5. ticks --------------------------------------------------------------------------------

TEST_F(DistributionErlangTest, shouldKeepAnIdleConnectionUpWhenBothSidesTick) {
    auto& cpp = start_cpp([](auto& c) { c.net_ticktime = 4s; });
    auto& erl = start_erlang("e1", {"-kernel", "net_ticktime", "4"});
    ASSERT_EQ(erl.eval("net_kernel:get_net_ticktime()."), "4");
    ASSERT_EQ(erl.eval("net_kernel:monitor_nodes(true), net_adm:ping(Cpp)."), "pong");

    std::this_thread::sleep_for(10s);  // two and a half tick windows, nothing sent

    const auto stats = cpp.run_on([](world& w) {
        const auto all = w.dist.connections();
        return all.size() == 1 && all[0].up ? std::optional(all[0].stats) : std::nullopt;
    });
    ASSERT_TRUE(stats && *stats) << cpp.log_text();
    // OTP ticks every ticktime / 4 while it has nothing to send; so do we.
    EXPECT_GE((*stats)->ticks_in, 4u);
    EXPECT_GE((*stats)->ticks_out, 4u);
    EXPECT_EQ(erl.eval("[M || M <- Flush(), element(1, M) =:= nodedown]."), "[]");
    EXPECT_EQ(erl.eval("lists:member(Cpp, nodes())."), "true");
    EXPECT_FALSE(cpp.await_log({"down"}, 0ms).has_value()) << cpp.log_text();
    EXPECT_EQ(erl.eval("gen_server:call({echo, Cpp}, still_here)."), "still_here");
}

TEST_F(DistributionErlangTest, shouldDeclareAStoppedErlangNodeDownWhenItMissesTheTickWindow) {
    auto& cpp = start_cpp([](auto& c) { c.net_ticktime = 4s; });
    auto& erl = start_erlang("e1", {"-kernel", "net_ticktime", "4"});
    ASSERT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong");

    erl.process().kill(SIGSTOP);
    // Down after net_ticktime without a byte (at most one tick period later); the wait allows
    // two windows.
    const auto down = cpp.await_log({"connection", node_name("e1"), "down"}, 10s);
    erl.process().kill(SIGCONT);

    ASSERT_TRUE(down.has_value()) << cpp.log_text();
    EXPECT_TRUE(contains(*down, "net_tick_timeout")) << *down;
    EXPECT_TRUE(cpp.peers(false).empty());
    // erl, running again, finds the connection gone (a ping before it noticed would go down
    // with the old connection: pang) and connects anew.
    EXPECT_EQ(erl.eval("(fun Gone(0) -> still_connected; Gone(N) -> case lists:member(Cpp, "
                       "nodes()) of true -> timer:sleep(50), Gone(N - 1); false -> gone end end)"
                       "(200)."),
              "gone");
    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pong") << cpp.log_text();
    EXPECT_EQ(cpp.peers(false), std::vector<std::string>{node_name("e1")});
}

// --- 6. cookies -------------------------------------------------------------------------------

TEST_F(DistributionErlangTest, shouldRefuseErlangAndSaySoWhenItsCookieIsWrong) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1", {}, "not-the-cookie");

    EXPECT_EQ(erl.eval("net_adm:ping(Cpp)."), "pang");

    const auto refused = cpp.await_log({"handshake", node_name("e1"), "refused"});
    ASSERT_TRUE(refused.has_value()) << cpp.log_text();
    EXPECT_TRUE(contains(*refused, "wrong cookie")) << *refused;
    EXPECT_TRUE(cpp.peers(false).empty());
    EXPECT_EQ(erl.eval("nodes()."), "[]");
}

TEST_F(DistributionErlangTest, shouldBeRefusedByErlangWhenOurCookieIsWrong) {
    auto& cpp = start_cpp([](auto& c) { c.cookie = "not-the-cookie"; });
    auto& erl = start_erlang("e1");

    ping_from_cpp(node_name("e1"), "ping");

    EXPECT_EQ(cpp.await_journal("ping", 1), std::vector<std::string>{"pang"}) << cpp.log_text();
    // erl -noshell's logger writes to standard output.
    EXPECT_TRUE(erl.wait_for("Invalid challenge reply")) << erl.output();
    EXPECT_TRUE(contains(erl.output(), cpp_name())) << erl.output();
    EXPECT_EQ(erl.eval("nodes()."), "[]");
    EXPECT_TRUE(cpp.peers(false).empty());
}

// --- 7. hostile peers -------------------------------------------------------------------------

TEST_F(DistributionErlangTest, shouldDropRawConnectionsThatSendNonsenseAndKeepServingErlang) {
    auto& cpp = start_cpp([](auto& c) { c.net_setuptime = 3s; });
    auto& e1 = start_erlang("e1");
    ASSERT_EQ(e1.eval("net_adm:ping(Cpp)."), "pong");

    // Random bytes (the first two make a length above the handshake's limit or a message that
    // is not a send_name).
    {
        const test::fd_guard raw = test::connect_to(cpp.port(), wait_limit);
        ASSERT_TRUE(raw.valid());
        test::bytes garbage(512);
        test::pattern(20261201).fill(garbage);
        EXPECT_TRUE(test::send_all(raw.get(), garbage));
        EXPECT_TRUE(test::closed_by_peer(raw.get(), wait_limit));
        EXPECT_TRUE(cpp.await_log({"handshake from unknown node refused"}).has_value())
            << cpp.log_text();
    }
    // A handshake message of 65535 bytes: refused from its length alone.
    {
        const test::fd_guard raw = test::connect_to(cpp.port(), wait_limit);
        ASSERT_TRUE(raw.valid());
        EXPECT_TRUE(test::send_all(raw.get(), test::wire({0xff, 0xff, 'N', 0, 0, 0, 0})));
        EXPECT_TRUE(test::closed_by_peer(raw.get(), wait_limit));
        EXPECT_TRUE(cpp.await_log({"refused", "65535"}).has_value()) << cpp.log_text();
    }
    // Half a send_name, then the client goes away.
    {
        test::fd_guard raw = test::connect_to(cpp.port(), wait_limit);
        ASSERT_TRUE(raw.valid());
        dist::handshake_config config;
        config.this_node = "raw@127.0.0.1";
        config.cookie = cookie;
        auto hs = dist::handshake::initiate(config, cpp_name());
        const test::bytes send_name = hs.take_output();
        ASSERT_GT(send_name.size(), 8u);
        EXPECT_TRUE(test::send_all(raw.get(), std::span(send_name).first(send_name.size() / 2)));
        raw = test::fd_guard();
        EXPECT_TRUE(cpp.await_log({"connection closed by peer"}).has_value()) << cpp.log_text();
    }

    EXPECT_TRUE(eventually([&] { return cpp.connection_count() == 1; })) << cpp.log_text();
    EXPECT_EQ(e1.eval("net_adm:ping(Cpp)."), "pong");
    EXPECT_EQ(e1.eval("gen_server:call({echo, Cpp}, {still, <<\"here\">>})."),
              "{still,<<104,101,114,101>>}");
    auto& e2 = start_erlang("e2");
    EXPECT_EQ(e2.eval("net_adm:ping(Cpp)."), "pong") << cpp.log_text();
    EXPECT_EQ(cpp.peers(false), (std::vector<std::string>{node_name("e1"), node_name("e2")}));
}

TEST_F(DistributionErlangTest, shouldCloseOnlyThatConnectionWhenAPeerSendsABadPacket) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("net_kernel:monitor_nodes(true), net_adm:ping(Cpp)."), "pong");

    // A C++ client does a valid handshake, then sends `packet`.
    const auto connect_and_send = [&](const std::string& alive, const test::bytes& packet) {
        const test::fd_guard raw = test::connect_to(cpp.port(), wait_limit);
        ASSERT_TRUE(raw.valid());
        dist::handshake_config config;
        config.this_node = node_name(alive);
        config.cookie = cookie;
        config.flags = dist::vdist_flags;  // hidden
        auto hs = dist::handshake::initiate(config, cpp_name());
        const auto outcome = test::drive(hs, raw.get(), wait_limit);
        ASSERT_EQ(hs.state(), dist::handshake_state::done) << hs.error_detail();
        ASSERT_TRUE(outcome.leftover.empty());
        ASSERT_TRUE(eventually([&] { return cpp.peers(true).size() == 1; }));
        EXPECT_TRUE(test::send_all(raw.get(), packet));
        EXPECT_TRUE(test::closed_by_peer(raw.get(), wait_limit)) << alive;
    };
    // A length and junk: not a pass-through (112) nor a 131 68 header.
    connect_and_send("junk",
                     test::wire({0, 0, 0, 8, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab}));
    const auto junk = cpp.await_log({"bad packet", node_name("junk")});
    EXPECT_TRUE(junk.has_value()) << cpp.log_text();
    // A length far above packet_limits::max_packet_bytes (refused before any allocation).
    connect_and_send("huge", test::wire({0xff, 0xff, 0xff, 0xf0, 131, 68}));
    const auto huge = cpp.await_log({"bad packet", node_name("huge")});
    EXPECT_TRUE(huge.has_value()) << cpp.log_text();

    EXPECT_TRUE(cpp.peers(true).empty());
    EXPECT_EQ(cpp.peers(false), std::vector<std::string>{node_name("e1")});
    EXPECT_EQ(erl.eval("gen_server:call({echo, Cpp}, unaffected)."), "unaffected");
    EXPECT_EQ(erl.eval("[M || M <- Flush(), element(1, M) =:= nodedown]."), "[]");
}

TEST_F(DistributionErlangTest, shouldEndOnlyThatConnectionWhenAMessageCreatesTooManyNewAtoms) {
    auto& cpp = start_cpp();
    auto& e1 = start_erlang("e1");
    auto& e2 = start_erlang("e2");
    ASSERT_EQ(e2.eval("net_kernel:monitor_nodes(true), net_adm:ping(Cpp)."), "pong");

    // One term may add at most decode_limits::max_new_atoms (1024) atoms to our table: a
    // bound on what a peer can make us keep forever. OTP has no such bound per message.
    EXPECT_EQ(e1.eval("monitor_node(Cpp, true), {echo, Cpp} ! {self(), [list_to_atom(\"new_\" ++ "
                      "integer_to_list(I)) || I <- lists:seq(1, 1025)]}, receive {nodedown, Cpp} "
                      "-> nodedown after 10000 -> timeout end."),
              "nodedown");
    const auto refused = cpp.await_log({"bad packet", node_name("e1"), "new atoms"});
    EXPECT_TRUE(refused.has_value()) << cpp.log_text();

    // The other connection goes on; the peer can connect again and send 1024 new atoms.
    EXPECT_EQ(e2.eval("gen_server:call({echo, Cpp}, still_up)."), "still_up");
    EXPECT_EQ(e2.eval("[M || M <- Flush(), element(1, M) =:= nodedown]."), "[]");
    EXPECT_EQ(e1.eval("L = [list_to_atom(\"more_\" ++ integer_to_list(I)) || I <- lists:seq(1, "
                      "1024)], gen_server:call({echo, Cpp}, L) =:= L."),
              "true")
        << cpp.log_text();
}

// --- 8. large and many messages ---------------------------------------------------------------

TEST_F(DistributionErlangTest, shouldEchoOneAnd64MegabyteBinariesWhenErlangSendsThem) {
    start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("B1 = rand:bytes(1 bsl 20), B64 = binary:copy(rand:bytes(1 bsl 16), "
                       "1024), {byte_size(B1), byte_size(B64)}."),
              "{1048576,67108864}");

    EXPECT_EQ(erl.eval("gen_server:call({echo, Cpp}, B1, 30000) =:= B1."), "true");
    EXPECT_EQ(erl.eval("gen_server:call({echo, Cpp}, {big, B64}, 60000) =:= {big, B64}.", 90s),
              "true");
    EXPECT_EQ(erl.eval("{echo, Cpp} ! {self(), B64}, Recv(60000) =:= B64.", 90s), "true");
}

TEST_F(DistributionErlangTest, shouldDeliverOneAnd64MegabyteBinariesWhenACppProcessSendsThem) {
    start_cpp();
    auto& erl = start_erlang("e1");
    // Sizer answers {size, Bytes, Whether they are <<0, 1, ..., 255, 0, ...>>}.
    ASSERT_EQ(erl.eval("Sizer = fun() -> spawn(fun() -> receive {From, Bin} -> From ! {size, "
                       "byte_size(Bin), Bin =:= binary:copy(list_to_binary(lists:seq(0, 255)), "
                       "byte_size(Bin) div 256)} end end) end, P = spawn(Cpp, vdist_test, "
                       "puppet, [big, self()]), ok."),
              "ok");

    EXPECT_EQ(erl.eval("P ! {send_binary, Sizer(), 1 bsl 20}, receive {big, {size, N1, S1}} -> "
                       "{N1, S1} after 30000 -> timeout end."),
              "{1048576,true}");
    EXPECT_EQ(erl.eval("P ! {send_binary, Sizer(), 1 bsl 26}, receive {big, {size, N2, S2}} -> "
                       "{N2, S2} after 60000 -> timeout end.",
                       90s),
              "{67108864,true}");
}

TEST_F(DistributionErlangTest, shouldEchoEachMessageWhenSeveralLargeOnesArriveInterleaved) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");

    // Eight processes call at once with 4 MB each: OTP fragments every one of them and the
    // fragments of different senders interleave on the connection.
    EXPECT_EQ(erl.eval("Me = self(), Callers = [spawn(fun() -> B = binary:copy(<<I>>, 4 bsl 20), "
                       "Me ! {I, gen_server:call({echo, Cpp}, {I, B}, 60000) =:= {I, B}} end) || I "
                       "<- lists:seq(1, 8)], lists:sort([receive {I, Same} -> {I, Same} after "
                       "60000 -> timeout end || I <- lists:seq(1, 8)]).",
                       90s),
              "[{1,true},{2,true},{3,true},{4,true},{5,true},{6,true},{7,true},{8,true}]");
    // 5000 distinct atoms, 1000 new ones a message (decode_limits::max_new_atoms is 1024), then
    // old and new ones mixed: OTP's atom cache (2048 entries) fills and replaces entries.
    ASSERT_EQ(erl.eval("Echoed = fun(T) -> case catch gen_server:call({echo, Cpp}, T) of T -> "
                       "same; {'EXIT', {Reason, _}} -> Reason; _ -> different end end, Atoms = fun("
                       "Prefix, From, To) -> [list_to_atom(Prefix ++ integer_to_list(I)) || I <- "
                       "lists:seq(From, To)] end, ok."),
              "ok");
    EXPECT_EQ(erl.eval("[Echoed({K, Atoms(\"atom_\", K * 1000 + 1, K * 1000 + 1000)}) || K <- "
                       "lists:seq(0, 4)]."),
              "[same,same,same,same,same]")
        << cpp.log_text();
    EXPECT_EQ(erl.eval("Echoed(Atoms(\"other_\", 1, 500) ++ Atoms(\"atom_\", 1, 4000))."), "same")
        << cpp.log_text();
}

TEST_F(DistributionErlangTest, shouldKeepTheOrderOfTenThousandMessagesInBothDirections) {
    auto& cpp = start_cpp();
    auto& erl = start_erlang("e1");
    ASSERT_EQ(erl.eval("InOrder = fun Loop(I, N, _) when I > N -> ok; Loop(I, N, Wrap) -> receive "
                       "M -> case Wrap(I) of M -> Loop(I + 1, N, Wrap); _ -> {expected, I, got, "
                       "M} end after 10000 -> {timeout, I} end end, ok."),
              "ok");

    // erl -> C++ echo -> erl.
    EXPECT_EQ(erl.eval("[{echo, Cpp} ! {self(), {seq, I}} || I <- lists:seq(1, 10000)], "
                       "InOrder(1, 10000, fun(I) -> {seq, I} end).",
                       60s),
              "ok");
    // C++ -> erl: one process sends 10,000 in one go.
    EXPECT_EQ(erl.eval("P = spawn(Cpp, vdist_test, puppet, [order, self()]), P ! {send_sequence, "
                       "self(), 10000}, InOrder(1, 10000, fun(I) -> {seq, I} end).",
                       60s),
              "ok");
    // erl -> a C++ process, checked on both ends (it journals and forwards each one).
    EXPECT_EQ(erl.eval("[P ! {seq, I} || I <- lists:seq(1, 10000)], InOrder(1, 10000, fun(I) -> "
                       "{order, {seq, I}} end).",
                       60s),
              "ok");
    const auto in_order = cpp.run_on([](world& w) {
        const auto& got = w.journal["order"];
        for (std::size_t i = 0; i < got.size(); ++i) {
            const auto* t = got[i].get_if<tuple>();
            if (t == nullptr || t->elements.size() != 2 ||
                t->elements[1] != term(static_cast<std::int64_t>(i + 1))) {
                return false;
            }
        }
        return got.size() == 10000;
    });
    EXPECT_EQ(in_order, true);
}

}  // namespace
}  // namespace vdist::runtime
