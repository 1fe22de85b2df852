/// \file
/// The per-message work of a C++ node in a distribution stream, without a carrier: what a
/// sending node does to put `{data, Bin}` on the wire (build the term, SEND_SENDER tuple and
/// payload into the connection's buffer) and what a receiving node does with the bytes
/// (deframe, decode, deliver to a process's mailbox, run its handler). dist_bench's ring pairs
/// do this work on both nodes; here it runs on one thread, so that a change to it can be
/// measured without the scheduling noise of two busy-polling processes.
///
///  - send/<size>:    256 messages per iteration, each `pair_of(data, Bin)` (the bench agent's
///                    message) written by a packet_writer into one reused buffer, as
///                    distribution::write_message does;
///  - receive/<size>: 256 packets of those bytes per iteration, fed to a packet_reader, each
///                    message handed to node::deliver_from_remote (distribution::dispatch's
///                    SEND case), then node::run_until_idle() runs the responder, a `become`
///                    handler matching `{data, _}` as dist_bench's responder does.
///
/// Read items_per_second (messages/s); pin it (`taskset -c 1 message_path_bench`), and compare
/// runs with --benchmark_repetitions.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "vdist/dist/control.hpp"
#include "vdist/dist/protocol.hpp"
#include "vdist/runtime/node.hpp"

namespace {

namespace dist = vdist::dist;
namespace runtime = vdist::runtime;

constexpr std::int64_t batch = 256;  // dist_bench's window at 16 B and 1 KiB

// The flags two vdist nodes negotiate (distribution header framing, SEND_SENDER).
constexpr std::uint64_t flags = dist::vdist_flags;

[[nodiscard]] dist::term message_of(dist::atom tag, const dist::term& bin) {
    std::vector<dist::term> elements;
    elements.reserve(2);
    elements.emplace_back(tag);
    elements.push_back(bin);
    return dist::tuple(std::move(elements));
}

[[nodiscard]] dist::term payload(std::size_t size) {
    return dist::binary(std::vector<std::byte>(size, std::byte{7}));
}

void send(benchmark::State& state) {
    runtime::node host(runtime::node_config{.name = "ring_a@127.0.0.1"});
    const dist::atom data = host.a("data");
    const dist::term bin = payload(static_cast<std::size_t>(state.range(0)));
    const dist::pid from{host.name(), 7, 0, 1};
    const dist::pid to{host.a("ring_b@127.0.0.1"), 9, 0, 1};
    dist::packet_writer writer(flags);
    std::vector<std::byte> out;
    for (auto _ : state) {
        out.clear();
        for (std::int64_t i = 0; i < batch; ++i) {
            if (!writer.write(out, dist::send_message{from, to, message_of(data, bin)})) {
                state.SkipWithError("not encodable");
                return;
            }
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * batch);
}

void receive(benchmark::State& state) {
    runtime::node host(runtime::node_config{.name = "ring_b@127.0.0.1"});
    const dist::atom data = host.a("data");
    std::int64_t count = 0;
    const dist::pid to = host.spawn([&count, data](runtime::process& self) {
        self.become([&count, data](runtime::process&, dist::term message) {
            const auto* t = message.get_if<dist::tuple>();
            if (t != nullptr && t->elements.size() == 2 && t->elements[0] == dist::term(data)) {
                ++count;
            }
        });
    });
    host.run_until_idle();

    // The sender's bytes, made with its own atom table (as the peer's are).
    dist::atom_table peer_atoms;
    const dist::pid from{peer_atoms("ring_a@127.0.0.1"), 7, 0, 1};
    const dist::pid peer_view_of_to{peer_atoms("ring_b@127.0.0.1"), to.id, to.serial, to.creation};
    const dist::term bin = payload(static_cast<std::size_t>(state.range(0)));
    dist::packet_writer writer(flags);
    std::vector<std::byte> bytes;
    for (std::int64_t i = 0; i < batch; ++i) {
        if (!writer.write(bytes, dist::send_message{from, peer_view_of_to,
                                                    message_of(peer_atoms("data"), bin)})) {
            state.SkipWithError("not encodable");
            return;
        }
    }

    dist::packet_reader reader(flags, host.atoms());
    for (auto _ : state) {
        reader.feed(bytes);
        for (;;) {
            auto next = reader.next();
            if (!next) {
                state.SkipWithError("bad packet");
                return;
            }
            if (!*next) {
                break;
            }
            if (auto* sent = std::get_if<dist::send_message>(&**next)) {
                host.deliver_from_remote(sent->to, std::move(sent->message));
            }
        }
        host.run_until_idle();
    }
    if (count != state.iterations() * batch) {
        state.SkipWithError("messages lost");
        return;
    }
    state.SetItemsProcessed(state.iterations() * batch);
}

BENCHMARK(send)->Arg(16)->Arg(1024);
BENCHMARK(receive)->Arg(16)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
