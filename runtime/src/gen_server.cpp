#include "vdist/runtime/gen_server.hpp"

#include <exception>
#include <string_view>
#include <utility>
#include <vector>

namespace vdist::runtime::gen_server {
namespace {

using dist::list;
using dist::tuple;

// {Pid, Tag} of a '$gen_call' or system message; anything else is not a caller.
[[nodiscard]] std::optional<from> as_from(const term& t) {
    const auto* pair = t.get_if<tuple>();
    if (pair == nullptr || pair->elements.size() != 2) {
        return std::nullopt;
    }
    const auto* caller = pair->elements[0].get_if<pid>();
    if (caller == nullptr) {
        return std::nullopt;
    }
    return from{*caller, pair->elements[1]};
}

// The alias of a reply tag: Ref of [alias | Ref] (OTP 24+) or of [[alias | Ref] | _] (the
// form OTP 25's gen:reply also accepts); null for a plain reference.
[[nodiscard]] const reference* alias_of(const term& tag) noexcept {
    const auto* cell = tag.get_if<list>();
    if (cell == nullptr || cell->elements.empty()) {
        return nullptr;
    }
    if (cell->elements.size() == 1 && is_atom(cell->elements[0], "alias") && cell->tail) {
        return cell->tail->get_if<reference>();
    }
    if (cell->elements[0].is<list>()) {
        const auto* inner = cell->elements[0].get_if<list>();
        if (inner->elements.size() == 1 && is_atom(inner->elements[0], "alias") && inner->tail) {
            return inner->tail->get_if<reference>();
        }
    }
    return nullptr;
}

// [alias | Ref]
[[nodiscard]] term alias_tag(node& host, const reference& alias) {
    return list(std::vector<term>{host.a("alias")}, dist::box<term>(term(alias)));
}

void send_to(process& self, const server_ref& server, term message) {
    if (const auto* target = std::get_if<pid>(&server)) {
        self.send(*target, std::move(message));
    } else if (const auto* remote = std::get_if<remote_name>(&server)) {
        self.send(remote->name, remote->node, std::move(message));
    } else {
        self.send(std::get<atom>(server), std::move(message));
    }
}

[[nodiscard]] reference monitor_of(process& self, const server_ref& server) {
    if (const auto* target = std::get_if<pid>(&server)) {
        return self.monitor(*target);
    }
    if (const auto* remote = std::get_if<remote_name>(&server)) {
        return self.monitor(remote->name, remote->node);
    }
    return self.monitor(std::get<atom>(server));
}

[[nodiscard]] bool is_self(process& self, const server_ref& server) {
    if (const auto* target = std::get_if<pid>(&server)) {
        return *target == self.self();
    }
    if (std::holds_alternative<remote_name>(server)) {
        return false;  // this process is on this node
    }
    const auto holder = self.host().whereis(std::get<atom>(server));
    return holder && *holder == self.self();
}

[[nodiscard]] term as_term(const server_ref& server) {
    if (const auto* target = std::get_if<pid>(&server)) {
        return *target;
    }
    if (const auto* remote = std::get_if<remote_name>(&server)) {
        return tuple{remote->name, remote->node};
    }
    return std::get<atom>(server);
}

[[nodiscard]] term timeout_term(node& host, call_timeout timeout) {
    if (!timeout) {
        return host.a("infinity");
    }
    return static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count());
}

// A 'DOWN' of `monitor_ref`: {'DOWN', Ref, process, Who, Reason}.
[[nodiscard]] const std::vector<term>* down_of(const term& message, const reference& monitor_ref) {
    const auto* down = tagged(message, "DOWN", 5);
    if (down == nullptr) {
        return nullptr;
    }
    const auto* ref = (*down)[1].get_if<reference>();
    return ref != nullptr && *ref == monitor_ref ? down : nullptr;
}

// What OTP's caller exits with when a call fails and nobody catches it.
[[nodiscard]] term call_failure(node& host, term reason, const term& server, const term& request,
                                call_timeout timeout) {
    return tuple{std::move(reason), tuple{host.a("gen_server"), host.a("call"),
                                          list{server, request, timeout_term(host, timeout)}}};
}

[[nodiscard]] term exception_reason(node& host, const std::exception& error) {
    return tuple{host.a("cpp_exception"), dist::binary(std::string_view(error.what()))};
}

// One call in flight: what its receive clauses share.
struct pending_call {
    reference monitor_ref;
    reference alias;
    term tag;
    atom server_node;
    reply_handler on_reply;
    error_handler on_error;
};

[[nodiscard]] clause reply_clause(const std::shared_ptr<pending_call>& call) {
    return {
        [call](const term& message) {
            const auto* answer = message.get_if<tuple>();
            return answer != nullptr && answer->elements.size() == 2 &&
                   answer->elements[0] == call->tag;
        },
        [call](process& self, term message) {
            self.demonitor(call->monitor_ref, true);
            self.unalias(call->alias);
            auto& answer = message.get_if<tuple>()->elements;
            call->on_reply(self, std::move(answer[1]));
        },
    };
}

[[nodiscard]] clause down_clause(const std::shared_ptr<pending_call>& call) {
    return {
        [call](const term& message) { return down_of(message, call->monitor_ref) != nullptr; },
        [call](process& self, term message) {
            self.unalias(call->alias);
            term reason = message.get_if<tuple>()->elements[4];
            if (is_atom(reason, "noconnection")) {
                reason = tuple{self.host().a("nodedown"), call->server_node};
            }
            call->on_error(self, std::move(reason));
        },
    };
}

// on_error given, or OTP's uncaught exit.
[[nodiscard]] error_handler or_exit(error_handler on_error, const server_ref& server,
                                    const term& request, call_timeout timeout) {
    if (on_error) {
        return on_error;
    }
    return [server = as_term(server), request, timeout](process& self, term reason) {
        self.exit(call_failure(self.host(), std::move(reason), server, request, timeout));
    };
}

// Reports `reason` to on_error from a later step, as every other outcome of a call.
void fail_later(process& self, error_handler on_error, std::string_view reason) {
    self.receive({}, clock::duration::zero(),
                 [on_error = std::move(on_error), reason](process& me) {
                     on_error(me, me.host().a(reason));
                 });
}

}  // namespace

// -------------------------------------------------------------------------------------------
// The server's loop.

namespace internal {

class runner : public std::enable_shared_from_this<runner> {
  public:
    runner(std::unique_ptr<server> callbacks, std::optional<pid> parent, std::optional<atom> name)
        : server_(std::move(callbacks)), parent_(std::move(parent)), name_(name) {}

    // The process's body: register, init, loop.
    void start(process& self) {
        server_->process_ = &self;
        server_->runner_ = this;
        if (name_ && !self.register_name(*name_)) {
            const auto holder = self.host().whereis(*name_);
            self.exit(tuple{self.host().a("already_started"),
                            holder ? term(*holder) : term(self.host().a("undefined"))});
            return;
        }
        // As in OTP, a crashing init does not run terminate: the exception ends the process.
        init_result started = server_->init();
        if (started.stops_) {
            self.exit(std::move(started.reason_));
            return;
        }
        if (!waiting_) {
            resume(self);
        }
    }

    // (Re)arms the loop: every message goes to handle().
    void resume(process& self) {
        self.become([me = shared_from_this()](process& p, term message) {
            me->handle(p, std::move(message));
        });
    }

    void handle(process& self, const term& message) {
        if (const auto* call = tagged(message, "$gen_call", 3)) {
            if (auto caller = as_from((*call)[1])) {
                on_call(self, (*call)[2], *caller);
                return;
            }
        } else if (const auto* cast = tagged(message, "$gen_cast", 2)) {
            on_result(self, guarded(self, [&] { return server_->handle_cast((*cast)[1]); }));
            return;
        } else if (const auto* exit = tagged(message, "EXIT", 3)) {
            const auto* sender = (*exit)[1].get_if<pid>();
            if (parent_ && sender != nullptr && *sender == *parent_) {
                stop(self, (*exit)[2]);
                return;
            }
        } else if (const auto* system = tagged(message, "system", 3)) {
            const auto* order = tagged((*system)[2], "terminate", 2);
            if (order != nullptr && as_from((*system)[1])) {
                stop(self, (*order)[1]);
                return;
            }
        }
        // Anything else, including a '$gen_call' whose From is no {Pid, Tag}: hostile or
        // broken input is the server's to judge, never a crash of the loop.
        on_result(self, guarded(self, [&] { return server_->handle_info(message); }));
    }

    // server::call: the loop waits; this runs the continuation and resumes it.
    void begin_wait() noexcept { waiting_ = true; }
    template <class Continuation>
    void end_wait(process& self, Continuation&& continuation) {
        waiting_ = false;
        auto result = guarded(self, std::forward<Continuation>(continuation));
        if (result && !result->stops_ && !waiting_) {
            resume(self);
        }
        on_result(self, std::move(result));
    }

  private:
    void on_call(process& self, const term& request, const from& caller) {
        auto result = guarded(self, [&] { return server_->handle_call(request, caller); });
        if (!result) {
            return;
        }
        if (result->stops_) {
            // OTP: terminate first, then the reply, then the exit.
            run_terminate(result->reason_);
            if (result->replies_) {
                gen_server::reply(self, caller, std::move(result->value_));
            }
            self.exit(std::move(result->reason_));
        } else if (result->replies_) {
            gen_server::reply(self, caller, std::move(result->value_));
        }
    }

    void on_result(process& self, std::optional<handle_result> result) {
        if (result && result->stops_) {
            stop(self, std::move(result->reason_));
        }
    }

    void stop(process& self, term reason) {
        run_terminate(reason);
        self.exit(std::move(reason));
    }

    void run_terminate(const term& reason) {
        try {
            server_->terminate(reason);
        } catch (const std::exception&) {
            // The server ends with its reason either way.
        }
    }

    // A callback; if it throws, the server ends as OTP's does when a callback crashes:
    // terminate(Reason), then exit(Reason), Reason = {cpp_exception, What}.
    template <class Callback>
    auto guarded(process& self, Callback&& callback)
        -> std::optional<decltype(std::forward<Callback>(callback)())> {
        try {
            return std::forward<Callback>(callback)();
        } catch (const std::exception& error) {
            stop(self, exception_reason(self.host(), error));
            return std::nullopt;
        }
    }

    std::unique_ptr<server> server_;
    std::optional<pid> parent_;
    std::optional<atom> name_;
    bool waiting_ = false;
};

}  // namespace internal

// -------------------------------------------------------------------------------------------
// server

call_result server::handle_call(const term& request, const from&) {
    return call_result::stop(dist::tuple{a("bad_call"), request});
}

handle_result server::handle_cast(const term& message) {
    return handle_result::stop(dist::tuple{a("bad_cast"), message});
}

handle_result server::handle_info(const term&) {
    return handle_result::noreply();
}

void server::terminate(const term&) {}

void server::reply(const from& caller, term value) {
    gen_server::reply(*process_, caller, std::move(value));
}

void server::call(const server_ref& target, term request, call_timeout timeout,
                  std::function<handle_result(const term&)> on_reply,
                  std::function<handle_result(const term&)> on_error) {
    auto me = runner_->shared_from_this();
    me->begin_wait();
    auto failed = [me, on_error = std::move(on_error), target = as_term(target), request, timeout](
                      process& p, term reason) {
        me->end_wait(p, [&] {
            return on_error ? on_error(reason)
                            : handle_result::stop(
                                  call_failure(p.host(), reason, target, request, timeout));
        });
    };
    gen_server::call(
        *process_, target, std::move(request), timeout,
        [me, on_reply = std::move(on_reply)](process& p, term answer) {
            me->end_wait(p, [&] { return on_reply(answer); });
        },
        std::move(failed));
}

// -------------------------------------------------------------------------------------------
// start

namespace {

// The pid node::exit sends from (exit signals from outside any process).
[[nodiscard]] pid node_pid(node& host) {
    return pid{host.name(), 0, 0, host.creation()};
}

[[nodiscard]] behavior body_of(std::unique_ptr<server> callbacks, std::optional<pid> parent,
                               std::optional<atom> name) {
    auto loop = std::make_shared<internal::runner>(std::move(callbacks), std::move(parent), name);
    return [loop](process& self) { loop->start(self); };
}

}  // namespace

pid start_link(process& parent, std::unique_ptr<server> callbacks, start_options options) {
    return parent.spawn_link(body_of(std::move(callbacks), parent.self(), options.name));
}

pid start(process& parent, std::unique_ptr<server> callbacks, start_options options) {
    return parent.spawn(body_of(std::move(callbacks), std::nullopt, options.name));
}

pid start(node& host, std::unique_ptr<server> callbacks, start_options options) {
    return host.spawn(body_of(std::move(callbacks), node_pid(host), options.name));
}

// -------------------------------------------------------------------------------------------
// clients

void call(process& self, const server_ref& server, term request, call_timeout timeout,
          reply_handler on_reply, error_handler on_error) {
    node& host = self.host();
    on_error = or_exit(std::move(on_error), server, request, timeout);
    if (is_self(self, server)) {
        fail_later(self, std::move(on_error), "calling_self");
        return;
    }
    auto pending = std::make_shared<pending_call>();
    pending->monitor_ref = monitor_of(self, server);
    pending->alias = self.alias();
    pending->tag = alias_tag(host, pending->alias);
    const auto* target = std::get_if<pid>(&server);
    const auto* remote = std::get_if<remote_name>(&server);
    pending->server_node = target != nullptr   ? target->node
                           : remote != nullptr ? remote->node
                                               : host.name();
    pending->on_reply = std::move(on_reply);
    pending->on_error = std::move(on_error);
    send_to(self, server,
            tuple{host.a("$gen_call"), tuple{self.self(), pending->tag}, std::move(request)});
    self.receive({reply_clause(pending), down_clause(pending)}, timeout, [pending](process& me) {
        // The alias goes first: from now on a late reply is dropped at the sender's node.
        me.unalias(pending->alias);
        me.demonitor(pending->monitor_ref, true);
        // A reply that came in with the timeout is still taken (OTP's `receive ... after 0`).
        me.receive({reply_clause(pending)}, clock::duration::zero(), [pending](process& again) {
            pending->on_error(again, again.host().a("timeout"));
        });
    });
}

void cast(process& self, const server_ref& server, term message) {
    send_to(self, server, tuple{self.host().a("$gen_cast"), std::move(message)});
}

void reply(process& self, const from& caller, term value) {
    const reference* alias = alias_of(caller.tag);
    term message = tuple{caller.tag, std::move(value)};
    if (alias != nullptr) {
        // To the alias (ALIAS_SEND for a caller on another node): a caller that gave up
        // (timeout) has deactivated it, and the late reply is dropped at its node.
        self.send(*alias, std::move(message));
    } else {
        self.send(caller.caller, std::move(message));  // a plain reference tag
    }
}

void stop(process& self, const server_ref& server, term reason, call_timeout timeout,
          std::function<void(process&)> on_stopped, error_handler on_error) {
    node& host = self.host();
    if (!on_error) {
        on_error = [](process& me, term why) { me.exit(std::move(why)); };
    }
    if (is_self(self, server)) {
        fail_later(self, std::move(on_error), "calling_self");
        return;
    }
    const reference monitor_ref = monitor_of(self, server);
    send_to(self, server,
            tuple{host.a("system"), tuple{self.self(), self.make_ref()},
                  tuple{host.a("terminate"), reason}});
    self.receive(
        {clause{
            [monitor_ref](const term& message) { return down_of(message, monitor_ref) != nullptr; },
            [reason, on_stopped, on_error](process& me, term message) {
                term ended = message.get_if<tuple>()->elements[4];
                if (ended == reason) {
                    on_stopped(me);
                } else {
                    on_error(me, std::move(ended));
                }
            },
        }},
        timeout, [monitor_ref, on_error](process& me) {
            me.demonitor(monitor_ref, true);
            on_error(me, me.host().a("timeout"));
        });
}

}  // namespace vdist::runtime::gen_server
