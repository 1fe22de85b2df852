// gen_server on a deterministic node: calls answered now and later, casts, infos, every way a
// call fails (noproc, timeout with the late reply dropped, the server's exit reason, calling
// itself), stop with a reply, terminate on the parent's exit, nested calls, and OTP's messages
// byte for byte ({'$gen_call', {Pid, [alias | Ref]}, Req} answered at the alias).

#include "vdist/runtime/gen_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "vdist/test/test_node.hpp"

namespace vdist::runtime {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::tuple;
using gen_server::call_result;
using gen_server::handle_result;
using test::test_node;

// The first element of `t` if it is a tuple tagged with the atom `tag`, else null.
const std::vector<term>* tagged(const term& t, std::string_view tag) {
    const auto* elements = t.get_if<tuple>();
    if (elements == nullptr || elements->elements.empty() || !is_atom(elements->elements[0], tag)) {
        return nullptr;
    }
    return &elements->elements;
}

// A server whose requests say what to do; it reports what happens to it to `report`.
//   {add, N} -> reply the new total        get -> reply the total
//   hold -> noreply (kept for release)     cast release -> reply `released` to the held call
//   crash -> throws                        {stop, R} -> stop(R, stopped)
//   {stop_silently, R} -> stop(R)          {forward, To, Req} -> call To, reply its answer later
//   infos -> {info, Msg} to report         terminate(R) -> {terminate, R} to report
class test_server final : public gen_server::server {
  public:
    explicit test_server(pid report, bool traps_exits = false)
        : report_(std::move(report)), traps_exits_(traps_exits) {}

    gen_server::init_result init() override {
        self().trap_exit(traps_exits_);
        return gen_server::init_result::ok();
    }

    call_result handle_call(const term& request, const gen_server::from& caller) override {
        if (const auto* add = tagged(request, "add")) {
            total_ += *(*add)[1].get_if<std::int64_t>();
            return call_result::reply(total_);
        }
        if (is_atom(request, "get")) {
            return call_result::reply(total_);
        }
        if (is_atom(request, "hold")) {
            held_ = caller;
            return call_result::noreply();
        }
        if (is_atom(request, "crash")) {
            throw std::runtime_error("crash requested");
        }
        if (const auto* stop = tagged(request, "stop")) {
            return call_result::stop((*stop)[1], a("stopped"));
        }
        if (const auto* stop = tagged(request, "stop_silently")) {
            return call_result::stop((*stop)[1]);
        }
        if (const auto* forward = tagged(request, "forward")) {
            call(*(*forward)[1].get_if<pid>(), (*forward)[2], 1s,
                 [this, caller](const term& answer) {
                     reply(caller, tuple{a("forwarded"), answer});
                     return handle_result::noreply();
                 });
            return call_result::noreply();
        }
        if (const auto* late = tagged(request, "reply_to_pid_after")) {
            // A reply sent by a timer straight to the caller's pid (as to an old caller).
            (void)self().send_after(std::chrono::milliseconds(*(*late)[1].get_if<std::int64_t>()),
                                    caller.caller, tuple{caller.tag, a("just_in_time")});
            return call_result::noreply();
        }
        if (is_atom(request, "call_myself")) {
            call(
                self().self(), a("get"), 1s, [](const term&) { return handle_result::noreply(); },
                [this, caller](const term& reason) {
                    reply(caller, tuple{a("failed"), reason});
                    return handle_result::noreply();
                });
            return call_result::noreply();
        }
        return call_result::reply(a("unknown"));
    }

    handle_result handle_cast(const term& message) override {
        if (is_atom(message, "release") && held_) {
            reply(*held_, a("released"));
            held_.reset();
        } else if (const auto* add = tagged(message, "add")) {
            total_ += *(*add)[1].get_if<std::int64_t>();
        }
        return handle_result::noreply();
    }

    handle_result handle_info(const term& message) override {
        self().send(report_, tuple{a("info"), message});
        return handle_result::noreply();
    }

    void terminate(const term& reason) override {
        self().send(report_, tuple{a("terminate"), reason});
    }

  private:
    pid report_;
    bool traps_exits_;
    std::int64_t total_ = 0;
    std::optional<gen_server::from> held_;
};

class GenServerTest : public ::testing::Test {
  protected:
    [[nodiscard]] pid start_server(bool traps_exits = false,
                                   gen_server::start_options options = {}) {
        const pid server = gen_server::start(
            t.node(), std::make_unique<test_server>(report, traps_exits), options);
        t.run();
        return server;
    }

    /// A process that makes one call and reports {reply, R} or {error, E} to `report`; with
    /// `linger` it then stays and reports anything else it gets as {late, Msg}.
    pid caller(const gen_server::server_ref& server, term request,
               gen_server::call_timeout timeout = 5s, bool linger = false) {
        const pid to = report;
        return t.node().spawn([=](process& self) {
            const auto then = [to, linger](process& me) {
                if (linger) {
                    me.become([to](process& p, term message) {
                        p.send(to, tuple{p.host().a("late"), std::move(message)});
                    });
                }
            };
            gen_server::call(
                self, server, request, timeout,
                [to, then](process& me, term reply) {
                    me.send(to, tuple{me.host().a("reply"), std::move(reply)});
                    then(me);
                },
                [to, then](process& me, term reason) {
                    me.send(to, tuple{me.host().a("error"), std::move(reason)});
                    then(me);
                });
        });
    }

    [[nodiscard]] term reply(term value) { return tuple{t.a("reply"), std::move(value)}; }
    [[nodiscard]] term error(term reason) { return tuple{t.a("error"), std::move(reason)}; }
    [[nodiscard]] const std::vector<term>& reports() const { return t.received(report); }

    test_node t;
    pid report = t.probe();
};

// --- calls ---------------------------------------------------------------------------------

TEST_F(GenServerTest, shouldReplyWhenHandleCallReturnsReply) {
    const pid server = start_server();
    caller(server, tuple{t.a("add"), 2});
    t.run();
    caller(server, tuple{t.a("add"), 3});
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], reply(2));
    EXPECT_EQ(reports()[1], reply(5));
    EXPECT_TRUE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldReplyLaterWhenHandleCallReturnsNoreplyAndTheServerRepliesAfterwards) {
    const pid server = start_server();
    caller(server, t.a("hold"));
    t.run();
    EXPECT_TRUE(reports().empty()) << "noreply: the caller waits";
    t.node().spawn(
        [server](process& self) { gen_server::cast(self, server, self.host().a("release")); });
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], reply(t.a("released")));
}

TEST_F(GenServerTest, shouldHandleACastWithoutReplyingToIt) {
    const pid server = start_server();
    t.node().spawn([server](process& self) {
        gen_server::cast(self, server, tuple{self.host().a("add"), 7});
    });
    t.run();
    EXPECT_TRUE(reports().empty());
    caller(server, t.a("get"));
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], reply(7));
}

TEST_F(GenServerTest, shouldPassAnyOtherMessageToHandleInfo) {
    const pid server = start_server();
    t.node().send(server, t.a("hello"));
    t.node().send(server, tuple{t.a("$gen_call"), t.a("no_from"), t.a("get")});
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], (tuple{t.a("info"), t.a("hello")}));
    EXPECT_EQ(reports()[1],
              (tuple{t.a("info"), tuple{t.a("$gen_call"), t.a("no_from"), t.a("get")}}))
        << "a '$gen_call' without {Pid, Tag} is hostile input, not a call";
    EXPECT_TRUE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldCallAServerByItsRegisteredName) {
    const pid server = start_server(false, {.name = t.a("counter")});
    EXPECT_EQ(t.node().whereis(t.a("counter")), server);
    caller(t.a("counter"), tuple{t.a("add"), 4});
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], reply(4));
}

TEST_F(GenServerTest, shouldExitWithAlreadyStartedWhenTheNameIsTaken) {
    const pid first = start_server(false, {.name = t.a("counter")});
    const pid second = start_server(false, {.name = t.a("counter")});
    EXPECT_TRUE(t.node().alive(first));
    EXPECT_FALSE(t.node().alive(second));
}

// --- failed calls --------------------------------------------------------------------------

TEST_F(GenServerTest, shouldFailWithNoprocWhenTheServerDoesNotExist) {
    const pid server = start_server();
    t.inject_exit(server, t.a("kill"));
    t.run();
    caller(server, t.a("get"));
    caller(t.a("nobody"), t.a("get"));
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], error(t.a("noproc")));
    EXPECT_EQ(reports()[1], error(t.a("noproc")));
}

TEST_F(GenServerTest, shouldFailWithNodedownWhenTheServersNodeCannotBeReached) {
    const pid remote{t.a("other@host"), 1, 0, 0};  // no router: every other node is unreachable
    caller(remote, t.a("get"));
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], error(tuple{t.a("nodedown"), t.a("other@host")}));
}

TEST_F(GenServerTest, shouldFailWithTimeoutAndDropTheLateReplyWhenTheServerAnswersTooLate) {
    const pid server = start_server();
    const pid waiting = caller(server, t.a("hold"), 100ms, /*linger=*/true);
    t.run();
    t.advance(99ms);
    EXPECT_TRUE(reports().empty());
    t.advance(1ms);
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], error(t.a("timeout")));

    const auto dropped = t.node().stats().dropped_no_process;
    t.node().spawn(
        [server](process& self) { gen_server::cast(self, server, self.host().a("release")); });
    t.run();
    EXPECT_EQ(reports().size(), 1u) << "the late reply must not reach the caller";
    EXPECT_EQ(t.node().stats().dropped_no_process, dropped + 1) << "sent to an inactive alias";
    EXPECT_TRUE(t.node().alive(waiting));
}

TEST_F(GenServerTest, shouldTakeAReplyThatIsInTheMailboxWhenTheTimeoutFires) {
    // The reply lands in the same instant as the timeout, after it: OTP's
    // `receive {Tag, Reply} -> ... after 0 -> timeout end` takes it.
    const pid server = start_server();
    caller(server, tuple{t.a("reply_to_pid_after"), 100}, 100ms, /*linger=*/true);
    t.run();
    t.advance(100ms);
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], reply(t.a("just_in_time")));
}

TEST_F(GenServerTest, shouldFailWithTheExitReasonWhenTheServerStopsWithoutReplying) {
    const pid server = start_server();
    caller(server, tuple{t.a("stop_silently"), t.a("boom")});
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], (tuple{t.a("terminate"), t.a("boom")}));
    EXPECT_EQ(reports()[1], error(t.a("boom")));
    EXPECT_FALSE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldRunTerminateAndFailTheCallerWhenACallbackThrows) {
    const pid server = start_server();
    caller(server, t.a("crash"));
    t.run();
    const term reason =
        tuple{t.a("cpp_exception"), dist::binary(std::string_view("crash requested"))};
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], (tuple{t.a("terminate"), reason}));
    EXPECT_EQ(reports()[1], error(reason));
    EXPECT_FALSE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldFailWithCallingSelfWhenAServerCallsItself) {
    const pid server = start_server();
    caller(server, t.a("call_myself"));
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], reply(tuple{t.a("failed"), t.a("calling_self")}));
    EXPECT_TRUE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldEndTheCallerWithOtpsReasonWhenItHandlesNoError) {
    const pid server = start_server();
    t.inject_exit(server, t.a("kill"));
    t.node().spawn([server, to = report](process& self) {
        const pid lonely = self.spawn([server](process& me) {
            gen_server::call(me, server, me.host().a("get"), 5s, [](process&, term) {});
        });
        (void)self.monitor(lonely);
        self.receive([to](process& me, term down) { me.send(to, std::move(down)); });
    });
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    const auto* down = tagged(reports()[0], "DOWN");
    ASSERT_NE(down, nullptr);
    EXPECT_EQ((*down)[4], (tuple{t.a("noproc"), tuple{t.a("gen_server"), t.a("call"),
                                                      list{server, t.a("get"), 5000}}}));
}

// --- stopping ------------------------------------------------------------------------------

TEST_F(GenServerTest, shouldRunTerminateThenReplyThenExitWhenHandleCallReturnsStopWithAReply) {
    const pid server = start_server();
    caller(server, tuple{t.a("stop"), t.a("normal")});
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], (tuple{t.a("terminate"), t.a("normal")}));
    EXPECT_EQ(reports()[1], reply(t.a("stopped")));
    EXPECT_FALSE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldRunTerminateWhenItsParentExitsAndItTrapsExits) {
    pid server;
    const pid parent = t.node().spawn([&, to = report](process& self) {
        server = gen_server::start_link(self, std::make_unique<test_server>(to, true));
        self.become([](process&, term) {});
    });
    t.run();
    ASSERT_TRUE(t.node().alive(server));
    t.inject_exit(parent, t.a("shutdown"));
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], (tuple{t.a("terminate"), t.a("shutdown")}));
    EXPECT_FALSE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldRunTerminateWhenItsParentSendsItAnExitSignal) {
    // exit(Server, shutdown) from the parent arrives as {'EXIT', Parent, shutdown}: the way a
    // supervisor stops its children.
    pid server;
    const pid parent = t.node().spawn([&, to = report](process& self) {
        server = gen_server::start_link(self, std::make_unique<test_server>(to, true));
        self.become([&server](process& me, term) { me.exit(server, me.host().a("shutdown")); });
    });
    t.run();
    t.node().send(parent, t.a("go"));
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], (tuple{t.a("terminate"), t.a("shutdown")}));
    EXPECT_FALSE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldTakeAnExitFromAnotherProcessAsInfoWhenItTrapsExits) {
    const pid server = start_server(true);
    pid other;
    other = t.node().spawn([server](process& self) {
        self.link(server);
        self.exit(self.host().a("bye"));
    });
    t.run();
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], (tuple{t.a("info"), tuple{t.a("EXIT"), other, t.a("bye")}}));
    EXPECT_TRUE(t.node().alive(server));
}

TEST_F(GenServerTest, shouldRunTerminateAndExitWhenStoppedWithGenServerStop) {
    const pid server = start_server();
    t.node().spawn([server, to = report](process& self) {
        gen_server::stop(
            self, server, self.host().a("normal"), 5s,
            [to](process& me) { me.send(to, me.host().a("stopped")); },
            [to](process& me, term reason) { me.send(to, reason); });
    });
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], (tuple{t.a("terminate"), t.a("normal")}));
    EXPECT_EQ(reports()[1], t.a("stopped"));
    EXPECT_FALSE(t.node().alive(server));
}

// --- a server calling another --------------------------------------------------------------

TEST_F(GenServerTest, shouldWaitForItsOwnCallAndThenResumeItsLoop) {
    const pid front = start_server();
    const pid back = start_server();
    caller(front, tuple{t.a("forward"), back, tuple{t.a("add"), 5}});
    t.run();
    caller(front, tuple{t.a("add"), 1});
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], reply(tuple{t.a("forwarded"), 5}));
    EXPECT_EQ(reports()[1], reply(1)) << "the loop resumed after the nested call";
}

TEST_F(GenServerTest, shouldQueueOtherCallsWhileItWaitsForItsOwnCall) {
    const pid front = start_server();
    const pid slow = start_server();
    caller(front, tuple{t.a("forward"), slow, t.a("hold")});  // slow holds: front waits
    t.run();
    caller(front, t.a("get"));
    t.run();
    EXPECT_TRUE(reports().empty()) << "front handles nothing while it waits, as in OTP";
    t.node().spawn(
        [slow](process& self) { gen_server::cast(self, slow, self.host().a("release")); });
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    EXPECT_EQ(reports()[0], reply(tuple{t.a("forwarded"), t.a("released")}));
    EXPECT_EQ(reports()[1], reply(0));
}

// --- OTP's messages ------------------------------------------------------------------------

TEST_F(GenServerTest, shouldAnswerAHandMadeGenCallAtTheAliasOfItsTag) {
    const pid server = start_server();
    const pid bystander = t.probe();  // the From pid: the reply must not go there
    reference alias;
    t.node().spawn([&, server, bystander, to = report](process& self) {
        alias = self.alias();
        const term tag = list(std::vector<term>{self.host().a("alias")}, dist::box<term>(alias));
        self.send(server, tuple{self.host().a("$gen_call"), tuple{bystander, tag},
                                tuple{self.host().a("add"), 3}});
        self.receive([to](process& me, term message) { me.send(to, std::move(message)); });
    });
    t.run();
    const term tag = list(std::vector<term>{t.a("alias")}, dist::box<term>(alias));
    ASSERT_EQ(reports().size(), 1u);
    EXPECT_EQ(reports()[0], (tuple{tag, 3}));
    EXPECT_TRUE(t.received(bystander).empty());
}

TEST_F(GenServerTest, shouldAnswerAPlainReferenceTagAtTheCallersPid) {
    const pid server = start_server();
    const pid client = t.probe();
    const term tag = reference{t.node().name(), 0, {77, 0, 0}};
    t.node().send(server, tuple{t.a("$gen_call"), tuple{client, tag}, t.a("get")});
    t.run();
    ASSERT_EQ(t.received(client).size(), 1u);
    EXPECT_EQ(t.received(client)[0], (tuple{tag, 0}));
}

TEST_F(GenServerTest, shouldSendOtpsCallMessageAndTakeTheReplyAtItsAlias) {
    // A raw process plays an Erlang gen_server: it checks the message and replies by hand.
    const pid raw = t.node().spawn([to = report](process& self) {
        self.receive([to](process& me, term message) {
            me.send(to, tuple{me.host().a("seen"), message});
            const auto& call = message.get_if<tuple>()->elements;
            const auto& from = call[1].get_if<tuple>()->elements;
            const auto& tag = *from[1].get_if<list>();
            me.send(*tag.tail->get_if<reference>(), tuple{from[1], me.host().a("pong")});
        });
    });
    t.run();
    const pid client = caller(raw, t.a("ping"));
    t.run();
    ASSERT_EQ(reports().size(), 2u);
    const auto* seen = tagged(reports()[0], "seen");
    ASSERT_NE(seen, nullptr);
    const auto* call = tagged((*seen)[1], "$gen_call");
    ASSERT_NE(call, nullptr);
    ASSERT_EQ(call->size(), 3u);
    const auto& from = (*call)[1].get_if<tuple>()->elements;
    ASSERT_EQ(from.size(), 2u);
    EXPECT_EQ(from[0], term(client));
    const auto* tag = from[1].get_if<list>();
    ASSERT_NE(tag, nullptr);
    ASSERT_EQ(tag->elements.size(), 1u);
    EXPECT_EQ(tag->elements[0], term(t.a("alias")));
    EXPECT_TRUE(tag->tail && tag->tail->is<reference>()) << "[alias | Ref], an improper list";
    EXPECT_EQ((*call)[2], term(t.a("ping")));
    EXPECT_EQ(reports()[1], reply(t.a("pong")));
}

}  // namespace
}  // namespace vdist::runtime
