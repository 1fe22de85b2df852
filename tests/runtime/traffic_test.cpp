// vdist_traffic, the cluster's loss/duplicate/reorder check: three C++ nodes over TCP
// distribution (threads of this process, a private epmd) send to each other with per-sender
// sequence numbers; the checker itself is shown to catch gaps and steps back; a peer that goes
// away and comes back under the same name gets a new stream.

#include "vdist/runtime/traffic.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vdist/runtime/threaded_node.hpp"
#include "vdist/test/erlang.hpp"

namespace vdist::runtime {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::tuple;

constexpr auto cookie = "traffic";

struct report {
    std::int64_t sent = 0;
    std::int64_t received = 0;
    std::int64_t lost = 0;
    std::int64_t backwards = 0;
    std::int64_t streams = 0;
    std::int64_t peers_down = 0;
};

[[nodiscard]] std::optional<report> as_report(const term& t) {
    const auto* r = t.get_if<tuple>();
    if (r == nullptr || r->elements.size() != 8 || !is_atom(r->elements[0], "traffic_report")) {
        return std::nullopt;
    }
    const auto number = [&](std::size_t i) {
        const auto* v = r->elements[i].get_if<std::int64_t>();
        return v == nullptr ? -1 : *v;
    };
    return report{number(2), number(3), number(4), number(5), number(6), number(7)};
}

class TrafficTest : public ::testing::Test {
  protected:
    std::unique_ptr<threaded_node> start(const std::string& name) {
        auto n = std::make_unique<threaded_node>(name, cookie, epmd_.port());
        n->call([](node& host) { (void)start_traffic(host); });
        return n;
    }

    // Asks `target`'s vdist_traffic for its report, through `driver`.
    std::optional<report> report_of(threaded_node& driver, const std::string& target) {
        driver.send("vdist_traffic", target, tuple{driver.a("report"), driver.self()});
        const auto replies = driver.wait_for(1, 10s);
        return replies.size() == 1 ? as_report(replies[0]) : std::nullopt;
    }

    // Waits until `target` has received `count` messages; its last report.
    std::optional<report> wait_received(threaded_node& driver, const std::string& target,
                                        std::int64_t count, std::chrono::seconds timeout = 60s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::optional<report> last;
        while (std::chrono::steady_clock::now() < deadline) {
            last = report_of(driver, target);
            if (last && last->received >= count) {
                return last;
            }
            std::this_thread::sleep_for(50ms);
        }
        return last;
    }

    test::private_epmd epmd_;
};

TEST_F(TrafficTest, shouldDeliverEveryMessageInOrderWhenThreeNodesSendToEachOther) {
    ASSERT_NE(epmd_.port(), 0);
    const std::vector<std::string> names{"ta@localhost", "tb@localhost", "tc@localhost"};
    std::vector<std::unique_ptr<threaded_node>> nodes;
    for (const auto& name : names) {
        nodes.push_back(start(name));
    }
    auto& driver = *nodes[0];
    list peers;
    for (const auto& name : names) {
        peers.elements.emplace_back(driver.a(name));
    }
    constexpr std::int64_t per_peer = 3000;
    for (const auto& name : names) {
        driver.send("vdist_traffic", name, tuple{driver.a("start"), peers, per_peer, 32});
    }
    for (const auto& name : names) {
        const auto r = wait_received(driver, name, 2 * per_peer);
        ASSERT_TRUE(r.has_value()) << name;
        EXPECT_EQ(r->received, 2 * per_peer) << name;
        EXPECT_EQ(r->sent, 2 * per_peer) << name;
        EXPECT_EQ(r->lost, 0) << name;
        EXPECT_EQ(r->backwards, 0) << name;
        EXPECT_EQ(r->streams, 2) << name;
    }
}

TEST_F(TrafficTest, shouldCountGapsAndStepsBackWhenASenderSkipsOrRepeats) {
    ASSERT_NE(epmd_.port(), 0);
    auto a = start("ga@localhost");
    auto b = start("gb@localhost");
    const auto seq = [&](std::int64_t stream, std::int64_t number) {
        return tuple{a->a("vdist_seq"), a->self(), stream, number, dist::binary()};
    };
    // Stream 1: 1, 2, 5 (3 and 4 lost), 5 (a duplicate), 4 (a step back). Stream 2: 2 first
    // (1 lost).
    for (const auto& [stream, number] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {1, 1}, {1, 2}, {1, 5}, {1, 5}, {1, 4}, {2, 2}}) {
        a->send("vdist_traffic", "gb@localhost", seq(stream, number));
    }
    const auto r = wait_received(*a, "gb@localhost", 6, 10s);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->received, 6);
    EXPECT_EQ(r->lost, 3);
    EXPECT_EQ(r->backwards, 2);
    EXPECT_EQ(r->streams, 2);
}

TEST_F(TrafficTest, shouldStartANewStreamWhenAPeerComesBackUnderTheSameName) {
    ASSERT_NE(epmd_.port(), 0);
    auto a = start("ra@localhost");
    auto b = start("rb@localhost");
    const list peers{a->a("rb@localhost")};
    a->send("vdist_traffic", "ra@localhost", tuple{a->a("start"), peers, 0, 16});
    ASSERT_TRUE(wait_received(*a, "rb@localhost", 1000).has_value());
    b.reset();  // rb goes away while ra keeps sending
    std::this_thread::sleep_for(300ms);
    b = start("rb@localhost");
    const auto r = wait_received(*a, "rb@localhost", 1000, 30s);
    ASSERT_TRUE(r.has_value());
    EXPECT_GE(r->received, 1000);
    EXPECT_EQ(r->lost, 0);
    EXPECT_EQ(r->backwards, 0);
    EXPECT_EQ(r->streams, 1);
    const auto sender = report_of(*a, "ra@localhost");
    ASSERT_TRUE(sender.has_value());
    EXPECT_GE(sender->peers_down, 1);  // it saw rb go
    a->send("vdist_traffic", "ra@localhost", a->a("stop"));
}

}  // namespace
}  // namespace vdist::runtime
