#pragma once
// `vdist node --agent-fd N`: a node configured by its host agent over fd N.

namespace vdist::cli {

/// Runs the node until the agent says stop or goes away; the exit status.
int run_agent_node(int fd);

}  // namespace vdist::cli
