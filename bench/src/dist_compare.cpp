/// \file
/// `dist_bench` / `vdist bench dist`, the coordinator: a private epmd, four nodes in their own
/// processes (two C++ agents, two erl agents), interleaved rounds of commands, medians, ratios.

#include "vdist/bench/dist_compare.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "measure.hpp"
#include "vdist/bench/line_pipe.hpp"
#include "vdist/bench/median.hpp"
#include "vdist/transport/unique_fd.hpp"

#ifndef VDIST_DIST_AGENT_SCRIPT
#error "VDIST_DIST_AGENT_SCRIPT (path of dist_agent.escript) must be defined"
#endif
#ifndef VDIST_ESCRIPT
#define VDIST_ESCRIPT "escript"
#endif
#ifndef VDIST_EPMD
#define VDIST_EPMD "epmd"
#endif

extern char** environ;

namespace vdist::bench {
namespace {

using internal::failure;
using internal::outcome;
using internal::rtt_summary;
using transport::unique_fd;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto start_timeout = 60s;    // a node starting (erl takes seconds on a busy machine)
constexpr auto command_timeout = 90s;  // one command (the agents give up on a silent peer
                                       // after 20 s of silence, this is the backstop)

// --- children ------------------------------------------------------------------------------

// Every child's pid, for the watchdog (a signal handler may only kill and _exit).
constexpr std::size_t max_children = 8;
volatile sig_atomic_t child_pids[max_children] = {};

void remember_child(pid_t pid) {
    for (auto& slot : child_pids) {
        if (slot == 0) {
            slot = pid;
            return;
        }
    }
}

void forget_child(pid_t pid) {
    for (auto& slot : child_pids) {
        if (slot == pid) {
            slot = 0;
        }
    }
}

extern "C" void watchdog_expired(int) {
    constexpr char message[] = "dist_bench: watchdog expired, killing every node\n";
    (void)!::write(STDERR_FILENO, message, sizeof message - 1);
    for (auto& slot : child_pids) {
        if (slot > 0) {
            ::kill(static_cast<pid_t>(slot), SIGKILL);
        }
    }
    ::_exit(3);
}

/// A child process of the run, killed and reaped on destruction unless it already ended.
/// With `pipes`, its standard input and output are pipes to this process (one command line,
/// one reply line); its standard error (and output without pipes) goes to `log`. It dies with
/// this process (PR_SET_PDEATHSIG) even if nothing here runs any more.
class child {
  public:
    child() = default;
    child(child&&) = delete;
    child& operator=(child&&) = delete;
    ~child() { stop(); }

    [[nodiscard]] outcome<void> start(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& environment_overrides,
                                      const std::filesystem::path& log, bool pipes) {
        // Everything allocated before fork: this process has one thread, but keep the child's
        // path to exec short and simple.
        std::vector<std::string> environment;
        for (char** entry = environ; *entry != nullptr; ++entry) {
            const std::string_view text(*entry);
            const bool overridden = std::ranges::any_of(environment_overrides, [&](const auto& o) {
                return text.substr(0, text.find('=')) == o.substr(0, o.find('='));
            });
            if (!overridden) {
                environment.emplace_back(text);
            }
        }
        environment.insert(environment.end(), environment_overrides.begin(),
                           environment_overrides.end());
        std::vector<char*> env_pointers;
        for (auto& entry : environment) {
            env_pointers.push_back(entry.data());
        }
        env_pointers.push_back(nullptr);
        std::vector<std::string> args = argv;
        std::vector<char*> arg_pointers;
        for (auto& arg : args) {
            arg_pointers.push_back(arg.data());
        }
        arg_pointers.push_back(nullptr);

        const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            return failure("open " + log.string(), std::error_code(errno, std::generic_category()));
        }
        unique_fd log_guard(log_fd);
        int to_child[2] = {-1, -1};
        int from_child[2] = {-1, -1};
        if (pipes && (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)) {
            return failure("pipe", std::error_code(errno, std::generic_category()));
        }
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(126);
            }
            ::signal(SIGPIPE, SIG_DFL);
            ::signal(SIGALRM, SIG_DFL);
            ::dup2(pipes ? to_child[0] : ::open("/dev/null", O_RDONLY), STDIN_FILENO);
            ::dup2(pipes ? from_child[1] : log_fd, STDOUT_FILENO);
            ::dup2(log_fd, STDERR_FILENO);
            ::execvpe(arg_pointers[0], arg_pointers.data(), env_pointers.data());
            ::_exit(127);
        }
        if (pipes) {
            ::close(to_child[0]);
            ::close(from_child[1]);
            pipe_ = line_pipe(to_child[1], from_child[0]);
        }
        if (pid_ < 0) {
            return failure("fork", std::error_code(errno, std::generic_category()));
        }
        remember_child(pid_);
        return {};
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

    [[nodiscard]] bool write_line(std::string_view line) { return pipe_.write_line(line); }

    /// The next line of the child's output, or nullopt at its end or after `timeout`.
    [[nodiscard]] std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
        return pipe_.read_line(timeout);
    }

    /// Closes its input (agents then quit), waits up to `grace`, kills it, reaps it.
    void stop(std::chrono::milliseconds grace = 3000ms) noexcept {
        if (pid_ <= 0) {
            return;
        }
        if (pipe_.open()) {
            (void)write_line("quit");
            pipe_.close_input();
        }
        const auto deadline = steady::now() + grace;
        for (;;) {
            int status = 0;
            const pid_t done = ::waitpid(pid_, &status, WNOHANG);
            if (done == pid_ || (done < 0 && errno != EINTR)) {
                break;
            }
            if (steady::now() >= deadline) {
                ::kill(pid_, SIGKILL);
                (void)::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(5ms);
        }
        forget_child(pid_);
        pid_ = -1;
        pipe_.close();
    }

  private:
    pid_t pid_ = -1;
    line_pipe pipe_;
};

// --- epmd ----------------------------------------------------------------------------------

[[nodiscard]] sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/// A port nobody listens on right now (the kernel's pick).
[[nodiscard]] std::uint16_t free_port() {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto address = loopback(0);
    if (!fd || ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        return 0;
    }
    socklen_t length = sizeof address;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

[[nodiscard]] bool accepts_connections(std::uint16_t port) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto address = loopback(port);
    return fd &&
           ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

// --- what runs -----------------------------------------------------------------------------

enum class kind { vdist, erl };

struct node_spec {
    std::string name;  // alive@127.0.0.1
    kind what;
    unsigned domid = 0;  // a C++ node on rings: its domid in the host store
};

/// A pair: the driver measures against the responder.
struct pair_spec {
    std::string label;  // driver→responder
    std::size_t driver;
    std::size_t responder;
    bool needs_erl;
    /// How both C++ nodes wait while this pair measures ("busy"); empty: their default. Set
    /// before and reset after, so that busy-polling nodes never take the CPU from other pairs.
    std::string idle;
};

/// One node process and what it said when it started.
struct agent_node {
    explicit agent_node(node_spec node) : spec(std::move(node)) {}

    node_spec spec;
    child process;
    std::string description;
    bool failed = false;
};

/// Counts and window for one payload size.
struct size_plan {
    std::size_t bytes = 0;
    std::size_t trips = 0;
    std::size_t warmup = 0;
    std::size_t stream_count = 0;
    std::size_t window = 0;
    std::size_t ack_every = 0;
};

/// The measurements of one pair at one size in one round.
struct cell {
    std::optional<rtt_summary> rtt;
    std::optional<double> msgs_per_s;
};

[[nodiscard]] size_plan plan_for(std::size_t bytes, const dist_options& options) {
    size_plan p;
    p.bytes = bytes;
    // Round trips: fewer for big payloads (each is a 2 × size copy through both kernels).
    const std::size_t trips =
        options.short_run ? std::min<std::size_t>(options.trips, 200) : options.trips;
    p.trips = bytes >= 65536 ? std::max<std::size_t>(trips / 4, 10) : trips;
    p.warmup = std::max<std::size_t>(p.trips / 10, 5);
    // The window holds about 2 MiB (16..256 messages); acks every quarter window.
    p.window =
        std::clamp<std::size_t>((std::size_t{2} << 20) / std::max<std::size_t>(bytes, 1), 16, 256);
    p.ack_every = p.window / 4;
    // About 64 MiB or 100000 messages per stream, a whole number of acks.
    std::size_t count = std::clamp<std::size_t>(
        (std::size_t{64} << 20) / std::max<std::size_t>(bytes, 1), p.window * 8, 100000);
    if (options.short_run) {
        count = std::min<std::size_t>(count, p.window * 16);
    }
    p.stream_count = (count / p.ack_every) * p.ack_every;
    return p;
}

[[nodiscard]] std::string size_text(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0) {
        return std::to_string(bytes >> 20) + " MiB";
    }
    if (bytes >= 1024 && bytes % 1024 == 0) {
        return std::to_string(bytes >> 10) + " KiB";
    }
    return std::to_string(bytes) + " B";
}

[[nodiscard]] std::string self_executable() {
    std::error_code error;
    auto path = std::filesystem::read_symlink("/proc/self/exe", error);
    return error ? std::string("/proc/self/exe") : path.string();
}

[[nodiscard]] std::string random_cookie() {
    std::mt19937_64 random{std::random_device{}()};
    return fmt::format("distbench{:016x}", random());
}

[[nodiscard]] std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string one, five, fifteen;
    in >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen;
}

[[nodiscard]] std::string tail_of(const std::filesystem::path& file, std::size_t lines) {
    std::ifstream in(file);
    std::vector<std::string> all;
    for (std::string line; std::getline(in, line);) {
        all.push_back(std::move(line));
    }
    std::string out;
    for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
        out += "    " + all[i] + "\n";
    }
    return out;
}

/// The run: nodes, epmd, results.
class run {
  public:
    explicit run(const dist_options& options) : options_(options) {}

    int execute();

  private:
    [[nodiscard]] outcome<void> start_epmd();
    [[nodiscard]] outcome<void> start_store();
    [[nodiscard]] outcome<void> start_nodes();
    [[nodiscard]] std::filesystem::path store_socket() const { return log_dir_ / "store.sock"; }
    /// Sets how the pair's nodes wait (pair_spec::idle), or back to their default.
    [[nodiscard]] outcome<void> set_idle(const pair_spec& pair, bool measuring);
    /// Sends `command` to node `driver` and returns the numbers of its `ok` reply.
    [[nodiscard]] outcome<std::vector<std::int64_t>> ask(std::size_t driver,
                                                         const std::string& command);
    [[nodiscard]] outcome<rtt_summary> pingpong(const pair_spec& pair, std::size_t bytes,
                                                std::size_t warmup, std::size_t trips);
    [[nodiscard]] outcome<double> stream(const pair_spec& pair, const size_plan& plan);
    void print_configuration() const;
    void print_results() const;
    void note_error(const std::string& what);
    void shutdown();

    dist_options options_;
    std::filesystem::path log_dir_;
    std::string cookie_ = random_cookie();
    std::uint16_t epmd_port_ = 0;
    child epmd_;
    child store_;  // the host store of the ring pairs
    std::vector<std::unique_ptr<agent_node>> nodes_;
    std::vector<pair_spec> pairs_;
    std::vector<size_plan> sizes_;
    // results_[pair][size][round]
    std::vector<std::vector<std::vector<cell>>> results_;
    // big echo: big_[pair] = samples in ns
    std::vector<std::vector<std::int64_t>> big_;
    std::vector<std::string> errors_;
    steady::time_point started_ = steady::now();
};

void run::note_error(const std::string& what) {
    errors_.push_back(what);
    std::fprintf(stderr, "dist_bench: %s\n", what.c_str());
}

outcome<void> run::start_epmd() {
    for (int attempt = 0; attempt < 5; ++attempt) {
        epmd_port_ = free_port();
        if (epmd_port_ == 0) {
            continue;
        }
        // In the foreground (no -daemon): a child of this run, killed at its end.
        if (auto started = epmd_.start({VDIST_EPMD, "-port", std::to_string(epmd_port_)}, {},
                                       log_dir_ / "epmd.log", false);
            !started) {
            return started;
        }
        const auto deadline = steady::now() + 5s;
        while (steady::now() < deadline) {
            int status = 0;
            if (::waitpid(epmd_.pid(), &status, WNOHANG) == epmd_.pid()) {
                break;  // died: the port was taken meanwhile
            }
            if (accepts_connections(epmd_port_)) {
                return {};
            }
            std::this_thread::sleep_for(20ms);
        }
        epmd_.stop(0ms);
    }
    return failure("epmd did not start (" + std::string(VDIST_EPMD) + ", see " +
                   (log_dir_ / "epmd.log").string() + ")");
}

outcome<void> run::start_store() {
    std::vector<std::string> argv{self_executable()};
    argv.insert(argv.end(), options_.agent_prefix.begin(), options_.agent_prefix.end());
    argv.insert(argv.end(), {"--store-server", store_socket().string()});
    for (const auto& n : nodes_) {
        if (n->spec.domid != 0) {
            argv.insert(argv.end(),
                        {"--ring-node", n->spec.name + "=" + std::to_string(n->spec.domid)});
        }
    }
    if (auto started = store_.start(argv, {}, log_dir_ / "store.log", true); !started) {
        return failure("starting the host store: " + started.error());
    }
    const auto line = store_.read_line(start_timeout);
    if (!line || !line->starts_with("ready ")) {
        return failure("the host store did not start" + (line ? ": " + *line : std::string()));
    }
    std::error_code ignored;
    std::filesystem::create_directories(log_dir_ / "run", ignored);
    return {};
}

outcome<void> run::set_idle(const pair_spec& pair, bool measuring) {
    if (pair.idle.empty()) {
        return {};
    }
    for (const std::size_t n : {pair.driver, pair.responder}) {
        if (nodes_[n]->spec.what != kind::vdist) {
            continue;
        }
        if (auto done = ask(n, "idle " + (measuring ? pair.idle : std::string("default"))); !done) {
            return failure(done.error());
        }
    }
    return {};
}

outcome<void> run::start_nodes() {
    const std::string epmd_env = "ERL_EPMD_PORT=" + std::to_string(epmd_port_);
    const std::string self = self_executable();
    // Start every node first, then wait for them: the erl nodes start in parallel.
    for (auto& n : nodes_) {
        const auto log = log_dir_ / (n->spec.name.substr(0, n->spec.name.find('@')) + ".log");
        std::vector<std::string> argv;
        std::vector<std::string> environment{epmd_env};
        if (n->spec.what == kind::vdist) {
            argv.push_back(self);
            argv.insert(argv.end(), options_.agent_prefix.begin(), options_.agent_prefix.end());
            argv.insert(argv.end(), {"--agent", n->spec.name, "--cookie", cookie_});
            if (!options_.vdist_idle.empty()) {
                argv.insert(argv.end(), {"--idle", options_.vdist_idle});
            }
            if (n->spec.domid != 0) {
                argv.insert(argv.end(),
                            {"--ring-domid", std::to_string(n->spec.domid), "--store",
                             store_socket().string(), "--run-dir", (log_dir_ / "run").string()});
            }
        } else {
            argv = {VDIST_ESCRIPT, VDIST_DIST_AGENT_SCRIPT};
            std::string flags = "-name " + n->spec.name + " -setcookie " + cookie_ +
                                " -start_epmd false -kernel connect_all false";
            if (!options_.erl_flags.empty()) {
                flags += " " + options_.erl_flags;
            }
            environment.push_back("ERL_FLAGS=" + flags);
        }
        if (auto started = n->process.start(argv, environment, log, true); !started) {
            return failure("starting " + n->spec.name + ": " + started.error());
        }
    }
    for (auto& n : nodes_) {
        const auto line = n->process.read_line(start_timeout);
        if (!line || !line->starts_with("ready ")) {
            const auto log = log_dir_ / (n->spec.name.substr(0, n->spec.name.find('@')) + ".log");
            return failure(n->spec.name + " did not start" + (line ? ": " + *line : "") +
                           "; its log:\n" + tail_of(log, 10));
        }
        n->description = line->substr(6);
    }
    return {};
}

outcome<std::vector<std::int64_t>> run::ask(std::size_t driver, const std::string& command) {
    agent_node& n = *nodes_[driver];
    if (n.failed) {
        return failure(n.spec.name + " failed earlier");
    }
    if (!n.process.write_line(command)) {
        n.failed = true;
        return failure(n.spec.name + " is gone");
    }
    const auto line = n.process.read_line(command_timeout);
    if (!line) {
        // Its state is unknown now (a reply may still come): no more commands for it.
        n.failed = true;
        return failure(n.spec.name + ": no answer to `" + command + "`");
    }
    if (!line->starts_with("ok")) {
        return failure(n.spec.name + ": `" + command + "`: " + *line);
    }
    std::vector<std::int64_t> numbers;
    std::istringstream in(line->substr(2));
    for (std::int64_t number = 0; in >> number;) {
        numbers.push_back(number);
    }
    return numbers;
}

outcome<rtt_summary> run::pingpong(const pair_spec& pair, std::size_t bytes, std::size_t warmup,
                                   std::size_t trips) {
    auto samples =
        ask(pair.driver, fmt::format("pingpong {} {} {} {}", nodes_[pair.responder]->spec.name,
                                     bytes, warmup, trips));
    if (!samples) {
        return std::unexpected(samples.error());
    }
    if (samples->size() != trips) {
        return failure(
            fmt::format("{}: {} round trips instead of {}", pair.label, samples->size(), trips));
    }
    return internal::summarize(*samples);
}

outcome<double> run::stream(const pair_spec& pair, const size_plan& plan) {
    auto elapsed =
        ask(pair.driver, fmt::format("stream {} {} {} {} {}", nodes_[pair.responder]->spec.name,
                                     plan.bytes, plan.stream_count, plan.window, plan.ack_every));
    if (!elapsed) {
        return std::unexpected(elapsed.error());
    }
    if (elapsed->size() != 1 || elapsed->front() <= 0) {
        return failure(pair.label + ": bad stream reply");
    }
    return static_cast<double>(plan.stream_count) * 1e9 / static_cast<double>(elapsed->front());
}

void run::print_configuration() const {
    std::printf(
        "dist_bench: Erlang distribution on one machine, vdist C++ nodes over TCP and over "
        "vchan rings, erl nodes over TCP\n");
#ifdef __OPTIMIZE__
    std::printf("build:     optimized\n");
#else
    std::printf("build:     NOT optimized (use -DCMAKE_BUILD_TYPE=RelWithDebInfo)\n");
#endif
    std::printf("machine:   %u CPUs, load average %s (at start)\n",
                std::thread::hardware_concurrency(), load_average().c_str());
    std::printf("epmd:      private, port %u, started and killed by this run\n", epmd_port_);
    std::printf("nodes:     each its own OS process, not pinned, all on 127.0.0.1\n");
    for (const auto& n : nodes_) {
        if (n->spec.what == kind::vdist) {
            std::printf(
                "  %-20s C++: this program re-executed as an agent (pid %d), one thread; "
                "%s\n",
                n->spec.name.c_str(), n->process.pid(), n->description.c_str());
        } else {
            std::printf(
                "  %-20s erl: escript %s (pid %d); %s%s%s\n", n->spec.name.c_str(),
                VDIST_DIST_AGENT_SCRIPT, n->process.pid(), n->description.c_str(),
                options_.erl_flags.empty() ? "" : ", ERL_FLAGS += ", options_.erl_flags.c_str());
        }
    }
    if (!options_.no_rings) {
        std::printf(
            "rings:     ring_a/ring_b find each other in a host store (a child serving XenStore's "
            "protocol on %s);\n"
            "           vchan rings of the host backend (memfd pages, eventfds); `ring→ring busy`"
            " switches both\n"
            "           nodes to busy-polling only while that pair measures\n",
            store_socket().c_str());
    }
    std::printf("pairs:     driver→responder; the driver measures, the responder answers\n");
    std::printf("payloads:  binaries of");
    for (const auto& s : sizes_) {
        std::printf(" %s", size_text(s.bytes).c_str());
    }
    std::printf("\n");
    std::printf(
        "round trip: driver sends {ping, self(), Bin}, responder answers {pong, Bin}; "
        "per size N trips after N/10 warm-up:");
    for (const auto& s : sizes_) {
        std::printf(" %zu", s.trips);
    }
    std::printf("\n");
    std::printf(
        "stream:    driver sends M messages {data, Bin} with at most W not yet acked, the "
        "responder acks every K;\n           msgs/s = M / (first send → ack of the "
        "M-th). (M, W, K):");
    for (const auto& s : sizes_) {
        std::printf(" %s (%zu, %zu, %zu)", size_text(s.bytes).c_str(), s.stream_count, s.window,
                    s.ack_every);
    }
    std::printf("\n");
    std::printf(
        "rounds:    %u, interleaved (every size and pair once per round, pair order "
        "rotated); every number is the median over the rounds\n",
        options_.rounds);
    std::fflush(stdout);
}

[[nodiscard]] std::string us_text(double us) {
    return us >= 10000 ? fmt::format("{:.0f}", us) : fmt::format("{:.1f}", us);
}

void run::print_results() const {
    const auto median_of = [&](std::size_t p, std::size_t s, auto field) -> std::optional<double> {
        std::vector<double> values;
        for (const auto& c : results_[p][s]) {
            if (auto v = field(c)) {
                values.push_back(*v);
            }
        }
        if (values.empty()) {
            return std::nullopt;
        }
        return median(values);
    };
    const auto range_of = [&](std::size_t p, std::size_t s) -> std::string {
        double low = 0;
        double high = 0;
        bool any = false;
        for (const auto& c : results_[p][s]) {
            if (c.msgs_per_s) {
                low = any ? std::min(low, *c.msgs_per_s) : *c.msgs_per_s;
                high = any ? std::max(high, *c.msgs_per_s) : *c.msgs_per_s;
                any = true;
            }
        }
        return any ? fmt::format("{:.0f}..{:.0f}", low, high) : "-";
    };

    std::printf("\nresults (median over rounds; round trip in µs)\n");
    std::printf("%-8s %-13s %9s %9s %9s %9s %12s %9s  %s\n", "size", "pair", "rtt p50", "p90",
                "p99", "max", "msgs/s", "MiB/s", "msgs/s over rounds (min..max)");
    for (std::size_t s = 0; s < sizes_.size(); ++s) {
        for (std::size_t p = 0; p < pairs_.size(); ++p) {
            const auto field = [](auto member) {
                return [member](const cell& c) -> std::optional<double> {
                    return c.rtt ? std::optional<double>((*c.rtt).*member) : std::nullopt;
                };
            };
            const auto p50 = median_of(p, s, field(&rtt_summary::p50_us));
            const auto p90 = median_of(p, s, field(&rtt_summary::p90_us));
            const auto p99 = median_of(p, s, field(&rtt_summary::p99_us));
            const auto max = median_of(p, s, field(&rtt_summary::max_us));
            const auto rate = median_of(p, s, [](const cell& c) { return c.msgs_per_s; });
            const auto show = [](const std::optional<double>& v) {
                return v ? us_text(*v) : std::string("-");
            };
            std::printf("%-8s %-13s %9s %9s %9s %9s %12s %9s  %s\n",
                        size_text(sizes_[s].bytes).c_str(), pairs_[p].label.c_str(),
                        show(p50).c_str(), show(p90).c_str(), show(p99).c_str(), show(max).c_str(),
                        rate ? fmt::format("{:.0f}", *rate).c_str() : "-",
                        rate ? fmt::format("{:.1f}", *rate * static_cast<double>(sizes_[s].bytes) /
                                                         (1024.0 * 1024.0))
                                   .c_str()
                             : "-",
                        range_of(p, s).c_str());
        }
    }

    // Ratios within each round against erl→erl (the last pair), then the median.
    const auto baseline = std::ranges::find(pairs_, std::string("erl→erl"), &pair_spec::label);
    if (baseline == pairs_.end()) {
        std::printf("\nno erl→erl baseline in this run: no ratios\n");
    } else {
        const std::size_t b = static_cast<std::size_t>(baseline - pairs_.begin());
        std::printf(
            "\nratios against erl→erl, taken within each round, median over rounds:\n"
            "  throughput = msgs/s of the pair / msgs/s of erl→erl     (higher is better; > 1: "
            "faster than erl↔erl)\n"
            "  round trip = rtt p50 of the pair / rtt p50 of erl→erl   (lower is better; < 1: "
            "faster than erl↔erl)\n"
            "  targets: vdist→vdist (TCP) at least matches erl↔erl: throughput >= 1, round "
            "trip <= 1;\n"
            "           ring→ring busy (rings, busy-polling nodes), small messages: throughput >= "
            "20, round trip <= 0.1\n");
        std::printf("%-8s %-13s %11s %11s  %s\n", "size", "pair", "throughput", "round trip",
                    "target");
        for (std::size_t s = 0; s < sizes_.size(); ++s) {
            for (std::size_t p = 0; p < pairs_.size(); ++p) {
                if (p == b) {
                    continue;
                }
                std::vector<double> rate_ratios;
                std::vector<double> rtt_ratios;
                for (std::size_t r = 0; r < results_[p][s].size(); ++r) {
                    const cell& ours = results_[p][s][r];
                    const cell& theirs = results_[b][s][r];
                    if (ours.msgs_per_s && theirs.msgs_per_s && *theirs.msgs_per_s > 0) {
                        rate_ratios.push_back(*ours.msgs_per_s / *theirs.msgs_per_s);
                    }
                    if (ours.rtt && theirs.rtt && theirs.rtt->p50_us > 0) {
                        rtt_ratios.push_back(ours.rtt->p50_us / theirs.rtt->p50_us);
                    }
                }
                const bool has_rate = !rate_ratios.empty();
                const bool has_rtt = !rtt_ratios.empty();
                const double rate = has_rate ? median(rate_ratios) : 0;
                const double rtt = has_rtt ? median(rtt_ratios) : 0;
                std::string verdict;
                if (pairs_[p].label == "ring→ring busy" && sizes_[s].bytes <= 1024) {
                    verdict =
                        !has_rate || !has_rtt ? "n/a"
                        : rate >= 20.0 && rtt <= 0.1
                            ? "met (>= 20x, <= 0.1x)"
                            : fmt::format("NOT MET ({})", rate < 20.0 && rtt > 0.1 ? "< 20x, > 0.1x"
                                                          : rate < 20.0            ? "< 20x"
                                                                                   : "> 0.1x");
                } else if (pairs_[p].label == "vdist→vdist") {
                    verdict = !has_rate || !has_rtt ? "n/a"
                              : rate >= 1.0 && rtt <= 1.0
                                  ? "met"
                                  : fmt::format("NOT MET ({})", rate < 1.0 && rtt > 1.0
                                                                    ? "throughput, round trip"
                                                                : rate < 1.0 ? "throughput"
                                                                             : "round trip");
                }
                std::printf("%-8s %-13s %11s %11s  %s\n", size_text(sizes_[s].bytes).c_str(),
                            pairs_[p].label.c_str(),
                            has_rate ? fmt::format("{:.2f}", rate).c_str() : "n/a",
                            has_rtt ? fmt::format("{:.2f}", rtt).c_str() : "n/a", verdict.c_str());
            }
        }
    }

    if (options_.big_bytes > 0) {
        std::printf(
            "\nbig echo: one {ping, self(), Bin} of %s and its {pong, Bin}, %u time%s per "
            "pair, interleaved, after the rounds; median, and / erl→erl of the medians (lower is "
            "better)\n",
            size_text(options_.big_bytes).c_str(), options_.big_rounds,
            options_.big_rounds == 1 ? "" : "s");
        std::optional<double> baseline_ms;
        for (std::size_t p = 0; p < pairs_.size(); ++p) {
            if (pairs_[p].label == "erl→erl" && !big_[p].empty()) {
                std::vector<double> ms;
                for (const auto ns : big_[p]) {
                    ms.push_back(static_cast<double>(ns) / 1e6);
                }
                baseline_ms = median(ms);
            }
        }
        std::printf("%-13s %12s %10s  %s\n", "pair", "round trip", "/ erl→erl", "every round (ms)");
        for (std::size_t p = 0; p < pairs_.size(); ++p) {
            if (big_[p].empty()) {
                std::printf("%-13s %12s\n", pairs_[p].label.c_str(), "-");
                continue;
            }
            std::vector<double> ms;
            for (const auto ns : big_[p]) {
                ms.push_back(static_cast<double>(ns) / 1e6);
            }
            const double m = median(ms);
            std::string each;
            for (const double one : ms) {
                each += fmt::format("{}{:.0f}", each.empty() ? "" : ", ", one);
            }
            std::printf("%-13s %9.1f ms %10s  %s\n", pairs_[p].label.c_str(), m,
                        baseline_ms ? fmt::format("{:.2f}", m / *baseline_ms).c_str() : "-",
                        each.c_str());
        }
    }
}

void run::shutdown() {
    // Agents first (they unregister from epmd), then epmd.
    for (auto& n : nodes_) {
        n->process.stop();
    }
    store_.stop();
    epmd_.stop(0ms);
}

int run::execute() {
    char pattern[] = "/tmp/vdist-dist-bench-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
        std::fprintf(stderr, "dist_bench: mkdtemp: %s\n", std::strerror(errno));
        return 2;
    }
    log_dir_ = pattern;

    const bool with_erl = !options_.no_erl && ::access(VDIST_ESCRIPT, X_OK) == 0;
    nodes_.push_back(std::make_unique<agent_node>(node_spec{"vdist_a@127.0.0.1", kind::vdist}));
    nodes_.push_back(std::make_unique<agent_node>(node_spec{"vdist_b@127.0.0.1", kind::vdist}));
    pairs_.push_back({"vdist→vdist", 0, 1, false, ""});
    if (!options_.no_rings) {
        // The same C++ nodes' code over vchan rings (host backend), found in a host store.
        const std::size_t a = nodes_.size();
        nodes_.push_back(
            std::make_unique<agent_node>(node_spec{"ring_a@127.0.0.1", kind::vdist, 1}));
        nodes_.push_back(
            std::make_unique<agent_node>(node_spec{"ring_b@127.0.0.1", kind::vdist, 2}));
        pairs_.push_back({"ring→ring", a, a + 1, false, ""});
        pairs_.push_back({"ring→ring busy", a, a + 1, false, "busy"});
    }
    if (with_erl) {
        const std::size_t e = nodes_.size();
        nodes_.push_back(std::make_unique<agent_node>(node_spec{"erl_a@127.0.0.1", kind::erl}));
        nodes_.push_back(std::make_unique<agent_node>(node_spec{"erl_b@127.0.0.1", kind::erl}));
        pairs_.push_back({"vdist→erl", 0, e, true, ""});
        pairs_.push_back({"erl→vdist", e, 0, true, ""});
        pairs_.push_back({"erl→erl", e, e + 1, true, ""});
    }
    for (const auto bytes : options_.sizes) {
        sizes_.push_back(plan_for(bytes, options_));
    }

    if (auto started = start_epmd(); !started) {
        std::fprintf(stderr, "dist_bench: %s\n", started.error().c_str());
        shutdown();
        return 2;
    }
    if (!options_.no_rings) {
        if (auto started = start_store(); !started) {
            std::fprintf(stderr, "dist_bench: %s\n", started.error().c_str());
            shutdown();
            return 2;
        }
    }
    if (auto started = start_nodes(); !started) {
        std::fprintf(stderr, "dist_bench: %s\n", started.error().c_str());
        shutdown();
        std::fprintf(stderr, "dist_bench: logs kept in %s\n", log_dir_.c_str());
        return 2;
    }
    if (!with_erl) {
        std::printf("erl: %s, vdist→vdist only, no ratios\n",
                    options_.no_erl ? "left out (--no-erl)" : "escript not found");
    }
    print_configuration();

    // Warm-up: every connection set up and every code path run once.
    for (const auto& pair : pairs_) {
        for (const auto& s : sizes_) {
            if (auto idle = set_idle(pair, true); !idle) {
                note_error("idle " + pair.label + ": " + idle.error());
            }
            if (auto warm = pingpong(pair, s.bytes, 0, 20); !warm) {
                note_error("warm-up " + pair.label + ": " + warm.error());
            }
            if (auto idle = set_idle(pair, false); !idle) {
                note_error("idle " + pair.label + ": " + idle.error());
            }
        }
    }

    results_.assign(pairs_.size(), std::vector<std::vector<cell>>(
                                       sizes_.size(), std::vector<cell>(options_.rounds)));
    for (unsigned r = 0; r < options_.rounds; ++r) {
        std::fprintf(stderr, "dist_bench: round %u/%u\n", r + 1, options_.rounds);
        for (std::size_t s = 0; s < sizes_.size(); ++s) {
            for (std::size_t i = 0; i < pairs_.size(); ++i) {
                const std::size_t p = (i + r) % pairs_.size();
                cell& c = results_[p][s][r];
                if (auto idle = set_idle(pairs_[p], true); !idle) {
                    note_error("idle " + pairs_[p].label + ": " + idle.error());
                }
                if (auto rtt =
                        pingpong(pairs_[p], sizes_[s].bytes, sizes_[s].warmup, sizes_[s].trips)) {
                    c.rtt = *rtt;
                } else {
                    note_error(pairs_[p].label + " round trip: " + rtt.error());
                }
                if (auto rate = stream(pairs_[p], sizes_[s])) {
                    c.msgs_per_s = *rate;
                } else {
                    note_error(pairs_[p].label + " stream: " + rate.error());
                }
                if (auto idle = set_idle(pairs_[p], false); !idle) {
                    note_error("idle " + pairs_[p].label + ": " + idle.error());
                }
            }
        }
    }

    big_.assign(pairs_.size(), {});
    if (options_.big_bytes > 0) {
        std::fprintf(stderr, "dist_bench: big echo (%s)\n", size_text(options_.big_bytes).c_str());
        for (unsigned r = 0; r < options_.big_rounds; ++r) {
            for (std::size_t i = 0; i < pairs_.size(); ++i) {
                const std::size_t p = (i + r) % pairs_.size();
                if (!pairs_[p].idle.empty()) {
                    continue;  // the big echo is bandwidth, not waiting: once per pair of nodes
                }
                auto samples =
                    ask(pairs_[p].driver,
                        fmt::format("pingpong {} {} 0 1", nodes_[pairs_[p].responder]->spec.name,
                                    options_.big_bytes));
                if (samples && samples->size() == 1) {
                    big_[p].push_back(samples->front());
                } else {
                    note_error(pairs_[p].label + " big echo: " +
                               (samples ? std::string("bad reply") : samples.error()));
                }
            }
        }
    }

    print_results();
    shutdown();
    const double elapsed = std::chrono::duration<double>(steady::now() - started_).count();
    std::printf("\nload average at end: %s; elapsed %.1f s\n", load_average().c_str(), elapsed);
    if (!errors_.empty()) {
        std::printf("\n%zu measurement%s failed:\n", errors_.size(),
                    errors_.size() == 1 ? "" : "s");
        for (const auto& e : errors_) {
            std::printf("  %s\n", e.c_str());
        }
        std::printf("node logs kept in %s\n", log_dir_.c_str());
        return 1;
    }
    if (options_.keep_logs) {
        std::printf("node logs kept in %s\n", log_dir_.c_str());
    } else {
        std::error_code ignored;
        std::filesystem::remove_all(log_dir_, ignored);
    }
    return 0;
}

}  // namespace

int run_dist_comparison(const dist_options& given) {
    dist_options options = given;
    if (options.sizes.empty()) {
        options.sizes = options.short_run ? std::vector<std::size_t>{16, 65536}
                                          : std::vector<std::size_t>{16, 1024, 65536};
    }
    if (options.short_run) {
        options.rounds = 1;
    }
    if (options.rounds == 0 || options.trips == 0) {
        std::fprintf(stderr, "dist_bench: --rounds and --trips must be at least 1\n");
        return 2;
    }
    // SIGPIPE: a node that died shows as a failed write. The watchdog bounds the whole run;
    // every child also dies with this process (PR_SET_PDEATHSIG).
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGALRM, watchdog_expired);
    const unsigned watchdog_seconds = options.short_run ? 120 : 120 + 60 * options.rounds;
    ::alarm(watchdog_seconds);
    int status = 0;
    {
        run r(options);
        status = r.execute();
    }
    ::alarm(0);
    return status;
}

void setup_dist_command(CLI::App& command, std::vector<std::string> agent_prefix) {
    struct values {
        dist_options options;
        std::string agent;
        std::string cookie;
        std::string idle;
        ring_agent_options rings;
        std::string store_server;
        std::vector<std::string> ring_nodes;
        CLI::Option* big_option = nullptr;
        CLI::Option* big_rounds_option = nullptr;
    };
    auto v = std::make_shared<values>();
    v->options.agent_prefix = std::move(agent_prefix);
    command
        .add_option("--rounds", v->options.rounds,
                    "interleaved rounds, the median is reported (default 5; --short 1)")
        ->check(CLI::Range(1U, 1000U));
    command
        .add_option("--sizes", v->options.sizes,
                    "payload sizes, comma-separated, k = 1024 (default 16,1k,64k; --short 16,64k)")
        ->delimiter(',')
        ->transform(CLI::AsSizeValue(false));
    command
        .add_option("--trips", v->options.trips,
                    "round trips per measurement at small sizes, a quarter at 64 KiB and up "
                    "(default 2000)")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
    v->big_option = command
                        .add_option("--big", v->options.big_bytes,
                                    "size of the big echo round trip, 0: none (default 64m; "
                                    "--short 1m)")
                        ->transform(CLI::AsSizeValue(false));
    v->big_rounds_option =
        command
            .add_option("--big-rounds", v->options.big_rounds,
                        "big echo round trips per pair, interleaved, median reported (default 3; "
                        "--short 1)")
            ->check(CLI::Range(1U, 100U));
    command.add_flag("--no-erl", v->options.no_erl, "vdist→vdist only (no erl nodes, no ratios)");
    command.add_flag("--no-rings", v->options.no_rings,
                     "leave out the ring pairs (C++ nodes over vchan rings)");
    command.add_option("--ring-domid", v->rings.domid, "(internal) the agent's domid")->group("");
    command.add_option("--store", v->rings.store, "(internal) the host store's socket")->group("");
    command.add_option("--run-dir", v->rings.run_dir, "(internal) rendezvous sockets")->group("");
    command.add_option("--store-server", v->store_server, "(internal) serve the host store")
        ->group("");
    command.add_option("--ring-node", v->ring_nodes, "(internal) NAME=DOMID in the store")
        ->group("");
    command.add_option("--erl-flags", v->options.erl_flags,
                       "added to the erl nodes' ERL_FLAGS, e.g. \"+S 1\"");
    command
        .add_option("--vdist-idle", v->options.vdist_idle,
                    "how the C++ nodes wait when idle: spin (spin_then_block), block or busy "
                    "(default: the node's default, spin)")
        ->check(CLI::IsMember({"spin", "block", "busy"}));
    command.add_flag("--short", v->options.short_run,
                     "smoke run: one round, 16 B and 64 KiB, few messages, 1 MiB big echo");
    command.add_flag("--keep-logs", v->options.keep_logs, "keep the nodes' logs");
    command.add_option("--agent", v->agent, "(internal) run as the C++ node NAME")->group("");
    command.add_option("--cookie", v->cookie, "(internal) the agent's cookie")->group("");
    command.add_option("--idle", v->idle, "(internal) the agent's idle mode")->group("");
    command.callback([v] {
        int status = 0;
        if (!v->store_server.empty()) {
            status = run_bench_store(v->store_server, v->ring_nodes);
        } else if (!v->agent.empty()) {
            status = run_dist_agent(v->agent, v->cookie, v->idle, v->rings);
        } else {
            dist_options options = v->options;
            if (options.short_run && v->big_option->count() == 0) {
                options.big_bytes = std::size_t{1} << 20;
            }
            if (options.short_run && v->big_rounds_option->count() == 0) {
                options.big_rounds = 1;
            }
            status = run_dist_comparison(options);
        }
        if (status != 0) {
            throw CLI::RuntimeError(status);
        }
    });
}

void add_dist_command(CLI::App& bench) {
    CLI::App* command = bench.add_subcommand(
        "dist",
        "Erlang distribution over TCP: vdist C++ nodes against erl nodes, round trips and "
        "throughput (see bench/README.md)");
    setup_dist_command(*command, {"bench", "dist"});
}

}  // namespace vdist::bench
