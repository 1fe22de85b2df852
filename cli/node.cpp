#include "node.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "node_agent.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/runtime/node_services.hpp"

namespace vdist::cli {
namespace {

using namespace vdist::runtime;

struct node_command_options {
    std::string name;
    std::string cookie;
    bool hidden = false;
    bool visible = false;
    std::uint16_t port = 0;
    double ticktime = 60;
    std::vector<std::string> ping;
    int agent_fd = -1;
};

void log_line(std::string_view line) {
    const auto now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&now));
    std::fprintf(stderr, "%s %.*s\n", stamp, static_cast<int>(line.size()), line.data());
}

int run_node(const node_command_options& options) {
    // SIGINT/SIGTERM arrive through a signalfd in the node's loop: a clean stop, never a
    // handler running in the middle of a step.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);
    const int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);

    node host(node_config{.name = options.name});
    distribution_config config{
        .cookie = options.cookie,
        .hidden = !options.visible,
        .listen_port = options.port,
        .net_ticktime = std::chrono::milliseconds(static_cast<long>(options.ticktime * 1000)),
        .log = log_line,
    };
    auto dist = distribution::start(host, config);
    if (!dist) {
        log_line("vdist node: distribution did not start: " + dist.error().message());
        return 1;
    }
    start_node_services(host, **dist, rpc_functions::with_builtins(dist->get()));

    host.watch_fd(signal_fd, [&host, signal_fd] {
        signalfd_siginfo info{};
        if (::read(signal_fd, &info, sizeof info) == sizeof info) {
            log_line(std::string("vdist node: ") + ::strsignal(static_cast<int>(info.ssi_signo)) +
                     ", stopping");
            host.stop();
        }
    });
    for (const auto& peer : options.ping) {
        const atom peer_atom = host.a(peer);
        (void)host.spawn([peer_atom](process& self) {
            net_adm_ping(self, peer_atom, std::chrono::seconds(10), [peer_atom](process&, atom r) {
                std::printf("ping %.*s: %.*s\n", static_cast<int>(peer_atom.text().size()),
                            peer_atom.text().data(), static_cast<int>(r.text().size()),
                            r.text().data());
                std::fflush(stdout);
            });
        });
    }
    std::printf("node %s up on port %u\n", options.name.c_str(), (*dist)->listen_port());
    std::fflush(stdout);
    host.run();
    dist->reset();
    ::close(signal_fd);
    return 0;
}

}  // namespace

void add_node_command(CLI::App& app) {
    auto options = std::make_shared<node_command_options>();
    auto* command = app.add_subcommand(
        "node",
        "A standalone C++ node on TCP distribution: net_kernel, rex (rpc) and an echo server");
    command->add_option("--name", options->name, "Node name, alive@host");
    command->add_option("--cookie", options->cookie, "Magic cookie");
    command->add_option("--agent-fd", options->agent_fd,
                        "Spawned by a host agent: read the configuration from this fd (the "
                        "first channel) and nothing else from the command line");
    command->add_flag("--hidden", options->hidden,
                      "Start as a hidden node (the default; see --visible)");
    command
        ->add_flag("--visible", options->visible,
                   "Publish the node (nodes() on peers); OTP's global:sync() then waits for "
                   "it, as vdist does not speak global's protocol")
        ->excludes("--hidden");
    command->add_option("--port", options->port, "Listen port (default: any)");
    command->add_option("--ticktime", options->ticktime, "net_ticktime in seconds")
        ->check(CLI::Range(1.0, 3600.0));
    command->add_option("--ping", options->ping, "Ping these nodes once started");
    command->callback([options] {
        if (options->agent_fd >= 0) {
            if (const int status = run_agent_node(options->agent_fd); status != 0) {
                throw CLI::RuntimeError(status);
            }
            return;
        }
        if (options->name.empty() || options->cookie.empty()) {
            throw CLI::ValidationError("--name and --cookie are required (or --agent-fd)");
        }
        if (const int status = run_node(*options); status != 0) {
            throw CLI::RuntimeError(status);
        }
    });
}

}  // namespace vdist::cli
