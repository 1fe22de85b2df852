#pragma once
// `vdist node`: a standalone C++ node on TCP distribution.

namespace CLI {
class App;
}

namespace vdist::cli {

/// Adds `vdist node --name N --cookie C [--hidden] [--port P] [--ticktime S] [--ping NODE]`.
void add_node_command(CLI::App& app);

}  // namespace vdist::cli
