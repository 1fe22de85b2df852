#pragma once
/// \file
/// What OTP peers expect to find on a node, so that a C++ node is an ordinary one to them:
///
/// | service | registered as | answers |
/// |---|---|---|
/// | net_kernel | `net_kernel` | `{is_auth, Node}` calls with `yes` (what makes `net_adm:ping` say
/// `pong`) | | rpc server | `rex` | `{call, M, F, A, GroupLeader}` calls and `{cast, ...}` casts
/// (rpc without spawn) | | erpc | SPAWN_REQUEST of `erpc:execute_call/4`, `erpc:execute_cast/3` |
/// `rpc:call`/`erpc:call` of OTP 23+ (they spawn) | | echo (optional) | `echo` | a gen_server call
/// with the request itself; `{From, Msg}` with `Msg` sent to `From` |
///
/// rpc and erpc dispatch to C++ functions registered by `{Module, Function}` in an
/// `rpc_functions` table; an unknown one fails as in Erlang with `undef`
/// (`{badrpc, {'EXIT', {undef, [{M, F, Args, []}]}}}` from `rpc:call`).
/// `net_adm_ping` is the other direction: a C++ process pings a node as net_adm:ping/1 does.

#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"

namespace vdist::runtime {

/// A C++ function callable with rpc: the arguments in, the result or an error reason out
/// (Erlang's `error(Reason)`).
using rpc_function =
    std::function<std::expected<term, term>(process& caller, const dist::list& arguments)>;

/// C++ functions by `module:function` (any arity: the function checks its arguments).
class rpc_functions {
  public:
    /// The built-in ones: erlang:node/0, erlang:nodes/0, erlang:whereis/1, vdist:echo/1,
    /// vdist:processes/0, lists:reverse/1.
    [[nodiscard]] static std::shared_ptr<rpc_functions> with_builtins(distribution* dist);

    void add(std::string_view module, std::string_view function, rpc_function f);
    [[nodiscard]] const rpc_function* find(std::string_view module,
                                           std::string_view function) const;

  private:
    std::unordered_map<std::string, rpc_function> functions_;
};

/// Which services to start.
struct services_config {
    bool echo = true;
};

/// Starts the services of the table above on `host` and registers erpc's spawnables with
/// `dist`. Call before the node's loop runs.
void start_node_services(node& host, distribution& dist,
                         std::shared_ptr<const rpc_functions> functions,
                         services_config config = {});

/// net_adm:ping/1 from `self`: `on_result` gets `pong` or `pang` (no connection, no
/// net_kernel, or no answer within `timeout`).
void net_adm_ping(process& self, atom node_name, clock::duration timeout,
                  std::function<void(process&, atom result)> on_result);

}  // namespace vdist::runtime
