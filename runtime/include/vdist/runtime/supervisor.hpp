#pragma once
/// \file
/// Supervisors, as OTP's: a process that traps exits, starts its children in order, restarts
/// them by its strategy when they exit, and gives up (stops them all and exits with
/// `shutdown`) when more than `intensity` restarts fall within `period` on the node's clock.
///
/// ```
///  strategy             a child exits abnormally (or a permanent one exits at all)
///  one_for_one          restart it
///  one_for_all          stop the others (reverse start order), start all (start order)
///  rest_for_one         stop those started after it (reverse order), start it and them
///  simple_one_for_one   restart it (children are added with start_child(ExtraArgs))
///
///  restart: permanent (always) | transient (not after normal, shutdown, {shutdown, _}) |
///           temporary (never; forgotten when it exits)
///  stopping a child:  unlink, monitor, exit(Child, shutdown), wait for its 'DOWN' up to the
///                     shutdown timeout, then exit(Child, kill) (brutal_kill: kill at once)
///  the supervisor stops (its parent exits, or it gives up): children stopped in reverse
///  start order (simple_one_for_one: all at once), then it exits
/// ```
///
/// Configuration flows down the tree: a child's start function is handed the `config` of its
/// spec (and, under simple_one_for_one, the arguments of start_child), and nothing else. A
/// child learns what it needs from its parent, never from a global.
///
/// A supervisor answers OTP's supervisor calls (which_children, count_children,
/// {start_child, ExtraArgs} under simple_one_for_one, {terminate_child, Id},
/// {restart_child, Id}, {delete_child, Id}) and gen_server:stop, so an Erlang node can drive it
/// with the supervisor module. Child specs are C++ (start functions), so an Erlang node cannot add
/// static children.
///
/// The deciding is separate from the doing: which children to stop and start is a pure
/// function of the strategy and the children (internal::plan_restart), the restart window a
/// small class with an injected time (internal::restart_window); the process only executes.
///
/// Threads: everything runs on the node's thread.

#include <chrono>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "vdist/runtime/gen_server.hpp"
#include "vdist/runtime/node.hpp"

namespace vdist::runtime::supervisor {

/// How the children's exits affect each other (see the file comment).
enum class restart_strategy : std::uint8_t {
    one_for_one,
    one_for_all,
    rest_for_one,
    simple_one_for_one,
};

/// When a child that exited is started again.
enum class restart_type : std::uint8_t {
    permanent,  ///< always
    transient,  ///< only after an abnormal exit (not normal, shutdown or {shutdown, _})
    temporary,  ///< never; its spec is forgotten
};

/// What a child is (which_children and count_children report it; a supervisor's default
/// shutdown is infinity).
enum class child_type : std::uint8_t { worker, supervisor };

/// How a child is stopped.
class shutdown_policy {
  public:
    /// exit(Child, kill) at once.
    [[nodiscard]] static constexpr shutdown_policy brutal_kill() noexcept {
        return shutdown_policy(true, std::nullopt);
    }
    /// exit(Child, shutdown), and exit(Child, kill) if it has not ended after `limit`.
    [[nodiscard]] static constexpr shutdown_policy timeout(clock::duration limit) noexcept {
        return shutdown_policy(false, limit);
    }
    /// exit(Child, shutdown), and wait as long as it takes (for child supervisors).
    [[nodiscard]] static constexpr shutdown_policy infinity() noexcept {
        return shutdown_policy(false, std::nullopt);
    }

    [[nodiscard]] constexpr bool is_brutal_kill() const noexcept { return brutal_kill_; }
    /// How long a child may take to end after exit(Child, shutdown); none: forever.
    [[nodiscard]] constexpr std::optional<clock::duration> limit() const noexcept { return limit_; }

  private:
    constexpr shutdown_policy(bool brutal, std::optional<clock::duration> limit) noexcept
        : brutal_kill_(brutal), limit_(limit) {}
    bool brutal_kill_;
    std::optional<clock::duration> limit_;
};

/// What a start function is handed by its supervisor: the only way configuration reaches a
/// child. Valid during the call only (copy what the child keeps).
struct start_context {
    process& supervisor;     ///< spawn_link the child from here
    const term& config;      ///< child_spec::config
    const term& extra_args;  ///< simple_one_for_one: start_child's arguments; otherwise []
};

/// A child's pid, or why it could not start (OTP's {error, Reason}).
using start_result = std::expected<pid, term>;
/// Starts a child and returns its pid; the child must be linked to the supervisor (spawn_link
/// or gen_server::start_link from start_context::supervisor; the supervisor links it anyway).
/// An exception counts as {error, {cpp_exception, What}}.
using start_function = std::function<start_result(const start_context&)>;

/// One child (OTP's child_spec()).
struct child_spec {
    std::string id;        ///< unique among a supervisor's children (an atom in which_children)
    start_function start;  ///< how to start it
    term config;           ///< handed to `start`: the child's configuration
    restart_type restart = restart_type::permanent;
    /// How to stop it; default: 5 s for a worker, infinity for a supervisor (OTP's defaults).
    std::optional<shutdown_policy> shutdown;
    child_type type = child_type::worker;
};

/// OTP's sup_flags(): at most `intensity` restarts within any `period`.
struct sup_flags {
    restart_strategy strategy = restart_strategy::one_for_one;
    std::uint32_t intensity = 1;
    clock::duration period = std::chrono::seconds(5);
};

/// A supervisor: its flags and its children in start order (simple_one_for_one: exactly one,
/// the template of every child start_child adds).
struct spec {
    sup_flags flags;
    std::vector<child_spec> children;
};

/// supervisor:start_link: a supervisor linked to `parent`; its children start in order as its
/// first step. When `parent` exits, the supervisor stops its children and exits with the same
/// reason. A spec that cannot work makes it exit with {bad_spec, What}; a child that fails to
/// start, with {shutdown, {failed_to_start_child, Id, Reason}} (after stopping the others).
[[nodiscard]] pid start_link(process& parent, spec supervision,
                             gen_server::start_options options = {});
/// A supervisor started from outside any process (a node's root). The node is its parent:
/// node::exit(Supervisor, Reason) stops its children and then it.
pid start(node& host, spec supervision, gen_server::start_options options = {});

/// A start function for a gen_server child: start_links `Server(config)`, or
/// `Server(config, extra_args)` when Server has that constructor (simple_one_for_one).
template <class Server>
[[nodiscard]] start_function server_child(gen_server::start_options options = {}) {
    return [options](const start_context& context) -> start_result {
        if constexpr (std::is_constructible_v<Server, const term&, const term&>) {
            return gen_server::start_link(
                context.supervisor, std::make_unique<Server>(context.config, context.extra_args),
                options);
        } else {
            static_assert(std::is_constructible_v<Server, const term&>,
                          "a server child is constructed from its configuration");
            return gen_server::start_link(context.supervisor,
                                          std::make_unique<Server>(context.config), options);
        }
    };
}

// -- clients (OTP's supervisor calls, so they work on an Erlang supervisor too) -------------

/// supervisor:start_child(Sup, ExtraArgs) of a simple_one_for_one supervisor: `on_started` gets
/// the new child; `on_error` its {error, Reason}'s Reason or the call's failure.
void start_child(process& self, const gen_server::server_ref& supervisor, term extra_args,
                 gen_server::call_timeout timeout, std::function<void(process&, pid)> on_started,
                 gen_server::error_handler on_error = {});

/// supervisor:terminate_child(Sup, Id): Id is the child's id (an atom) or, under
/// simple_one_for_one, its pid. `on_error` gets not_found or the call's failure.
void terminate_child(process& self, const gen_server::server_ref& supervisor, term id,
                     gen_server::call_timeout timeout, std::function<void(process&)> on_done,
                     gen_server::error_handler on_error = {});

/// supervisor:which_children(Sup): [{Id, Child, Type, Modules}] with Child a pid, `undefined`
/// or `restarting`, in start order.
void which_children(process& self, const gen_server::server_ref& supervisor,
                    gen_server::call_timeout timeout, gen_server::reply_handler on_reply,
                    gen_server::error_handler on_error = {});

namespace internal {

/// Restart intensity: the restarts of the last `period`, on whatever clock gives `now`.
class restart_window {
  public:
    restart_window(std::uint32_t intensity, clock::duration period) noexcept
        : intensity_(intensity), period_(period) {}
    /// Records a restart at `now`. False when it makes more than `intensity` restarts within
    /// `period` (now - period <= t <= now, as OTP counts): the supervisor gives up.
    [[nodiscard]] bool admit(clock::time_point now);

  private:
    std::uint32_t intensity_;
    clock::duration period_;
    std::deque<clock::time_point> restarts_;
};

/// What a child's exit means for the children, by strategy: which to stop (in this order)
/// and which to start (in this order). Positions are in start order; `failed` has exited.
struct restart_plan {
    std::vector<std::size_t> stop;
    std::vector<std::size_t> start;
};
/// The plan for restarting child `failed` of `count` children, of which `running` are alive.
[[nodiscard]] restart_plan plan_restart(restart_strategy strategy, std::size_t count,
                                        std::size_t failed, const std::vector<bool>& running);

/// Whether a child of `restart` type that exited with `reason` is started again.
[[nodiscard]] bool should_restart(restart_type restart, const term& reason) noexcept;

}  // namespace internal

}  // namespace vdist::runtime::supervisor
