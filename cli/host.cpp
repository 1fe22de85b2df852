#include "host.hpp"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "node_agent.hpp"
#include "vdist/discovery/agent.hpp"
#include "vdist/discovery/agent_control.hpp"

namespace vdist::cli {
namespace {

/// What each domain process forked by the zygote runs: a node configured over fd `channel`.
int run_domain_node(int channel) {
    const int status = run_agent_node(channel);
    std::fflush(nullptr);
    return status;
}

struct host_options {
    std::string dir;
    std::string host;
    bool pin = false;
    std::string wait = "block";
    std::string cookie = "vdist";
    int max_restarts = 10;
    double period = 10;
    bool exec = false;
    std::size_t shells = 2;
};

struct spawn_options {
    std::string dir;
    std::string name = "-";
    int count = 1;
    std::string restart = "permanent";
};

struct kill_options {
    std::string dir;
    std::string name;
    int signal = 0;
};

int run_host(const host_options& options) {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &signals, nullptr);
    char hostname[64] = {};
    ::gethostname(hostname, sizeof hostname - 1);
    discovery::agent_config config{
        .dir = options.dir,
        .host_name = options.host.empty() ? std::string(hostname) : options.host,
        .pin = options.pin,
        .fork_node = nullptr,
        .cookie = options.cookie,
        .wait = options.wait,
        .shells = options.shells,
        .max_restarts = options.max_restarts,
        .restart_period = std::chrono::milliseconds(static_cast<long>(options.period * 1000)),
        .log = nullptr,
    };
    config.exec_zygote = !options.exec;  // the zygote runs run_domain_node (serve_as_host_zygote)
    std::unique_ptr<discovery::agent_store> store;
    if (!discovery::host_store_available()) {
        store = discovery::make_memory_store();
    }
    auto agent = discovery::host_agent::create(std::move(config), std::move(store));
    if (!agent) {
        std::fprintf(stderr, "vdist host: %s\n", agent.error().message().c_str());
        return 1;
    }
    return (*agent)->run();
}

std::vector<std::string> split(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string word; in >> word;) {
        words.push_back(word);
    }
    return words;
}

int run_spawn(const spawn_options& options) {
    // Every request in flight at once: the agent spawns them as fast as it can.
    const auto start = std::chrono::steady_clock::now();
    std::vector<int> fds;
    for (int i = 0; i < options.count; ++i) {
        const std::string name = options.count > 1 && options.name != "-"
                                     ? options.name + std::to_string(i + 1)
                                     : options.name;
        auto fd = discovery::control_send(options.dir, "spawn " + name + " " + options.restart);
        if (!fd) {
            std::fprintf(stderr, "vdist spawn: %s: %s\n", options.dir.c_str(),
                         fd.error().message().c_str());
            return 1;
        }
        fds.push_back(*fd);
    }
    std::vector<double> ready_ms;
    int failures = 0;
    std::printf("%-32s %6s %8s %10s\n", "name", "domid", "pid", "ready_ms");
    for (const int fd : fds) {
        auto answer = discovery::read_control_answer(fd);
        const auto words = answer ? split(answer->front()) : std::vector<std::string>{};
        if (words.size() == 5 && words[0] == "ok") {
            const double ms = std::stod(words[4]) / 1000.0;
            ready_ms.push_back(ms);
            std::printf("%-32s %6s %8s %10.3f\n", words[1].c_str(), words[2].c_str(),
                        words[3].c_str(), ms);
        } else {
            ++failures;
            std::printf("failed: %s\n", answer ? answer->front().c_str() : "no answer");
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (ready_ms.size() > 1) {
        std::sort(ready_ms.begin(), ready_ms.end());
        auto at = [&](double q) {
            return ready_ms[static_cast<std::size_t>(q * static_cast<double>(ready_ms.size() - 1))];
        };
        std::printf("spawn-to-ready ms: p50 %.3f p90 %.3f p99 %.3f max %.3f; %.1f spawns/s\n",
                    at(0.5), at(0.9), at(0.99), ready_ms.back(),
                    static_cast<double>(ready_ms.size()) / seconds);
    }
    std::fflush(stdout);
    return failures == 0 ? 0 : 1;
}

int run_ls(const std::string& dir) {
    auto answer = discovery::control_request(dir, "ls");
    if (!answer) {
        std::fprintf(stderr, "vdist ls: %s: %s\n", dir.c_str(), answer.error().message().c_str());
        return 1;
    }
    std::printf("%-32s %6s %8s %4s %-9s %-10s\n", "name", "domid", "pid", "gen", "state",
                "restart");
    std::string shells;
    for (const auto& line : *answer) {
        const auto w = split(line);
        if (w.size() == 7 && w[0] == "node") {
            std::printf("%-32s %6s %8s %4s %-9s %-10s\n", w[1].c_str(), w[2].c_str(), w[3].c_str(),
                        w[4].c_str(), w[5].c_str(), w[6].c_str());
        } else if (w.size() == 8 && w[0] == "conn") {
            std::printf("    -> %-30s %-4s msgs in %s out %s, bytes in %s out %s\n", w[2].c_str(),
                        w[3].c_str(), w[4].c_str(), w[5].c_str(), w[6].c_str(), w[7].c_str());
        } else if (w.size() == 3 && w[0] == "shell") {
            shells += (shells.empty() ? "" : ", ") + w[1] + " (pid " + w[2] + ")";
        } else if (w.size() >= 1 && w[0] == "error") {
            std::printf("%s\n", line.c_str());
            return 1;
        }
    }
    if (!shells.empty()) {
        std::printf("domain shells ready for the next spawns: %s\n", shells.c_str());
    }
    std::fflush(stdout);
    return 0;
}

int run_simple(const std::string& dir, const std::string& request) {
    auto answer = discovery::control_request(dir, request);
    if (!answer) {
        std::fprintf(stderr, "vdist: %s: %s\n", dir.c_str(), answer.error().message().c_str());
        return 1;
    }
    for (const auto& line : *answer) {
        std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    return answer->front().starts_with("error") ? 1 : 0;
}

void check(int status) {
    if (status != 0) {
        throw CLI::RuntimeError(status);
    }
}

}  // namespace

void add_host_commands(CLI::App& app) {
    auto host = std::make_shared<host_options>();
    auto* h = app.add_subcommand("host", "A host agent: one emulated Xen host (store, nodes)");
    h->add_option("--dir", host->dir, "The host's directory (sockets)")->required();
    h->add_option("--host", host->host, "The host's name (default: the machine's)");
    h->add_flag("--pin", host->pin, "Pin each node to a core, round robin");
    h->add_option("--wait", host->wait, "Idle wait of nodes: busy, spin, block")
        ->check(CLI::IsMember({"busy", "spin", "block"}));
    h->add_option("--cookie", host->cookie, "The nodes' cookie");
    h->add_option("--shells", host->shells,
                  "Domains kept ready for the next spawns (forked, store open; default 2)")
        ->check(CLI::Range(std::size_t{0}, std::size_t{64}));
    h->add_option("--max-restarts", host->max_restarts, "Restart intensity");
    h->add_option("--period", host->period, "Restart period in seconds");
    h->add_flag("--exec", host->exec,
                "Start nodes with fork + exec of this binary (default: fork only, from a "
                "zygote the agent execs once)");
    h->callback([host] { check(run_host(*host)); });

    auto spawn = std::make_shared<spawn_options>();
    auto* s = app.add_subcommand("spawn", "Spawn nodes on a host agent");
    s->add_option("--dir", spawn->dir, "The host's directory")->required();
    s->add_option("--name", spawn->name, "Alive name (default: n<domid>-<host>)");
    s->add_option("--count", spawn->count, "How many")->check(CLI::Range(1, 100000));
    s->add_option("--restart", spawn->restart, "permanent, transient or temporary")
        ->check(CLI::IsMember({"permanent", "transient", "temporary"}));
    s->callback([spawn] { check(run_spawn(*spawn)); });

    auto dir = std::make_shared<std::string>();
    auto* l = app.add_subcommand("ls", "List a host agent's nodes and their connections");
    l->add_option("--dir", *dir, "The host's directory")->required();
    l->callback([dir] { check(run_ls(*dir)); });

    auto kill = std::make_shared<kill_options>();
    auto* k = app.add_subcommand("kill", "Stop a node (or send it a signal)");
    k->add_option("--dir", kill->dir, "The host's directory")->required();
    k->add_option("name", kill->name, "The node")->required();
    k->add_option("--signal", kill->signal, "Signal (default: stop cleanly, not restarted)");
    k->callback([kill] {
        check(run_simple(kill->dir, "kill " + kill->name + " " + std::to_string(kill->signal)));
    });

    auto store_dir = std::make_shared<std::string>();
    auto* st = app.add_subcommand("store", "Every key in a host agent's store");
    st->add_option("--dir", *store_dir, "The host's directory")->required();
    st->callback([store_dir] { check(run_simple(*store_dir, "store")); });
}

void serve_as_host_zygote(const char* socket_fd) {
    int socket = -1;
    const std::string_view text(socket_fd);
    if (std::from_chars(text.data(), text.data() + text.size(), socket).ec != std::errc{} ||
        socket < 3) {
        std::fprintf(stderr, "vdist --zygote: not a socket fd: %s\n", socket_fd);
        std::exit(2);
    }
    discovery::serve_as_zygote(socket, run_domain_node);
}

}  // namespace vdist::cli
