#pragma once
/// \file
/// The cluster part of `vdist demo`: one emulated host full of single-core nodes that behave
/// as one Erlang cluster.
///
/// ```
///   vdist demo ─starts─> epmd (private port)          vdist host --dir D (the toolstack:
///     │                                                 host store, supervision)
///     │── spawn × 8 (control socket) ──────────────────>│ fork+exec `vdist node --agent-fd 3`
///     │                                                 │ × 8, configuration over fd 3
///     │   demo driver node (C++, TCP distribution)      │
///     │── {start, AllEight, 0, 64} to every vdist_traffic: all-to-all over rings
///     │── every 0.5 s: reports (msgs/s, lost, out of order) and `ls` (per-channel counters)
///     │── stop; final reports: nothing lost, duplicated or reordered; node↔node = rings
///     │── {spawn_and_call, Self, Tag} × 16 to one node's vdist_agent: on-demand children,
///     │     each spawned, handshaken and answering its first message (spawn-to-ready)
///     └── stop the agent: every node, store key and socket gone
/// ```

namespace vdist::cli {

/// Runs the cluster part for `seconds` of load. 0 when every check passed (or epmd is not
/// installed: the part is skipped and the reason printed), 1 otherwise. Forks before it
/// starts a thread (the driver node) and joins it before it returns.
[[nodiscard]] int run_cluster_demo(double seconds);

}  // namespace vdist::cli
