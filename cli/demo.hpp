#pragma once
/// \file
/// `vdist demo` and the node process it starts (`vdist demo-node`, hidden). Its Erlang part is
/// in demo_erlang.hpp.

namespace CLI {
class App;
}  // namespace CLI

namespace vdist::cli {

/// Add `demo` and the hidden `demo-node` subcommands.
void add_demo_commands(CLI::App& app);

}  // namespace vdist::cli
