#include "vdist/runtime/supervisor.hpp"

#include <algorithm>
#include <exception>
#include <string_view>
#include <utility>

namespace vdist::runtime::supervisor {

// -------------------------------------------------------------------------------------------
// The deciders.

namespace internal {

bool restart_window::admit(clock::time_point now) {
    restarts_.push_back(now);
    while (restarts_.front() < now - period_) {
        restarts_.pop_front();
    }
    return restarts_.size() <= intensity_;
}

restart_plan plan_restart(restart_strategy strategy, std::size_t count, std::size_t failed,
                          const std::vector<bool>& running) {
    restart_plan plan;
    switch (strategy) {
        case restart_strategy::one_for_one:
        case restart_strategy::simple_one_for_one:
            plan.start.push_back(failed);
            break;
        case restart_strategy::one_for_all:
            for (std::size_t i = count; i-- > 0;) {
                if (i != failed && running[i]) {
                    plan.stop.push_back(i);
                }
            }
            for (std::size_t i = 0; i < count; ++i) {
                plan.start.push_back(i);
            }
            break;
        case restart_strategy::rest_for_one:
            for (std::size_t i = count; i-- > failed + 1;) {
                if (running[i]) {
                    plan.stop.push_back(i);
                }
            }
            for (std::size_t i = failed; i < count; ++i) {
                plan.start.push_back(i);
            }
            break;
    }
    return plan;
}

bool should_restart(restart_type restart, const term& reason) noexcept {
    switch (restart) {
        case restart_type::permanent:
            return true;
        case restart_type::temporary:
            return false;
        case restart_type::transient:
            break;
    }
    if (is_atom(reason, "normal") || is_atom(reason, "shutdown")) {
        return false;
    }
    const auto* wrapped = reason.get_if<dist::tuple>();
    return wrapped == nullptr || wrapped->elements.size() != 2 ||
           !is_atom(wrapped->elements[0], "shutdown");
}

}  // namespace internal

// -------------------------------------------------------------------------------------------
// The supervisor's process.

namespace {

using dist::list;
using dist::tuple;
using continuation = std::function<void(process&)>;

constexpr auto default_worker_shutdown = std::chrono::seconds(5);

// The pid node::exit sends from (exit signals from outside any process).
[[nodiscard]] pid node_pid(node& host) {
    return pid{host.name(), 0, 0, host.creation()};
}

[[nodiscard]] shutdown_policy policy_of(const child_spec& child) {
    if (child.shutdown) {
        return *child.shutdown;
    }
    return child.type == child_type::supervisor ? shutdown_policy::infinity()
                                                : shutdown_policy::timeout(default_worker_shutdown);
}

// A child id as Erlang sees it: the atom, or a binary when the text is no valid atom.
[[nodiscard]] term id_term(node& host, const std::string& id) {
    if (auto name = host.atoms().intern(id)) {
        return *name;
    }
    return dist::binary(std::string_view(id));
}

[[nodiscard]] bool id_matches(const term& id, const std::string& text) {
    if (const auto* name = id.get_if<atom>()) {
        return name->text() == text;
    }
    if (const auto* bytes = id.get_if<dist::binary>()) {
        return *bytes == dist::binary(std::string_view(text));
    }
    return false;
}

// What is wrong with a spec, if anything (the reason's second element).
[[nodiscard]] std::optional<term> problem_of(node& host, const spec& supervision) {
    const auto& children = supervision.children;
    if (supervision.flags.period <= clock::duration::zero()) {
        return host.a("period_not_positive");
    }
    if (supervision.flags.strategy == restart_strategy::simple_one_for_one &&
        children.size() != 1) {
        return tuple{host.a("simple_one_for_one_needs_one_child"),
                     static_cast<std::int64_t>(children.size())};
    }
    for (std::size_t i = 0; i < children.size(); ++i) {
        if (!children[i].start) {
            return tuple{host.a("no_start_function"), id_term(host, children[i].id)};
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (children[j].id == children[i].id) {
                return tuple{host.a("duplicate_child_id"), id_term(host, children[i].id)};
            }
        }
    }
    return std::nullopt;
}

struct child {
    std::uint64_t key = 0;  // identity within the supervisor (positions move)
    std::shared_ptr<const child_spec> spec;
    term extra_args;  // simple_one_for_one: start_child's arguments
    std::optional<pid> running;
    bool restarting = false;  // a start failed; a retry is queued
};

class supervisor_process : public std::enable_shared_from_this<supervisor_process> {
  public:
    supervisor_process(spec supervision, std::optional<pid> parent, std::optional<atom> name)
        : flags_(supervision.flags),
          window_(supervision.flags.intensity, supervision.flags.period),
          parent_(std::move(parent)),
          name_(name) {
        for (auto& given : supervision.children) {
            specs_.push_back(std::make_shared<const child_spec>(std::move(given)));
        }
    }

    // The body: trap exits, register, check the spec, start the children in order.
    void start(process& self) {
        node& host = self.host();
        self.trap_exit(true);
        if (name_ && !self.register_name(*name_)) {
            const auto holder = host.whereis(*name_);
            self.exit(tuple{host.a("already_started"),
                            holder ? term(*holder) : term(host.a("undefined"))});
            return;
        }
        if (auto problem = problem_of(host, spec_view())) {
            self.exit(tuple{host.a("bad_spec"), std::move(*problem)});
            return;
        }
        retry_tag_ = self.make_ref();
        if (dynamic()) {
            resume(self);
            return;
        }
        for (const auto& given : specs_) {
            children_.push_back(child{next_key_++, given, term(), std::nullopt, false});
        }
        for (std::size_t i = 0; i < children_.size(); ++i) {
            auto started = start_one(self, children_[i]);
            if (!started) {
                // OTP: the children started so far are stopped, and the supervisor fails.
                std::vector<std::uint64_t> started_keys;
                for (std::size_t j = i; j-- > 0;) {
                    started_keys.push_back(children_[j].key);
                }
                term reason = tuple{host.a("shutdown"), tuple{host.a("failed_to_start_child"),
                                                              id_term(host, children_[i].spec->id),
                                                              std::move(started.error())}};
                stop_in_order(self, std::move(started_keys),
                              [reason](process& p) { p.exit(reason); });
                return;
            }
        }
        resume(self);
    }

  private:
    [[nodiscard]] bool dynamic() const noexcept {
        return flags_.strategy == restart_strategy::simple_one_for_one;
    }

    // The spec as given, for checking (flags and child specs).
    [[nodiscard]] spec spec_view() const {
        spec view{flags_, {}};
        for (const auto& given : specs_) {
            view.children.push_back(*given);
        }
        return view;
    }

    void resume(process& self) {
        self.become(
            [me = shared_from_this()](process& p, term message) { me->handle(p, message); });
    }

    void handle(process& self, const term& message) {
        const auto* elements = message.get_if<tuple>();
        if (elements == nullptr) {
            return;
        }
        const auto& e = elements->elements;
        if (e.size() == 3 && is_atom(e[0], "EXIT")) {
            const auto* sender = e[1].get_if<pid>();
            if (sender == nullptr) {
                return;
            }
            if (parent_ && *sender == *parent_) {
                shut_down(self, e[2]);
            } else if (auto index = index_of(*sender)) {
                child_exited(self, *index, e[2]);
            }
            // An 'EXIT' of a child stopped on purpose (or of a stranger): nothing to do.
            return;
        }
        if (e.size() == 3 && is_atom(e[0], "$gen_call")) {
            const auto* from_pair = e[1].get_if<tuple>();
            if (from_pair != nullptr && from_pair->elements.size() == 2) {
                if (const auto* caller = from_pair->elements[0].get_if<pid>()) {
                    on_call(self, e[2], gen_server::from{*caller, from_pair->elements[1]});
                }
            }
            return;
        }
        if (e.size() == 3 && is_atom(e[0], "system")) {
            // gen_server:stop(Sup, Reason): {system, From, {terminate, Reason}}.
            const auto* order = e[2].get_if<tuple>();
            if (order != nullptr && order->elements.size() == 2 &&
                is_atom(order->elements[0], "terminate")) {
                shut_down(self, order->elements[1]);
            }
            return;
        }
        if (e.size() == 2 && retry_tag_ && e[0] == term(*retry_tag_)) {
            const auto* key = e[1].get_if<std::int64_t>();
            if (key != nullptr) {
                const auto index = index_of_key(static_cast<std::uint64_t>(*key));
                if (index && !children_[*index].running) {
                    restart(self, children_[*index].key);
                }
            }
        }
        // Anything else: OTP's supervisor logs it and goes on.
    }

    // -- exits and restarts ------------------------------------------------------------------

    void child_exited(process& self, std::size_t index, const term& reason) {
        child& exited = children_[index];
        exited.running.reset();
        if (!internal::should_restart(exited.spec->restart, reason)) {
            if (exited.spec->restart == restart_type::temporary || dynamic()) {
                children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(index));
            }
            return;
        }
        restart(self, exited.key);
    }

    void restart(process& self, std::uint64_t key) {
        if (!window_.admit(self.host().time().now())) {
            shut_down(self, self.host().a("shutdown"));  // reached_max_restart_intensity
            return;
        }
        const std::size_t failed = *index_of_key(key);
        std::vector<bool> running;
        for (const auto& c : children_) {
            running.push_back(c.running.has_value());
        }
        const auto plan =
            internal::plan_restart(flags_.strategy, children_.size(), failed, running);
        std::vector<std::uint64_t> stop_keys;
        std::vector<std::uint64_t> start_keys;
        for (const auto i : plan.stop) {
            stop_keys.push_back(children_[i].key);
        }
        for (const auto i : plan.start) {
            start_keys.push_back(children_[i].key);
        }
        stop_in_order(self, stop_keys,
                      [me = shared_from_this(), stop_keys, start_keys](process& p) {
                          me->forget_stopped_temporaries(stop_keys);
                          me->start_again(p, start_keys);
                          me->resume(p);
                      });
    }

    // Temporary children stopped for a restart are not restarted (OTP deletes them).
    void forget_stopped_temporaries(const std::vector<std::uint64_t>& stopped) {
        std::erase_if(children_, [&](const child& c) {
            return c.spec->restart == restart_type::temporary &&
                   std::ranges::find(stopped, c.key) != stopped.end();
        });
    }

    void start_again(process& self, const std::vector<std::uint64_t>& keys) {
        for (const auto key : keys) {
            const auto index = index_of_key(key);
            if (!index || children_[*index].running) {
                continue;
            }
            if (!start_one(self, children_[*index])) {
                // OTP's try_again_restart: a later message retries (and counts as a restart).
                children_[*index].restarting = true;
                self.send(self.self(), tuple{*retry_tag_, static_cast<std::int64_t>(key)});
                return;
            }
        }
    }

    // Stops every child (reverse start order; simple_one_for_one: all at once), then exits.
    void shut_down(process& self, term reason) {
        std::vector<std::uint64_t> keys;
        for (auto c = children_.rbegin(); c != children_.rend(); ++c) {
            keys.push_back(c->key);
        }
        continuation then = [reason = std::move(reason)](process& p) { p.exit(reason); };
        if (dynamic()) {
            stop_together(self, std::move(keys), std::move(then));
        } else {
            stop_in_order(self, std::move(keys), std::move(then));
        }
    }

    [[nodiscard]] start_result start_one(process& self, child& c) {
        start_result started;
        try {
            started = c.spec->start(start_context{self, c.spec->config, c.extra_args});
        } catch (const std::exception& error) {
            started = std::unexpected(term(tuple{self.host().a("cpp_exception"),
                                                 dist::binary(std::string_view(error.what()))}));
        }
        if (started) {
            self.link(*started);  // supervised even if the start function forgot spawn_link
            c.running = *started;
            c.restarting = false;
        }
        return started;
    }

    // -- stopping children -------------------------------------------------------------------

    void stop_in_order(process& self, std::vector<std::uint64_t> keys, continuation then) {
        if (keys.empty()) {
            then(self);
            return;
        }
        const std::uint64_t first = keys.front();
        keys.erase(keys.begin());
        stop_together(self, {first},
                      [me = shared_from_this(), rest = std::move(keys), then](process& p) {
                          me->stop_in_order(p, rest, then);
                      });
    }

    struct stopping {
        struct victim {
            reference monitor_ref;
            pid child;
            std::uint64_t key;
        };
        std::vector<victim> waiting;
        std::optional<clock::time_point> deadline;
        continuation then;
    };

    // OTP's shutdown: unlink (its 'EXIT' no longer matters), monitor, exit(Child, shutdown)
    // (brutal_kill: kill), wait for each 'DOWN' until the deadline, then kill the rest.
    void stop_together(process& self, std::vector<std::uint64_t> keys, continuation then) {
        auto state = std::make_shared<stopping>();
        state->then = std::move(then);
        std::optional<shutdown_policy> policy;
        for (const auto key : keys) {
            const auto index = index_of_key(key);
            if (!index || !children_[*index].running) {
                continue;
            }
            const child& c = children_[*index];
            if (!policy) {
                policy = policy_of(*c.spec);  // one child, or simple_one_for_one's one spec
            }
            const pid victim = *c.running;
            self.unlink(victim);
            const reference monitor_ref = self.monitor(victim);
            self.exit(victim, self.host().a(policy->is_brutal_kill() ? "kill" : "shutdown"));
            state->waiting.push_back({monitor_ref, victim, key});
        }
        if (state->waiting.empty()) {
            state->then(self);
            return;
        }
        if (!policy->is_brutal_kill() && policy->limit()) {
            state->deadline = self.host().time().now() + *policy->limit();
        }
        await_downs(self, std::move(state));
    }

    void await_downs(process& self, std::shared_ptr<stopping> state) {
        clause on_down{
            [state](const term& message) {
                const auto* down = message.get_if<tuple>();
                if (down == nullptr || down->elements.size() != 5 ||
                    !is_atom(down->elements[0], "DOWN")) {
                    return false;
                }
                return std::ranges::any_of(state->waiting, [&](const stopping::victim& v) {
                    return down->elements[1] == term(v.monitor_ref);
                });
            },
            [me = shared_from_this(), state](process& p, term message) {
                const term& ref = message.get_if<tuple>()->elements[1];
                const auto gone = std::ranges::find_if(
                    state->waiting, [&](const auto& v) { return ref == term(v.monitor_ref); });
                if (const auto index = me->index_of_key(gone->key)) {
                    me->children_[*index].running.reset();
                }
                state->waiting.erase(gone);
                if (state->waiting.empty()) {
                    state->then(p);
                } else {
                    me->await_downs(p, state);
                }
            },
        };
        if (!state->deadline) {
            self.receive({std::move(on_down)});
            return;
        }
        const auto left =
            std::max(*state->deadline - self.host().time().now(), clock::duration::zero());
        self.receive({std::move(on_down)}, left, [me = shared_from_this(), state](process& p) {
            state->deadline.reset();
            for (const auto& v : state->waiting) {
                p.exit(v.child, p.host().a("kill"));
            }
            me->await_downs(p, state);
        });
    }

    // -- OTP's supervisor calls --------------------------------------------------------------

    void on_call(process& self, const term& request, const gen_server::from& caller) {
        node& host = self.host();
        const auto answer = [&](term value) { gen_server::reply(self, caller, std::move(value)); };
        const auto error = [&](term why) { return term(tuple{host.a("error"), std::move(why)}); };
        if (is_atom(request, "which_children")) {
            answer(which_children(host));
            return;
        }
        if (is_atom(request, "count_children")) {
            answer(count_children(host));
            return;
        }
        const auto* order = request.get_if<tuple>();
        if (order == nullptr || order->elements.size() != 2) {
            answer(error(tuple{host.a("unknown_call"), request}));
            return;
        }
        const term& what = order->elements[0];
        const term& argument = order->elements[1];
        if (is_atom(what, "start_child")) {
            if (!dynamic()) {
                // Child specs are C++: an Erlang map or tuple cannot say how to start one.
                answer(error(host.a("not_supported")));
                return;
            }
            child added{next_key_++, specs_.front(), argument, std::nullopt, false};
            auto started = start_one(self, added);
            if (!started) {
                answer(error(std::move(started.error())));
                return;
            }
            children_.push_back(std::move(added));
            answer(tuple{host.a("ok"), *started});
            return;
        }
        if (is_atom(what, "terminate_child")) {
            const auto index = find_child(argument);
            if (!index) {
                answer(error(host.a("not_found")));
                return;
            }
            const std::uint64_t key = children_[*index].key;
            stop_together(self, {key}, [me = shared_from_this(), key, caller](process& p) {
                if (const auto at = me->index_of_key(key);
                    at && (me->dynamic() ||
                           me->children_[*at].spec->restart == restart_type::temporary)) {
                    me->children_.erase(me->children_.begin() + static_cast<std::ptrdiff_t>(*at));
                }
                gen_server::reply(p, caller, p.host().a("ok"));
                me->resume(p);
            });
            return;
        }
        if (is_atom(what, "restart_child") || is_atom(what, "delete_child")) {
            if (dynamic()) {
                answer(error(host.a("simple_one_for_one")));
                return;
            }
            const auto index = find_child(argument);
            if (!index) {
                answer(error(host.a("not_found")));
                return;
            }
            if (children_[*index].running) {
                answer(error(host.a("running")));
                return;
            }
            if (is_atom(what, "delete_child")) {
                children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(*index));
                answer(host.a("ok"));
                return;
            }
            auto started = start_one(self, children_[*index]);
            answer(started ? term(tuple{host.a("ok"), *started})
                           : error(std::move(started.error())));
            return;
        }
        answer(error(tuple{host.a("unknown_call"), request}));
    }

    [[nodiscard]] term which_children(node& host) const {
        std::vector<term> entries;
        for (const auto& c : children_) {
            term id = dynamic() ? term(host.a("undefined")) : id_term(host, c.spec->id);
            term state = c.running      ? term(*c.running)
                         : c.restarting ? term(host.a("restarting"))
                                        : term(host.a("undefined"));
            entries.push_back(
                tuple{std::move(id), std::move(state), type_atom(host, *c.spec), list{}});
        }
        return list(std::move(entries));
    }

    [[nodiscard]] term count_children(node& host) const {
        std::int64_t active = 0;
        std::int64_t supervisors = 0;
        for (const auto& c : children_) {
            active += c.running ? 1 : 0;
            supervisors += c.spec->type == child_type::supervisor ? 1 : 0;
        }
        const auto all = static_cast<std::int64_t>(children_.size());
        return list{tuple{host.a("specs"), all}, tuple{host.a("active"), active},
                    tuple{host.a("supervisors"), supervisors},
                    tuple{host.a("workers"), all - supervisors}};
    }

    [[nodiscard]] static term type_atom(node& host, const child_spec& c) {
        return host.a(c.type == child_type::supervisor ? "supervisor" : "worker");
    }

    // -- lookups -----------------------------------------------------------------------------

    [[nodiscard]] std::optional<std::size_t> index_of(const pid& p) const {
        for (std::size_t i = 0; i < children_.size(); ++i) {
            if (children_[i].running == p) {
                return i;
            }
        }
        return std::nullopt;
    }

    [[nodiscard]] std::optional<std::size_t> index_of_key(std::uint64_t key) const {
        for (std::size_t i = 0; i < children_.size(); ++i) {
            if (children_[i].key == key) {
                return i;
            }
        }
        return std::nullopt;
    }

    // terminate_child's Id: a pid under simple_one_for_one, an id otherwise.
    [[nodiscard]] std::optional<std::size_t> find_child(const term& id) const {
        if (dynamic()) {
            const auto* p = id.get_if<pid>();
            return p != nullptr ? index_of(*p) : std::nullopt;
        }
        for (std::size_t i = 0; i < children_.size(); ++i) {
            if (id_matches(id, children_[i].spec->id)) {
                return i;
            }
        }
        return std::nullopt;
    }

    sup_flags flags_;
    std::vector<std::shared_ptr<const child_spec>> specs_;
    std::vector<child> children_;  // start order
    internal::restart_window window_;
    std::optional<pid> parent_;
    std::optional<atom> name_;
    std::optional<reference> retry_tag_;  // {Tag, Key}: retry a failed restart
    std::uint64_t next_key_ = 1;
};

[[nodiscard]] behavior body_of(spec supervision, std::optional<pid> parent,
                               std::optional<atom> name) {
    auto state =
        std::make_shared<supervisor_process>(std::move(supervision), std::move(parent), name);
    return [state](process& self) { state->start(self); };
}

}  // namespace

pid start_link(process& parent, spec supervision, gen_server::start_options options) {
    return parent.spawn_link(body_of(std::move(supervision), parent.self(), options.name));
}

pid start(node& host, spec supervision, gen_server::start_options options) {
    return host.spawn(body_of(std::move(supervision), node_pid(host), options.name));
}

// -------------------------------------------------------------------------------------------
// clients

namespace {

// {error, Reason} replies go to on_error (or end the caller, as an unmatched reply would).
void report_error(process& self, const gen_server::error_handler& on_error, term reason) {
    if (on_error) {
        on_error(self, std::move(reason));
    } else {
        self.exit(std::move(reason));
    }
}

// The Reason of {error, Reason}, or the whole reply when it is something else.
[[nodiscard]] term error_reason(const term& reply) {
    const auto* answer = reply.get_if<tuple>();
    if (answer != nullptr && answer->elements.size() == 2 &&
        is_atom(answer->elements[0], "error")) {
        return answer->elements[1];
    }
    return reply;
}

}  // namespace

void start_child(process& self, const gen_server::server_ref& supervisor, term extra_args,
                 gen_server::call_timeout timeout, std::function<void(process&, pid)> on_started,
                 gen_server::error_handler on_error) {
    term request = tuple{self.host().a("start_child"), std::move(extra_args)};
    gen_server::call(
        self, supervisor, std::move(request), timeout,
        [on_started, on_error](process& me, term reply) {
            const auto* answer = reply.get_if<tuple>();
            if (answer != nullptr && answer->elements.size() == 2 &&
                is_atom(answer->elements[0], "ok") && answer->elements[1].is<pid>()) {
                on_started(me, *answer->elements[1].get_if<pid>());
            } else {
                report_error(me, on_error, error_reason(reply));
            }
        },
        on_error);
}

void terminate_child(process& self, const gen_server::server_ref& supervisor, term id,
                     gen_server::call_timeout timeout, std::function<void(process&)> on_done,
                     gen_server::error_handler on_error) {
    term request = tuple{self.host().a("terminate_child"), std::move(id)};
    gen_server::call(
        self, supervisor, std::move(request), timeout,
        [on_done, on_error](process& me, term reply) {
            if (is_atom(reply, "ok")) {
                on_done(me);
            } else {
                report_error(me, on_error, error_reason(reply));
            }
        },
        on_error);
}

void which_children(process& self, const gen_server::server_ref& supervisor,
                    gen_server::call_timeout timeout, gen_server::reply_handler on_reply,
                    gen_server::error_handler on_error) {
    gen_server::call(self, supervisor, self.host().a("which_children"), timeout,
                     std::move(on_reply), std::move(on_error));
}

}  // namespace vdist::runtime::supervisor
