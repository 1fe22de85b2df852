// Supervisors on a deterministic node with a manual clock: each strategy restarts exactly the
// children it should (pids compared before and after), restart types, restart intensity at its
// boundary, shutdown timeouts and brutal kills, reverse stop order, simple_one_for_one with
// start_child arguments, configuration handed down, failed starts, bad specs, OTP's calls.

#include "vdist/runtime/supervisor.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vdist/runtime/gen_server.hpp"
#include "vdist/test/test_node.hpp"

namespace vdist::runtime {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::tuple;
using supervisor::child_spec;
using supervisor::restart_strategy;
using supervisor::restart_type;
using supervisor::shutdown_policy;
using supervisor::start_context;
using supervisor::start_result;
using test::test_node;

// A child that idles; {exit, Reason} makes it exit with Reason. With `traps`, it traps exits
// and ignores every 'EXIT' (so only kill ends it).
[[nodiscard]] behavior idle_child(bool traps = false) {
    return [traps](process& self) {
        self.trap_exit(traps);
        self.become([](process& me, term message) {
            const auto* order = message.get_if<tuple>();
            if (order != nullptr && order->elements.size() == 2 &&
                is_atom(order->elements[0], "exit")) {
                me.exit(order->elements[1]);
            }
        });
    };
}

// A gen_server child that answers `config` with its configuration and reports
// {terminate, Id, Reason} when it ends (it traps exits, so a shutdown runs terminate).
class config_server final : public gen_server::server {
  public:
    config_server(const term& config, const term& extra_args)
        : config_(config), extra_args_(extra_args) {}

    gen_server::init_result init() override {
        self().trap_exit(true);
        return gen_server::init_result::ok();
    }
    gen_server::call_result handle_call(const term& request, const gen_server::from&) override {
        if (is_atom(request, "config")) {
            return gen_server::call_result::reply(tuple{config_, extra_args_});
        }
        return gen_server::call_result::reply(a("unknown"));
    }
    void terminate(const term& reason) override {
        // config = {Id, Report}
        const auto& fields = config_.get_if<tuple>()->elements;
        self().send(*fields[1].get_if<pid>(), tuple{a("terminate"), fields[0], reason});
    }

  private:
    term config_;
    term extra_args_;
};

class SupervisorTest : public ::testing::Test {
  protected:
    /// A worker spec whose start function reports {started, Id, Config, ExtraArgs} and spawns
    /// idle_child(traps).
    [[nodiscard]] child_spec worker(const std::string& id,
                                    restart_type restart = restart_type::permanent,
                                    bool traps = false) {
        child_spec spec;
        spec.id = id;
        spec.restart = restart;
        spec.config = t.a("config_of_" + id);
        spec.start = [to = report, id, traps](const start_context& context) -> start_result {
            context.supervisor.send(
                to, tuple{context.supervisor.host().a("started"), context.supervisor.host().a(id),
                          context.config, context.extra_args});
            return context.supervisor.spawn_link(idle_child(traps));
        };
        return spec;
    }

    [[nodiscard]] supervisor::spec spec_of(restart_strategy strategy,
                                           std::vector<child_spec> children,
                                           std::uint32_t intensity = 3,
                                           clock::duration period = 5s) {
        return supervisor::spec{{strategy, intensity, period}, std::move(children)};
    }

    /// Starts `supervision` from the node and runs until its children started.
    [[nodiscard]] pid start(supervisor::spec supervision) {
        const pid sup = supervisor::start(t.node(), std::move(supervision));
        t.run();
        return sup;
    }

    /// Starts `supervision` under a parent process that traps exits and reports each 'EXIT' as
    /// {down, Pid, Reason} (so even an exit during the supervisor's first step is seen).
    [[nodiscard]] pid start_watched(supervisor::spec supervision) {
        auto sup = std::make_shared<pid>();
        t.node().spawn([sup, &supervision, to = report](process& self) {
            self.trap_exit(true);
            *sup = supervisor::start_link(self, std::move(supervision));
            self.become([to](process& me, term message) {
                const auto& exit = message.get_if<tuple>()->elements;
                me.send(to, tuple{me.host().a("down"), exit[1], exit[2]});
            });
        });
        t.run();
        return *sup;
    }

    /// A gen_server:call made from a fresh process; the reply, or {error, Reason}.
    [[nodiscard]] std::optional<term> call(const pid& server, term request) {
        auto out = std::make_shared<std::optional<term>>();
        t.node().spawn([server, request, out](process& self) {
            gen_server::call(
                self, server, request, 5s, [out](process&, term reply) { *out = reply; },
                [out](process& me, term reason) {
                    *out = tuple{me.host().a("error"), reason};
                });
        });
        t.run();
        return *out;
    }

    /// The Child field of which_children: the pids (or `undefined`), in start order.
    [[nodiscard]] std::vector<term> children(const pid& sup) {
        std::vector<term> states;
        const auto reply = call(sup, t.a("which_children"));
        if (!reply || !reply->is<list>()) {
            ADD_FAILURE() << "which_children got no list";
            return states;
        }
        for (const auto& entry : reply->get_if<list>()->elements) {
            states.push_back(entry.get_if<tuple>()->elements[1]);
        }
        return states;
    }

    [[nodiscard]] pid pid_of(const term& t_) const { return *t_.get_if<pid>(); }

    /// A process that monitors `target` and reports its 'DOWN' reason as {down, Target, Reason}.
    void watch(const pid& target) {
        t.node().spawn([target, to = report](process& self) {
            (void)self.monitor(target);
            self.receive([to, target](process& me, term down) {
                me.send(to, tuple{me.host().a("down"), target, down.get_if<tuple>()->elements[4]});
            });
        });
        t.run();
    }

    /// The reason reported by watch() for `target`, if it went down.
    [[nodiscard]] std::optional<term> down_reason(const pid& target) const {
        for (const auto& message : t.received(report)) {
            const auto* down = message.get_if<tuple>();
            if (down != nullptr && down->elements.size() == 3 &&
                is_atom(down->elements[0], "down") && down->elements[1] == term(target)) {
                return down->elements[2];
            }
        }
        return std::nullopt;
    }

    /// The reports tagged `tag`, in order.
    [[nodiscard]] std::vector<term> reports(std::string_view tag) const {
        std::vector<term> found;
        for (const auto& message : t.received(report)) {
            const auto* e = message.get_if<tuple>();
            if (e != nullptr && !e->elements.empty() && is_atom(e->elements[0], tag)) {
                found.push_back(message);
            }
        }
        return found;
    }

    void crash(const term& child, std::string_view reason = "boom") {
        t.inject_exit(pid_of(child), t.a(reason));
        t.run();
    }

    test_node t;
    pid report = t.probe();
};

// --- strategies -----------------------------------------------------------------------------

TEST_F(SupervisorTest, shouldRestartOnlyTheChildThatExitedWhenOneForOne) {
    const pid sup =
        start(spec_of(restart_strategy::one_for_one, {worker("a"), worker("b"), worker("c")}));
    const auto before = children(sup);
    ASSERT_EQ(before.size(), 3u);
    crash(before[1]);
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 3u);
    EXPECT_EQ(after[0], before[0]);
    EXPECT_NE(after[1], before[1]);
    EXPECT_TRUE(t.node().alive(pid_of(after[1])));
    EXPECT_EQ(after[2], before[2]);
}

TEST_F(SupervisorTest, shouldStopTheOthersAndStartAllWhenOneForAll) {
    const pid sup =
        start(spec_of(restart_strategy::one_for_all, {worker("a"), worker("b"), worker("c")}));
    const auto before = children(sup);
    crash(before[1]);
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_NE(after[i], before[i]) << i;
        EXPECT_FALSE(t.node().alive(pid_of(before[i]))) << i;
        EXPECT_TRUE(t.node().alive(pid_of(after[i]))) << i;
    }
    // Started again in start order.
    const auto started = reports("started");
    ASSERT_EQ(started.size(), 6u);
    EXPECT_EQ(started[3].get_if<tuple>()->elements[1], term(t.a("a")));
    EXPECT_EQ(started[5].get_if<tuple>()->elements[1], term(t.a("c")));
}

TEST_F(SupervisorTest, shouldRestartTheChildAndThoseStartedAfterItWhenRestForOne) {
    const pid sup =
        start(spec_of(restart_strategy::rest_for_one, {worker("a"), worker("b"), worker("c")}));
    const auto before = children(sup);
    crash(before[1]);
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 3u);
    EXPECT_EQ(after[0], before[0]);
    EXPECT_NE(after[1], before[1]);
    EXPECT_NE(after[2], before[2]);
    EXPECT_FALSE(t.node().alive(pid_of(before[2])));
    EXPECT_TRUE(t.node().alive(pid_of(after[2])));
}

TEST_F(SupervisorTest, shouldStartChildrenWithStartChildsArgumentsWhenSimpleOneForOne) {
    const pid sup = start(spec_of(restart_strategy::simple_one_for_one, {worker("conn")}));
    EXPECT_TRUE(children(sup).empty());
    std::vector<pid> started;
    for (const char* peer : {"left", "right"}) {
        t.node().spawn([&, sup, peer](process& self) {
            supervisor::start_child(self, sup, list{self.host().a(peer)}, 5s,
                                    [&](process&, pid child) { started.push_back(child); });
        });
        t.run();
    }
    ASSERT_EQ(started.size(), 2u);
    const auto reported = reports("started");
    ASSERT_EQ(reported.size(), 2u);
    EXPECT_EQ(reported[1],
              (tuple{t.a("started"), t.a("conn"), t.a("config_of_conn"), list{t.a("right")}}));

    crash(started[0]);
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 2u);
    EXPECT_EQ(after[1], term(started[1]));
    EXPECT_NE(after[0], term(started[0]));
    const auto again = reports("started");
    ASSERT_EQ(again.size(), 3u);
    EXPECT_EQ(again[2],
              (tuple{t.a("started"), t.a("conn"), t.a("config_of_conn"), list{t.a("left")}}))
        << "restarted with the arguments it was started with";
}

TEST_F(SupervisorTest, shouldStopAChildAndForgetItWhenSimpleOneForOneTerminatesIt) {
    const pid sup = start(spec_of(restart_strategy::simple_one_for_one, {worker("conn")}));
    const auto started = call(sup, tuple{t.a("start_child"), list{}});
    ASSERT_TRUE(started);
    const term child = started->get_if<tuple>()->elements[1];
    EXPECT_EQ(call(sup, tuple{t.a("terminate_child"), child}), term(t.a("ok")));
    EXPECT_FALSE(t.node().alive(pid_of(child)));
    EXPECT_TRUE(children(sup).empty());
    EXPECT_EQ(call(sup, tuple{t.a("terminate_child"), child}),
              term(tuple{t.a("error"), t.a("not_found")}));
}

// --- restart types --------------------------------------------------------------------------

class SupervisorTransientTest : public SupervisorTest,
                                public ::testing::WithParamInterface<std::pair<const char*, bool>> {
};

TEST_P(SupervisorTransientTest, shouldRestartATransientChildOnlyWhenItsExitIsAbnormal) {
    const auto [reason_text, restarted] = GetParam();
    const pid sup =
        start(spec_of(restart_strategy::one_for_one, {worker("a", restart_type::transient)}));
    const auto before = children(sup);
    const term reason = std::string_view(reason_text) == "{shutdown, x}"
                            ? term(tuple{t.a("shutdown"), t.a("x")})
                            : term(t.a(reason_text));
    t.node().send(pid_of(before[0]), tuple{t.a("exit"), reason});
    t.run();
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 1u) << "a transient spec is kept";
    if (restarted) {
        EXPECT_TRUE(after[0].is<pid>());
        EXPECT_NE(after[0], before[0]);
    } else {
        EXPECT_EQ(after[0], term(t.a("undefined")));
    }
}

INSTANTIATE_TEST_SUITE_P(Reasons, SupervisorTransientTest,
                         ::testing::Values(std::pair{"normal", false}, std::pair{"shutdown", false},
                                           std::pair{"{shutdown, x}", false},
                                           std::pair{"boom", true}));

TEST_F(SupervisorTest, shouldNeverRestartATemporaryChildAndForgetIt) {
    const pid sup = start(spec_of(restart_strategy::one_for_one,
                                  {worker("a"), worker("b", restart_type::temporary)}));
    const auto before = children(sup);
    crash(before[1]);
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0], before[0]);
}

TEST_F(SupervisorTest, shouldRestartAPermanentChildEvenAfterANormalExit) {
    const pid sup = start(spec_of(restart_strategy::one_for_one, {worker("a")}));
    const auto before = children(sup);
    t.node().send(pid_of(before[0]), tuple{t.a("exit"), t.a("normal")});
    t.run();
    const auto after = children(sup);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_TRUE(after[0].is<pid>());
    EXPECT_NE(after[0], before[0]);
}

// --- restart intensity ----------------------------------------------------------------------

TEST_F(SupervisorTest, shouldStopItsChildrenAndExitWithShutdownWhenRestartsExceedTheIntensity) {
    const pid sup = start(spec_of(restart_strategy::one_for_one, {worker("a"), worker("b")},
                                  /*intensity=*/3, /*period=*/5s));
    watch(sup);
    const auto first = children(sup);
    for (int i = 0; i < 3; ++i) {
        crash(children(sup)[0]);
        t.advance(1s);
    }
    ASSERT_TRUE(t.node().alive(sup)) << "3 restarts within 5 s are allowed";
    const auto last = children(sup);
    crash(last[0]);  // the 4th within 5 s
    EXPECT_FALSE(t.node().alive(sup));
    EXPECT_EQ(down_reason(sup), term(t.a("shutdown")));
    EXPECT_FALSE(t.node().alive(pid_of(last[1]))) << "its children are gone";
    EXPECT_FALSE(t.node().alive(pid_of(first[1])));
}

TEST_F(SupervisorTest, shouldKeepRestartingWhenRestartsAreSpreadOverTime) {
    const pid sup = start(spec_of(restart_strategy::one_for_one, {worker("a")}, 3, 5s));
    for (int i = 0; i < 20; ++i) {
        crash(children(sup)[0]);
        t.advance(2s);  // never more than 3 restarts in any 5 s
    }
    EXPECT_TRUE(t.node().alive(sup));
    EXPECT_EQ(reports("started").size(), 21u);
}

// Restarts at 0, 1 s and 2 s, then one more `fourth_at` after the first: OTP counts a restart
// at exactly now - period as within the period.
class SupervisorIntensityTest
    : public SupervisorTest,
      public ::testing::WithParamInterface<std::pair<clock::duration, bool>> {};

TEST_P(SupervisorIntensityTest, shouldGiveUpOnlyWhenTheFourthRestartIsWithinThePeriod) {
    const auto [fourth_at, gives_up] = GetParam();
    const pid sup = start(spec_of(restart_strategy::one_for_one, {worker("a")}, 3, 5s));
    crash(children(sup)[0]);
    t.advance(1s);
    crash(children(sup)[0]);
    t.advance(1s);
    crash(children(sup)[0]);
    t.advance(fourth_at - 2s);
    crash(children(sup)[0]);
    EXPECT_EQ(t.node().alive(sup), !gives_up);
}

INSTANTIATE_TEST_SUITE_P(Boundary, SupervisorIntensityTest,
                         ::testing::Values(std::pair{clock::duration(4s), true},
                                           std::pair{clock::duration(5s), true},
                                           std::pair{clock::duration(5s + 1ns), false}));

TEST_F(SupervisorTest, shouldGiveUpAtTheFirstRestartWhenTheIntensityIsZero) {
    const pid sup = start(spec_of(restart_strategy::one_for_one, {worker("a")}, 0, 5s));
    crash(children(sup)[0]);
    EXPECT_FALSE(t.node().alive(sup));
}

TEST_F(SupervisorTest, shouldRetryARestartWhoseStartFailsUntilTheIntensityIsReached) {
    auto starts = std::make_shared<int>(0);
    child_spec flaky = worker("a");
    flaky.start = [starts](const start_context& context) -> start_result {
        if (++*starts > 1) {
            return std::unexpected(term(context.supervisor.host().a("no_resources")));
        }
        return context.supervisor.spawn_link(idle_child());
    };
    const pid sup = start(spec_of(restart_strategy::one_for_one, {flaky}, 3, 5s));
    watch(sup);
    crash(children(sup)[0]);
    EXPECT_FALSE(t.node().alive(sup));
    EXPECT_EQ(down_reason(sup), term(t.a("shutdown")));
    EXPECT_EQ(*starts, 4) << "the first start, then 3 restarts that fail";
}

// --- stopping -------------------------------------------------------------------------------

TEST_F(SupervisorTest, shouldKillAChildThatIgnoresShutdownWhenItsShutdownTimeoutPasses) {
    child_spec stubborn = worker("a", restart_type::permanent, /*traps=*/true);
    stubborn.shutdown = shutdown_policy::timeout(1s);
    const pid sup = start(spec_of(restart_strategy::one_for_one, {stubborn}));
    const pid child = pid_of(children(sup)[0]);
    watch(sup);
    watch(child);
    t.inject_exit(sup, t.a("shutdown"));  // from the node, its parent
    t.run();
    t.advance(999ms);
    EXPECT_TRUE(t.node().alive(child)) << "it traps exits and ignores the shutdown";
    EXPECT_TRUE(t.node().alive(sup)) << "the supervisor waits for it";
    t.advance(1ms);
    EXPECT_FALSE(t.node().alive(child));
    EXPECT_EQ(down_reason(child), term(t.a("killed")));
    EXPECT_FALSE(t.node().alive(sup));
    EXPECT_EQ(down_reason(sup), term(t.a("shutdown")));
}

TEST_F(SupervisorTest, shouldKillAChildAtOnceWhenItsShutdownIsBrutalKill) {
    child_spec stubborn = worker("a", restart_type::permanent, /*traps=*/true);
    stubborn.shutdown = shutdown_policy::brutal_kill();
    const pid sup = start(spec_of(restart_strategy::one_for_one, {stubborn}));
    const pid child = pid_of(children(sup)[0]);
    watch(child);
    t.inject_exit(sup, t.a("shutdown"));
    t.run();
    EXPECT_FALSE(t.node().alive(child));
    EXPECT_EQ(down_reason(child), term(t.a("killed")));
    EXPECT_FALSE(t.node().alive(sup));
}

TEST_F(SupervisorTest, shouldStopChildrenInReverseStartOrderAndLetThemRunTerminate) {
    std::vector<child_spec> specs;
    for (const char* id : {"a", "b", "c"}) {
        child_spec spec;
        spec.id = id;
        spec.config = tuple{t.a(id), report};
        spec.start = supervisor::server_child<config_server>();
        specs.push_back(std::move(spec));
    }
    const pid parent = t.node().spawn([&](process& self) {
        (void)supervisor::start_link(self, spec_of(restart_strategy::one_for_one, specs));
        self.become([](process&, term) {});
    });
    t.run();
    t.inject_exit(parent, t.a("shutdown"));  // the parent dies: the link tells the supervisor
    t.run();
    const auto ended = reports("terminate");
    ASSERT_EQ(ended.size(), 3u) << "each gen_server got {'EXIT', Supervisor, shutdown}";
    EXPECT_EQ(ended[0], (tuple{t.a("terminate"), t.a("c"), t.a("shutdown")}));
    EXPECT_EQ(ended[1], (tuple{t.a("terminate"), t.a("b"), t.a("shutdown")}));
    EXPECT_EQ(ended[2], (tuple{t.a("terminate"), t.a("a"), t.a("shutdown")}));
    EXPECT_EQ(t.node().process_count(), 1u) << "only the report probe is left";
}

TEST_F(SupervisorTest, shouldStopAllSimpleOneForOneChildrenTogether) {
    child_spec stubborn = worker("conn", restart_type::permanent, /*traps=*/true);
    stubborn.shutdown = shutdown_policy::timeout(1s);
    const pid sup = start(spec_of(restart_strategy::simple_one_for_one, {stubborn}));
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(call(sup, tuple{t.a("start_child"), list{}}));
    }
    watch(sup);
    t.inject_exit(sup, t.a("shutdown"));
    t.advance(1s);
    EXPECT_FALSE(t.node().alive(sup)) << "one timeout for all, not one after the other";
}

TEST_F(SupervisorTest, shouldStopItsChildrenWhenStoppedWithGenServerStop) {
    const pid sup = start(spec_of(restart_strategy::one_for_one, {worker("a"), worker("b")}));
    const auto running = children(sup);
    auto stopped = std::make_shared<bool>(false);
    t.node().spawn([sup, stopped](process& self) {
        gen_server::stop(self, sup, self.host().a("normal"), 5s,
                         [stopped](process&) { *stopped = true; });
    });
    t.run();
    EXPECT_TRUE(*stopped);
    EXPECT_FALSE(t.node().alive(pid_of(running[0])));
    EXPECT_FALSE(t.node().alive(pid_of(running[1])));
}

// --- configuration --------------------------------------------------------------------------

TEST_F(SupervisorTest, shouldHandEachChildTheConfigurationOfItsSpec) {
    // The root hands a child supervisor its configuration; that supervisor builds its own
    // children's configuration from it.
    child_spec branch;
    branch.id = "branch";
    branch.type = supervisor::child_type::supervisor;
    branch.config = tuple{t.a("db"), t.a("replica_2"), report};
    branch.start = [](const start_context& context) -> start_result {
        const auto& given = context.config.get_if<tuple>()->elements;
        child_spec leaf;
        leaf.id = "leaf";
        leaf.config = tuple{given[1], given[2]};  // {Id, Report} for config_server
        leaf.start = supervisor::server_child<config_server>();
        return supervisor::start_link(
            context.supervisor,
            supervisor::spec{{restart_strategy::one_for_one, 1, 5s}, {std::move(leaf)}});
    };
    const pid root = start(spec_of(restart_strategy::one_for_one, {branch}));
    const pid middle = pid_of(children(root)[0]);
    const pid leaf = pid_of(children(middle)[0]);
    EXPECT_EQ(call(leaf, t.a("config")), term(tuple{tuple{t.a("replica_2"), report}, list{}}));

    t.inject_exit(root, t.a("shutdown"));
    t.run();
    EXPECT_FALSE(t.node().alive(leaf)) << "stopping the root stops the whole tree";
    EXPECT_EQ(reports("terminate").size(), 1u);
}

// --- failures at start ----------------------------------------------------------------------

TEST_F(SupervisorTest, shouldStopTheStartedChildrenAndExitWhenAChildCannotStart) {
    child_spec broken = worker("b");
    broken.start = [](const start_context& context) -> start_result {
        return std::unexpected(term(context.supervisor.host().a("no_port")));
    };
    const pid sup =
        start_watched(spec_of(restart_strategy::one_for_one, {worker("a"), broken, worker("c")}));
    EXPECT_FALSE(t.node().alive(sup));
    EXPECT_EQ(down_reason(sup), term(tuple{t.a("shutdown"), tuple{t.a("failed_to_start_child"),
                                                                  t.a("b"), t.a("no_port")}}));
    EXPECT_EQ(reports("started").size(), 1u) << "c was never started";
    EXPECT_EQ(t.node().process_count(), 2u) << "a was stopped (the report and the parent are left)";
}

TEST_F(SupervisorTest, shouldExitWithBadSpecWhenTwoChildrenShareAnId) {
    const pid sup =
        start_watched(spec_of(restart_strategy::one_for_one, {worker("a"), worker("a")}));
    EXPECT_EQ(down_reason(sup),
              term(tuple{t.a("bad_spec"), tuple{t.a("duplicate_child_id"), t.a("a")}}));
}

// --- the deciders, alone ----------------------------------------------------------------------

struct plan_case {
    restart_strategy strategy;
    std::vector<bool> running;  // of 4 children; child 1 has exited
    std::vector<std::size_t> stop;
    std::vector<std::size_t> start;
};

class SupervisorPlanTest : public ::testing::TestWithParam<plan_case> {};

TEST_P(SupervisorPlanTest, shouldStopAndStartTheChildrenOfItsStrategyWhenChildOneExits) {
    const auto& c = GetParam();
    const auto plan = supervisor::internal::plan_restart(c.strategy, 4, 1, c.running);
    EXPECT_EQ(plan.stop, c.stop);
    EXPECT_EQ(plan.start, c.start);
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, SupervisorPlanTest,
    ::testing::Values(
        plan_case{restart_strategy::one_for_one, {true, false, true, true}, {}, {1}},
        plan_case{restart_strategy::simple_one_for_one, {true, false, true, true}, {}, {1}},
        plan_case{
            restart_strategy::one_for_all, {true, false, true, true}, {3, 2, 0}, {0, 1, 2, 3}},
        // A child that is not running is not stopped, but it is started with the others.
        plan_case{restart_strategy::one_for_all, {true, false, false, true}, {3, 0}, {0, 1, 2, 3}},
        plan_case{restart_strategy::rest_for_one, {true, false, true, true}, {3, 2}, {1, 2, 3}}));

TEST(SupervisorRestartWindowTest, shouldAdmitIntensityRestartsWithinAPeriodAndNoMore) {
    using time_point = clock::time_point;
    supervisor::internal::restart_window window(2, 10s);
    EXPECT_TRUE(window.admit(time_point(0s)));
    EXPECT_TRUE(window.admit(time_point(5s)));
    EXPECT_FALSE(window.admit(time_point(10s))) << "0 s is still within [now - period, now]";
    supervisor::internal::restart_window later(2, 10s);
    EXPECT_TRUE(later.admit(time_point(0s)));
    EXPECT_TRUE(later.admit(time_point(5s)));
    EXPECT_TRUE(later.admit(time_point(10s + 1ns))) << "0 s has left the period";
}

// --- OTP's supervisor calls -----------------------------------------------------------------

TEST_F(SupervisorTest, shouldAnswerOtpsSupervisorCalls) {
    const pid sup = start(spec_of(restart_strategy::one_for_one,
                                  {worker("a"), worker("b", restart_type::transient)}));
    const auto running = children(sup);
    EXPECT_EQ(call(sup, t.a("which_children")),
              term(list{tuple{t.a("a"), running[0], t.a("worker"), list{}},
                        tuple{t.a("b"), running[1], t.a("worker"), list{}}}));

    EXPECT_EQ(call(sup, tuple{t.a("terminate_child"), t.a("b")}), term(t.a("ok")));
    EXPECT_FALSE(t.node().alive(pid_of(running[1])));
    EXPECT_EQ(call(sup, t.a("count_children")),
              term(list{tuple{t.a("specs"), 2}, tuple{t.a("active"), 1},
                        tuple{t.a("supervisors"), 0}, tuple{t.a("workers"), 2}}));
    EXPECT_EQ(call(sup, tuple{t.a("restart_child"), t.a("a")}),
              term(tuple{t.a("error"), t.a("running")}));
    const auto restarted = call(sup, tuple{t.a("restart_child"), t.a("b")});
    ASSERT_TRUE(restarted && restarted->is<tuple>());
    EXPECT_EQ(restarted->get_if<tuple>()->elements[0], term(t.a("ok")));

    EXPECT_EQ(call(sup, tuple{t.a("terminate_child"), t.a("b")}), term(t.a("ok")));
    EXPECT_EQ(call(sup, tuple{t.a("delete_child"), t.a("b")}), term(t.a("ok")));
    EXPECT_EQ(children(sup).size(), 1u);
    EXPECT_EQ(call(sup, tuple{t.a("delete_child"), t.a("zz")}),
              term(tuple{t.a("error"), t.a("not_found")}));
    EXPECT_EQ(call(sup, tuple{t.a("start_child"), list{}}),
              term(tuple{t.a("error"), t.a("not_supported")}));
    EXPECT_TRUE(t.node().alive(sup));
}

}  // namespace
}  // namespace vdist::runtime
