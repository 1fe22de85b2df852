// `vdist node --agent-fd 3`: a node spawned by a host agent, configured over its first
// channel only (discovery/agent_protocol.hpp).
#include "node_agent.hpp"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "vdist/discovery/agent_link.hpp"
#include "vdist/discovery/store_client.hpp"
#include "vdist/discovery/store_ring_directory.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/runtime/node_services.hpp"
#include "vdist/runtime/traffic.hpp"

namespace vdist::cli {

int run_agent_node(int fd) {
    auto config = discovery::agent_link::read_config(fd, std::chrono::seconds(10));
    if (!config) {
        std::fprintf(stderr, "vdist node: first channel (fd %d): %s\n", fd,
                     config.error().message().c_str());
        ::close(fd);
        return 2;
    }
    const std::string prefix =
        "vdist node " + config->name + " (domid " + std::to_string(config->domid) + "): ";
    auto log = [prefix](std::string_view line) {
        std::fprintf(stderr, "%s%.*s\n", prefix.c_str(), static_cast<int>(line.size()),
                     line.data());
    };
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
        .net_ticktime = std::chrono::milliseconds(config->ticktime_ms),
        .log = log,
    };
    std::unique_ptr<discovery::store_ring_directory> directory;
    if (!config->store.empty()) {
        const auto domid = static_cast<transport::domid_t>(config->domid);
        auto backend = transport::host_backend::create(domid, config->run_dir);
        if (!backend) {
            log("host backend: " + backend.error().message());
            return 1;
        }
        auto client = discovery::store_client::open(config->store);
        if (!client) {
            log("host store " + config->store + ": " + client.error().message());
            return 1;
        }
        auto opened = discovery::store_ring_directory::open(std::move(*client), domid);
        if (!opened) {
            log("ring directory: " + opened.error().message());
            return 1;
        }
        directory = std::move(*opened);
        dist_config.ring_backend = std::make_shared<transport::host_backend>(std::move(*backend));
        dist_config.directory = directory.get();
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
