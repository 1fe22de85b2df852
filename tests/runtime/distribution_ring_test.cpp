// Distribution between C++ nodes over vchan rings (host backend): nodes on one host find each
// other through a small ring_directory (pipes carry the offers), connect on first use over a
// ring, and fall back to TCP for a peer the directory does not place here. Nodes run on their
// own threads, or in a forked process for the peer that is killed. Every test has a watchdog.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/gen_server.hpp"
#include "vdist/runtime/node_services.hpp"
#include "vdist/test/erlang.hpp"
#include "vdist/test/inbox.hpp"

namespace vdist::runtime {
namespace {

using test::inbox;

using namespace std::chrono_literals;
using dist::tuple;

// Ends the test binary if a test hangs.
class watchdog {
  public:
    explicit watchdog(std::chrono::seconds limit) {
        thread_ = std::thread([this, limit] {
            std::unique_lock lock(mutex_);
            if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) {
                std::fprintf(stderr, "watchdog: test hung\n");
                std::_Exit(3);
            }
        });
    }
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        done_cv_.notify_all();
        thread_.join();
    }

  private:
    std::mutex mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
    std::thread thread_;
};

// Where each name runs, shared by one host's directories: a test may move a name, as the
// toolstack does when a node is restarted in a new domain.
struct name_table {
    std::mutex mutex;
    std::map<std::string, transport::domid_t, std::less<>> where;
};

// A ring directory over pipes: a table of co-located names, and one pipe per domain that
// carries offers (8 bytes: from, port) to it. Works across fork().
class pipe_directory final : public ring_directory {
  public:
    struct domain {
        std::string name;
        transport::domid_t domid;
        std::array<int, 2> pipe;  // offers to this domain
    };
    pipe_directory(transport::domid_t self, std::vector<domain> host,
                   std::shared_ptr<name_table> names)
        : self_(self), host_(std::move(host)), names_(std::move(names)) {}

    [[nodiscard]] transport::domid_t self() const override { return self_; }
    [[nodiscard]] std::optional<transport::domid_t> locate(std::string_view name) override {
        std::lock_guard lock(names_->mutex);
        const auto found = names_->where.find(name);
        return found == names_->where.end() ? std::nullopt : std::optional(found->second);
    }
    [[nodiscard]] bool offer(transport::domid_t peer, std::uint32_t port) override {
        for (const auto& d : host_) {
            if (d.domid == peer) {
                const std::array<std::uint32_t, 2> record{self_, port};
                return ::write(d.pipe[1], record.data(), sizeof record) == sizeof record;
            }
        }
        return false;
    }
    [[nodiscard]] int native_handle() const override { return own().pipe[0]; }
    [[nodiscard]] std::vector<ring_offer> take_offers() override {
        std::vector<ring_offer> offers;
        std::array<std::uint32_t, 2> record{};
        while (::read(own().pipe[0], record.data(), sizeof record) == sizeof record) {
            offers.push_back({static_cast<transport::domid_t>(record[0]), record[1]});
        }
        return offers;
    }
    void withdraw(transport::domid_t, std::uint32_t) override { ++withdrawn; }

    std::atomic<int> withdrawn{0};

  private:
    [[nodiscard]] const domain& own() const {
        for (const auto& d : host_) {
            if (d.domid == self_) {
                return d;
            }
        }
        std::abort();
    }
    transport::domid_t self_;
    std::vector<domain> host_;
    std::shared_ptr<name_table> names_;
};

// The names and offer pipes of the nodes on one test host.
class test_host {
  public:
    explicit test_host(std::vector<std::pair<std::string, transport::domid_t>> nodes) {
        for (auto& [name, domid] : nodes) {
            std::array<int, 2> fds{};
            EXPECT_EQ(::pipe2(fds.data(), O_NONBLOCK | O_CLOEXEC), 0);
            domains_.push_back({name, domid, fds});
            names_->where[name] = domid;
        }
        char pattern[] = "/tmp/vdist-ring-test.XXXXXX";
        run_dir_ = ::mkdtemp(pattern);
    }
    ~test_host() {
        for (auto& d : domains_) {
            ::close(d.pipe[0]);
            ::close(d.pipe[1]);
        }
        std::filesystem::remove_all(run_dir_);
    }
    [[nodiscard]] std::unique_ptr<pipe_directory> directory(transport::domid_t self) const {
        return std::make_unique<pipe_directory>(self, domains_, names_);
    }
    /// From now on `name` locates domain `domid`.
    void relocate(const std::string& name, transport::domid_t domid) {
        std::lock_guard lock(names_->mutex);
        names_->where[name] = domid;
    }
    [[nodiscard]] const std::filesystem::path& run_dir() const noexcept { return run_dir_; }
    [[nodiscard]] std::size_t sockets_left() const {
        std::size_t n = 0;
        for (const auto& entry : std::filesystem::directory_iterator(run_dir_)) {
            n += entry.path().filename().string().starts_with("vchan.") ? 1u : 0u;
        }
        return n;
    }

  private:
    std::vector<pipe_directory::domain> domains_;
    std::shared_ptr<name_table> names_ = std::make_shared<name_table>();
    std::filesystem::path run_dir_;
};

struct ring_options {
    transport::ring_orders orders = default_distribution_ring_orders;
    transport::wait_mode mode = transport::wait_mode::spin_then_block;
    std::string cookie = "cookie";
    bool in_directory = true;
    std::chrono::milliseconds net_setuptime = std::chrono::seconds(7);
};

// One node with distribution over rings (and TCP), on its own thread once started.
class ring_node {
  public:
    ring_node(const test_host& host, std::string name, transport::domid_t domid,
              std::uint16_t epmd_port, ring_options options = {})
        : node_(node_config{.name = std::move(name),
                            .idle = transport::wait_policy{.mode = options.mode}}) {
        auto backend = transport::host_backend::create(domid, host.run_dir());
        if (!backend) {
            throw std::runtime_error("no host backend: " + backend.error().message());
        }
        backend_ = std::make_shared<transport::host_backend>(std::move(*backend));
        directory_ = host.directory(domid);
        distribution_config config;
        config.cookie = options.cookie;
        config.epmd_port = epmd_port;
        config.use_epmd = epmd_port != 0;
        config.log = [this](std::string_view line) {
            std::lock_guard lock(log_mutex_);
            log_.emplace_back(line);
        };
        if (options.in_directory) {
            config.ring_backend = backend_;
            config.directory = directory_.get();
        }
        config.ring_orders = options.orders;
        config.net_setuptime = options.net_setuptime;
        config.ring_wait.mode = options.mode;
        auto started = distribution::start(node_, std::move(config));
        if (!started) {
            throw std::runtime_error("distribution did not start: " + started.error().message());
        }
        dist_ = std::move(*started);
        start_node_services(node_, *dist_, rpc_functions::with_builtins(dist_.get()));
        stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        node_.watch_fd(stop_fd_, [this] {
            std::uint64_t count = 0;
            (void)::read(stop_fd_, &count, sizeof count);  // so that start() may run it again
            node_.stop();
        });
    }
    ~ring_node() {
        stop();
        dist_.reset();
        ::close(stop_fd_);
    }
    [[nodiscard]] node& host() noexcept { return node_; }
    [[nodiscard]] distribution& dist() noexcept { return *dist_; }
    [[nodiscard]] transport::host_backend& backend() noexcept { return *backend_; }
    void start() {
        thread_ = std::thread([this] { node_.run(); });
    }
    void stop() {
        if (thread_.joinable()) {
            const std::uint64_t one = 1;
            (void)::write(stop_fd_, &one, sizeof one);
            thread_.join();
        }
    }
    /// Stops distribution (every connection closes) after the loop stopped.
    void stop_distribution() {
        stop();
        dist_.reset();
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
    std::shared_ptr<transport::host_backend> backend_;
    std::unique_ptr<pipe_directory> directory_;
    std::unique_ptr<distribution> dist_;
    int stop_fd_ = -1;
    std::thread thread_;
    std::mutex log_mutex_;
    std::vector<std::string> log_;
};

// A process registered as `name` that counts {seq, N} messages arriving in order and reports
// {in_order, Count} after `expected` of them.
void spawn_counter(node& n, std::string_view name, std::int64_t expected, inbox& seen) {
    (void)n.spawn([name = std::string(name), expected, &seen](process& self) {
        (void)self.register_name(self.host().a(name));
        auto next = std::make_shared<std::int64_t>(0);
        auto ordered = std::make_shared<bool>(true);
        self.become([expected, &seen, next, ordered](process& me, term m) {
            const auto* t = m.get_if<tuple>();
            if (t == nullptr || t->elements.size() != 2) {
                return;
            }
            if (const auto* i = t->elements[1].get_if<std::int64_t>()) {
                *ordered = *ordered && *i == *next;
            }
            if (++*next == expected) {
                seen.put(tuple{me.host().a(*ordered ? "in_order" : "out_of_order"), *next});
            }
        });
    });
}

// A process that sends {seq, 0..count-1} to {name, to_node}.
void spawn_sender(node& n, std::string_view name, std::string_view to_node, std::int64_t count) {
    (void)n.spawn([name = std::string(name), to = std::string(to_node), count](process& self) {
        const atom target = self.host().a(name);
        const atom where = self.host().a(to);
        for (std::int64_t i = 0; i < count; ++i) {
            self.send(target, where, tuple{self.host().a("seq"), i});
        }
    });
}

[[nodiscard]] std::size_t count_carrier(distribution& d, carrier_kind kind) {
    std::size_t n = 0;
    for (const auto& c : d.connections()) {
        n += c.up && c.carrier == kind ? 1 : 0;
    }
    return n;
}

class DistributionRingTest : public ::testing::Test {
  protected:
    watchdog watchdog_{std::chrono::seconds(120)};
};

TEST_F(DistributionRingTest, shouldConnectOverARingAndKeepOrderWhenTenThousandMessagesGoEachWay) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
    ring_node a(host, "a@127.0.0.1", 1, 0);
    ring_node b(host, "b@127.0.0.1", 2, 0);
    inbox at_a, at_b;
    spawn_counter(a.host(), "counter", 10000, at_a);
    spawn_counter(b.host(), "counter", 10000, at_b);
    spawn_sender(a.host(), "counter", "b@127.0.0.1", 10000);
    a.start();
    b.start();
    auto got_b = at_b.wait_for(1);
    ASSERT_EQ(got_b.size(), 1u) << ::testing::PrintToString(a.log());
    EXPECT_EQ(got_b[0], term(tuple{b.host().a("in_order"), std::int64_t{10000}}));
    b.stop();
    spawn_sender(b.host(), "counter", "a@127.0.0.1", 10000);
    b.start();
    auto got_a = at_a.wait_for(1);
    ASSERT_EQ(got_a.size(), 1u) << ::testing::PrintToString(b.log());
    EXPECT_EQ(got_a[0], term(tuple{a.host().a("in_order"), std::int64_t{10000}}));
    a.stop();
    b.stop();
    ASSERT_EQ(a.dist().connections().size(), 1u);
    ASSERT_EQ(b.dist().connections().size(), 1u);
    EXPECT_EQ(a.dist().connections()[0].carrier, carrier_kind::ring);
    EXPECT_EQ(b.dist().connections()[0].carrier, carrier_kind::ring);
    EXPECT_TRUE(a.dist().connections()[0].initiated);
    EXPECT_GE(a.dist().connections()[0].stats.messages_out, 10000u);
    EXPECT_GE(b.dist().connections()[0].stats.messages_in, 10000u);
    a.stop_distribution();
    b.stop_distribution();
    EXPECT_EQ(a.backend().shared_page_count(), 0u);
    EXPECT_EQ(b.backend().shared_page_count(), 0u);
    EXPECT_EQ(host.sockets_left(), 0u);
}

TEST_F(DistributionRingTest, shouldStreamA64MegabyteBinaryWhenTheRingIsSmall) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
    const ring_options small{.orders = {{16}, {16}}};
    ring_node a(host, "a@127.0.0.1", 1, 0, small);
    ring_node b(host, "b@127.0.0.1", 2, 0, small);
    inbox at_b;
    (void)b.host().spawn([&at_b](process& self) {
        (void)self.register_name(self.host().a("sink"));
        self.become([&at_b](process&, term m) {
            if (const auto* bin = m.get_if<dist::binary>()) {
                at_b.put(static_cast<std::int64_t>(bin->size()));
            }
        });
    });
    constexpr std::size_t size = std::size_t{64} << 20;
    (void)a.host().spawn([](process& self) {
        std::vector<std::byte> data(size, std::byte{0x5a});
        self.send(self.host().a("sink"), self.host().a("b@127.0.0.1"), dist::binary(data));
    });
    a.start();
    b.start();
    const auto got = at_b.wait_for(1, 60s);
    ASSERT_EQ(got.size(), 1u) << ::testing::PrintToString(a.log());
    EXPECT_EQ(got[0], term(static_cast<std::int64_t>(size)));
    a.stop();
    b.stop();
    EXPECT_EQ(count_carrier(a.dist(), carrier_kind::ring), 1u);
}

TEST_F(DistributionRingTest, shouldKeepOneRingConnectionWhenBothNodesConnectAtOnce) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
    ring_node a(host, "a@127.0.0.1", 1, 0);
    ring_node b(host, "b@127.0.0.1", 2, 0);
    inbox at_a, at_b;
    spawn_counter(a.host(), "counter", 100, at_a);
    spawn_counter(b.host(), "counter", 100, at_b);
    spawn_sender(a.host(), "counter", "b@127.0.0.1", 100);
    spawn_sender(b.host(), "counter", "a@127.0.0.1", 100);
    a.start();
    b.start();
    const auto got_a = at_a.wait_for(1);
    const auto got_b = at_b.wait_for(1);
    ASSERT_EQ(got_a.size(), 1u) << ::testing::PrintToString(a.log());
    ASSERT_EQ(got_b.size(), 1u) << ::testing::PrintToString(b.log());
    EXPECT_EQ(got_a[0], term(tuple{a.host().a("in_order"), std::int64_t{100}}));
    EXPECT_EQ(got_b[0], term(tuple{b.host().a("in_order"), std::int64_t{100}}));
    std::this_thread::sleep_for(100ms);  // the losing ring closes
    a.stop();
    b.stop();
    EXPECT_EQ(a.dist().connections().size(), 1u) << ::testing::PrintToString(a.log());
    EXPECT_EQ(b.dist().connections().size(), 1u) << ::testing::PrintToString(b.log());
    EXPECT_EQ(count_carrier(a.dist(), carrier_kind::ring), 1u);
    EXPECT_EQ(count_carrier(b.dist(), carrier_kind::ring), 1u);
    a.stop_distribution();
    b.stop_distribution();
    EXPECT_EQ(a.backend().shared_page_count(), 0u);
    EXPECT_EQ(b.backend().shared_page_count(), 0u);
    EXPECT_EQ(host.sockets_left(), 0u);
}

TEST_F(DistributionRingTest, shouldUseTcpWhenTheDirectoryDoesNotPlaceThePeerOnThisHost) {
    test::private_epmd epmd;
    test_host host({{"a@127.0.0.1", 1}});  // b is elsewhere
    ring_node a(host, "a@127.0.0.1", 1, epmd.port());
    ring_node b(host, "b@127.0.0.1", 2, epmd.port(), ring_options{.in_directory = false});
    inbox at_b;
    spawn_counter(b.host(), "counter", 100, at_b);
    spawn_sender(a.host(), "counter", "b@127.0.0.1", 100);
    a.start();
    b.start();
    const auto got = at_b.wait_for(1);
    ASSERT_EQ(got.size(), 1u) << ::testing::PrintToString(a.log());
    a.stop();
    b.stop();
    EXPECT_EQ(count_carrier(a.dist(), carrier_kind::tcp), 1u);
    EXPECT_EQ(count_carrier(b.dist(), carrier_kind::tcp), 1u);
}

TEST_F(DistributionRingTest, shouldRefuseTheRingConnectionWhenTheCookiesDiffer) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
    ring_node a(host, "a@127.0.0.1", 1, 0, ring_options{.cookie = "one"});
    ring_node b(host, "b@127.0.0.1", 2, 0, ring_options{.cookie = "another"});
    inbox seen;
    (void)a.host().spawn([&seen](process& self) {
        net_adm_ping(self, self.host().a("b@127.0.0.1"), 5s,
                     [&seen](process&, atom result) { seen.put(result); });
    });
    a.start();
    b.start();
    const auto got = seen.wait_for(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], term(a.host().a("pang")));
    a.stop();
    b.stop();
    EXPECT_TRUE(b.logged("invalid challenge reply")) << ::testing::PrintToString(b.log());
    EXPECT_TRUE(a.dist().connections().empty());
    EXPECT_TRUE(b.dist().connections().empty());
    EXPECT_EQ(a.backend().shared_page_count(), 0u);
    EXPECT_EQ(host.sockets_left(), 0u);
}

TEST_F(DistributionRingTest, shouldCarryMessagesWhenBothNodesBusyPoll) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
    const ring_options busy{.mode = transport::wait_mode::busy_poll};
    ring_node a(host, "a@127.0.0.1", 1, 0, busy);
    ring_node b(host, "b@127.0.0.1", 2, 0, busy);
    inbox seen;
    (void)a.host().spawn([&seen](process& self) {
        gen_server::call(
            self, gen_server::remote_name{self.host().a("echo"), self.host().a("b@127.0.0.1")},
            std::int64_t{7}, 5s, [&seen](process&, term reply) { seen.put(std::move(reply)); },
            [&seen](process& me, term reason) {
                seen.put(tuple{me.host().a("error"), reason});
            });
    });
    a.start();
    b.start();
    const auto got = seen.wait_for(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], term(std::int64_t{7}));
    a.stop();
    b.stop();
    EXPECT_EQ(count_carrier(a.dist(), carrier_kind::ring), 1u);
}

// A ring without a byte for a while is no longer polled on every turn of the loop but armed
// (distribution.cpp, ring_cold_after): its peer's next write must wake the node. A busy-polling
// node polls thousands of times in the pause, and never blocks.
TEST_F(DistributionRingTest, shouldDeliverOnARingThatWentIdleWhenItsPeerWritesAgain) {
    for (const auto mode :
         {transport::wait_mode::busy_poll, transport::wait_mode::spin_then_block}) {
        SCOPED_TRACE(mode == transport::wait_mode::busy_poll ? "busy_poll" : "spin_then_block");
        test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
        ring_node a(host, "a@127.0.0.1", 1, 0, {.mode = mode});
        ring_node b(host, "b@127.0.0.1", 2, 0, {.mode = mode});
        inbox at_a, at_b;
        spawn_counter(a.host(), "counter", 1, at_a);
        spawn_counter(b.host(), "counter", 1, at_b);
        spawn_sender(a.host(), "counter", "b@127.0.0.1", 1);
        a.start();
        b.start();
        ASSERT_EQ(at_b.wait_for(1).size(), 1u) << ::testing::PrintToString(a.log());
        std::this_thread::sleep_for(200ms);  // a's ring from b goes idle, a keeps running
        b.stop();
        spawn_sender(b.host(), "counter", "a@127.0.0.1", 1);
        b.start();
        const auto got = at_a.wait_for(1);
        ASSERT_EQ(got.size(), 1u) << "a did not read its idle ring: "
                                  << ::testing::PrintToString(a.log());
        EXPECT_EQ(got[0], term(tuple{a.host().a("in_order"), std::int64_t{1}}));
        a.stop();
        b.stop();
        EXPECT_EQ(count_carrier(a.dist(), carrier_kind::ring), 1u);
    }
}

// The peer runs in a forked process; the test kills it with SIGKILL while a stream goes to it.
// The name still locates a dead incarnation's domain (its toolstack has not removed the record
// yet), so the ring offered there is never attached. Once the name locates the new incarnation,
// the attempt ends (not when net_setuptime passes), and the next send reaches the new one.
TEST_F(DistributionRingTest, shouldGiveUpARingOfferedToADeadIncarnationOnceItsNameMoves) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}, {"dead@127.0.0.1", 3}});
    host.relocate("b@127.0.0.1", 3);
    const ring_options options{.net_setuptime = std::chrono::seconds(60)};
    ring_node a(host, "a@127.0.0.1", 1, 0, options);
    ring_node b(host, "b@127.0.0.1", 2, 0, options);
    inbox at_b;
    spawn_counter(b.host(), "counter", 1, at_b);
    spawn_sender(a.host(), "counter", "b@127.0.0.1", 1);
    a.start();
    b.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few rechecks
    const std::string gave_up = "ring offered to domain 3, where b@127.0.0.1 no longer runs";
    EXPECT_FALSE(a.logged(gave_up)) << "given up while the name still located domain 3";
    host.relocate("b@127.0.0.1", 2);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!a.logged(gave_up) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(a.logged(gave_up)) << ::testing::PrintToString(a.log());
    a.stop();
    spawn_sender(a.host(), "counter", "b@127.0.0.1", 1);
    a.start();
    const auto got = at_b.wait_for(1);
    ASSERT_EQ(got.size(), 1u) << ::testing::PrintToString(a.log());
    a.stop();
    b.stop();
    ASSERT_EQ(a.dist().connections().size(), 1u);
    EXPECT_EQ(a.dist().connections()[0].carrier, carrier_kind::ring);
    EXPECT_TRUE(a.dist().connections()[0].up);
}

TEST_F(DistributionRingTest, shouldSignalNoconnectionAndReleaseTheRingWhenThePeerIsKilled) {
    test_host host({{"a@127.0.0.1", 1}, {"b@127.0.0.1", 2}});
    std::array<int, 2> ready{};
    ASSERT_EQ(::pipe2(ready.data(), O_CLOEXEC), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::alarm(60);  // the child's watchdog
        ring_node b(host, "b@127.0.0.1", 2, 0);
        (void)b.host().spawn([](process& self) {
            (void)self.register_name(self.host().a("sink"));
            self.become([](process& me, term m) {
                if (const auto* t = m.get_if<tuple>(); t != nullptr && t->elements.size() == 2) {
                    if (const auto* who = t->elements[1].get_if<pid>()) {
                        me.send(*who, tuple{me.host().a("sink_is"), me.self()});
                    }
                }
            });
        });
        const char one = 1;
        (void)::write(ready[1], &one, 1);
        b.host().run();
        std::_Exit(0);
    }
    ::close(ready[1]);
    char byte = 0;
    ASSERT_EQ(::read(ready[0], &byte, 1), 1);
    ::close(ready[0]);
    {
        ring_node a(host, "a@127.0.0.1", 1, 0);
        inbox seen;
        (void)a.host().spawn([&seen](process& self) {
            self.trap_exit(true);
            self.send(self.host().a("sink"), self.host().a("b@127.0.0.1"),
                      tuple{self.host().a("hello"), self.self()});
            self.become([&seen](process& me, term m) {
                const auto* t = m.get_if<tuple>();
                if (t != nullptr && t->elements.size() == 2 && is_atom(t->elements[0], "sink_is")) {
                    const pid sink = std::get<pid>(t->elements[1].value());
                    me.link(sink);
                    (void)me.monitor(sink);
                    seen.put(m);
                    // A stream the peer will not see the end of.
                    for (int i = 0; i < 200000; ++i) {
                        me.send(sink, tuple{me.host().a("data"), std::int64_t{i}});
                    }
                    return;
                }
                seen.put(std::move(m));
            });
        });
        a.start();
        ASSERT_EQ(seen.wait_for(1).size(), 1u) << ::testing::PrintToString(a.log());
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        const auto got = seen.wait_for(3);
        ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(a.log());
        int exits = 0, downs = 0;
        for (std::size_t i = 1; i < got.size(); ++i) {
            const auto* t = got[i].get_if<tuple>();
            ASSERT_NE(t, nullptr);
            if (t->elements.size() == 3 && is_atom(t->elements[0], "EXIT")) {
                EXPECT_TRUE(is_atom(t->elements[2], "noconnection"));
                ++exits;
            } else if (t->elements.size() == 5 && is_atom(t->elements[0], "DOWN")) {
                EXPECT_TRUE(is_atom(t->elements[4], "noconnection"));
                ++downs;
            }
        }
        EXPECT_EQ(exits, 1);
        EXPECT_EQ(downs, 1);
        a.stop();
        EXPECT_TRUE(a.logged("connection to b@127.0.0.1 down"))
            << ::testing::PrintToString(a.log());
        EXPECT_TRUE(a.dist().connections().empty());
        EXPECT_EQ(a.backend().shared_page_count(), 0u);
    }
    EXPECT_EQ(host.sockets_left(), 0u);
}

}  // namespace
}  // namespace vdist::runtime
