// One end of a vdist ring on real Xen (xen backend: gntalloc/gntdev, evtchn, xenstore).
//
//   xen_ring_check server <peer-domid> <port> <bytes> <left-bytes> <right-bytes>
//   xen_ring_check client <server-domid> <port> <bytes>
//
// The client streams <bytes> of the test pattern (seed 7) and then reads them back; the server
// echoes. Both print XEN_RING_OK with the FNV-1a checksum and the round trip of 1000 one-byte
// pings when everything matched.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "vdist/test/pattern.hpp"
#include "vdist/transport/vchan.hpp"
#include "vdist/transport/xen_backend.hpp"

using namespace vdist::transport;
using namespace std::chrono_literals;

namespace {

int failed(const char* what, const std::error_code& error) {
    std::printf("XEN_RING_FAIL %s: %s\n", what, error.message().c_str());
    return 1;
}

// A write larger than the free room waits for the peer, who may itself be waiting to write its
// echo: keep each chunk within the smaller ring.
std::size_t chunk_for(const ring_channel<xen_backend>& channel) {
    return std::min({std::size_t{16384}, channel.read_capacity(), channel.write_capacity()});
}

int serve(ring_channel<xen_backend>& channel, std::size_t bytes) {
    std::vector<std::byte> buffer(chunk_for(channel));
    for (std::size_t done = 0; done < bytes + 1000;) {
        auto got = channel.read(buffer, 60s);
        if (!got) {
            return failed("server read", got.error());
        }
        if (auto sent = channel.write_all(std::span(buffer).first(*got), 60s); !sent) {
            return failed("server write", sent.error());
        }
        done += *got;
    }
    std::printf("XEN_RING_OK server echoed %zu bytes\n", bytes + 1000);
    return 0;
}

int drive(ring_channel<xen_backend>& channel, std::size_t bytes) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) {
        const std::byte ping{static_cast<unsigned char>(i)};
        std::byte pong{};
        if (auto sent = channel.write_all(std::span(&ping, 1), 10s); !sent) {
            return failed("ping", sent.error());
        }
        if (auto got = channel.read_exact(std::span(&pong, 1), 10s); !got || pong != ping) {
            return failed("pong", got ? make_error_code(errc::protocol_error) : got.error());
        }
    }
    const auto pinged = std::chrono::steady_clock::now();
    vdist::test::pattern data(7);
    vdist::test::fnv1a sent_sum;
    vdist::test::fnv1a echoed_sum;
    const std::size_t chunk = chunk_for(channel);
    std::vector<std::byte> out(chunk);
    std::vector<std::byte> back(chunk);
    for (std::size_t done = 0; done < bytes; done += chunk) {
        const auto n = std::min(chunk, bytes - done);
        data.fill(std::span(out).first(n));
        sent_sum.update(std::span(out).first(n));
        if (auto sent = channel.write_all(std::span(out).first(n), 60s); !sent) {
            return failed("client write", sent.error());
        }
        if (auto got = channel.read_exact(std::span(back).first(n), 60s); !got) {
            return failed("client read", got.error());
        }
        echoed_sum.update(std::span(back).first(n));
    }
    const auto end = std::chrono::steady_clock::now();
    if (sent_sum.value() != echoed_sum.value()) {
        std::printf("XEN_RING_FAIL checksum %llx != %llx\n",
                    static_cast<unsigned long long>(sent_sum.value()),
                    static_cast<unsigned long long>(echoed_sum.value()));
        return 1;
    }
    const double rtt_us = std::chrono::duration<double, std::micro>(pinged - start).count() / 1000;
    const double mib_s = static_cast<double>(bytes) / 1048576.0 /
                         std::chrono::duration<double>(end - pinged).count();
    std::printf("XEN_RING_OK client %zu bytes echoed, checksum %llx, rtt %.1f us, %.2f MiB/s\n",
                bytes, static_cast<unsigned long long>(sent_sum.value()), rtt_us, mib_s);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: xen_ring_check server|client peer port bytes [left right]\n");
        return 2;
    }
    const std::string role = argv[1];
    const auto peer = static_cast<domid_t>(std::atoi(argv[2]));
    const std::size_t bytes = std::strtoull(argv[4], nullptr, 10);
    auto backend = xen_backend::open();
    if (!backend) {
        return failed("xen_backend::open", backend.error());
    }
    const wait_policy policy{.mode = wait_mode::block};
    if (role == "server") {
        const std::size_t left = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 65536;
        const std::size_t right = argc > 6 ? std::strtoull(argv[6], nullptr, 10) : 65536;
        auto channel = vchan_server(*backend, {backend->domid(), peer, argv[3]},
                                    ring_orders::for_sizes(left, right), policy);
        if (!channel) {
            return failed("vchan_server", channel.error());
        }
        if (auto connected = channel->wait_connected(20s); !connected) {
            return failed("wait_connected", connected.error());
        }
        return serve(*channel, bytes);
    }
    auto channel = vchan_client(*backend, {peer, backend->domid(), argv[3]}, policy, 20s);
    if (!channel) {
        return failed("vchan_client", channel.error());
    }
    return drive(*channel, bytes);
}
