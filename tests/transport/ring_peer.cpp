// The other end of cross-process ring tests: a separate process (fork + exec) that attaches
// to a host-backend vchan as its client and plays one part.
//
//   ring_peer <run_dir> <server_domid> <client_domid> <port> <busy|spin|block> <action> [arg]
//
// actions: recv <bytes>        read a stream, print its FNV-1a checksum
//          recv-late <bytes>   sleep 300 ms first (the writer meets a full ring), then recv
//          send <bytes>        write the test pattern (seed 7) in awkward chunk sizes
//          echo                return every frame until the server goes away
//          stream              write the pattern forever (to be killed)
//          scribble            write impossible indices into the control page, then idle

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "vdist/test/pattern.hpp"
#include "vdist/transport/host_backend.hpp"
#include "vdist/transport/vchan.hpp"

using namespace vdist::transport;
using namespace std::chrono_literals;

namespace {

int failed(const char* what, const std::error_code& error) {
    std::fprintf(stderr, "ring_peer: %s: %s\n", what, error.message().c_str());
    return 1;
}

wait_policy policy_named(const std::string& name) {
    wait_policy policy;
    policy.recheck = forever;  // a lost wake-up must show as a hang, caught by the watchdog
    policy.mode = parse_wait_mode(name).value_or(wait_mode::spin_then_block);
    return policy;
}

constexpr std::size_t chunk_sizes[] = {1, 4093, 65536, 777, 131072, 8, 33333};

int receive(ring_channel<host_backend>& channel, std::size_t bytes) {
    vdist::test::fnv1a checksum;
    std::vector<std::byte> buffer(131072);
    for (std::size_t done = 0, i = 0; done < bytes; ++i) {
        const auto n = std::min(bytes - done, chunk_sizes[i % std::size(chunk_sizes)]);
        auto got = channel.read(std::span(buffer).first(n), 60s);
        if (!got) {
            return failed("read", got.error());
        }
        checksum.update(std::span(buffer).first(*got));
        done += *got;
    }
    std::printf("%llu\n", static_cast<unsigned long long>(checksum.value()));
    return 0;
}

int send(ring_channel<host_backend>& channel, std::size_t bytes) {
    vdist::test::pattern data(7);
    std::vector<std::byte> buffer(131072);
    for (std::size_t done = 0, i = 0; done < bytes; ++i) {
        const auto n = std::min(bytes - done, chunk_sizes[i % std::size(chunk_sizes)]);
        data.fill(std::span(buffer).first(n));
        if (auto sent = channel.write_all(std::span(buffer).first(n), 60s); !sent) {
            return failed("write", sent.error());
        }
        done += n;
    }
    return 0;
}

int echo(ring_channel<host_backend>& channel) {
    for (;;) {
        auto frame = channel.read_frame(forever);
        if (!frame) {
            return frame.error() == errc::peer_gone ? 0 : failed("read_frame", frame.error());
        }
        auto reply = channel.reserve(frame->payload.size(), 60s);
        if (!reply) {
            return failed("reserve", reply.error());
        }
        std::memcpy(reply->payload.data(), frame->payload.data(), frame->payload.size());
        if (auto released = channel.release(*frame); !released) {
            return failed("release", released.error());
        }
        if (auto committed = channel.commit(*reply, reply->payload.size()); !committed) {
            return failed("commit", committed.error());
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 7) {
        std::fprintf(stderr, "usage: ring_peer run_dir server client port mode action [arg]\n");
        return 2;
    }
    const std::string action = argv[6];
    const std::size_t bytes = argc > 7 ? std::strtoull(argv[7], nullptr, 10) : 0;
    const vchan_address address{static_cast<domid_t>(std::atoi(argv[2])),
                                static_cast<domid_t>(std::atoi(argv[3])), argv[4]};
    auto backend = host_backend::create(address.client, argv[1]);
    if (!backend) {
        return failed("backend", backend.error());
    }
    auto channel = vchan_client(*backend, address, policy_named(argv[5]), 10s);
    if (!channel) {
        return failed("attach", channel.error());
    }
    if (action == "recv") {
        return receive(*channel, bytes);
    }
    if (action == "recv-late") {
        std::this_thread::sleep_for(300ms);
        return receive(*channel, bytes);
    }
    if (action == "send") {
        return send(*channel, bytes);
    }
    if (action == "echo") {
        return echo(*channel);
    }
    if (action == "stream") {
        return send(*channel, ~std::size_t{0});
    }
    if (action == "scribble") {
        auto& control = channel->control_page().control();
        // The client writes the left ring: claim far more data than the ring can hold.
        std::atomic_ref<std::uint32_t>(control.left.prod)
            .store(control.left.cons + 0x7fff'0000u, std::memory_order_release);
        (void)channel->flush();
        std::this_thread::sleep_for(30s);
        return 0;
    }
    std::fprintf(stderr, "ring_peer: unknown action %s\n", action.c_str());
    return 2;
}
