#pragma once
/// \file
/// gen_server: OTP's generic server on a vdist node, with OTP's messages, so that an Erlang
/// node's gen_server:call/cast reaches a C++ server and a C++ call reaches an Erlang gen_server.
///
/// ```
///  client: call(self, Server, Req, Timeout, on_reply, on_error)    server: a gen_server::server
///    Mref = monitor(Server), Alias = alias()
///    Server ! {'$gen_call', {self(), [alias | Alias]}, Req}  ─────>  handle_call(Req, From)
///    receive                                                          -> reply(V) | noreply()
///      {[alias | Alias], V}  <── Alias ! {[alias | Alias], V}  (now, or later with reply(From, V))
///      {'DOWN', Mref, _, _, R}       -> on_error(R)     noproc: no such server
///    after Timeout -> unalias(Alias) -> on_error(timeout)   a late reply is dropped, not queued
///  cast(self, Server, Msg):   Server ! {'$gen_cast', Msg}    ─────>  handle_cast(Msg)
///  any other message                                          ─────>  handle_info(Msg)
///  {'EXIT', Parent, R} (a server that traps exits)            ─────>  terminate(R), exit(R)
///  {system, From, {terminate, R}} (Erlang's gen_server:stop)  ─────>  terminate(R), exit(R)
/// ```
///
/// The reply tag is what the caller sent: OTP 24+ sends `[alias | Ref]` and the reply goes to
/// the alias Ref (OTP's gen:reply does `Alias ! {Tag, Reply}`), older callers send a plain
/// reference and the reply goes to their pid. OTP makes the monitor reference the alias
/// (monitor/3 with {alias, demonitor}); here the alias is a reference of its own, which the
/// server cannot tell apart.
///
/// Processes are driven by callbacks, so a call does not block: it arms a selective receive
/// (replacing the one armed before) and hands the outcome to `on_reply` or `on_error`, which
/// arm the caller's next receive. Inside a server, server::call does the same and resumes the
/// server's loop afterwards; as in OTP, the server handles nothing else while it waits.
///
/// Start: the server's process registers its name (if any) and runs init() as its first step,
/// after start() has returned the pid, so messages sent before init ran wait in the mailbox.
/// A server that cannot start (init returns stop, the name is taken) exits with the reason
/// OTP's start would have returned as {error, Reason}.
///
/// Threads: everything here runs on the node's thread, inside a process's handlers (or, for
/// start(node&, ...), from outside any process).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "vdist/runtime/node.hpp"

namespace vdist::runtime::gen_server {

namespace internal {
class runner;
}  // namespace internal

/// The caller of a call, as handle_call sees it: OTP's From = {Pid, Tag}. Copy it to reply
/// later, from this server or from any other process (reply()).
struct from {
    pid caller;  ///< the calling process
    term tag;    ///< [alias | Ref] (OTP 24+) or a reference (older callers)

    friend bool operator==(const from&, const from&) = default;
};

/// A name registered on another node: OTP's {Name, Node}.
struct remote_name {
    atom name;
    atom node;
};

/// Where a call or cast goes: a pid, a name registered on this node, or {Name, Node}.
using server_ref = std::variant<pid, atom, remote_name>;

/// How long a caller waits for the reply; std::nullopt (gen_server::infinity) waits forever.
using call_timeout = std::optional<clock::duration>;
/// Wait forever.
inline constexpr call_timeout infinity = std::nullopt;
/// OTP's default for gen_server:call/2.
inline constexpr call_timeout default_timeout = std::chrono::seconds(5);

// The results hold plain terms and flags, not std::optional<term>: g++ 12 with
// -fsanitize=address warns that an optional<term> made from nullopt "may be used
// uninitialized" (a false positive that -Werror turns into a build failure).

/// What init() decides: OTP's {ok, State} or {stop, Reason}.
class init_result {
  public:
    /// The server runs.
    [[nodiscard]] static init_result ok() { return init_result(false, term()); }
    /// The server does not start: its process exits with `reason`.
    [[nodiscard]] static init_result stop(term reason) {
        return init_result(true, std::move(reason));
    }

  private:
    friend class internal::runner;
    init_result(bool stops, term reason) : stops_(stops), reason_(std::move(reason)) {}
    bool stops_;
    term reason_;
};

/// What handle_call decides: OTP's {reply, Reply, S}, {noreply, S}, {stop, Reason, Reply, S}
/// and {stop, Reason, S}.
class call_result {
  public:
    /// Replies `value` now.
    [[nodiscard]] static call_result reply(term value) {
        return call_result(true, std::move(value), false, term());
    }
    /// No reply now: the server (or a process it hands `from` to) calls reply() later.
    [[nodiscard]] static call_result noreply() { return call_result(false, term(), false, term()); }
    /// Ends the server with `reason` without replying (the caller gets `reason` through its
    /// monitor).
    [[nodiscard]] static call_result stop(term reason) {
        return call_result(false, term(), true, std::move(reason));
    }
    /// Ends the server with `reason`: terminate(reason) runs, then `value` is replied.
    [[nodiscard]] static call_result stop(term reason, term value) {
        return call_result(true, std::move(value), true, std::move(reason));
    }

  private:
    friend class internal::runner;
    call_result(bool replies, term value, bool stops, term reason)
        : replies_(replies), stops_(stops), value_(std::move(value)), reason_(std::move(reason)) {}
    bool replies_;
    bool stops_;
    term value_;
    term reason_;
};

/// What handle_cast, handle_info and a server's call continuations decide: OTP's
/// {noreply, S} or {stop, Reason, S}.
class handle_result {
  public:
    /// The server goes on.
    [[nodiscard]] static handle_result noreply() { return handle_result(false, term()); }
    /// Ends the server with `reason` (terminate(reason) runs first).
    [[nodiscard]] static handle_result stop(term reason) {
        return handle_result(true, std::move(reason));
    }

  private:
    friend class internal::runner;
    handle_result(bool stops, term reason) : stops_(stops), reason_(std::move(reason)) {}
    bool stops_;
    term reason_;
};

/// A server's callbacks; the object is its state. Derive, override what the server handles,
/// and start it with start()/start_link(), which own it from then on. Every callback runs in
/// the server's process, one message at a time. The loop owns the process's receive: a
/// callback waits for something only through server::call, never with receive or become.
///
/// ```
///  class counter final : public gen_server::server {
///    public:
///      explicit counter(const term& config) : step_(*config.get_if<std::int64_t>()) {}
///      call_result handle_call(const term& request, const from&) override {
///          if (is_atom(request, "get")) return call_result::reply(value_);
///          return call_result::reply(a("badarg"));
///      }
///      handle_result handle_cast(const term&) override {
///          value_ += step_;
///          return handle_result::noreply();
///      }
///    private:
///      std::int64_t step_, value_ = 0;
///  };
///  pid p = gen_server::start_link(self, std::make_unique<counter>(term(2)));
/// ```
class server {
  public:
    server() = default;
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    virtual ~server() = default;

    // -- callbacks ---------------------------------------------------------------------------

    /// Runs first in the server's process (trap exits here to have terminate() run when the
    /// parent exits). Default: ok.
    [[nodiscard]] virtual init_result init() { return init_result::ok(); }
    /// A call. Default: stop with {bad_call, Request} (a module without handle_call crashes).
    [[nodiscard]] virtual call_result handle_call(const term& request, const from& caller);
    /// A cast. Default: stop with {bad_cast, Message}.
    [[nodiscard]] virtual handle_result handle_cast(const term& message);
    /// Any other message. Default: ignore it.
    [[nodiscard]] virtual handle_result handle_info(const term& message);
    /// The server ends with `reason`: a callback returned stop, threw (reason
    /// {cpp_exception, What}), or, when the server traps exits, its parent exited. Not run when
    /// the server is killed or dies from an exit signal it does not trap. Default: nothing.
    virtual void terminate(const term& reason);

  protected:
    /// The server's process. Only inside callbacks and call continuations.
    [[nodiscard]] process& self() const noexcept { return *process_; }
    /// An atom of the server's node.
    [[nodiscard]] atom a(std::string_view text) const { return process_->host().a(text); }
    /// gen_server:reply(From, Value): the reply to a call answered with noreply().
    void reply(const from& caller, term value);
    /// gen_server:call from inside a callback: the server sends the request and handles nothing
    /// else until the reply, the server's 'DOWN' or the timeout; then `on_reply` or `on_error`
    /// runs and decides, and the loop resumes. Without `on_error` the server stops with
    /// {Reason, {gen_server, call, [Server, Request, Timeout]}}, as in OTP. One call at a
    /// time: a second call before the first is answered replaces its wait.
    void call(const server_ref& server, term request, call_timeout timeout,
              std::function<handle_result(const term& reply)> on_reply,
              std::function<handle_result(const term& reason)> on_error = {});

  private:
    friend class internal::runner;
    process* process_ = nullptr;
    internal::runner* runner_ = nullptr;
};

/// How a server starts.
struct start_options {
    /// The name it registers (OTP's {local, Name}); a taken name makes it exit with
    /// {already_started, Pid}.
    std::optional<atom> name;
};

/// gen_server:start_link: a server linked to `parent`. When the server traps exits, an exit of
/// `parent` makes it run terminate() and exit with the same reason.
[[nodiscard]] pid start_link(process& parent, std::unique_ptr<server> callbacks,
                             start_options options = {});
/// gen_server:start: a server with no link to `parent`; exits are plain messages to it.
[[nodiscard]] pid start(process& parent, std::unique_ptr<server> callbacks,
                        start_options options = {});
/// A server started from outside any process (a node's first servers). The node is its parent:
/// node::exit(Server, Reason) makes a server that traps exits run terminate() and exit.
pid start(node& host, std::unique_ptr<server> callbacks, start_options options = {});

// -- clients ---------------------------------------------------------------------------------

/// What a caller does with a reply.
using reply_handler = std::function<void(process& self, term reply)>;
/// What a caller does when a call fails: `reason` is the server's exit reason, `noproc` (no
/// such server), `timeout`, {nodedown, Node} (the connection to its node is gone) or
/// `calling_self`.
using error_handler = std::function<void(process& self, term reason)>;

/// gen_server:call: sends `request` to `server` and arms a receive for the outcome (see the
/// file comment). Without `on_error`, a failure ends `self` with
/// {Reason, {gen_server, call, [Server, Request, Timeout]}}, as an uncaught exit in OTP.
void call(process& self, const server_ref& server, term request, call_timeout timeout,
          reply_handler on_reply, error_handler on_error = {});

/// gen_server:cast: {'$gen_cast', Message} to `server`; never fails (a dead server drops it).
void cast(process& self, const server_ref& server, term message);

/// gen_server:reply: `value` to `caller`, through its alias when the tag carries one.
void reply(process& self, const from& caller, term value);

/// gen_server:stop: asks `server` to run terminate(reason) and exit with `reason` (OTP's system
/// message, so an Erlang gen_server stops too), and waits for it to end. `on_stopped` runs when
/// it ended with `reason`; `on_error` gets noproc, timeout, or the other reason it ended with.
void stop(process& self, const server_ref& server, term reason, call_timeout timeout,
          std::function<void(process& self)> on_stopped, error_handler on_error = {});

}  // namespace vdist::runtime::gen_server
