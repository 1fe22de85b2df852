// The other end of interop checks on real Xen: Debian's libxenvchan itself, speaking the same
// exchange as xen_ring_check (1000 one-byte pings, then a bulk echo verified byte for byte).
//
//   libxenvchan_peer server <peer-domid> <xenstore-path> <bytes> <left-bytes> <right-bytes>
//   libxenvchan_peer client <server-domid> <xenstore-path> <bytes>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"  // grants[0] in <xen/io/libxenvchan.h>
extern "C" {
#include <libxenvchan.h>
#include <xenstore.h>
#include <xentoollog.h>
}
#pragma GCC diagnostic pop

#include "vdist/test/pattern.hpp"

namespace {

int failed(const char* what) {
    std::printf("XEN_RING_FAIL libxenvchan %s\n", what);
    return 1;
}

// libxenvchan_read returns what is there; loop for all of it.
bool read_all(libxenvchan* channel, char* into, std::size_t n) {
    for (std::size_t got = 0; got < n;) {
        const int r = libxenvchan_read(channel, into + got, n - got);
        if (r <= 0) {
            return false;
        }
        got += static_cast<std::size_t>(r);
    }
    return true;
}

bool write_all(libxenvchan* channel, const char* from, std::size_t n) {
    return libxenvchan_write(channel, from, n) == static_cast<int>(n);
}

std::size_t chunk_for(libxenvchan* channel) {
    // The smaller ring bounds a chunk that the peer echoes back.
    const auto ring = [](int order) { return std::size_t{1} << order; };
    return std::min({std::size_t{16384}, ring(channel->read.order), ring(channel->write.order)});
}

int serve(libxenvchan* channel, std::size_t bytes) {
    std::vector<char> buffer(chunk_for(channel));
    for (std::size_t done = 0; done < bytes + 1000;) {
        const int n = libxenvchan_read(channel, buffer.data(), buffer.size());
        if (n <= 0 || !write_all(channel, buffer.data(), static_cast<std::size_t>(n))) {
            return failed("server echo");
        }
        done += static_cast<std::size_t>(n);
    }
    // Wait until the client has read its echo and left.
    while (libxenvchan_is_open(channel) == 1 && libxenvchan_wait(channel) >= 0) {
    }
    std::printf("XEN_RING_OK libxenvchan server echoed %zu bytes\n", bytes + 1000);
    return 0;
}

int drive(libxenvchan* channel, std::size_t bytes) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) {
        const char ping = static_cast<char>(i);
        char pong = 0;
        if (!write_all(channel, &ping, 1) || !read_all(channel, &pong, 1) || pong != ping) {
            return failed("ping");
        }
    }
    const auto pinged = std::chrono::steady_clock::now();
    const std::size_t chunk = chunk_for(channel);
    vdist::test::pattern data(7);
    std::vector<char> out(chunk);
    std::vector<char> back(chunk);
    for (std::size_t done = 0; done < bytes; done += chunk) {
        const auto n = std::min(chunk, bytes - done);
        data.fill(std::as_writable_bytes(std::span(out).first(n)));
        if (!write_all(channel, out.data(), n) || !read_all(channel, back.data(), n) ||
            std::memcmp(out.data(), back.data(), n) != 0) {
            return failed("bulk echo");
        }
    }
    const auto end = std::chrono::steady_clock::now();
    std::printf("XEN_RING_OK libxenvchan client %zu bytes echoed, rtt %.1f us, %.2f MiB/s\n", bytes,
                std::chrono::duration<double, std::micro>(pinged - start).count() / 1000,
                static_cast<double>(bytes) / 1048576.0 /
                    std::chrono::duration<double>(end - pinged).count());
    return 0;
}

// Polls XenStore until `<path>/event-channel` (the last key a server writes) is readable, up
// to 60 s.
bool await_offer(const std::string& path) {
    xs_handle* store = xs_open(0);
    if (store == nullptr) {
        return false;
    }
    const std::string key = path + "/event-channel";
    bool found = false;
    for (int attempt = 0; attempt < 600 && !found; ++attempt) {
        unsigned int length = 0;
        void* value = xs_read(store, XBT_NULL, key.c_str(), &length);
        found = value != nullptr;
        std::free(value);
        if (!found) {
            ::usleep(100'000);
        }
    }
    xs_close(store);
    return found;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr,
                     "usage: libxenvchan_peer server|client peer path bytes [left right]\n");
        return 2;
    }
    const std::string role = argv[1];
    const int peer = std::atoi(argv[2]);
    const std::size_t bytes = std::strtoull(argv[4], nullptr, 10);
    // libxenvchan reports why a setup step failed through this logger (on the serial console).
    auto* logger =
        reinterpret_cast<xentoollog_logger*>(xtl_createlogger_stdiostream(stdout, XTL_ERROR, 0));
    libxenvchan* channel = nullptr;
    if (role == "server") {
        const std::size_t left = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 65536;
        const std::size_t right = argc > 6 ? std::strtoull(argv[6], nullptr, 10) : 65536;
        channel = libxenvchan_server_init(logger, peer, argv[3], left, right);
    } else {
        // libxenvchan_client_init does not wait for the server: wait for its offer first, as
        // its users do, then attach once.
        if (!await_offer(argv[3])) {
            return failed("no offer in XenStore after 60 s");
        }
        channel = libxenvchan_client_init(logger, peer, argv[3]);
    }
    if (channel == nullptr) {
        return failed(role == "server" ? "server_init" : "client_init");
    }
    channel->blocking = -1;  // a signed 1-bit field: -1 is its "set" value
    const int status = role == "server" ? serve(channel, bytes) : drive(channel, bytes);
    libxenvchan_close(channel);
    return status;
}
