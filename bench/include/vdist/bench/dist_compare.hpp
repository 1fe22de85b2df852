#pragma once
/// \file
/// `dist_bench` / `vdist bench dist`: Erlang distribution over TCP on one machine, vdist's C++
/// nodes against real erl nodes, in one run. Four nodes, each its own OS process, registered
/// in a private epmd that the run starts and kills:
///
/// ```
///   coordinator (this program: plans, sends commands, prints; idle while a pair measures)
///     │ stdin/stdout pipes, one command line / one reply line
///     ├── vdist_a  ─┐  C++ nodes: this program re-executed in agent mode
///     ├── vdist_b  ─┤  (vdist::runtime node + distribution, one thread each)
///     ├── erl_a    ─┤  erl nodes: escript bench/dist/dist_agent.escript
///     └── erl_b    ─┘  (standard TCP distribution, default schedulers)
///            all four: a responder registered as `dist_bench`
/// ```
///
/// Pairs, named driver→responder: vdist→vdist, vdist→erl, erl→vdist, erl→erl. Per payload
/// size (binaries of 16 B, 1 KiB, 64 KiB) the driver measures round trips ({ping, From, Bin}
/// answered with {pong, Bin}: p50/p90/p99/max) and a one-way stream ({data, Bin} messages, at
/// most a window outstanding, the responder acks every K: messages/s from the first send to
/// the last ack). Rounds are interleaved and every number is a median over them; ratios are
/// taken within a round against erl→erl. A 64 MiB echo round trip is measured on top.
/// bench/README.md explains how to read the output.

#include <cstddef>
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace vdist::bench {

/// Options of the coordinator.
struct dist_options {
    /// Interleaved rounds; the median over them is reported (default 5; short: 1).
    unsigned rounds = 5;
    /// Payload sizes in bytes (default 16, 1024, 65536; short: 16, 65536).
    std::vector<std::size_t> sizes;
    /// Round trips per measurement at 16 B; fewer for larger payloads (default 2000).
    std::size_t trips = 2000;
    /// Bytes of the big echo round trip, 0: none (default 64 MiB; short: 1 MiB).
    std::size_t big_bytes = std::size_t{64} << 20;
    /// How many times the big echo runs per pair, interleaved (median reported, default 3;
    /// short: 1).
    unsigned big_rounds = 3;
    /// Run without erl nodes (only vdist→vdist, no ratios).
    bool no_erl = false;
    /// Run without the ring pairs (C++ nodes over vchan rings, the host store in a child).
    bool no_rings = false;
    /// Added to the erl nodes' ERL_FLAGS (e.g. "+S 1").
    std::string erl_flags;
    /// How the C++ nodes wait when idle: "spin", "block" or "busy" (transport::wait_mode_name);
    /// empty: the node's default (node_config::idle).
    std::string vdist_idle;
    /// The smoke run: one round, two sizes, few messages, 1 MiB big echo (seconds).
    bool short_run = false;
    /// Keep the nodes' logs (a temporary directory) even when everything succeeded.
    bool keep_logs = false;
    /// How to start this same program in agent mode: the arguments between the executable
    /// (/proc/self/exe) and `--agent NAME --cookie C` (`bench dist` for the vdist CLI, none for
    /// dist_bench).
    std::vector<std::string> agent_prefix;
};

/// Runs the comparison and prints it on standard output. Returns 0 when every measurement
/// ran, 1 when some failed (the others are still reported), 2 when the run could not start.
/// Forks: call it while the process has one thread.
int run_dist_comparison(const dist_options& options);

/// Rings for an agent: its domid, the host store's socket and the rendezvous directory.
struct ring_agent_options {
    unsigned domid = 0;  ///< 0: no rings (TCP only)
    std::string store;
    std::string run_dir;
};

/// The C++ node of the comparison (agent mode): a vdist node named `name` (alive@host) with
/// distribution (epmd from ERL_EPMD_PORT, not started) and the responder, answering commands
/// on standard input until `quit` or end of input (protocol in dist_agent.escript, plus
/// `idle busy|spin|block|default`, which changes how the node waits). `idle` as
/// dist_options::vdist_idle. With `rings`, peers the host store knows are reached over vchan
/// rings. Returns the exit status.
int run_dist_agent(const std::string& name, const std::string& cookie, const std::string& idle,
                   const ring_agent_options& rings = {});

/// The host store of the ring pairs (store mode): serves `socket` with the records of
/// `nodes` (NAME=DOMID), says `ready` on standard output, and serves until end of input.
/// Every client is trusted as dom0 (the benchmark's own processes).
int run_bench_store(const std::string& socket, const std::vector<std::string>& nodes);

/// Adds the options of the comparison and of agent mode to `command` and sets its callback
/// (`vdist bench dist`, or dist_bench's own command line). `agent_prefix` as in dist_options.
void setup_dist_command(CLI::App& command, std::vector<std::string> agent_prefix);

/// Adds the `dist` subcommand to the `bench` command.
void add_dist_command(CLI::App& bench);

}  // namespace vdist::bench
