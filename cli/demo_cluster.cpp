#include "demo_cluster.hpp"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "demo_support.hpp"
#include "vdist/discovery/agent_control.hpp"
#include "vdist/runtime/threaded_node.hpp"

namespace vdist::cli {
namespace {

using namespace std::chrono_literals;
using dist::list;
using dist::term;
using dist::tuple;

constexpr int cluster_nodes = 8;
constexpr int on_demand_nodes = 16;

[[nodiscard]] std::vector<std::string> words_of(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) {
        words.push_back(std::move(w));
    }
    return words;
}

[[nodiscard]] std::int64_t element(const tuple& t, std::size_t i) {
    const auto* v = i < t.elements.size() ? t.elements[i].get_if<std::int64_t>() : nullptr;
    return v == nullptr ? -1 : *v;
}

/// {traffic_report, Node, Sent, Received, Lost, Backwards, Streams, PeersDown}
struct traffic_report {
    std::int64_t sent = 0, received = 0, lost = 0, backwards = 0;
};

/// The checks of the part, printed as they pass or fail.
class checks {
  public:
    void expect(bool ok, const std::string& what) {
        ++total_;
        failed_ += ok ? 0 : 1;
        show("demo", std::string(ok ? "ok    " : "FAILED ") + what);
    }
    [[nodiscard]] int status() const {
        show("demo",
             "cluster result: " + std::to_string(total_) + " checks, " +
                 (failed_ == 0 ? std::string("all passed") : std::to_string(failed_) + " failed"));
        return failed_ == 0 ? 0 : 1;
    }

  private:
    int total_ = 0;
    int failed_ = 0;
};

/// Shows what the agent printed since the last call (its log: spawns, exits, restarts).
void show_agent_output(child& agent) {
    while (agent.output() >= 0) {
        pollfd fd{agent.output(), POLLIN, 0};
        if (::poll(&fd, 1, 0) <= 0) {
            return;
        }
        for (const auto& line : agent.read_lines()) {
            show("host", line);
        }
    }
}

class cluster_demo {
  public:
    cluster_demo(std::filesystem::path dir, std::unique_ptr<child> agent, std::uint16_t epmd_port,
                 std::string cookie)
        : dir_(std::move(dir)),
          agent_(std::move(agent)),
          driver_("demo@localhost", std::move(cookie), epmd_port) {}

    int run(double seconds) {
        if (!spawn_cluster()) {
            return checks_.status();
        }
        load(seconds);
        on_demand();
        stop_agent();
        return checks_.status();
    }

  private:
    bool spawn_cluster() {
        show("demo", "spawning " + std::to_string(cluster_nodes) +
                         " nodes: vdist host forks each from its own image (a zygote), "
                         "configuration over its fd 3");
        for (int i = 0; i < cluster_nodes; ++i) {
            const auto answer = discovery::control_request(dir_, "spawn - permanent");
            show_agent_output(*agent_);
            const auto w =
                answer && !answer->empty() ? words_of(answer->front()) : std::vector<std::string>{};
            if (w.size() < 5 || w[0] != "ok") {
                checks_.expect(false,
                               "spawn: " + (answer && !answer->empty() ? answer->front()
                                                                       : std::string("no answer")));
                return false;
            }
            nodes_.push_back(w[1]);
            show("demo",
                 "  " + w[1] + "  domid " + w[2] + "  pid " + w[3] + "  ready in " + w[4] + " us");
        }
        checks_.expect(true, std::to_string(cluster_nodes) + " nodes spawned and ready");
        return true;
    }

    void load(double seconds) {
        list peers;
        for (const auto& n : nodes_) {
            peers.elements.emplace_back(driver_.a(n));
        }
        show("demo",
             "all-to-all: every node sends 64-byte messages with per-sender sequence "
             "numbers to the 7 others");
        for (const auto& n : nodes_) {
            driver_.send("vdist_traffic", n, tuple{driver_.a("start"), peers, 0, 64});
        }
        const auto started = demo_clock::now();
        std::int64_t last_received = 0;
        auto last_time = started;
        while (demo_clock::now() - started < std::chrono::duration<double>(seconds)) {
            std::this_thread::sleep_for(500ms);
            const auto reports = collect_reports();
            std::int64_t received = 0, lost = 0, backwards = 0;
            for (const auto& [node, r] : reports) {
                received += r.received;
                lost += r.lost;
                backwards += r.backwards;
            }
            const auto now = demo_clock::now();
            const double dt = std::chrono::duration<double>(now - last_time).count();
            char line[200];
            std::snprintf(line, sizeof line,
                          "%5.1f s  %9.0f msgs/s  received %10lld  lost %lld  out of order %lld",
                          std::chrono::duration<double>(now - started).count(),
                          static_cast<double>(received - last_received) / dt,
                          static_cast<long long>(received), static_cast<long long>(lost),
                          static_cast<long long>(backwards));
            show("load", line);
            last_received = received;
            last_time = now;
        }
        for (const auto& n : nodes_) {
            driver_.send("vdist_traffic", n, driver_.a("stop"));
        }
        std::this_thread::sleep_for(500ms);  // what is in flight arrives
        show_channels();
        const auto reports = collect_reports();
        std::int64_t sent = 0, received = 0, lost = 0, backwards = 0;
        for (const auto& [node, r] : reports) {
            sent += r.sent;
            received += r.received;
            lost += r.lost;
            backwards += r.backwards;
        }
        checks_.expect(reports.size() == nodes_.size(),
                       "every node reports (" + std::to_string(reports.size()) + ")");
        checks_.expect(received == sent && lost == 0 && backwards == 0,
                       "sent " + std::to_string(sent) + ", received " + std::to_string(received) +
                           ": nothing lost, duplicated or reordered");
    }

    std::map<std::string, traffic_report> collect_reports() {
        for (const auto& n : nodes_) {
            driver_.send("vdist_traffic", n, tuple{driver_.a("report"), driver_.self()});
        }
        std::map<std::string, traffic_report> reports;
        for (const auto& message : driver_.wait_for(nodes_.size(), 5s)) {
            const auto* t = message.get_if<tuple>();
            if (t == nullptr || t->elements.size() != 8) {
                continue;
            }
            const auto* node = t->elements[1].get_if<dist::atom>();
            if (node != nullptr) {
                reports[std::string(node->text())] = {element(*t, 2), element(*t, 3),
                                                      element(*t, 4), element(*t, 5)};
            }
        }
        return reports;
    }

    // `vdist ls`: each node's channels with their carriers and counters.
    void show_channels() {
        const auto answer = discovery::control_request(dir_, "ls");
        if (!answer) {
            checks_.expect(false, "ls answered");
            return;
        }
        show("demo", "channels (vdist ls): per node, its node-to-node channels");
        std::map<std::string, std::vector<std::string>> by_node;
        int rings = 0;
        int other = 0;
        for (const auto& line : *answer) {
            const auto w = words_of(line);
            if (w.size() < 6 || w[0] != "conn" || w[2] == "demo@localhost") {
                continue;
            }
            (w[3] == "ring" ? rings : other) += 1;
            by_node[w[1]].push_back(w[2].substr(0, w[2].find('@')) + ":" + w[3] + " in " + w[4] +
                                    " out " + w[5]);
        }
        for (const auto& [node, channels] : by_node) {
            std::string text = node.substr(0, node.find('@')) + " ";
            for (const auto& c : channels) {
                text += " " + c;
            }
            show("ls", text);
        }
        checks_.expect(rings == cluster_nodes * (cluster_nodes - 1) && other == 0,
                       std::to_string(rings) + " node-to-node channels, all rings");
    }

    void on_demand() {
        show("demo", "on demand: " + nodes_.front() + " asks its host agent for " +
                         std::to_string(on_demand_nodes) +
                         " child nodes; each must answer its first message");
        const auto started = demo_clock::now();
        for (int i = 0; i < on_demand_nodes; ++i) {
            driver_.send("vdist_agent", nodes_.front(),
                         tuple{driver_.a("spawn_and_call"), driver_.self(), i});
        }
        const auto replies = driver_.wait_for(on_demand_nodes, 30s);
        const double burst = std::chrono::duration<double>(demo_clock::now() - started).count();
        std::vector<double> ready_ms;
        std::vector<dist::pid> children;
        for (const auto& message : replies) {
            const auto* t = message.get_if<tuple>();
            if (t == nullptr || t->elements.size() != 5 ||
                !runtime::is_atom(t->elements[0], "spawned")) {
                show("demo", "  spawn failed");
                continue;
            }
            if (const auto* child_pid = t->elements[3].get_if<dist::pid>()) {
                children.push_back(*child_pid);
                ready_ms.push_back(static_cast<double>(element(*t, 4)) / 1000.0);
            }
        }
        std::sort(ready_ms.begin(), ready_ms.end());
        if (!ready_ms.empty()) {
            char line[200];
            std::snprintf(line, sizeof line,
                          "  %zu children in %.0f ms (%.0f spawns/s); spawn-to-ready (spawned, "
                          "handshake done, first message answered): p50 %.2f ms, max %.2f ms",
                          ready_ms.size(), burst * 1000.0,
                          static_cast<double>(ready_ms.size()) / burst,
                          ready_ms[ready_ms.size() / 2], ready_ms.back());
            show("demo", line);
        }
        checks_.expect(children.size() == on_demand_nodes,
                       std::to_string(children.size()) + " on-demand nodes spawned");
        // The pids came back to the driver, which messages them over TCP: any node reaches
        // any pid, wherever it runs.
        for (const auto& child_pid : children) {
            driver_.call([&](runtime::node& n) {
                n.send(child_pid, tuple{driver_.self(), n.a("hello")});
            });
        }
        const auto answers = driver_.wait_for(children.size(), 10s);
        const auto hellos = std::ranges::count_if(
            answers, [](const term& t) { return runtime::is_atom(t, "hello"); });
        checks_.expect(static_cast<std::size_t>(hellos) == children.size(),
                       "every on-demand node answered the driver (" + std::to_string(hellos) + ")");
        show_agent_output(*agent_);
    }

    void stop_agent() {
        const auto before = discovery::control_request(dir_, "store");
        (void)discovery::control_request(dir_, "stop");
        const auto status = drain_and_reap(*agent_, 15s);
        checks_.expect(
            status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0,
            "host agent stopped every node and exited (" + describe_status(status) + ")");
        std::size_t sockets = 0;
        std::error_code error;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_, error)) {
            sockets += entry.is_socket() ? 1U : 0U;
        }
        checks_.expect(sockets == 0, "no socket left in " + dir_.string());
        (void)before;
    }

    std::filesystem::path dir_;
    std::unique_ptr<child> agent_;
    runtime::threaded_node driver_;
    std::vector<std::string> nodes_;
    checks checks_;
};

}  // namespace

int run_cluster_demo(double seconds) {
    std::printf(
        "\nCluster part: vdist host (the toolstack of one emulated Xen host) with %d "
        "single-core node processes\n\n",
        cluster_nodes);
    std::fflush(stdout);
    const std::string epmd_program = find_on_path("epmd");
    if (epmd_program.empty()) {
        show("demo", "epmd not found (Debian: erlang-base): cluster part skipped");
        return 0;
    }
    const std::uint16_t epmd_port = free_port();
    const auto environment = child_environment(epmd_port);
    auto epmd = start_epmd(epmd_program, epmd_port, environment);
    if (!epmd) {
        return 1;
    }
    std::string pattern =
        (std::filesystem::temp_directory_path() / "vdist-cluster-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::filesystem::path dir = pattern;
    const std::string cookie = random_cookie();
    auto agent = child::start("host",
                              {"/proc/self/exe", "host", "--dir", dir.string(), "--host",
                               "demo-host", "--cookie", cookie, "--wait", "spin"},
                              environment);
    int status = 1;
    if (agent == nullptr) {
        show("demo", "cannot start vdist host");
    } else {
        const auto deadline = demo_clock::now() + 10s;
        while (!discovery::control_request(dir, "ls") && demo_clock::now() < deadline) {
            std::this_thread::sleep_for(20ms);
        }
        show_agent_output(*agent);
        // The driver's thread starts only now: everything above forked.
        cluster_demo demo(dir, std::move(agent), epmd_port, cookie);
        status = demo.run(seconds);
    }
    stop(epmd.get());
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    return status;
}

}  // namespace vdist::cli
