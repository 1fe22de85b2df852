#pragma once
// `vdist host` (the host agent) and the commands that talk to it: spawn, ls, kill, store.

namespace CLI {
class App;
}

namespace vdist::cli {

/// Adds `vdist host`, `vdist spawn`, `vdist ls`, `vdist kill` and `vdist store`.
void add_host_commands(CLI::App& app);

}  // namespace vdist::cli
