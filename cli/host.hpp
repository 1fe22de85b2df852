#pragma once
// `vdist host` (the host agent) and the commands that talk to it: spawn, ls, kill, store.

namespace CLI {
class App;
}

namespace vdist::cli {

/// Adds `vdist host`, `vdist spawn`, `vdist ls`, `vdist kill` and `vdist store`.
void add_host_commands(CLI::App& app);

/// `vdist --zygote <fd>`: the zygote `vdist host` execs (discovery::serve_as_zygote), whose
/// domains run the agent's nodes (node_agent.hpp). Never returns.
[[noreturn]] void serve_as_host_zygote(const char* socket_fd);

}  // namespace vdist::cli
