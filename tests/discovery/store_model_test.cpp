// The store's semantics without sockets.
#include "store_model.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <set>
#include <string>

using namespace vdist::discovery;
using namespace vdist::discovery::internal;

namespace {

constexpr connection_id conn_a = 1;
constexpr connection_id conn_b = 2;

struct StoreModelTest : testing::Test {
    store_model model;

    void SetUp() override {
        // The toolstack's layout: /local/domain/<d> owned by d, private.
        for (store_domid d : {5U, 6U}) {
            ASSERT_TRUE(model.mkdir(0, no_connection, 0, domain_path(d)));
            ASSERT_TRUE(
                model.set_permissions(0, no_connection, 0, domain_path(d), {{d, access::none}}));
        }
        (void)model.take_deliveries();
    }
};

}  // namespace

TEST_F(StoreModelTest, shouldCreateParentsWithInheritedPermissionsWhenWriting) {
    ASSERT_TRUE(model.write(5, conn_a, 0, "/local/domain/5/a/b/c", "v"));
    EXPECT_EQ(model.read(5, conn_a, 0, "/local/domain/5/a/b/c"), "v");
    EXPECT_EQ(model.read(5, conn_a, 0, "/local/domain/5/a/b"), "");
    const auto permissions = model.get_permissions(0, no_connection, 0, "/local/domain/5/a");
    ASSERT_TRUE(permissions);
    EXPECT_EQ(*permissions, (std::vector<permission>{{5, access::none}}));
}

TEST_F(StoreModelTest, shouldResolveRelativePathsWhenUnderOwnDomain) {
    ASSERT_TRUE(model.write(5, conn_a, 0, "data/x", "1"));
    EXPECT_EQ(model.read(0, no_connection, 0, "/local/domain/5/data/x"), "1");
}

TEST_F(StoreModelTest, shouldRefuseWhenDomainTouchesForeignSubtree) {
    EXPECT_EQ(model.write(5, conn_a, 0, "/local/domain/6/x", "v").error(), EACCES);
    EXPECT_EQ(model.read(5, conn_a, 0, "/local/domain/6").error(), EACCES);
    // Without read access to the parent, not even ENOENT is revealed.
    EXPECT_EQ(model.read(5, conn_a, 0, "/local/domain/6/missing").error(), EACCES);
    EXPECT_EQ(model.read(6, conn_a, 0, "/local/domain/6/missing").error(), ENOENT);
    EXPECT_EQ(model.set_permissions(5, conn_a, 0, "/local/domain/5", {{6, access::both}}).error(),
              EPERM);
}

TEST_F(StoreModelTest, shouldRemoveSubtreeWhenRm) {
    ASSERT_TRUE(model.write(0, no_connection, 0, "/t/a/b", "1"));
    ASSERT_TRUE(model.write(0, no_connection, 0, "/t/a/c", "2"));
    const auto before = model.key_count();
    ASSERT_TRUE(model.rm(0, no_connection, 0, "/t/a"));
    EXPECT_EQ(model.key_count(), before - 3);
    EXPECT_EQ(model.directory(0, no_connection, 0, "/t"), std::vector<std::string>{});
    EXPECT_TRUE(model.rm(0, no_connection, 0, "/t/a"));  // gone already, parent there: fine
    EXPECT_EQ(model.rm(0, no_connection, 0, "/t/a/b").error(), ENOENT);
    EXPECT_EQ(model.rm(0, no_connection, 0, "/").error(), EINVAL);
}

TEST_F(StoreModelTest, shouldRejectWhenPathIsInvalid) {
    for (const char* bad : {"", "/a b", "/a//b", "/a/", "/a\xff", "/a.b"}) {
        EXPECT_EQ(model.write(0, no_connection, 0, bad, "v").error(), EINVAL) << bad;
    }
    EXPECT_EQ(model.read(0, no_connection, 0, "/" + std::string(3072, 'a')).error(), EINVAL);
}

TEST_F(StoreModelTest, shouldFailSecondCommitWhenBothTransactionsTouchedSameKey) {
    ASSERT_TRUE(model.write(0, no_connection, 0, "/counter", "0"));
    const auto first = model.transaction_start(conn_a);
    const auto second = model.transaction_start(conn_b);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(model.read(0, conn_a, *first, "/counter"), "0");
    EXPECT_EQ(model.read(0, conn_b, *second, "/counter"), "0");
    ASSERT_TRUE(model.write(0, conn_a, *first, "/counter", "1"));
    ASSERT_TRUE(model.write(0, conn_b, *second, "/counter", "1"));
    EXPECT_EQ(model.read(0, no_connection, 0, "/counter"), "0");  // not visible before commit
    EXPECT_TRUE(model.transaction_end(conn_a, *first, true));
    EXPECT_EQ(model.transaction_end(conn_b, *second, true).error(), EAGAIN);
    EXPECT_EQ(model.read(0, no_connection, 0, "/counter"), "1");
    EXPECT_EQ(model.transaction_count(), 0U);
}

TEST_F(StoreModelTest, shouldRefuseWhenTransactionBelongsToAnotherConnection) {
    const auto tx = model.transaction_start(conn_a);
    ASSERT_TRUE(tx);
    EXPECT_EQ(model.read(0, conn_b, *tx, "/").error(), ENOENT);
    EXPECT_EQ(model.read(0, conn_a, 999, "/").error(), ENOENT);
    EXPECT_EQ(model.transaction_end(conn_b, *tx, true).error(), ENOENT);
    EXPECT_TRUE(model.transaction_end(conn_a, *tx, false));
}

TEST_F(StoreModelTest, shouldFireWatchesWhenPathOrBelowChangesOrAncestorGoes) {
    ASSERT_TRUE(model.write(0, no_connection, 0, "/w/x", ""));
    ASSERT_TRUE(model.watch(0, conn_a, "/w/x", "t"));
    EXPECT_EQ(model.take_deliveries().size(), 1U);  // the initial event
    ASSERT_TRUE(model.write(0, no_connection, 0, "/w/x/child", "1"));
    ASSERT_TRUE(model.write(0, no_connection, 0, "/w/other", "1"));  // not below: silent
    ASSERT_TRUE(model.rm(0, no_connection, 0, "/w"));
    const auto events = model.take_deliveries();
    ASSERT_EQ(events.size(), 2U);
    EXPECT_EQ(events[0].path, "/w/x/child");
    EXPECT_EQ(events[1].path, "/w/x");
}

TEST_F(StoreModelTest, shouldNotFireWhenWatcherMayNotRead) {
    ASSERT_TRUE(model.watch(5, conn_a, "/local/domain/6", "t"));
    (void)model.take_deliveries();
    ASSERT_TRUE(model.write(0, no_connection, 0, "/local/domain/6/secret", "1"));
    EXPECT_TRUE(model.take_deliveries().empty());
}

TEST_F(StoreModelTest, shouldDropWatchesAndTransactionsWhenConnectionGoes) {
    ASSERT_TRUE(model.watch(0, conn_a, "/", "t"));
    ASSERT_TRUE(model.transaction_start(conn_a));
    model.drop_connection(conn_a);
    EXPECT_EQ(model.watch_count(), 0U);
    EXPECT_EQ(model.transaction_count(), 0U);
    EXPECT_TRUE(model.take_deliveries().empty());
}

TEST_F(StoreModelTest, shouldReportRelativePathsWhenWatchWasRelative) {
    ASSERT_TRUE(model.watch(5, conn_a, "data", "t"));
    const auto initial = model.take_deliveries();
    ASSERT_EQ(initial.size(), 1U);
    EXPECT_EQ(initial[0].path, "data");
    ASSERT_TRUE(model.write(5, conn_b, 0, "/local/domain/5/data/x", "1"));
    const auto events = model.take_deliveries();
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].path, "data/x");
    EXPECT_TRUE(model.unwatch(5, conn_a, "data", "t"));
}

TEST_F(StoreModelTest, shouldFireEveryWatchOnThePathOrAboveAndNoneOnASiblingSharingItsPrefix) {
    ASSERT_TRUE(model.write(0, no_connection, 0, "/w/x", ""));
    for (const char* path : {"/", "/w", "/w/x", "/w/xy", "/w/x/deeper"}) {
        ASSERT_TRUE(model.watch(0, conn_a, path, path));
    }
    ASSERT_TRUE(model.watch(0, conn_b, "/w/x", "b"));  // a second watch on one path
    (void)model.take_deliveries();
    ASSERT_TRUE(model.write(0, no_connection, 0, "/w/x/child", "1"));
    std::multiset<std::string> tokens;
    for (const auto& event : model.take_deliveries()) {
        EXPECT_EQ(event.path, "/w/x/child");
        tokens.insert(event.token);
    }
    EXPECT_EQ(tokens, (std::multiset<std::string>{"/", "/w", "/w/x", "b"}));
    // Removed with its parent: the watch below it hears of it, under its own path.
    ASSERT_TRUE(model.write(0, no_connection, 0, "/w/x/deeper/leaf", "1"));
    (void)model.take_deliveries();
    ASSERT_TRUE(model.rm(0, no_connection, 0, "/w/x"));
    std::map<std::string, std::string> removed;  // token -> reported path
    for (const auto& event : model.take_deliveries()) {
        removed[event.token] = event.path;
    }
    EXPECT_EQ(removed.at("/w/x/deeper"), "/w/x/deeper");
    EXPECT_EQ(removed.at("/w"), "/w/x");
    EXPECT_FALSE(removed.contains("/w/xy"));
}

TEST_F(StoreModelTest, shouldRefuseTheSameWatchTwiceAndWatchesBeyondTheLimitPerConnection) {
    ASSERT_TRUE(model.watch(0, conn_a, "/w", "t"));
    EXPECT_EQ(model.watch(0, conn_a, "/w", "t").error(), EEXIST);
    EXPECT_TRUE(model.watch(0, conn_b, "/w", "t"));  // another connection's
    for (std::size_t i = 1; i < store_model::max_watches_per_connection; ++i) {
        ASSERT_TRUE(model.watch(0, conn_a, "/w", "t" + std::to_string(i)));
    }
    EXPECT_EQ(model.watch(0, conn_a, "/w", "one more").error(), E2BIG);
    ASSERT_TRUE(model.unwatch(0, conn_a, "/w", "t"));
    EXPECT_TRUE(model.watch(0, conn_a, "/w", "one more"));
    EXPECT_EQ(model.unwatch(0, conn_a, "/w", "t").error(), ENOENT);
}
