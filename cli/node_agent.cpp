// `vdist node --agent-fd 3`: a node spawned by a host agent, configured over its first
// channel only (discovery/agent_protocol.hpp).
#include "node_agent.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "vdist/discovery/agent_link.hpp"
#include "vdist/discovery/store_client.hpp"
#include "vdist/discovery/store_ring_directory.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/runtime/node_services.hpp"
#include "vdist/runtime/traffic.hpp"

namespace vdist::cli {
namespace {

/// What a domain has before its node does: the host backend (rings) and the host store (ring
/// offers), found from the domid alone.
struct domain_resources {
    std::shared_ptr<transport::host_backend> backend;
    std::unique_ptr<discovery::store_ring_directory> directory;
};

std::expected<domain_resources, std::string> open_domain(const discovery::domain_message& d) {
    if (d.store.empty()) {
        return domain_resources{};  // no host store: TCP distribution only
    }
    const auto domid = static_cast<transport::domid_t>(d.domid);
    auto backend = transport::host_backend::create(domid, d.run_dir);
    if (!backend) {
        return std::unexpected("host backend: " + backend.error().message());
    }
    auto client = discovery::store_client::open(d.store);
    if (!client) {
        return std::unexpected("host store " + d.store + ": " + client.error().message());
    }
    auto opened = discovery::store_ring_directory::open(std::move(*client), domid);
    if (!opened) {
        return std::unexpected("ring directory: " + opened.error().message());
    }
    return domain_resources{std::make_shared<transport::host_backend>(std::move(*backend)),
                            std::move(*opened)};
}

/// Makes `[start, end)`'s pages that are resident (after a fork: the zygote's, shared until
/// written) this process's own, one madvise per run of them.
void own_resident_pages(std::uintptr_t start, std::uintptr_t end) {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    std::array<unsigned char, 512> resident{};
    for (auto chunk = start; chunk < end; chunk += resident.size() * page) {
        const auto pages = std::min<std::uintptr_t>(resident.size(), (end - chunk) / page);
        // NOLINTNEXTLINE(performance-no-int-to-ptr): an address read from /proc/self/maps
        if (::mincore(reinterpret_cast<void*>(chunk), pages * page, resident.data()) != 0) {
            return;
        }
        for (std::size_t i = 0; i < pages;) {
            std::size_t run = 0;
            while (i + run < pages && (resident[i + run] & 1) != 0) {
                ++run;
            }
            if (run > 0) {
                // NOLINTNEXTLINE(performance-no-int-to-ptr): as above
                (void)::madvise(reinterpret_cast<void*>(chunk + i * page), run * page,
                                MADV_POPULATE_WRITE);
            }
            i += run + 1;
        }
    }
}

/// What a domain process does first, before it reads its first channel: the pages of its
/// writable memory that it shares with the zygote made its own, with one madvise per run
/// instead of a fault per page. On these VMs a copy-on-write fault costs a new process tens of
/// microseconds where populating a page costs a few (172 pages in 1.3 ms). Done here rather
/// than once a shell waits, it also spares the first frame's decoding and the store connection
/// their faults: interleaved, three rounds, one spawn at a time p50 4.39 -> 3.97 ms. Pages the
/// zygote never touched (most of its stack, the heap's top) are left to the faults that need
/// them. /proc/self/maps is read onto the stack, not through a stream, whose buffers on the
/// heap would take copy-on-write faults first.
void own_writable_memory() {
    std::array<char, 16384> text{};
    const int maps = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps < 0) {
        return;
    }
    std::size_t size = 0;
    for (ssize_t n = 0;
         size < text.size() && (n = ::read(maps, text.data() + size, text.size() - size)) > 0;) {
        size += static_cast<std::size_t>(n);
    }
    ::close(maps);
    std::string_view lines(text.data(), size);
    lines = lines.substr(0, lines.rfind('\n') + 1);  // whole lines only
    while (!lines.empty()) {
        const auto line = lines.substr(0, lines.find('\n'));
        lines.remove_prefix(line.size() + 1);
        // "start-end perms offset device inode path"
        std::uintptr_t start = 0;
        std::uintptr_t end = 0;
        const auto* first = line.data();
        const auto* last = first + line.size();
        auto parsed = std::from_chars(first, last, start, 16);
        if (parsed.ec != std::errc{} || parsed.ptr == last || *parsed.ptr != '-') {
            continue;
        }
        parsed = std::from_chars(parsed.ptr + 1, last, end, 16);
        if (parsed.ec != std::errc{} ||
            line.substr(static_cast<std::size_t>(parsed.ptr - first), 6) != " rw-p ") {
            continue;
        }
        own_resident_pages(start, end);
    }
}

}  // namespace

int run_agent_node(int fd) {
    auto fail = [fd](const std::string& why) {
        std::fprintf(stderr, "vdist node: first channel (fd %d): %s\n", fd, why.c_str());
        ::close(fd);
        return 2;
    };
    own_writable_memory();
    // A domain made ahead of its node (a shell) opens what needs no name, then waits for as
    // long as the agent keeps it; a node spawned directly gets its config first.
    auto first = discovery::agent_link::read_message(fd, std::chrono::seconds(10));
    if (!first) {
        return fail(first.error().message());
    }
    std::optional<discovery::domain_message> shell;
    std::expected<domain_resources, std::string> resources = domain_resources{};
    if (auto* d = std::get_if<discovery::domain_message>(&*first)) {
        shell = *d;
        resources = open_domain(*d);
        first = discovery::agent_link::read_message(fd, std::nullopt);
        if (!first) {
            return fail(first.error().message());
        }
        if (std::holds_alternative<discovery::stop_message>(*first)) {
            ::close(fd);
            return 0;  // the agent stops: the shell never ran a node
        }
    }
    auto* config = std::get_if<discovery::node_config_message>(&*first);
    if (config == nullptr) {
        return fail("expected the config");
    }
    if (shell && (shell->domid != config->domid || shell->store != config->store ||
                  shell->run_dir != config->run_dir)) {
        return fail("the config names another domain than the first message");
    }
    const std::string prefix =
        "vdist node " + config->name + " (domid " + std::to_string(config->domid) + "): ";
    auto log = [prefix](std::string_view line) {
        std::fprintf(stderr, "%s%.*s\n", prefix.c_str(), static_cast<int>(line.size()),
                     line.data());
    };
    if (!shell) {
        resources = open_domain({config->domid, config->store, config->run_dir});
    }
    if (!resources) {
        log(resources.error());
        return 1;
    }
    runtime::node_config node_settings{.name = config->name};
    node_settings.idle.mode =
        config->wait == discovery::node_wait::busy   ? transport::wait_mode::busy_poll
        : config->wait == discovery::node_wait::spin ? transport::wait_mode::spin_then_block
                                                     : transport::wait_mode::block;
    runtime::node host(node_settings);
    // Rings to nodes of this host (found through the host store), TCP with EPMD registration
    // for the others and for erl.
    runtime::distribution_config dist_config{
        .cookie = config->cookie,
        .epmd_in_background = true,  // ready at once; peers here come over rings
        .net_ticktime = std::chrono::milliseconds(config->ticktime_ms),
        .log = log,
    };
    if (resources->directory) {
        dist_config.ring_backend = resources->backend;
        dist_config.directory = resources->directory.get();
        dist_config.ring_wait.mode = node_settings.idle.mode;
    }
    auto dist = runtime::distribution::start(host, dist_config);
    if (!dist) {
        log("distribution did not start: " + dist.error().message());
        return 1;
    }
    runtime::start_node_services(host, **dist, runtime::rpc_functions::with_builtins(dist->get()));
    (void)runtime::start_traffic(host);  // all-to-all checks and load (demo, cluster tests)
    host.run_until_idle();               // the services register their names
    const auto echo = host.whereis(host.a("echo"));
    if (!echo) {
        log("no echo server");
        return 1;
    }
    int status = 0;
    {
        discovery::agent_link link(fd, host, **dist);
        if (auto ready = link.ready(*echo); !ready) {
            log("first channel: " + ready.error().message());
            return 1;
        }
        host.run();
        if (link.failure()) {
            log(link.failure().message() + ": exiting");
            status = 2;
        }
    }
    dist->reset();
    return status;
}

}  // namespace vdist::cli
