#include "vdist/runtime/node_services.hpp"

#include <utility>

#include "vdist/runtime/gen_server.hpp"

namespace vdist::runtime {
namespace {

using dist::list;
using dist::tuple;

[[nodiscard]] std::string key_of(std::string_view module, std::string_view function) {
    return std::string(module) + ":" + std::string(function);
}

// Runs M:F(Args) through the table: the result, or the error reason (undef when unknown).
[[nodiscard]] std::expected<term, term> apply(const rpc_functions& functions, process& caller,
                                              const term& module, const term& function,
                                              const term& arguments) {
    const auto* m = module.get_if<atom>();
    const auto* f = function.get_if<atom>();
    const auto* args = arguments.get_if<list>();
    if (m == nullptr || f == nullptr || args == nullptr || !args->is_proper()) {
        return std::unexpected(term(caller.host().a("badarg")));
    }
    const rpc_function* found = functions.find(m->text(), f->text());
    if (found == nullptr) {
        return std::unexpected(term(caller.host().a("undef")));
    }
    return (*found)(caller, *args);
}

// The stack Erlang reports for an error in M:F(Args): [{M, F, Args, []}].
[[nodiscard]] term stack_of(const term& module, const term& function, const term& arguments) {
    return list{tuple{module, function, arguments, list{}}};
}

// net_kernel: the is_auth call that net_adm:ping makes.
class net_kernel_server final : public gen_server::server {
  public:
    gen_server::call_result handle_call(const term& request, const gen_server::from&) override {
        if (tagged(request, "is_auth", 2) != nullptr) {
            return gen_server::call_result::reply(a("yes"));
        }
        return gen_server::call_result::reply(tuple{a("error"), a("not_supported")});
    }
};

// rex: rpc's server, for callers that do not spawn (rpc:call to a node without DFLAG_SPAWN,
// rpc:cast of old nodes, direct gen_server calls to rex).
class rex_server final : public gen_server::server {
  public:
    explicit rex_server(std::shared_ptr<const rpc_functions> functions)
        : functions_(std::move(functions)) {}

    gen_server::call_result handle_call(const term& request, const gen_server::from&) override {
        const auto* call = tagged(request, "call", 5);
        if (call == nullptr) {
            call = tagged(request, "block_call", 5);
        }
        if (call == nullptr) {
            return gen_server::call_result::reply(
                tuple{a("badrpc"), tuple{a("EXIT"), tuple{a("unknown_request"), request}}});
        }
        const auto& e = *call;
        auto result = apply(*functions_, self(), e[1], e[2], e[3]);
        if (result) {
            return gen_server::call_result::reply(std::move(*result));
        }
        // rpc:call's form of an error: {badrpc, {'EXIT', {Reason, Stack}}}.
        return gen_server::call_result::reply(
            tuple{a("badrpc"),
                  tuple{a("EXIT"), tuple{std::move(result.error()), stack_of(e[1], e[2], e[3])}}});
    }

    gen_server::handle_result handle_cast(const term& message) override {
        if (const auto* cast = tagged(message, "cast", 5)) {
            (void)apply(*functions_, self(), (*cast)[1], (*cast)[2], (*cast)[3]);
        }
        return gen_server::handle_result::noreply();
    }

  private:
    std::shared_ptr<const rpc_functions> functions_;
};

// echo: calls answered with the request, {From, Msg} answered with Msg.
class echo_server final : public gen_server::server {
  public:
    gen_server::call_result handle_call(const term& request, const gen_server::from&) override {
        return gen_server::call_result::reply(request);
    }
    gen_server::handle_result handle_cast(const term&) override {
        return gen_server::handle_result::noreply();
    }
    gen_server::handle_result handle_info(const term& message) override {
        const auto* pair = message.get_if<tuple>();
        if (pair != nullptr && pair->elements.size() == 2) {
            if (const auto* from = pair->elements[0].get_if<pid>()) {
                self().send(*from, pair->elements[1]);
            }
        }
        return gen_server::handle_result::noreply();
    }
};

}  // namespace

// -- rpc_functions --------------------------------------------------------------------------------

void rpc_functions::add(std::string_view module, std::string_view function, rpc_function f) {
    functions_[key_of(module, function)] = std::move(f);
}

const rpc_function* rpc_functions::find(std::string_view module, std::string_view function) const {
    const auto found = functions_.find(key_of(module, function));
    return found == functions_.end() ? nullptr : &found->second;
}

std::shared_ptr<rpc_functions> rpc_functions::with_builtins(distribution* dist) {
    auto table = std::make_shared<rpc_functions>();
    const auto arity = [](process& caller, const list& arguments,
                          std::size_t n) -> std::expected<void, term> {
        if (arguments.elements.size() != n) {
            return std::unexpected(term(caller.host().a("undef")));
        }
        return {};
    };
    table->add("erlang", "node",
               [arity](process& caller, const list& args) -> std::expected<term, term> {
                   if (auto ok = arity(caller, args, 0); !ok) {
                       return std::unexpected(ok.error());
                   }
                   return term(caller.host().name());
               });
    table->add("erlang", "nodes",
               [arity, dist](process& caller, const list& args) -> std::expected<term, term> {
                   if (auto ok = arity(caller, args, 0); !ok) {
                       return std::unexpected(ok.error());
                   }
                   list result;
                   if (dist != nullptr) {
                       for (const atom peer : dist->nodes(false)) {
                           result.elements.emplace_back(peer);
                       }
                   }
                   return term(std::move(result));
               });
    table->add("vdist", "echo",
               [arity](process& caller, const list& args) -> std::expected<term, term> {
                   if (auto ok = arity(caller, args, 1); !ok) {
                       return std::unexpected(ok.error());
                   }
                   return args.elements[0];
               });
    table->add("vdist", "processes",
               [arity](process& caller, const list& args) -> std::expected<term, term> {
                   if (auto ok = arity(caller, args, 0); !ok) {
                       return std::unexpected(ok.error());
                   }
                   return term(static_cast<std::int64_t>(caller.host().process_count()));
               });
    // What a peer needs to link to or monitor a registered process by pid
    // (rpc:call(N, erlang, whereis, [echo])).
    table->add("erlang", "whereis",
               [arity](process& caller, const list& args) -> std::expected<term, term> {
                   if (auto ok = arity(caller, args, 1); !ok) {
                       return std::unexpected(ok.error());
                   }
                   const auto* name = args.elements[0].get_if<atom>();
                   if (name == nullptr) {
                       return std::unexpected(term(caller.host().a("badarg")));
                   }
                   if (const auto found = caller.host().whereis(*name)) {
                       return term(*found);
                   }
                   return term(caller.host().a("undefined"));
               });
    table->add("lists", "reverse",
               [arity](process& caller, const list& args) -> std::expected<term, term> {
                   if (auto ok = arity(caller, args, 1); !ok) {
                       return std::unexpected(ok.error());
                   }
                   const auto* l = args.elements[0].get_if<list>();
                   if (l == nullptr || !l->is_proper()) {
                       return std::unexpected(term(caller.host().a("function_clause")));
                   }
                   return term(list(std::vector<term>(l->elements.rbegin(), l->elements.rend())));
               });
    return table;
}

// -- the services ---------------------------------------------------------------------------------

void start_node_services(node& host, distribution& dist,
                         std::shared_ptr<const rpc_functions> functions, services_config config) {
    (void)gen_server::start(host, std::make_unique<net_kernel_server>(),
                            {.name = host.a("net_kernel")});
    (void)gen_server::start(host, std::make_unique<rex_server>(functions), {.name = host.a("rex")});
    if (config.echo) {
        (void)gen_server::start(host, std::make_unique<echo_server>(), {.name = host.a("echo")});
    }
    // erpc:call/rpc:call (OTP 23+) spawn erpc:execute_call(Ref, M, F, A) on the target node;
    // the caller monitors it and reads the outcome from the exit reason.
    dist.register_spawnable(
        "erpc", "execute_call", [functions](const list& arguments) -> std::optional<behavior> {
            if (arguments.elements.size() != 4) {
                return std::nullopt;
            }
            return behavior([functions, args = arguments.elements](process& self) {
                node& n = self.host();
                auto result = apply(*functions, self, args[1], args[2], args[3]);
                if (result) {
                    self.exit(tuple{args[0], n.a("return"), std::move(*result)});
                } else {
                    self.exit(tuple{args[0], n.a("error"), std::move(result.error()),
                                    stack_of(args[1], args[2], args[3])});
                }
            });
        });
    dist.register_spawnable(
        "erpc", "execute_cast", [functions](const list& arguments) -> std::optional<behavior> {
            if (arguments.elements.size() != 3) {
                return std::nullopt;
            }
            return behavior([functions, args = arguments.elements](process& self) {
                (void)apply(*functions, self, args[0], args[1], args[2]);
            });
        });
}

void net_adm_ping(process& self, atom node_name, clock::duration timeout,
                  std::function<void(process&, atom result)> on_result) {
    node& n = self.host();
    const reference monitor = self.monitor(n.a("net_kernel"), node_name);
    const reference tag = self.make_ref();
    self.send(n.a("net_kernel"), node_name,
              tuple{n.a("$gen_call"), tuple{self.self(), tag}, tuple{n.a("is_auth"), n.name()}});
    auto finish = std::make_shared<std::function<void(process&, atom)>>(std::move(on_result));
    self.receive(
        {
            clause{[tag](const term& m) {
                       const auto* t = m.get_if<tuple>();
                       return t != nullptr && t->elements.size() == 2 &&
                              t->elements[0] == term(tag);
                   },
                   [monitor, finish](process& me, term m) {
                       (void)me.demonitor(monitor, true);
                       const bool yes = is_atom(m.get_if<tuple>()->elements[1], "yes");
                       (*finish)(me, me.host().a(yes ? "pong" : "pang"));
                   }},
            clause{[monitor](const term& m) {
                       const auto* t = m.get_if<tuple>();
                       return t != nullptr && t->elements.size() == 5 &&
                              is_atom(t->elements[0], "DOWN") && t->elements[1] == term(monitor);
                   },
                   [finish](process& me, term) { (*finish)(me, me.host().a("pang")); }},
        },
        timeout, [monitor, finish](process& me) {
            (void)me.demonitor(monitor, true);
            (*finish)(me, me.host().a("pang"));
        });
}

}  // namespace vdist::runtime
