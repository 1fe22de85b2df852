#include "demo.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "demo_cluster.hpp"
#include "demo_erlang.hpp"
#include "vdist/bench/transport_compare.hpp"
#include "vdist/transport/host_backend.hpp"
#include "vdist/transport/vchan.hpp"

namespace vdist::cli {
namespace {

using namespace vdist::transport;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr std::uint64_t end_of_stream = ~std::uint64_t{0};

struct node_options {
    std::string role = "server";
    domid_t domid = 1;
    domid_t peer = 2;
    std::string run_dir;
    double seconds = 3.0;
    std::size_t message_size = 64;
    std::string mode = "spin";
};

/// One demo node: streams numbered frames to its peer while checking the peer's frames arrive
/// complete and in order, all on one thread (a node is a single-core VM).
int run_node(const node_options& options) {
    auto backend = host_backend::create(options.domid, options.run_dir);
    if (!backend) {
        std::fprintf(stderr, "node %u: %s\n", options.domid, backend.error().message().c_str());
        return 1;
    }
    const bool server = options.role == "server";
    const vchan_address address{server ? options.domid : options.peer,
                                server ? options.peer : options.domid, "demo"};
    const wait_policy policy{
        .mode = parse_wait_mode(options.mode).value_or(wait_mode::spin_then_block)};
    auto channel =
        server ? vchan_server(*backend, address, ring_orders::for_sizes(1 << 16, 1 << 16), policy)
               : vchan_client(*backend, address, policy, 10s);
    if (channel && server) {
        if (auto connected = channel->wait_connected(10s); !connected) {
            channel = std::unexpected(connected.error());
        }
    }
    if (!channel) {
        std::fprintf(stderr, "node %u: %s\n", options.domid, channel.error().message().c_str());
        return 1;
    }

    auto failed = [&](const std::error_code& error) {
        std::fprintf(stderr, "node %u: %s\n", options.domid, error.message().c_str());
        return 1;
    };
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t received_bytes = 0;
    std::uint64_t out_of_order = 0;
    bool sent_end = false;
    bool got_end = false;
    const auto size = std::max(options.message_size, sizeof(std::uint64_t));
    const auto stop_sending = clock::now() + std::chrono::duration<double>(options.seconds);
    auto next_report = clock::now();

    auto take = [&](const read_frame& frame) -> bool {
        std::uint64_t sequence = 0;
        if (frame.payload.size() < sizeof sequence) {
            ++out_of_order;
            return false;
        }
        std::memcpy(&sequence, frame.payload.data(), sizeof sequence);
        if (sequence == end_of_stream) {
            got_end = true;
        } else {
            out_of_order += sequence != received ? 1 : 0;
            ++received;
            received_bytes += frame.payload.size();
        }
        return channel->release(frame).has_value();
    };

    while (!(sent_end && got_end)) {
        bool progress = false;
        if (!sent_end) {
            batch_scope batch(*channel);
            const bool finishing = clock::now() >= stop_sending;
            for (int i = 0; i < 64; ++i) {
                auto frame = channel->try_reserve(finishing ? sizeof end_of_stream : size);
                if (!frame) {
                    return failed(frame.error());
                }
                if (!*frame) {
                    break;
                }
                const std::uint64_t sequence = finishing ? end_of_stream : sent;
                std::memcpy(frame->payload.data(), &sequence, sizeof sequence);
                if (!channel->commit(*frame, frame->payload.size())) {
                    return 1;
                }
                progress = true;
                if (finishing) {
                    sent_end = true;
                    break;
                }
                ++sent;
            }
        }
        for (int i = 0; i < 64 && !got_end; ++i) {
            auto frame = channel->try_read_frame();
            if (!frame) {
                return failed(frame.error());
            }
            if (!*frame) {
                break;
            }
            progress = true;
            if (!take(*frame)) {
                return 1;
            }
        }
        if (!progress && !got_end) {
            auto frame = channel->read_frame(200us);
            if (frame && *frame && !take(*frame)) {
                return 1;
            }
            if (!frame && frame.error() != errc::timed_out) {
                return failed(frame.error());
            }
        }
        if (const auto now = clock::now(); now >= next_report) {
            std::printf("progress %llu %llu %llu\n", static_cast<unsigned long long>(sent),
                        static_cast<unsigned long long>(received),
                        static_cast<unsigned long long>(received_bytes));
            std::fflush(stdout);
            next_report = now + 100ms;
        }
    }
    std::printf("done %llu %llu %llu %llu\n", static_cast<unsigned long long>(sent),
                static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(received_bytes),
                static_cast<unsigned long long>(out_of_order));
    std::fflush(stdout);
    return out_of_order == 0 ? 0 : 1;
}

/// A demo node process as the parent sees it.
struct node_process {
    pid_t pid = -1;
    int output = -1;
    std::string pending;
    std::array<std::uint64_t, 4> last{};  // sent, received, received bytes, out of order
    bool done = false;
};

std::optional<node_process> start_node(const std::vector<std::string>& args) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return std::nullopt;
    }
    std::vector<std::string> storage{"vdist", "demo-node"};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : storage) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipe_fds[1], STDOUT_FILENO);
        ::execv("/proc/self/exe", argv.data());
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    if (pid < 0) {
        ::close(pipe_fds[0]);
        return std::nullopt;
    }
    return node_process{pid, pipe_fds[0], {}, {}, false};
}

/// Read what a node printed; false when it closed its output.
bool drain(node_process& node) {
    char buffer[4096];
    const ssize_t n = ::read(node.output, buffer, sizeof buffer);
    if (n <= 0) {
        return false;
    }
    node.pending.append(buffer, static_cast<std::size_t>(n));
    for (auto newline = node.pending.find('\n'); newline != std::string::npos;
         newline = node.pending.find('\n')) {
        std::istringstream line(node.pending.substr(0, newline));
        node.pending.erase(0, newline + 1);
        std::string word;
        line >> word;
        if (word == "progress" || word == "done") {
            line >> node.last[0] >> node.last[1] >> node.last[2];
            if (word == "done") {
                line >> node.last[3];
                node.done = true;
            }
        }
    }
    return true;
}

std::string rate(double per_second, const char* unit) {
    char text[64];
    if (per_second >= 1e9) {
        std::snprintf(text, sizeof text, "%.2f G%s", per_second / 1e9, unit);
    } else if (per_second >= 1e6) {
        std::snprintf(text, sizeof text, "%.2f M%s", per_second / 1e6, unit);
    } else {
        std::snprintf(text, sizeof text, "%.1f k%s", per_second / 1e3, unit);
    }
    return text;
}

int run_demo(double seconds, std::size_t message_size, const std::string& mode, bool compare,
             bool erlang, bool cluster) {
    std::string pattern = (std::filesystem::temp_directory_path() / "vdist-demo-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::filesystem::path run_dir = pattern;
    std::printf(
        "vdist demo: two node processes on the host backend (memfd grant table, eventfds,\n"
        "Unix-socket rendezvous), one vchan with 64 KiB rings, %zu-byte frames both ways,\n"
        "wait mode %s, %.1f s.\n\n",
        message_size, mode.c_str(), seconds);
    const std::string duration = std::to_string(seconds);
    const std::string size = std::to_string(message_size);
    std::array<std::optional<node_process>, 2> nodes{
        start_node({"--role", "server", "--domid", "1", "--peer", "2", "--run-dir", run_dir,
                    "--seconds", duration, "--size", size, "--mode", mode}),
        start_node({"--role", "client", "--domid", "2", "--peer", "1", "--run-dir", run_dir,
                    "--seconds", duration, "--size", size, "--mode", mode})};
    if (!nodes[0] || !nodes[1]) {
        std::perror("fork");
        return 1;
    }
    const bool live = ::isatty(STDOUT_FILENO) != 0;
    const auto started = clock::now();
    auto last_print = started;
    std::array<bool, 2> open{true, true};
    const auto give_up = started + std::chrono::duration<double>(seconds) + 20s;
    while ((open[0] || open[1]) && clock::now() < give_up) {
        std::array<pollfd, 2> fds{};
        for (std::size_t i = 0; i < 2; ++i) {
            fds[i] = {open[i] ? nodes[i]->output : -1, POLLIN, 0};
        }
        ::poll(fds.data(), fds.size(), 100);
        for (std::size_t i = 0; i < 2; ++i) {
            if (open[i] && (fds[i].revents & (POLLIN | POLLHUP)) != 0) {
                open[i] = drain(*nodes[i]);
            }
        }
        const auto now = clock::now();
        if (now - last_print >= (live ? 100ms : 1s)) {
            last_print = now;
            const double elapsed = std::chrono::duration<double>(now - started).count();
            std::printf(
                "%s  %5.1f s  node 1 -> node 2: %11llu msgs (%s)   node 2 -> node 1: "
                "%11llu msgs (%s)   out of order: %llu%s",
                live ? "\r" : "", elapsed, static_cast<unsigned long long>(nodes[1]->last[1]),
                rate(static_cast<double>(nodes[1]->last[1]) / elapsed, "msg/s").c_str(),
                static_cast<unsigned long long>(nodes[0]->last[1]),
                rate(static_cast<double>(nodes[0]->last[1]) / elapsed, "msg/s").c_str(),
                static_cast<unsigned long long>(nodes[0]->last[3] + nodes[1]->last[3]),
                live ? "" : "\n");
            std::fflush(stdout);
        }
    }
    int failures = 0;
    for (auto& node : nodes) {
        int status = 0;
        if (node->done) {
            ::waitpid(node->pid, &status, 0);
        } else {
            ::kill(node->pid, SIGKILL);
            ::waitpid(node->pid, &status, 0);
        }
        failures += (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : 1;
        ::close(node->output);
    }
    std::filesystem::remove_all(run_dir);
    const double elapsed = std::chrono::duration<double>(clock::now() - started).count();
    const auto& one = nodes[0]->last;
    const auto& two = nodes[1]->last;
    const bool intact =
        failures == 0 && one[0] == two[1] && two[0] == one[1] && one[3] == 0 && two[3] == 0;
    std::printf(
        "%s\n  node 1 sent %llu, node 2 received %llu; node 2 sent %llu, node 1 received "
        "%llu (%s both ways, %.1f s): %s\n\n",
        live ? "" : "", static_cast<unsigned long long>(one[0]),
        static_cast<unsigned long long>(two[1]), static_cast<unsigned long long>(two[0]),
        static_cast<unsigned long long>(one[1]),
        rate(static_cast<double>(one[2] + two[2]) / elapsed, "B/s").c_str(), elapsed,
        intact ? "nothing lost, duplicated or reordered" : "MISMATCH");
    if (!intact) {
        return 1;
    }
    std::fflush(stdout);
    const int erlang_status = erlang ? run_erlang_demo() : 0;
    const int cluster_status = cluster ? run_cluster_demo(seconds) : 0;
    const int parts_status = erlang_status != 0 ? erlang_status : cluster_status;
    if (!compare) {
        return parts_status;
    }
    std::printf("Comparison (short run; `vdist bench transport` for the full one):\n\n");
    std::fflush(stdout);
    bench::transport_options options;
    options.short_run = true;
    const int compare_status = bench::run_transport_comparison(options);
    return parts_status != 0 ? parts_status : compare_status;
}

}  // namespace

void add_demo_commands(CLI::App& app) {
    struct demo_settings {
        double seconds = 3.0;
        std::size_t size = 64;
        std::string mode = "spin";
        bool compare = true;
        bool erlang = true;
        bool cluster = true;
    };
    auto settings = std::make_shared<demo_settings>();
    auto* demo = app.add_subcommand(
        "demo",
        "Two node processes stream over a ring both ways; an Erlang node (erl) meets two C++ "
        "nodes over TCP distribution; a host agent runs 8 nodes as one cluster over rings and "
        "spawns more on demand; then the transport comparison");
    demo->add_option("--seconds", settings->seconds, "How long the nodes stream")
        ->check(CLI::Range(0.1, 600.0));
    demo->add_option("--size", settings->size, "Frame payload bytes")
        ->check(CLI::Range(8, 65536 - 8));
    demo->add_option("--mode", settings->mode, "Wait mode of both nodes")
        ->check(CLI::IsMember({"busy", "spin", "block"}));
    demo->add_flag("!--no-compare", settings->compare, "Skip the comparison table");
    demo->add_flag("!--no-erlang", settings->erlang,
                   "Skip the Erlang part (skipped anyway without erl)");
    demo->add_flag("!--no-cluster", settings->cluster,
                   "Skip the cluster part (host agent, 8 nodes, on-demand nodes)");
    demo->callback([settings] {
        if (const int status = run_demo(settings->seconds, settings->size, settings->mode,
                                        settings->compare, settings->erlang, settings->cluster);
            status != 0) {
            throw CLI::RuntimeError(status);
        }
    });

    auto node = std::make_shared<node_options>();
    auto* node_command = app.add_subcommand("demo-node", "One node of the demo (started by demo)");
    node_command->group("");  // hidden
    node_command->add_option("--role", node->role)->check(CLI::IsMember({"server", "client"}));
    node_command->add_option("--domid", node->domid)->required();
    node_command->add_option("--peer", node->peer)->required();
    node_command->add_option("--run-dir", node->run_dir)->required();
    node_command->add_option("--seconds", node->seconds);
    node_command->add_option("--size", node->message_size);
    node_command->add_option("--mode", node->mode);
    node_command->callback([node] {
        if (const int status = run_node(*node); status != 0) {
            throw CLI::RuntimeError(status);
        }
    });
}

}  // namespace vdist::cli
