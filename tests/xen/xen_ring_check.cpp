// One end of a vdist ring on real Xen (xen backend: gntalloc/gntdev, evtchn, xenstore).
//
//   xen_ring_check server <peer-domid> <port> <bytes> <left-bytes> <right-bytes>
//   xen_ring_check client <server-domid> <port> <bytes>
//   xen_ring_check sink-server <peer-domid> <port> <left-bytes> <right-bytes>
//   xen_ring_check source-client <server-domid> <port>
//   xen_ring_check source-server <peer-domid> <port> <left-bytes> <right-bytes>
//   xen_ring_check sink-client <server-domid> <port>
//
// server/client: the client streams <bytes> of the test pattern (seed 7) and then reads them
// back; the server echoes. Both print XEN_RING_OK with the FNV-1a checksum and the round trip of
// 1000 one-byte pings when everything matched.
//
// sink/source: peer death. The source writes the test pattern until it is killed (kill -9 of
// its process, or `xl destroy` of its domain); the sink reads, checks every byte, creates
// /tmp/vdist-streaming.<port> once 1 MiB has arrived (the harness then kills the source), and
// passes when the channel ends with errc::peer_gone after that, printing how long after the
// last byte it noticed.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
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

// Writes the pattern until the channel fails; being killed is the expected way to end.
int source(ring_channel<xen_backend>& channel) {
    vdist::test::pattern data(7);
    std::vector<std::byte> chunk(chunk_for(channel));
    for (;;) {
        data.fill(chunk);
        if (auto sent = channel.write_all(chunk, 60s); !sent) {
            return failed("source write", sent.error());
        }
    }
}

int sink(ring_channel<xen_backend>& channel, const std::string& port) {
    constexpr std::size_t streaming_after = 1 << 20;
    vdist::test::pattern expected(7);
    std::vector<std::byte> buffer(chunk_for(channel));
    std::vector<std::byte> reference(buffer.size());
    std::size_t received = 0;
    auto last_data = std::chrono::steady_clock::now();
    for (;;) {
        auto got = channel.read(buffer, 60s);
        if (!got) {
            if (got.error() != errc::peer_gone) {
                return failed("sink read", got.error());
            }
            if (received < streaming_after) {
                return failed("peer gone before streaming", got.error());
            }
            const double ms = std::chrono::duration<double, std::milli>(
                                  std::chrono::steady_clock::now() - last_data)
                                  .count();
            std::printf("XEN_PEER_GONE port=%s bytes=%zu detected_ms_after_last_byte=%.1f\n",
                        port.c_str(), received, ms);
            return 0;
        }
        last_data = std::chrono::steady_clock::now();
        expected.fill(std::span(reference).first(*got));
        if (!std::ranges::equal(std::span(buffer).first(*got), std::span(reference).first(*got))) {
            return failed("sink data", make_error_code(errc::protocol_error));
        }
        const bool was_streaming = received >= streaming_after;
        received += *got;
        if (!was_streaming && received >= streaming_after) {
            std::ofstream("/tmp/vdist-streaming." + port) << received << '\n';
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: xen_ring_check ROLE PEER-DOMID PORT [ARGS] (see source)\n");
        return 2;
    }
    const std::string role = argv[1];
    static constexpr std::array roles{"server",        "client",        "sink-server",
                                      "source-client", "source-server", "sink-client"};
    if (std::ranges::find(roles, role) == roles.end()) {
        std::fprintf(stderr, "xen_ring_check: unknown role %s\n", role.c_str());
        return 2;
    }
    const auto peer = static_cast<domid_t>(std::atoi(argv[2]));
    const std::string port = argv[3];
    const auto number = [&](int i, std::size_t otherwise) {
        return argc > i ? std::strtoull(argv[i], nullptr, 10) : otherwise;
    };
    auto backend = xen_backend::open();
    if (!backend) {
        return failed("xen_backend::open", backend.error());
    }
    const wait_policy policy{.mode = wait_mode::block};
    if (role == "server" || role == "sink-server" || role == "source-server") {
        const int sizes_at = role == "server" ? 5 : 4;
        auto channel = vchan_server(
            *backend, {backend->domid(), peer, port},
            ring_orders::for_sizes(number(sizes_at, 65536), number(sizes_at + 1, 65536)), policy);
        if (!channel) {
            return failed("vchan_server", channel.error());
        }
        if (auto connected = channel->wait_connected(60s); !connected) {
            return failed("wait_connected", connected.error());
        }
        if (role == "sink-server") {
            return sink(*channel, port);
        }
        if (role == "source-server") {
            return source(*channel);
        }
        return serve(*channel, number(4, 0));
    }
    // The server may be in a domain still booting: look it up patiently.
    auto channel = vchan_client(*backend, {peer, backend->domid(), port}, policy, 60s);
    if (!channel) {
        return failed("vchan_client", channel.error());
    }
    if (role == "sink-client") {
        return sink(*channel, port);
    }
    if (role == "source-client") {
        return source(*channel);
    }
    return drive(*channel, number(4, 0));
}
