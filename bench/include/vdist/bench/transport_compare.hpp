#pragma once
/// \file
/// `vdist bench transport`: the vdist ring against the baselines it must match or beat, in one
/// interleaved run on two pinned cores. Transports: the vdist ring between processes in each
/// wait mode, a plain busy-polled shared-memory ring between processes, std::mutex +
/// std::condition_variable, boost::lockfree::spsc_queue and boost::lockfree::queue between
/// threads, socketpair(AF_UNIX) and TCP loopback between processes. For each message size it
/// measures messages/s, bytes/s and the ping-pong round trip (p50/p90/p99/max), then prints
/// the ratios the ring is held to. bench/README.md explains how to read the output.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace vdist::bench {

/// Options of `vdist bench transport`. Unset values take the defaults of a full run, or of the
/// short run (`short_run`) the demo uses.
struct transport_options {
    /// Stream duration of one measurement; ping-pong gets a third of it on top
    /// (default 300 ms; short: 50 ms).
    std::optional<std::chrono::milliseconds> duration;
    /// Repetitions, interleaved (rep 1 of every transport and size, then rep 2, ...); the
    /// median is reported (default 3).
    std::optional<unsigned> repetitions;
    /// Message sizes in bytes, 1 .. 1 MiB - 8 (default 8, 64, 1024, 65536; short: 64, 65536).
    std::vector<std::size_t> sizes;
    /// Transports to run, by name (see transport_names()); empty: all.
    std::vector<std::string> transports;
    /// How long the idle-wait CPU measurement waits (default 200 ms; short: 100 ms).
    std::optional<std::chrono::milliseconds> idle;
    /// The demo's quick run: fewer sizes, shorter measurements.
    bool short_run = false;
    /// Print one JSON document instead of the configuration, table and ratios.
    bool json = false;
};

/// Names accepted in transport_options::transports, in table order.
[[nodiscard]] std::vector<std::string> transport_names();

/// Run the comparison and print it on standard output (progress goes to standard error when it
/// is a terminal). Returns 0 when every measurement ran, 1 when some failed (the others are
/// still reported), 2 for invalid options. Forks: call it while the process has one thread.
int run_transport_comparison(const transport_options& options);

/// Add the `transport` subcommand, its options and its callback to the `bench` command. The
/// callback throws CLI::RuntimeError with run_transport_comparison's status when it is not 0.
void add_transport_command(CLI::App& bench);

}  // namespace vdist::bench
