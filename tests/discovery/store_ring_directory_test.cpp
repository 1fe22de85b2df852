// Two domains find each other and exchange ring offers through the host store.
#include "vdist/discovery/store_ring_directory.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include "served_store.hpp"

using namespace vdist::discovery;
using namespace std::chrono_literals;
using vdist::discovery::test::served_store;

namespace {

bool readable_within(int fd, std::chrono::milliseconds limit) {
    pollfd ready{fd, POLLIN, 0};
    return ::poll(&ready, 1, static_cast<int>(limit.count())) > 0;
}

/// Through libxenstore and through the direct client (the nodes' way).
struct StoreRingDirectoryTest : testing::TestWithParam<store_way> {
    served_store store;
    std::unique_ptr<store_ring_directory> one;
    std::unique_ptr<store_ring_directory> two;

    void SetUp() override {
        ASSERT_TRUE(store.ok());
        // What the toolstack does when it starts domains 1 and 2 (nodes a@h and b@h.x).
        store.with_server([](store_server& s) {
            for (store_domid d : {1U, 2U}) {
                ASSERT_TRUE(s.mkdir(domain_path(d)));
                ASSERT_TRUE(s.set_permissions(domain_path(d), {{d, access::none}}));
                ASSERT_TRUE(s.mkdir(connect_inbox_path(d)));
                ASSERT_TRUE(s.set_permissions(connect_inbox_path(d),
                                              store_ring_directory::inbox_permissions(d)));
            }
            ASSERT_TRUE(s.write(node_entry_path("b@h.x") + "/domid", "2"));
            ASSERT_TRUE(s.write(node_entry_path("junk@h") + "/domid", "70000"));
            ASSERT_TRUE(s.set_permissions("/vdist", {{0, access::read}}));
            ASSERT_TRUE(s.set_permissions(node_entry_path("b@h.x"), {{0, access::read}}));
            ASSERT_TRUE(
                s.set_permissions(node_entry_path("b@h.x") + "/domid", {{0, access::read}}));
        });
        auto client_one = store.client_as(1, GetParam());
        auto client_two = store.client_as(2, GetParam());
        ASSERT_TRUE(client_one && client_two);
        auto opened_one = store_ring_directory::open(std::move(*client_one), 1);
        auto opened_two = store_ring_directory::open(std::move(*client_two), 2);
        ASSERT_TRUE(opened_one && opened_two);
        one = std::move(*opened_one);
        two = std::move(*opened_two);
    }

    void TearDown() override {
        one.reset();
        two.reset();
    }

    /// Offers for `dir`, waiting (bounded) until some arrive.
    static std::vector<vdist::runtime::ring_offer> offers_within(store_ring_directory& dir) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < deadline) {
            if (readable_within(dir.native_handle(), 50ms)) {
                auto offers = dir.take_offers();
                if (!offers.empty()) {
                    return offers;
                }
            }
        }
        return {};
    }
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(BothWays, StoreRingDirectoryTest,
                         testing::Values(store_way::libxenstore, store_way::direct),
                         vdist::discovery::test::way_name);

TEST_P(StoreRingDirectoryTest, shouldLocateNodeWhenToolstackRegisteredIt) {
    EXPECT_EQ(one->locate("b@h.x"), 2);
    EXPECT_EQ(one->locate("elsewhere@h"), std::nullopt);
    EXPECT_EQ(one->locate("junk@h"), std::nullopt);  // 70000 is no domid
}

TEST_P(StoreRingDirectoryTest, shouldDeliverOfferOnceWhenPeerOffers) {
    ASSERT_TRUE(one->offer(2, 7));
    const auto offers = offers_within(*two);
    ASSERT_EQ(offers.size(), 1U);
    EXPECT_EQ(offers[0].from, 1);
    EXPECT_EQ(offers[0].port, 7U);
    EXPECT_TRUE(two->take_offers().empty());
    // Taken, the entry stays until its offerer withdraws it (once its connection is up); the
    // removal's watch event is recognised, and lists nothing new.
    EXPECT_EQ(store.with_server([](store_server& s) { return s.directory(connect_inbox_path(2)); }),
              std::vector<std::string>{"1-7"});
    one->withdraw(2, 7);
    EXPECT_EQ(store.with_server([](store_server& s) { return s.directory(connect_inbox_path(2)); }),
              std::vector<std::string>{});
    EXPECT_TRUE(readable_within(two->native_handle(), 1s));
    EXPECT_TRUE(two->take_offers().empty());
}

TEST_P(StoreRingDirectoryTest, shouldOfferBothWaysWhenBothSidesConnectAtOnce) {
    ASSERT_TRUE(one->offer(2, 1));
    ASSERT_TRUE(two->offer(1, 9));
    const auto to_two = offers_within(*two);
    const auto to_one = offers_within(*one);
    ASSERT_EQ(to_two.size(), 1U);
    ASSERT_EQ(to_one.size(), 1U);
    EXPECT_EQ(to_two[0].from, 1);
    EXPECT_EQ(to_one[0].from, 2);
    EXPECT_EQ(to_one[0].port, 9U);
}

TEST_P(StoreRingDirectoryTest, shouldForgetOfferWhenWithdrawnBeforeTaken) {
    ASSERT_TRUE(one->offer(2, 3));
    one->withdraw(2, 3);
    EXPECT_EQ(store.with_server([](store_server& s) { return s.directory(connect_inbox_path(2)); }),
              std::vector<std::string>{});
    EXPECT_TRUE(two->take_offers().empty());
}

TEST_P(StoreRingDirectoryTest, shouldDropJunkWhenInboxHoldsMalformedEntries) {
    store.with_server([](store_server& s) {
        for (const char* junk : {"junk", "1-", "-5", "01-5", "1-5-6", "99999-1"}) {
            ASSERT_TRUE(s.write(connect_inbox_path(2) + "/" + junk, ""));
        }
    });
    ASSERT_TRUE(one->offer(2, 5));
    const auto offers = offers_within(*two);
    ASSERT_EQ(offers.size(), 1U);
    EXPECT_EQ(offers[0].port, 5U);
    EXPECT_EQ(store.with_server([](store_server& s) { return s.directory(connect_inbox_path(2)); }),
              std::vector<std::string>{"1-5"})
        << "junk stays";
}

TEST_P(StoreRingDirectoryTest, shouldRefuseOfferWhenPeerHasNoInbox) {
    EXPECT_FALSE(one->offer(3, 1));  // no domain 3: domain 1 may not create under /local/domain
}

TEST(StoreRingDirectoryEntryTest, shouldParseOnlyCanonicalEntriesWhenReadingInbox) {
    EXPECT_EQ(store_ring_directory::offer_entry(4, 17), "4-17");
    const auto parsed = store_ring_directory::parse_offer_entry("4-17");
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->from, 4);
    EXPECT_EQ(parsed->port, 17U);
    for (const char* junk : {"", "4", "4-", "-17", "04-17", "4-017", "+4-17", "65536-1", "4-x"}) {
        EXPECT_FALSE(store_ring_directory::parse_offer_entry(junk)) << junk;
    }
}
