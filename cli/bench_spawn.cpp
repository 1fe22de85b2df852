#include "bench_spawn.hpp"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "demo_support.hpp"
#include "vdist/discovery/agent_control.hpp"
#include "vdist/dist/term_text.hpp"
#include "vdist/runtime/threaded_node.hpp"

namespace vdist::cli {
namespace {

using namespace std::chrono_literals;
using dist::tuple;

struct spawn_options {
    std::size_t sequential = 100;  ///< spawns one at a time (latency)
    std::size_t burst = 200;       ///< spawns with `in_flight` outstanding (rate)
    std::size_t in_flight = 16;
    std::size_t baseline_runs = 5;  ///< erl starts
    bool exec = false;              ///< the agent's --exec (fork + exec) instead of fork only
    int shells = -1;                ///< the agent's --shells (-1: its default)
};

[[nodiscard]] double percentile(std::vector<double> values, double p) {
    if (values.empty()) {
        return 0;
    }
    std::sort(values.begin(), values.end());
    const auto index = static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
    return values[std::min(index, values.size() - 1)];
}

/// Milliseconds from `{spawned, Tag, Name, Pid, Microseconds}`, or nullopt.
[[nodiscard]] std::optional<double> ready_ms(const dist::term& reply) {
    const auto* t = reply.get_if<tuple>();
    if (t == nullptr || t->elements.size() != 5 || !runtime::is_atom(t->elements[0], "spawned")) {
        return std::nullopt;
    }
    const auto* us = t->elements[4].get_if<std::int64_t>();
    return us == nullptr ? std::nullopt : std::optional<double>(static_cast<double>(*us) / 1e3);
}

/// One BEAM node from exec to its first output line: distribution started, first code run.
[[nodiscard]] std::optional<double> erl_start_ms(const std::string& erl, int run,
                                                 const std::vector<std::string>& environment) {
    const auto started = demo_clock::now();
    auto node = child::start("erl",
                             {erl, "-sname", "spawn_baseline_" + std::to_string(run), "-noshell",
                              "-eval", "io:format(\"ready~n\"), halt()."},
                             environment);
    if (!node) {
        return std::nullopt;
    }
    std::optional<double> ms;
    while (!ms && node->output() >= 0 && demo_clock::now() - started < 30s) {
        pollfd fd{node->output(), POLLIN, 0};
        if (::poll(&fd, 1, 100) <= 0) {
            continue;
        }
        for (const auto& line : node->read_lines()) {
            if (line == "ready") {
                ms = std::chrono::duration<double, std::milli>(demo_clock::now() - started).count();
            }
        }
    }
    (void)drain_and_reap(*node, 10s);
    return ms;
}

/// Reads the agent's output on a thread while the bench runs: the agent and its nodes share
/// that pipe for their logs, and a full pipe would stop them all at their next log line. Keeps
/// the last lines, shown when a spawn failed.
class agent_log {
  public:
    explicit agent_log(child& agent)
        : thread_([this, &agent](std::stop_token stop) { drain(agent, stop); }) {}

    /// Stops reading (what follows is the caller's) and returns the last lines read.
    [[nodiscard]] std::deque<std::string> stop() {
        thread_.request_stop();
        thread_.join();
        return std::move(tail_);
    }

  private:
    static constexpr std::size_t kept = 40;

    void drain(child& agent, const std::stop_token& stop) {
        while (!stop.stop_requested() && agent.output() >= 0) {
            pollfd fd{agent.output(), POLLIN, 0};
            if (::poll(&fd, 1, 50) <= 0) {
                continue;
            }
            for (auto& line : agent.read_lines()) {
                tail_.push_back(std::move(line));
                if (tail_.size() > kept) {
                    tail_.pop_front();
                }
            }
        }
    }

    std::deque<std::string> tail_;
    std::jthread thread_;  // last: starts once the rest is constructed
};

int run_spawn_bench(const spawn_options& options) {
    const std::string epmd_program = find_on_path("epmd");
    if (epmd_program.empty()) {
        std::fprintf(stderr, "vdist bench spawn: epmd not found (Debian: erlang-base)\n");
        return 2;
    }
    const std::uint16_t epmd_port = free_port();
    const auto environment = child_environment(epmd_port);
    auto epmd = start_epmd(epmd_program, epmd_port, environment);
    if (!epmd) {
        return 2;
    }
    // The baseline first, while this process has one thread (it forks).
    std::vector<double> erl_ms;
    if (const std::string erl = find_on_path("erl"); !erl.empty()) {
        for (std::size_t i = 0; i < options.baseline_runs; ++i) {
            if (auto ms = erl_start_ms(erl, static_cast<int>(i), environment)) {
                erl_ms.push_back(*ms);
            }
        }
    }
    std::string pattern = (std::filesystem::temp_directory_path() / "vdist-spawn-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        std::perror("mkdtemp");
        return 2;
    }
    const std::filesystem::path dir = pattern;
    const std::string cookie = random_cookie();
    std::vector<std::string> argv{"/proc/self/exe", "host",       "--dir",          dir.string(),
                                  "--host",         "spawnbench", "--cookie",       cookie,
                                  "--wait",         "spin",       "--max-restarts", "0"};
    if (options.exec) {
        argv.emplace_back("--exec");
    }
    if (options.shells >= 0) {
        argv.insert(argv.end(), {"--shells", std::to_string(options.shells)});
    }
    auto agent = child::start("host", argv, environment);
    const auto deadline = demo_clock::now() + 10s;
    while (agent && !discovery::control_request(dir, "ls") && demo_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    std::optional<agent_log> log;
    if (agent) {
        log.emplace(*agent);
    }
    const auto parent_answer = discovery::control_request(dir, "spawn - permanent");
    std::string parent;
    if (parent_answer && !parent_answer->empty() && parent_answer->front().starts_with("ok ")) {
        const auto& line = parent_answer->front();
        parent = line.substr(3, line.find(' ', 3) - 3);
    }
    int status = 0;
    if (parent.empty()) {
        std::fprintf(stderr, "vdist bench spawn: the host agent did not spawn the parent node\n");
        status = 2;
    } else {
        runtime::threaded_node driver("spawnbench@localhost", cookie, epmd_port);
        std::int64_t tag = 0;
        const auto ask = [&] {
            driver.send("vdist_agent", parent,
                        tuple{driver.a("spawn_and_call"), driver.self(), tag++});
        };
        // Warm-up: the driver's connection to the parent, the parent's first children.
        for (int i = 0; i < 3; ++i) {
            ask();
            (void)driver.wait_for(1, 10s);
        }
        std::vector<double> one_at_a_time;
        std::size_t failed = 0;
        for (std::size_t i = 0; i < options.sequential; ++i) {
            ask();
            const auto replies = driver.wait_for(1, 10s);
            const auto ms = replies.empty() ? std::nullopt : ready_ms(replies.front());
            ms ? one_at_a_time.push_back(*ms) : (void)++failed;
        }
        std::vector<double> under_load;
        const auto burst_started = demo_clock::now();
        std::size_t sent = 0;
        std::size_t done = 0;
        while (done < options.burst) {
            while (sent < options.burst && sent - done < options.in_flight) {
                ask();
                ++sent;
            }
            const auto replies = driver.wait_for(1, 10s);
            if (replies.empty()) {
                failed += sent - done;
                break;
            }
            for (const auto& reply : replies) {
                ++done;
                if (const auto ms = ready_ms(reply)) {
                    under_load.push_back(*ms);
                } else if (++failed == 1) {
                    std::fprintf(stderr, "vdist bench spawn: first failure: %s\n",
                                 dist::to_erlang_text(reply).c_str());
                }
            }
        }
        const double burst_s =
            std::chrono::duration<double>(demo_clock::now() - burst_started).count();
        const double rate = static_cast<double>(under_load.size()) / burst_s;
        const double p50 = percentile(one_at_a_time, 0.5);

        std::printf(
            "vdist bench spawn: on-demand nodes (the host agent forks%s; a parent node asks for "
            "each and sends it a first message)\n\n",
            options.exec ? " and execs the vdist binary" : " its zygote image, no exec");
        std::printf("spawn-to-ready = spawned, handshake done (ring), first message answered\n");
        std::printf("  one at a time (%zu): p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
                    one_at_a_time.size(), p50, percentile(one_at_a_time, 0.9),
                    percentile(one_at_a_time, 0.99), percentile(one_at_a_time, 1.0));
        std::printf(
            "  burst (%zu, %zu in flight): %.0f spawns/s; spawn-to-ready p50 %.2f ms  p99 %.2f "
            "ms\n",
            under_load.size(), options.in_flight, rate, percentile(under_load, 0.5),
            percentile(under_load, 0.99));
        if (!erl_ms.empty()) {
            const double erl_p50 = percentile(erl_ms, 0.5);
            std::printf(
                "baseline, same run: erl -sname (distribution up, first code run), %zu starts: "
                "p50 %.1f ms\n",
                erl_ms.size(), erl_p50);
            std::printf("  ratio: vdist spawn-to-ready p50 / erl start p50 = %.3f\n",
                        p50 / erl_p50);
        } else {
            std::printf("baseline: erl not found, no ratio\n");
        }
        std::printf("targets (issue 7, 2 cores): p50 < 5 ms: %s; >= 200 spawns/s: %s\n",
                    p50 < 5.0 ? "met" : "NOT MET", rate >= 200.0 ? "met" : "NOT MET");
        if (failed > 0) {
            std::printf("%zu spawns failed\n", failed);
            status = 1;
        }
    }
    if (log) {
        const auto tail = log->stop();
        if (status != 0) {
            for (const auto& line : tail) {
                show("host", line);
            }
        }
    }
    (void)discovery::control_request(dir, "stop");
    if (agent) {
        (void)drain_and_reap(*agent, 30s);
    }
    stop(epmd.get());
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    return status;
}

}  // namespace

void add_spawn_bench_command(CLI::App& bench) {
    auto options = std::make_shared<spawn_options>();
    auto* command = bench.add_subcommand(
        "spawn",
        "On-demand nodes: spawn-to-ready (spawned, handshake done, first message answered) and "
        "spawns/s, against erl's start in the same run");
    command->add_option("--sequential", options->sequential, "spawns one at a time (default 100)");
    command->add_option("--burst", options->burst, "spawns for the rate (default 200)");
    command->add_option("--in-flight", options->in_flight, "outstanding spawns in the burst")
        ->check(CLI::Range(std::size_t{1}, std::size_t{256}));
    command->add_flag("--exec", options->exec, "the agent fork+execs nodes (default: fork only)");
    command
        ->add_option("--shells", options->shells,
                     "domain shells the agent keeps ready (default: the agent's, 2)")
        ->check(CLI::Range(0, 64));
    command->callback([options] {
        if (const int status = run_spawn_bench(*options); status != 0) {
            throw CLI::RuntimeError(status);
        }
    });
}

}  // namespace vdist::cli
