// Real libxenstore (store_client) against the host store, served on a background thread.
#include "vdist/discovery/store_server.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "served_store.hpp"

using namespace vdist::discovery;
using namespace std::chrono_literals;
using vdist::discovery::test::next_event_within;
using vdist::discovery::test::raw_client;
using vdist::discovery::test::served_store;

namespace {

std::error_code errno_code(int error) {
    return {error, std::generic_category()};
}

std::string request(std::uint32_t type, std::string_view payload, std::uint32_t tx = 0,
                    std::uint32_t req_id = 42) {
    return xs::build(type, req_id, tx, payload);
}

struct StoreServerTest : testing::Test {
    served_store store;

    void SetUp() override {
        ASSERT_TRUE(store.ok());
        // The toolstack's layout for domains 5 and 6: each owns its private subtree.
        store.with_server([](store_server& s) {
            for (store_domid d : {5U, 6U}) {
                ASSERT_TRUE(s.mkdir(domain_path(d)));
                ASSERT_TRUE(s.set_permissions(domain_path(d), {{d, access::none}}));
            }
        });
    }

    /// A well-behaved libxenstore client is still served.
    void expect_still_serving() {
        auto client = store.client_as(0);
        ASSERT_TRUE(client);
        ASSERT_TRUE(client->write("/still/serving", "yes"));
        EXPECT_EQ(client->read("/still/serving"), "yes");
    }

    static std::string error_of(const xs::message& reply) {
        EXPECT_EQ(reply.head.type, xs::XS_ERROR);
        return std::string(reply.payload.c_str());
    }
};

/// The requests a client makes, through libxenstore and through the direct client.
struct StoreClientTest : StoreServerTest, testing::WithParamInterface<store_way> {};

}  // namespace

INSTANTIATE_TEST_SUITE_P(BothWays, StoreClientTest,
                         testing::Values(store_way::libxenstore, store_way::direct),
                         vdist::discovery::test::way_name);

TEST_P(StoreClientTest, shouldRoundTripWhenReadWriteMkdirRmDirectory) {
    auto client = store.client_as(0, GetParam());
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->write("/a/b", "hello"));
    EXPECT_EQ(client->read("/a/b"), "hello");
    ASSERT_TRUE(client->write("/a/empty", ""));
    EXPECT_EQ(client->read("/a/empty"), "");
    ASSERT_TRUE(client->mkdir("/a/dir"));
    EXPECT_EQ(client->directory("/a"), (std::vector<std::string>{"b", "dir", "empty"}));
    ASSERT_TRUE(client->rm("/a"));
    EXPECT_EQ(client->read("/a/b").error(), errno_code(ENOENT));
    EXPECT_EQ(client->directory("/a").error(), errno_code(ENOENT));
    EXPECT_EQ(client->write("/bad path", "x").error(), errno_code(EINVAL));
    const std::string big(5000, 'x');
    EXPECT_EQ(client->write("/big", big).error(), errno_code(E2BIG));
    EXPECT_EQ(store.with_server([](store_server& s) { return s.read("/a"); }).error(),
              errno_code(ENOENT));
}

TEST_P(StoreClientTest, shouldFireWatchWhenRegisteredChangedChildCreatedAndDeleted) {
    auto client = store.client_as(0, GetParam());
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->write("/w", ""));
    ASSERT_TRUE(client->watch("/w", "tok"));
    auto initial = next_event_within(*client);
    ASSERT_TRUE(initial);
    EXPECT_EQ(initial->path, "/w");
    EXPECT_EQ(initial->token, "tok");

    ASSERT_TRUE(client->write("/w", "changed"));
    EXPECT_EQ(next_event_within(*client)->path, "/w");
    // The toolstack's own writes fire too.
    ASSERT_TRUE(store.with_server([](store_server& s) { return s.write("/w/child", "1"); }));
    EXPECT_EQ(next_event_within(*client)->path, "/w/child");
    ASSERT_TRUE(client->rm("/w"));
    EXPECT_EQ(next_event_within(*client)->path, "/w");
    ASSERT_TRUE(client->unwatch("/w", "tok"));
    ASSERT_TRUE(client->write("/w", "again"));
    EXPECT_FALSE(next_event_within(*client, 200ms));
}

TEST_P(StoreClientTest, shouldNotFireWatchWhenPathIsUnreadable) {
    auto client = store.client_as(5, GetParam());
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->watch("/local/domain/6", "foreign"));
    ASSERT_TRUE(next_event_within(*client));  // the initial event
    ASSERT_TRUE(client->watch("/local/domain/5", "own"));
    ASSERT_TRUE(next_event_within(*client));
    store.with_server([](store_server& s) {
        ASSERT_TRUE(s.write("/local/domain/6/secret", "1"));
        ASSERT_TRUE(s.write("/local/domain/5/mine", "1"));
    });
    const auto event = next_event_within(*client);
    ASSERT_TRUE(event);
    EXPECT_EQ(event->token, "own");
    EXPECT_EQ(event->path, "/local/domain/5/mine");
    EXPECT_FALSE(next_event_within(*client, 200ms));
}

TEST_P(StoreClientTest, shouldRefuseWhenDomainWritesForeignSubtreeUntilGranted) {
    auto client = store.client_as(5, GetParam());
    ASSERT_TRUE(client);
    EXPECT_EQ(client->write("/local/domain/6/x", "v").error(), errno_code(EACCES));
    EXPECT_EQ(client->read("/local/domain/6").error(), errno_code(EACCES));
    ASSERT_TRUE(client->write("/local/domain/5/x", "mine"));
    EXPECT_EQ(client->get_permissions("/local/domain/5/x"),
              (std::vector<permission>{{5, access::none}}));
    store.with_server([](store_server& s) {
        ASSERT_TRUE(s.set_permissions("/local/domain/6", {{6, access::none}, {5, access::write}}));
    });
    EXPECT_TRUE(client->write("/local/domain/6/x", "v"));
    // A domain may share what it owns, but not give it away.
    EXPECT_TRUE(
        client->set_permissions("/local/domain/5/x", {{5, access::none}, {6, access::read}}));
    EXPECT_EQ(client->set_permissions("/local/domain/5/x", {{6, access::both}}).error(),
              errno_code(EPERM));
}

TEST_P(StoreClientTest, shouldFailSecondCommitWithEagainWhenTransactionsConflict) {
    auto first = store.client_as(0, GetParam());
    auto second = store.client_as(0, GetParam());
    ASSERT_TRUE(first && second);
    ASSERT_TRUE(first->write("/counter", "0"));
    const auto a = first->transaction_start();
    const auto b = second->transaction_start();
    ASSERT_TRUE(a && b);
    EXPECT_EQ(first->read("/counter", *a), "0");
    EXPECT_EQ(second->read("/counter", *b), "0");
    ASSERT_TRUE(first->write("/counter", "1", *a));
    ASSERT_TRUE(second->write("/counter", "1", *b));
    EXPECT_TRUE(first->transaction_end(*a));
    EXPECT_EQ(second->transaction_end(*b).error(), errno_code(EAGAIN));
    EXPECT_EQ(first->read("/counter"), "1");
    EXPECT_EQ(first->transaction_end(12345).error(), errno_code(ENOENT));
}

TEST_F(StoreServerTest, shouldLandEveryIncrementWhenTwoProcessesTransactConcurrently) {
    constexpr int per_process = 200;
    store.with_server([](store_server& s) { ASSERT_TRUE(s.write("/counter", "0")); });
    std::vector<pid_t> children;
    for (int i = 0; i < 2; ++i) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            // The child only talks to the store, then leaves without running the parent's
            // destructors (the server thread does not exist here).
            ::alarm(60);
            auto client = store_client::open(store.socket());
            if (!client) {
                ::_exit(2);
            }
            for (int n = 0; n < per_process; ++n) {
                auto done = client->transact(
                    [&](transaction_id tx) -> std::expected<void, std::error_code> {
                        auto value = client->read("/counter", tx);
                        if (!value) {
                            return std::unexpected(value.error());
                        }
                        return client->write("/counter", std::to_string(std::stoi(*value) + 1), tx);
                    },
                    1000);
                if (!done) {
                    ::_exit(3);
                }
            }
            ::_exit(0);
        }
        children.push_back(pid);
    }
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (const pid_t child : children) {
        int status = -1;
        while (::waitpid(child, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(child, SIGKILL);
                (void)::waitpid(child, &status, 0);
                break;
            }
            std::this_thread::sleep_for(10ms);
        }
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    }
    EXPECT_EQ(store.with_server([](store_server& s) { return s.read("/counter"); }),
              std::to_string(2 * per_process));
    EXPECT_EQ(store.with_server([](store_server& s) { return s.transaction_count(); }), 0U);
}

TEST_F(StoreServerTest, shouldReplyEinvalWhenHeaderTypeIsGarbage) {
    raw_client raw(store.socket());
    ASSERT_TRUE(raw.connected());
    ASSERT_TRUE(raw.send(request(0xdeadbeef, std::string_view("/x\0", 3))));
    auto reply = raw.receive();
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->head.req_id, 42U);
    EXPECT_EQ(error_of(*reply), "EINVAL");
    expect_still_serving();
}

TEST_F(StoreServerTest, shouldDisconnectWhenLengthExceedsPayloadMax) {
    raw_client raw(store.socket());
    ASSERT_TRUE(raw.connected());
    xs::header head{xs::XS_READ, 1, 0, 4097};
    std::string bytes(sizeof(head), '\0');
    std::memcpy(bytes.data(), &head, sizeof(head));
    ASSERT_TRUE(raw.send(bytes));
    EXPECT_TRUE(raw.closed_by_server());
    expect_still_serving();
}

TEST_F(StoreServerTest, shouldReplyWithErrorWhenRequestIsMalformed) {
    raw_client raw(store.socket());
    ASSERT_TRUE(raw.connected());
    struct malformed {
        std::string bytes;
        const char* error;
    };
    const std::vector<malformed> cases{
        {request(xs::XS_READ, "/no-terminator"), "EINVAL"},
        {request(xs::XS_WRITE, "/no-separator"), "EINVAL"},
        {request(xs::XS_READ, std::string_view("/bad path\0", 10)), "EINVAL"},
        {request(xs::XS_READ, std::string_view("/a/../b\0", 8)), "EINVAL"},
        {request(xs::XS_READ, std::string_view("/\0", 2), 999), "ENOENT"},
        {request(xs::XS_WATCH, std::string_view("/only-path\0", 11)), "EINVAL"},
        {request(xs::XS_SET_PERMS, std::string_view("/\0x5\0", 5)), "EINVAL"},
        {request(xs::XS_TRANSACTION_END, std::string_view("maybe\0", 6)), "EINVAL"},
        {request(xs::XS_READ, std::string_view("/missing\0", 9)), "ENOENT"},
    };
    for (const auto& bad : cases) {
        ASSERT_TRUE(raw.send(bad.bytes));
        auto reply = raw.receive();
        ASSERT_TRUE(reply) << bad.error;
        EXPECT_EQ(error_of(*reply), bad.error);
    }
    expect_still_serving();
}

TEST_F(StoreServerTest, shouldDisconnectWhenClientNeverReadsItsWatchEvents) {
    raw_client raw(store.socket());
    ASSERT_TRUE(raw.connected());
    ASSERT_TRUE(raw.send(request(xs::XS_WATCH, std::string_view("/flood\0t\0", 9))));
    ASSERT_TRUE(vdist::test::eventually(
        [&] { return store.with_server([](store_server& s) { return s.watch_count(); }) == 1; }));
    const std::string path = "/flood/" + std::string(200, 'x');
    bool disconnected = false;
    for (int round = 0; round < 200 && !disconnected; ++round) {
        store.with_server([&](store_server& s) {
            for (int i = 0; i < 200; ++i) {
                ASSERT_TRUE(s.write(path, "v"));
            }
            disconnected = s.watch_count() == 0;
        });
    }
    EXPECT_TRUE(disconnected);
    expect_still_serving();
}

TEST_F(StoreServerTest, shouldDisconnectWhenClientNeverReadsItsReplies) {
    store.with_server(
        [](store_server& s) { ASSERT_TRUE(s.write("/big", std::string(4000, 'v'))); });
    raw_client raw(store.socket());
    ASSERT_TRUE(raw.connected());
    const std::string read_big = request(xs::XS_READ, std::string_view("/big\0", 5));
    std::string burst;
    for (int i = 0; i < 64; ++i) {
        burst += read_big;
    }
    // Each request asks for 4 KB of reply; the server must give up on us long before 10 MB.
    bool sent_all = true;
    for (int i = 0; i < 40 && sent_all; ++i) {
        sent_all = raw.send(burst);
    }
    EXPECT_TRUE(vdist::test::eventually([&] { return store.connections() == 0; }));
    expect_still_serving();
}

TEST_F(StoreServerTest, shouldCloseConnectionWhenIdentityIsRefused) {
    store.identify_next_as(std::nullopt);
    raw_client raw(store.socket());
    ASSERT_TRUE(raw.connected());
    EXPECT_TRUE(raw.closed_by_server());
    EXPECT_EQ(store.connections(), 0U);
    expect_still_serving();
}

TEST_P(StoreClientTest, shouldDropWatchesAndTransactionsWhenDomainIsReleased) {
    auto client = store.client_as(5, GetParam());
    auto other = store.client_as(6, GetParam());
    ASSERT_TRUE(client && other);
    ASSERT_TRUE(client->watch("/local/domain/5", "t"));
    ASSERT_TRUE(client->transaction_start());
    ASSERT_TRUE(other->watch("@releaseDomain", "released"));
    ASSERT_TRUE(next_event_within(*other));  // initial
    store.with_server([](store_server& s) {
        EXPECT_EQ(s.watch_count(), 2U);
        EXPECT_EQ(s.transaction_count(), 1U);
        s.release_domain(5);
        EXPECT_EQ(s.watch_count(), 1U);
        EXPECT_EQ(s.transaction_count(), 0U);
        EXPECT_EQ(s.connection_count(), 1U);
    });
    const auto event = next_event_within(*other);
    ASSERT_TRUE(event);
    EXPECT_EQ(event->path, "@releaseDomain");
    EXPECT_FALSE(client->read("/local/domain/5"));  // its connection is gone
}

TEST_P(StoreClientTest, shouldLeaveNoKeysWhenEverythingWrittenIsRemoved) {
    const auto before = store.with_server([](store_server& s) { return s.all_paths(); });
    auto client = store.client_as(0, GetParam());
    ASSERT_TRUE(client);
    for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(client->write("/leak/" + std::to_string(i) + "/x", "v"));
    }
    ASSERT_TRUE(client->rm("/leak"));
    EXPECT_EQ(store.with_server([](store_server& s) { return s.all_paths(); }), before);
}

TEST_F(StoreServerTest, shouldKeepFilenoReadableWhenTheDirectClientReadAnEventWithAReply) {
    // A watch event that arrives while the direct client waits for a reply is read with it;
    // the socket then has nothing more, and only fileno() can say that an event waits.
    auto watcher = store.client_as(5, store_way::direct);
    auto writer = store.client_as(5, store_way::direct);
    ASSERT_TRUE(watcher && writer);
    ASSERT_TRUE(watcher->write(domain_path(5) + "/w", ""));
    ASSERT_TRUE(watcher->watch(domain_path(5) + "/w", "tok"));
    ASSERT_TRUE(writer->write(domain_path(5) + "/w/child", "1"));
    // The server handled that write (and queued the event for the watcher) before it reads
    // the watcher's next request: the event comes before its reply.
    ASSERT_TRUE(watcher->read(domain_path(5) + "/w"));
    pollfd readable{watcher->fileno(), POLLIN, 0};
    ASSERT_EQ(::poll(&readable, 1, 0), 1) << "fileno() not readable with events kept";
    std::vector<std::string> paths;
    while (auto event = watcher->next_event()) {
        paths.push_back(event->path);
    }
    EXPECT_EQ(paths,
              (std::vector<std::string>{domain_path(5) + "/w", domain_path(5) + "/w/child"}));
    readable.revents = 0;
    EXPECT_EQ(::poll(&readable, 1, 0), 0) << "fileno() still readable with no event left";
}

TEST_F(StoreServerTest, shouldFailEveryRequestWithEioWhenTheStoreClosedTheDirectConnection) {
    auto client = store.client_as(5, store_way::direct);
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->write(domain_path(5) + "/x", "1"));
    store.with_server([](store_server& s) { s.release_domain(5); });
    EXPECT_EQ(client->read(domain_path(5) + "/x").error(), errno_code(EIO));
    EXPECT_EQ(client->write(domain_path(5) + "/x", "2").error(), errno_code(EIO));
    EXPECT_FALSE(client->next_event());
    pollfd readable{client->fileno(), POLLIN, 0};
    EXPECT_EQ(::poll(&readable, 1, 0), 0) << "fileno() readable for ever at the socket's end";
}
