// The runtime core against Erlang's semantics, on a deterministic node (test_node): every
// exit-signal rule, monitors and demonitor (with flush), selective receive order, timers and
// their cancellation, exceptions, mailbox bounds, dropped sends, lost nodes.

#include "vdist/runtime/node.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "vdist/test/test_node.hpp"

namespace vdist::runtime {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::tuple;
using test::test_node;

class NodeTest : public ::testing::Test {
  protected:
    [[nodiscard]] term EXIT(const pid& from, term reason) {
        return tuple{t.a("EXIT"), from, std::move(reason)};
    }
    [[nodiscard]] term DOWN(const reference& ref, term who, term reason) {
        return tuple{t.a("DOWN"), ref, t.a("process"), std::move(who), std::move(reason)};
    }
    /// A process that waits for any message forever (until an exit signal ends it).
    [[nodiscard]] pid idler() {
        const pid p = t.node().spawn([](process& self) { self.become([](process&, term) {}); });
        t.run();
        return p;
    }
    /// A process that does nothing until told `{exit, Reason}`, then exits with Reason.
    [[nodiscard]] behavior exits_when_told() {
        return [](process& self) {
            self.become([](process& me, term message) {
                if (const auto* order = message.get_if<tuple>();
                    order != nullptr && order->elements.size() == 2) {
                    me.exit(order->elements[1]);
                }
            });
        };
    }

    test_node t;
};

// --- exit signals
// ----------------------------------------------------------------------------------

TEST_F(NodeTest, shouldNotKillALinkedProcessWhenTheOtherExitsNormally) {
    const pid watcher = idler();
    const pid child = t.node().spawn([watcher](process& self) { self.link(watcher); });
    t.run();  // the child links, then returns: it exits with `normal`
    EXPECT_FALSE(t.node().alive(child));
    EXPECT_TRUE(t.node().alive(watcher)) << "normal does not kill a non-trapping linked process";
}

TEST_F(NodeTest, shouldKillALinkedProcessWithTheSameReasonWhenTheOtherExitsAbnormally) {
    const pid probe = t.probe();
    pid middle;
    const pid crasher = t.node().spawn([&](process& self) {
        middle = self.spawn_link([probe](process& m) {
            m.link(probe);
            m.become([](process&, term) {});
        });
        self.become([](process& me, term) { me.exit(me.host().a("boom")); });
    });
    t.run();
    // crasher is linked to middle; middle to probe (which traps).
    t.node().send(crasher, t.a("go"));
    t.run();
    EXPECT_FALSE(t.node().alive(crasher));
    EXPECT_FALSE(t.node().alive(middle)) << "boom kills the non-trapping linked process";
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], EXIT(middle, t.a("boom")))
        << "the reason propagates unchanged through the chain";
}

TEST_F(NodeTest, shouldDeliverExitMessagesWhenTrappingExits) {
    const pid probe = t.probe();
    const pid child = t.node().spawn([probe](process& self) {
        self.link(probe);
        self.exit(self.host().a("oops"));
    });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], EXIT(child, t.a("oops")));
    EXPECT_TRUE(t.node().alive(probe));
}

TEST_F(NodeTest, shouldDeliverNormalExitMessagesWhenTrapping) {
    const pid probe = t.probe();
    const pid child = t.node().spawn([probe](process& self) { self.link(probe); });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], EXIT(child, t.a("normal")));
}

TEST_F(NodeTest, shouldEndWithKilledAndTellLinksKilledWhenExitKillIsSent) {
    const pid probe = t.probe();
    const pid victim = t.node().spawn([probe](process& self) {
        self.trap_exit(true);  // kill cannot be trapped
        self.link(probe);
        self.become([](process&, term) {});
    });
    t.run();
    t.inject_exit(victim, t.a("kill"));
    t.run();
    EXPECT_FALSE(t.node().alive(victim));
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], EXIT(victim, t.a("killed")));
}

TEST_F(NodeTest, shouldTurnAnExit2IntoAMessageWhenTrappingAndIgnoreNormalWhenNot) {
    const pid probe = t.probe();
    t.inject_exit(probe, t.a("shutdown"));
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_TRUE(t.node().alive(probe));

    const pid plain = idler();
    t.inject_exit(plain, t.a("normal"));
    t.run();
    EXPECT_TRUE(t.node().alive(plain)) << "exit(Pid, normal) is ignored by a non-trapping Pid";
    t.inject_exit(plain, t.a("shutdown"));
    t.run();
    EXPECT_FALSE(t.node().alive(plain));
}

TEST_F(NodeTest, shouldNameTheSenderInTheExitMessageWhenAProcessSendsExit2) {
    const pid probe = t.probe();
    const pid sender = t.node().spawn([probe](process& self) {
        self.exit(probe, self.host().a("shutdown"));
        self.become([](process&, term) {});
    });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], EXIT(sender, t.a("shutdown")));
}

TEST_F(NodeTest, shouldGetAnExitMessageNotDieWhenATrappingCallerKillsALinkedProcess) {
    const pid probe = t.probe();
    const pid caller = t.node().spawn([probe](process& self) {
        self.trap_exit(true);
        const pid child = self.spawn_link([](process& c) { c.become([](process&, term) {}); });
        self.become([probe, child](process& me, term message) {
            if (is_atom(message, "go")) {
                me.exit(child, me.host().a("kill"));
            } else {
                me.send(probe, std::move(message));
            }
        });
    });
    t.run();
    t.node().send(caller, t.a("go"));
    t.run();
    EXPECT_TRUE(t.node().alive(caller));
    ASSERT_EQ(t.received(probe).size(), 1u);
    const auto* exit_message = t.received(probe)[0].get_if<tuple>();
    ASSERT_NE(exit_message, nullptr);
    EXPECT_EQ(exit_message->elements[2], term(t.a("killed")));
}

TEST_F(NodeTest, shouldEndTheCallerWhenItSendsExitNormalToItself) {
    const pid self_exiter = t.node().spawn([](process& self) {
        self.become([](process& me, term) { me.exit(me.self(), me.host().a("normal")); });
    });
    t.run();
    t.node().send(self_exiter, t.a("go"));
    t.run();
    EXPECT_FALSE(t.node().alive(self_exiter));
}

TEST_F(NodeTest, shouldGetNoprocWhenLinkingToAProcessThatIsGone) {
    const pid gone = t.node().spawn([](process&) {});
    t.run();
    const pid probe = t.probe();
    t.node().spawn([gone, probe](process& self) {
        self.trap_exit(true);
        self.link(gone);
        self.receive([probe](process& me, term message) { me.send(probe, std::move(message)); });
    });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], EXIT(gone, t.a("noproc")));
}

TEST_F(NodeTest, shouldNotPropagateAfterUnlink) {
    const pid probe = t.probe();
    const pid child = t.node().spawn([probe](process& self) {
        self.link(probe);
        self.unlink(probe);
        self.exit(self.host().a("boom"));
    });
    t.run();
    EXPECT_FALSE(t.node().alive(child));
    EXPECT_TRUE(t.received(probe).empty());
}

TEST_F(NodeTest, shouldPropagateAlongALongChainWithoutRecursion) {
    // 20000 linked processes: one death must reach them all without deep recursion.
    std::vector<pid> chain{idler()};
    for (int i = 0; i < 20000; ++i) {
        const pid previous = chain.back();
        chain.push_back(t.node().spawn([previous](process& self) {
            self.link(previous);
            self.become([](process&, term) {});
        }));
    }
    t.run();
    t.inject_exit(chain.front(), t.a("kill"));
    t.run();
    EXPECT_EQ(t.node().process_count(), 0u);
}

// --- exceptions
// --------------------------------------------------------------------------------------

TEST_F(NodeTest, shouldExitWithTheErrorWhenAHandlerThrows) {
    const pid probe = t.probe();
    const auto [thrower, ref] = [&] {
        pid made;
        reference monitor_ref;
        t.node().spawn([&, probe](process& self) {
            auto [child, r] = self.spawn_monitor([](process& c) {
                c.become([](process&, term) { throw std::runtime_error("bad input"); });
            });
            made = child;
            monitor_ref = r;
            self.become([probe](process& me, term message) { me.send(probe, std::move(message)); });
        });
        t.run();
        return std::pair{made, monitor_ref};
    }();
    t.node().send(thrower, t.a("hello"));
    t.run();
    EXPECT_FALSE(t.node().alive(thrower));
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0],
              DOWN(ref, thrower, tuple{t.a("cpp_exception"), dist::binary("bad input")}));
}

// --- monitors
// --------------------------------------------------------------------------------------

TEST_F(NodeTest, shouldSendDownWithTheReasonWhenAMonitoredProcessExits) {
    const pid probe = t.probe();
    const pid target = t.node().spawn(exits_when_told());
    reference ref;
    t.node().spawn([&, probe, target](process& self) {
        ref = self.monitor(target);
        self.receive([probe](process& me, term message) { me.send(probe, std::move(message)); });
    });
    t.run();
    t.node().send(target, tuple{t.a("exit"), t.a("done")});
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], DOWN(ref, target, t.a("done")));
}

TEST_F(NodeTest, shouldSendDownNoprocWhenMonitoringAProcessThatIsGone) {
    const pid gone = t.node().spawn([](process&) {});
    t.run();
    const pid probe = t.probe();
    reference ref;
    t.node().spawn([&, probe, gone](process& self) {
        ref = self.monitor(gone);
        self.receive([probe](process& me, term message) { me.send(probe, std::move(message)); });
    });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], DOWN(ref, gone, t.a("noproc")));
}

TEST_F(NodeTest, shouldMonitorByNameAndReportNameAndNode) {
    const pid server = t.node().spawn([](process& self) {
        (void)self.register_name(self.host().a("server"));
        self.become([](process& me, term) { me.exit(me.host().a("stopped")); });
    });
    t.run();
    const pid probe = t.probe();
    reference ref;
    t.node().spawn([&, probe](process& self) {
        ref = self.monitor(self.host().a("server"));
        self.receive([probe](process& me, term message) { me.send(probe, std::move(message)); });
    });
    t.run();
    t.node().send(server, t.a("stop"));
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0],
              DOWN(ref, tuple{t.a("server"), t.node().name()}, t.a("stopped")));
    EXPECT_FALSE(t.node().whereis(t.a("server"))) << "a dead process's name is free again";
}

TEST_F(NodeTest, shouldDeliverNothingAfterDemonitorAndFlushAnArrivedDown) {
    const pid probe = t.probe();
    const pid target = t.node().spawn(exits_when_told());
    t.run();
    const pid owner = t.node().spawn([probe, target](process& self) {
        const reference ref = self.monitor(target);
        self.send(target, tuple{self.host().a("exit"), self.host().a("bye")});
        // Wait for something else, so that the DOWN arrives first and sits in the mailbox.
        self.receive({clause{[](const term& m) { return is_atom(m, "check"); },
                             [probe, ref](process& me, term) {
                                 const bool was_active = me.demonitor(ref, true);
                                 me.send(probe,
                                         tuple{me.host().a("active"),
                                               me.host().a(was_active ? "true" : "false"),
                                               static_cast<std::int64_t>(me.mailbox_size())});
                             }}});
    });
    t.run();
    t.node().send(owner, t.a("check"));
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], (tuple{t.a("active"), t.a("false"), 0}))
        << "the monitor had fired; flush removed its DOWN";
}

TEST_F(NodeTest, shouldSendNoDownWhenDemonitoredBeforeTheExit) {
    const pid probe = t.probe();
    const pid target = t.node().spawn(exits_when_told());
    t.node().spawn([probe, target](process& self) {
        const reference ref = self.monitor(target);
        (void)self.demonitor(ref);
        self.send(target, tuple{self.host().a("exit"), self.host().a("bye")});
        self.receive({}, 1s, [probe](process& me) { me.send(probe, me.host().a("quiet")); });
    });
    t.advance(2s);
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], term(t.a("quiet")));
}

// --- selective receive
// -------------------------------------------------------------------------------

TEST_F(NodeTest, shouldTakeTheFirstMatchingMessageInMailboxOrderLeavingOthers) {
    const pid probe = t.probe();
    const pid p = t.node().spawn([probe](process& self) {
        // First receive only {b, _}; then anything, three times.
        self.receive({clause{[](const term& m) {
                                 const auto* x = m.get_if<tuple>();
                                 return x != nullptr && is_atom(x->elements[0], "b");
                             },
                             [probe](process& me, term m) {
                                 me.send(probe, std::move(m));
                                 me.become([probe](process& again, term rest) {
                                     again.send(probe, std::move(rest));
                                 });
                             }}});
    });
    t.run();
    t.node().send(p, tuple{t.a("a"), 1});
    t.node().send(p, tuple{t.a("c"), 2});
    t.node().send(p, tuple{t.a("b"), 3});
    t.node().send(p, tuple{t.a("b"), 4});
    t.run();
    const std::vector<term> expected{tuple{t.a("b"), 3}, tuple{t.a("a"), 1}, tuple{t.a("c"), 2},
                                     tuple{t.a("b"), 4}};
    EXPECT_EQ(t.received(probe), expected);
}

TEST_F(NodeTest, shouldTryClausesInOrderForEachMessage) {
    const pid probe = t.probe();
    const pid p = t.node().spawn([probe](process& self) {
        self.receive(
            {clause{[](const term& m) { return is_atom(m, "x"); },
                    [probe](process& me, term) { me.send(probe, me.host().a("first")); }},
             clause{[](const term&) { return true; },
                    [probe](process& me, term) { me.send(probe, me.host().a("second")); }}});
    });
    t.run();
    t.node().send(p, t.a("y"));
    t.node().send(p, t.a("x"));
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], term(t.a("second"))) << "y comes first and matches clause 2";
}

TEST_F(NodeTest, shouldRunTheTimeoutWhenNothingMatchesInTime) {
    const pid probe = t.probe();
    const pid p = t.node().spawn([probe](process& self) {
        self.receive({clause{[](const term& m) { return is_atom(m, "wanted"); },
                             [probe](process& me, term) { me.send(probe, me.host().a("got")); }}},
                     500ms, [probe](process& me) { me.send(probe, me.host().a("timeout")); });
    });
    t.run();
    t.node().send(p, t.a("unwanted"));
    t.advance(499ms);
    EXPECT_TRUE(t.received(probe).empty());
    t.advance(1ms);
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], term(t.a("timeout")));
    EXPECT_FALSE(t.node().alive(p));
}

TEST_F(NodeTest, shouldTakeOnlyWhatIsThereWhenTheTimeoutIsZero) {
    const pid probe = t.probe();
    t.node().spawn([probe](process& self) {
        self.send(self.self(), self.host().a("mine"));
        self.receive({clause{[](const term&) { return true; },
                             [probe](process& me, term m) { me.send(probe, std::move(m)); }}},
                     0ms, [probe](process& me) { me.send(probe, me.host().a("empty")); });
    });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], term(t.a("mine")));
}

// --- timers --------------------------------------------------------------------------------------

TEST_F(NodeTest, shouldDeliverSendAfterAtItsTimeAndNotAfterCancel) {
    const pid probe = t.probe();
    t.node().spawn([probe](process& self) {
        (void)self.send_after(2s, probe, self.host().a("late"));
        const reference cancelled = self.send_after(1s, probe, self.host().a("cancelled"));
        const bool was_pending = self.cancel_timer(cancelled);
        self.send(probe, self.host().a(was_pending ? "pending" : "not_pending"));
        self.send(probe, self.host().a(self.cancel_timer(cancelled) ? "twice" : "once"));
    });
    t.run();
    t.advance(1500ms);
    const std::vector<term> so_far{term(t.a("pending")), term(t.a("once"))};
    EXPECT_EQ(t.received(probe), so_far);
    t.advance(500ms);
    ASSERT_EQ(t.received(probe).size(), 3u);
    EXPECT_EQ(t.received(probe)[2], term(t.a("late")));
}

// --- sends that go nowhere
// ----------------------------------------------------------------------------

TEST_F(NodeTest, shouldDropAndCountSendsToUnknownPidsAndNames) {
    const pid gone = t.node().spawn([](process&) {});
    t.run();
    const auto before = t.node().stats().dropped_no_process;
    t.node().send(gone, t.a("hello"));
    t.node().send(t.a("nobody"), t.a("hello"));
    t.node().send(pid{t.node().name(), 1, 0, t.node().creation() + 1}, t.a("old incarnation"));
    EXPECT_EQ(t.node().stats().dropped_no_process, before + 3);
}

TEST_F(NodeTest, shouldDeliverToTheOwnerWhenSendingToAnAlias) {
    const pid probe = t.probe();
    reference alias;
    t.node().spawn([&, probe](process& self) {
        alias = self.alias();
        self.become([probe](process& me, term m) { me.send(probe, std::move(m)); });
    });
    t.run();
    t.node().spawn([&](process& self) { self.send(alias, self.host().a("via_alias")); });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], term(t.a("via_alias")));
}

TEST_F(NodeTest, shouldDropSendsToAnAliasAfterUnalias) {
    reference alias;
    t.node().spawn([&](process& self) {
        alias = self.alias();
        self.unalias(alias);
        self.become([](process&, term) {});
    });
    t.run();
    const auto dropped = t.node().stats().dropped_no_process;
    t.node().spawn([&](process& self) { self.send(alias, self.host().a("late")); });
    t.run();
    EXPECT_EQ(t.node().stats().dropped_no_process, dropped + 1);
}

// --- mailbox bound ------------------------------------------------------------------------------

TEST(NodeMailboxTest, shouldExitTheReceiverWithMailboxOverflowWhenTheBoundIsReached) {
    test_node t("test@localhost", node_config{.mailbox_limit = 3});
    const pid probe = t.probe();
    const pid slow = t.node().spawn([probe](process& self) {
        self.link(probe);
        self.receive(
            {clause{[](const term& m) { return is_atom(m, "never"); }, [](process&, term) {}}});
    });
    t.run();
    for (int i = 0; i < 4; ++i) {
        t.node().send(slow, term(i));
    }
    t.run();
    EXPECT_FALSE(t.node().alive(slow));
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0],
              term(tuple{t.a("EXIT"), slow, tuple{t.a("mailbox_overflow"), 3}}));
    EXPECT_EQ(t.node().stats().dropped_overflow, 1u);
}

TEST(NodeMailboxTest, shouldDropAndCountWhenThePolicyIsDrop) {
    test_node t("test@localhost",
                node_config{.mailbox_limit = 2, .overflow = mailbox_overflow::drop_message});
    const pid slow = t.node().spawn([](process& self) {
        self.receive(
            {clause{[](const term& m) { return is_atom(m, "never"); }, [](process&, term) {}}});
    });
    t.run();
    for (int i = 0; i < 5; ++i) {
        t.node().send(slow, term(i));
    }
    t.run();
    EXPECT_TRUE(t.node().alive(slow));
    EXPECT_EQ(t.node().stats().dropped_overflow, 3u);
}

// --- other nodes ---------------------------------------------------------------------------------

TEST_F(NodeTest, shouldFireNoconnectionAtOnceWhenNoRouteToTheOtherNodeExists) {
    const pid remote{t.a("other@host"), 7, 0, 1};
    const pid probe = t.probe();
    reference ref;
    t.node().spawn([&, probe, remote](process& self) {
        self.trap_exit(true);
        self.link(remote);
        ref = self.monitor(remote);
        self.receive([probe](process& me, term m) {
            me.send(probe, std::move(m));
            me.receive([probe](process& again, term n) { again.send(probe, std::move(n)); });
        });
    });
    t.run();
    ASSERT_EQ(t.received(probe).size(), 2u);
    EXPECT_EQ(t.received(probe)[0], DOWN(ref, remote, t.a("noconnection")));
    EXPECT_EQ(t.received(probe)[1], EXIT(remote, t.a("noconnection")));
}

// A router that accepts everything and records nothing: the other node looks reachable.
class accepting_router final : public remote_router {
  public:
    void send(const std::optional<pid>&, const pid&, term) override {}
    void send_named(const pid&, atom, atom, term) override {}
    void send_alias(const pid&, const reference&, term) override {}
    bool reachable(atom) override { return true; }
    void link(const pid&, const pid&) override {}
    void unlink(const pid&, const pid&) override {}
    void monitor(const pid&, const pid&, const std::optional<atom>&, const reference&) override {}
    void demonitor(const pid&, const pid&, const std::optional<atom>&, const reference&) override {}
    void exit(const pid&, const pid&, term, bool) override {}
    void down(const pid&, const std::optional<atom>&, const pid&, const reference&, term) override {
    }
};

TEST_F(NodeTest, shouldDeliverNoconnectionToLinksAndMonitorsWhenTheNodeGoesDown) {
    accepting_router router;
    t.node().set_router(&router);
    const pid remote{t.a("other@host"), 7, 0, 1};
    const pid probe = t.probe();
    reference ref;
    const pid linked = t.node().spawn([remote](process& self) {
        self.link(remote);
        self.become([](process&, term) {});
    });
    t.node().spawn([&, probe, remote](process& self) {
        ref = self.monitor(remote);
        self.receive([probe](process& me, term m) { me.send(probe, std::move(m)); });
    });
    t.run();
    EXPECT_TRUE(t.node().alive(linked));
    t.node().node_down(t.a("other@host"));
    t.run();
    EXPECT_FALSE(t.node().alive(linked)) << "noconnection kills a non-trapping linked process";
    ASSERT_EQ(t.received(probe).size(), 1u);
    EXPECT_EQ(t.received(probe)[0], DOWN(ref, remote, t.a("noconnection")));
}

}  // namespace
}  // namespace vdist::runtime

// --- the real loop (steady clock): timers and fds drive run() until stop()
// ---------------------------

namespace vdist::runtime {
namespace {

class NodeLoopTest : public ::testing::TestWithParam<transport::wait_mode> {};

TEST_P(NodeLoopTest, shouldFireTimersAndWatchedFdsAndReturnWhenStopped) {
    node n(node_config{.name = "loop@localhost", .idle = {.mode = GetParam()}});
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    std::vector<std::string> events;
    const pid listener = n.spawn([&events](process& self) {
        (void)self.send_after(std::chrono::milliseconds(20), self.self(), self.host().a("tick"));
        self.become([&events](process& me, term message) {
            events.push_back(std::string(message.get_if<atom>()->text()));
            if (events.size() == 2) {
                me.host().stop();
            }
        });
    });
    n.watch_fd(pipe_fds[0], [&] {
        char byte = 0;
        (void)::read(pipe_fds[0], &byte, 1);
        n.send(listener, n.a("readable"));
    });
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(60));
        (void)::write(pipe_fds[1], "x", 1);
    });
    const auto started = std::chrono::steady_clock::now();
    n.run();
    writer.join();
    const auto took = std::chrono::steady_clock::now() - started;
    const std::vector<std::string> expected{"tick", "readable"};
    EXPECT_EQ(events, expected);
    EXPECT_LT(took, std::chrono::seconds(5)) << "liveness only";
    n.unwatch_fd(pipe_fds[0]);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

// A timer set by a callback that ran while the loop was about to sleep (in spin_then_block,
// during the spin) must bound that sleep: before, the loop slept until the wait policy's
// recheck (50 ms by default; here 30 s) with the timer long due.
TEST_P(NodeLoopTest, shouldFireTimerSetByAnFdCallbackWithoutWaitingForTheRecheck) {
    // A long spin, so that the callback runs inside it (spin_then_block).
    node n(node_config{.name = "loop@localhost",
                       .idle = {.mode = GetParam(),
                                .spin = std::chrono::seconds(1),
                                .recheck = std::chrono::seconds(30)}});
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    bool fired = false;
    n.watch_fd(pipe_fds[0], [&] {
        char byte = 0;
        (void)::read(pipe_fds[0], &byte, 1);
        (void)n.call_after(std::chrono::microseconds(200), [&] {
            fired = true;
            n.stop();
        });
    });
    (void)n.call_after(std::chrono::seconds(20), [&n] { n.stop(); });  // the test's own limit
    std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        (void)::write(pipe_fds[1], "x", 1);
    });
    const auto started = std::chrono::steady_clock::now();
    n.run();
    writer.join();
    EXPECT_TRUE(fired);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10))
        << "the loop slept past a due timer until its recheck";
    n.unwatch_fd(pipe_fds[0]);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

// A timer due in less than a millisecond bounds a blocking wait to the microsecond: before, the
// wait's timeout was cut to whole milliseconds, 0, and the loop polled without sleeping until
// the timer was due (a node with a short retry timer spun a core for milliseconds).
TEST(NodeLoopBlockingTest, shouldSleepUntilATimerLessThanAMillisecondAway) {
    node n(node_config{.name = "loop@localhost", .idle = {.mode = transport::wait_mode::block}});
    int left = 20;
    std::function<void()> again = [&] {
        if (--left == 0) {
            n.stop();
        } else {
            (void)n.call_after(std::chrono::microseconds(300), again);
        }
    };
    (void)n.call_after(std::chrono::microseconds(300), again);
    n.run();
    EXPECT_EQ(left, 0);
    // About one sleep per timer (a spurious wake-up may add one); polling added thousands.
    EXPECT_GE(n.stats().sleeps, 19U);
    EXPECT_LE(n.stats().sleeps, 60U);
}

// An idle node wakes up at its recheck period only as a safety net: each wake-up to nothing
// doubles the period (up to node::idle_recheck_limit), so that hundreds of idle nodes cost
// nothing. 400 ms idle at a 1 ms recheck: 400 wake-ups before, now about nine.
TEST(NodeLoopBlockingTest, shouldBackOffTheRecheckOfAnIdleNode) {
    for (const auto mode : {transport::wait_mode::spin_then_block, transport::wait_mode::block}) {
        node n(node_config{.name = "loop@localhost",
                           .idle = {.mode = mode, .recheck = std::chrono::milliseconds(1)}});
        int wake_fds[2];
        ASSERT_EQ(::pipe(wake_fds), 0);
        n.watch_fd(wake_fds[0], [&] { n.stop(); });
        std::thread stopper([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(400));
            (void)::write(wake_fds[1], "x", 1);
        });
        n.run();
        stopper.join();
        EXPECT_LE(n.stats().sleeps, 40U) << transport::wait_mode_name(mode);
        EXPECT_GE(n.stats().sleeps, 3U) << transport::wait_mode_name(mode);
        n.unwatch_fd(wake_fds[0]);
        ::close(wake_fds[0]);
        ::close(wake_fds[1]);
    }
}

INSTANTIATE_TEST_SUITE_P(WaitModes, NodeLoopTest,
                         ::testing::Values(transport::wait_mode::busy_poll,
                                           transport::wait_mode::spin_then_block,
                                           transport::wait_mode::block),
                         [](const auto& tested) {
                             return std::string(transport::wait_mode_name(tested.param));
                         });

}  // namespace
}  // namespace vdist::runtime
