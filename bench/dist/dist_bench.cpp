/// \file
/// dist_bench: Erlang distribution over TCP on one machine, vdist's C++ nodes against real erl
/// nodes in one run (round trips, throughput, ratios against erl↔erl). The same program as
/// `vdist bench dist`; bench/src/dist_compare.cpp has the coordinator, bench/src/dist_agent.cpp
/// the C++ node, bench/dist/dist_agent.escript the erl node. Started with `--agent NAME` (by
/// itself), it is one of the C++ nodes.

#include <CLI/CLI.hpp>

#include "vdist/bench/dist_compare.hpp"

int main(int argc, char** argv) {
    CLI::App app{
        "dist_bench: vdist C++ nodes against erl nodes over TCP distribution, round trips and "
        "throughput, ratios against erl<->erl measured in the same run (see bench/README.md)"};
    vdist::bench::setup_dist_command(app, {});
    CLI11_PARSE(app, argc, argv);
    return 0;
}
