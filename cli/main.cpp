// vdist: one program, one subcommand per capability.
//
//   vdist demo                 two nodes over a ring; erl meets two C++ nodes; the comparison
//   vdist bench transport      the ring against shared-memory locking, queues and sockets
//   vdist bench dist           C++ nodes over TCP and rings against erl nodes over TCP
//   vdist bench spawn          on-demand nodes: spawn-to-ready and spawns/s against erl's start
//   vdist node                 a standalone C++ node on TCP distribution (net_kernel, rex, echo)
//   vdist host                 a host agent (emulated Xen host): spawn, ls, kill talk to it
//   vdist term                 one term from stdin to stdout: print, reencode, parse (ETF, text)

#include <CLI/CLI.hpp>

#include "bench_spawn.hpp"
#include "demo.hpp"
#include "host.hpp"
#include "node.hpp"
#include "term.hpp"
#include "vdist/bench/dist_compare.hpp"
#include "vdist/bench/transport_compare.hpp"
#include "vdist/discovery/agent.hpp"

int main(int argc, char** argv) {
    // A host agent's zygote (vdist host execs it): before the command line's objects exist, so
    // that the domains it forks start from a fresh heap (discovery/README.md, "The zygote").
    if (argc == 3 && argv[1] == vdist::discovery::zygote_flag) {
        vdist::cli::serve_as_host_zygote(argv[2]);
    }
    CLI::App app{"vdist: Erlang distribution over Xen grant-table rings"};
    app.require_subcommand(1);

    auto* bench =
        app.add_subcommand("bench", "Benchmarks against baselines measured in the same run");
    bench->require_subcommand(1);
    vdist::bench::add_transport_command(*bench);
    vdist::bench::add_dist_command(*bench);
    vdist::cli::add_spawn_bench_command(*bench);

    vdist::cli::add_demo_commands(app);
    vdist::cli::add_term_commands(app);
    vdist::cli::add_node_command(app);
    vdist::cli::add_host_commands(app);

    CLI11_PARSE(app, argc, argv);
    return 0;
}
