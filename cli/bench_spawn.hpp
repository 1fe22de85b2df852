#pragma once
/// \file
/// `vdist bench spawn`: spawn-to-ready of on-demand nodes, against a BEAM node's start in the
/// same run.
///
/// ```
///   epmd (private) ── vdist host --dir D (the toolstack) ── parent node
///   driver (C++ node, TCP) ──{spawn_and_call, Self, I}──> parent's vdist_agent
///        parent asks the agent for a child (first channel), the agent forks it; the parent
///        sends the child's echo a message (ring set up, handshake) and gets the answer:
///        <── {spawned, I, Name, Pid, Microseconds}      (spawn-to-ready, as the parent sees it)
///   baseline: `erl -sname B -noshell -eval 'io:format("ready~n")'` from exec to that line
///        (distribution started, first Erlang code run)
/// ```
///
/// One at a time (latency: p50/p90/p99), then a burst with a bounded number in flight
/// (sustained spawns/s). Targets (issue 7): p50 < 5 ms, >= 200 spawns/s on 2 cores.

namespace CLI {
class App;
}  // namespace CLI

namespace vdist::cli {

/// Adds `spawn` to the `bench` command.
void add_spawn_bench_command(CLI::App& bench);

}  // namespace vdist::cli
