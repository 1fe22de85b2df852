/// \file
/// The single-core node (`vdist::runtime`) against a BEAM node on one scheduler, in one run:
/// local message passing, spawn and exit, exit propagation along links.
///
/// Every benchmark is a round of 10000 operations, the same on both sides:
///
///  - stream_int:   process A sends 10000 small integers to B, which counts them with a
///                  `become` handler (msgs/s);
///  - stream_tuple: the same with {seq, I} (a tuple: an allocation per message on both sides);
///  - ping_pong:    10000 round trips, A sends {ping, self()} and B answers `pong` (trips/s);
///  - spawn_exit:   a chain of 10000 spawns, each process spawns the next and returns, which
///                  ends it with `normal` (spawns/s);
///  - link_exit:    a chain of 10000 processes linked by spawn_link is built (not timed), then
///                  exit(Head, kill) until all are dead (exits/s).
///
/// The vdist side makes its node and processes once per benchmark and runs a round as
/// `node::send(A, go)` + `run_until_idle()`, timed with steady_clock. The BEAM side is
/// `beam_baseline.escript`, started once with ERL_FLAGS="+S 1 +sbwt none ..." and kept
/// running: asked for a round of a benchmark on stdin, it runs the same work written in Erlang
/// and answers the time it measured with erlang:monotonic_time. Each Google Benchmark iteration
/// runs one vdist round and one BEAM round, in alternating order, so that both sides see the same
/// machine (2 noisy vCPUs); the manual time is vdist's round, the counters `beam_per_second`
/// and `ratio` (vdist rate / BEAM rate) come from the BEAM rounds of the same repetition. The
/// table at the end shows medians over the repetitions with PASS/MISS against 1.0 (> 1: vdist
/// is faster). Without escript (or if the BEAM fails) the vdist side runs alone, no ratios.
///
/// Both processes are pinned to the CPU this program starts on, so that a neighbour on the other
/// vCPU slows both sides alike.
///
/// Own flags (anywhere among Google Benchmark's): --beam_schedulers=N (+S N, default 1),
/// --beam_script=PATH, --pin_cpu=N (-1: no pinning). Defaults put in front of the command line
/// (later flags win):
/// --benchmark_repetitions=5 --benchmark_min_time=0.2
/// --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vdist/bench/line_pipe.hpp"
#include "vdist/bench/median.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/transport/unique_fd.hpp"

#ifndef VDIST_BEAM_BASELINE_SCRIPT
#error "VDIST_BEAM_BASELINE_SCRIPT (path of beam_baseline.escript) must be defined"
#endif
#ifndef VDIST_ESCRIPT
#define VDIST_ESCRIPT "escript"
#endif

namespace {

namespace dist = vdist::dist;
namespace runtime = vdist::runtime;
using runtime::process;
using vdist::transport::unique_fd;

constexpr std::int64_t round_size = 10000;  // operations per round, both sides
constexpr double target_ratio = 1.0;
constexpr auto beam_reply_timeout = std::chrono::seconds(30);

using wall_clock = std::chrono::steady_clock;

[[nodiscard]] double seconds_since(wall_clock::time_point start) {
    return std::chrono::duration<double>(wall_clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// The BEAM side: beam_baseline.escript as a child process, one round per request line.

/// What one BEAM round did.
struct beam_round {
    std::int64_t operations = 0;
    double seconds = 0;
};

/// beam_baseline.escript running in a child, stdin and stdout on pipes. Killed and reaped on
/// destruction if it has not quit by then; every read has a timeout, so a stuck BEAM is an
/// error, never a hang.
class beam_node {
  public:
    /// Starts the script; on failure `error()` says why.
    beam_node(const std::string& escript, const std::string& script, int schedulers) {
        int to_child[2];
        int from_child[2];
        if (::pipe2(to_child, O_CLOEXEC) != 0) {
            error_ = std::string("pipe: ") + std::strerror(errno);
            return;
        }
        if (::pipe2(from_child, O_CLOEXEC) != 0) {
            error_ = std::string("pipe: ") + std::strerror(errno);
            ::close(to_child[0]);
            ::close(to_child[1]);
            return;
        }
        // Schedulers that find no work sleep at once instead of spinning (+sbwt none), so that an
        // idle BEAM between its rounds takes no CPU from vdist's; its rounds never idle.
        std::string flags =
            "+S " + std::to_string(schedulers) + " +sbwt none +sbwtdcpu none +sbwtdio none";
        if (const char* inherited = std::getenv("ERL_FLAGS")) {
            flags = std::string(inherited) + " " + flags;
        }
        std::string erl_flags = "ERL_FLAGS=" + flags;
        std::vector<std::string> argv_storage{escript, script};
        std::vector<char*> argv;
        for (auto& arg : argv_storage) {
            argv.push_back(arg.data());
        }
        argv.push_back(nullptr);
        // All prepared before fork; the program has one thread here, so the child may still
        // allocate (putenv) before exec.
        const pid_t parent = ::getpid();
        child_ = ::fork();
        if (child_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(126);
            }
            ::signal(SIGPIPE, SIG_DFL);  // main ignores it; exec would keep that
            ::dup2(to_child[0], STDIN_FILENO);
            ::dup2(from_child[1], STDOUT_FILENO);
            ::putenv(erl_flags.data());
            ::execvp(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(to_child[0]);
        ::close(from_child[1]);
        pipe_ = vdist::bench::line_pipe(to_child[1], from_child[0]);
        if (child_ < 0) {
            error_ = std::string("fork: ") + std::strerror(errno);
            return;
        }
        command_ = "ERL_FLAGS=\"" + flags + "\" " + escript + " " + script;
        // The first line describes the node; the BEAM takes about a second to start.
        const auto line = read_line();
        if (!line || !line->starts_with("config ")) {
            error_ = "did not start (" + command_ + ")" + (line ? ": " + *line : "");
            stop();
            return;
        }
        config_ = line->substr(7);
    }
    beam_node(const beam_node&) = delete;
    beam_node& operator=(const beam_node&) = delete;
    ~beam_node() { stop(); }

    [[nodiscard]] bool ok() const noexcept { return error_.empty(); }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    /// The BEAM's own description: otp=25 flavor=jit schedulers=1 round=10000.
    [[nodiscard]] const std::string& config() const noexcept { return config_; }
    [[nodiscard]] const std::string& command() const noexcept { return command_; }

    /// Runs one round of `benchmark` on the BEAM.
    [[nodiscard]] std::optional<beam_round> round(std::string_view benchmark) {
        if (!ok()) {
            return std::nullopt;
        }
        const std::string request = std::string(benchmark) + "\n";
        if (!write_all(request)) {
            error_ = "write to the BEAM failed";
            return std::nullopt;
        }
        const auto line = read_line();
        long long operations = 0;
        long long nanoseconds = 0;
        if (!line || std::sscanf(line->c_str(), "%lld %lld", &operations, &nanoseconds) != 2 ||
            operations <= 0 || nanoseconds <= 0) {
            error_ = "bad reply to " + std::string(benchmark) + ": " + line.value_or("(none)");
            return std::nullopt;
        }
        return beam_round{operations, static_cast<double>(nanoseconds) * 1e-9};
    }

  private:
    [[nodiscard]] bool write_all(std::string_view bytes) { return pipe_.write_all(bytes); }

    /// The next line of the child's output (without the newline), or nullopt on end of output
    /// or when none came within the timeout.
    [[nodiscard]] std::optional<std::string> read_line() {
        return pipe_.read_line(
            std::chrono::duration_cast<std::chrono::milliseconds>(beam_reply_timeout));
    }

    /// Asks the node to quit, then kills it if it has not within two seconds; reaps it.
    void stop() noexcept {
        if (child_ <= 0) {
            return;
        }
        if (pipe_.open()) {
            (void)write_all("quit\n");
            pipe_.close_input();
        }
        const auto deadline = wall_clock::now() + std::chrono::seconds(2);
        for (;;) {
            int status = 0;
            const pid_t done = ::waitpid(child_, &status, WNOHANG);
            if (done == child_ || (done < 0 && errno != EINTR)) {
                break;
            }
            if (wall_clock::now() >= deadline) {
                ::kill(child_, SIGKILL);
                (void)::waitpid(child_, &status, 0);
                break;
            }
            ::usleep(2000);
        }
        child_ = -1;
    }

    pid_t child_ = -1;
    vdist::bench::line_pipe pipe_;
    std::string error_;
    std::string config_;
    std::string command_;
};

// ---------------------------------------------------------------------------------------------
// The vdist side: one workload per benchmark, made once (its node and processes), then
// round() runs one round and returns its wall time in seconds, or < 0 if the round did not
// do all its work. round() is never inlined: one frame per round for profilers (callgrind's
// --toggle-collect='*workload*::round*' counts the instructions of the rounds alone).

/// A sends round_size messages to B, which counts them. `Tuples`: {seq, I}, else I.
template <bool Tuples>
class stream_workload {
  public:
    stream_workload()
        : sink_(node_.spawn([this](process& self) {
              self.become([this](process&, dist::term) { ++received_; });
          })),
          source_(node_.spawn([sink = sink_, seq = node_.a("seq")](process& self) {
              self.become([sink, seq](process& me, dist::term) {
                  for (std::int64_t i = 0; i < round_size; ++i) {
                      if constexpr (Tuples) {
                          me.send(sink, dist::tuple{seq, i});
                      } else {
                          me.send(sink, i);
                      }
                  }
              });
          })) {
        node_.run_until_idle();
    }

    [[gnu::noinline]] double round() {
        received_ = 0;
        const auto start = wall_clock::now();
        node_.send(source_, go_);
        node_.run_until_idle();
        const double seconds = seconds_since(start);
        return received_ == round_size ? seconds : -1.0;
    }

  private:
    runtime::node node_;
    dist::atom go_ = node_.a("go");
    std::int64_t received_ = 0;
    dist::pid sink_;
    dist::pid source_;
};

/// round_size round trips: A sends {ping, self()}, B answers pong.
class ping_pong_workload {
  public:
    ping_pong_workload()
        : ponger_(node_.spawn([ping = ping_, pong = node_.a("pong")](process& self) {
              self.become([ping, pong](process& me, dist::term message) {
                  const auto* request = message.get_if<dist::tuple>();
                  if (request == nullptr || request->elements.size() != 2) {
                      return;
                  }
                  const auto* tag = request->elements[0].get_if<dist::atom>();
                  const auto* from = request->elements[1].get_if<dist::pid>();
                  if (tag != nullptr && *tag == ping && from != nullptr) {
                      me.send(*from, pong);
                  }
              });
          })),
          pinger_(node_.spawn([this, ponger = ponger_, ping = ping_](process& self) {
              self.become([this, ponger, ping](process& me, dist::term) {
                  // `go` starts a round, each `pong` ends a trip; both send the next ping.
                  if (remaining_ > 0) {
                      --remaining_;
                      me.send(ponger, dist::tuple{ping, me.self()});
                  }
              });
          })) {
        node_.run_until_idle();
    }

    [[gnu::noinline]] double round() {
        remaining_ = round_size;
        const auto handled_before = node_.stats().handled;
        const auto start = wall_clock::now();
        node_.send(pinger_, go_);
        node_.run_until_idle();
        const double seconds = seconds_since(start);
        // go + round_size pings + round_size pongs.
        const bool complete = node_.stats().handled - handled_before ==
                              static_cast<std::uint64_t>(2 * round_size + 1);
        return remaining_ == 0 && complete ? seconds : -1.0;
    }

  private:
    runtime::node node_;
    dist::atom go_ = node_.a("go");
    dist::atom ping_ = node_.a("ping");
    std::int64_t remaining_ = 0;
    dist::pid ponger_;
    dist::pid pinger_;
};

/// A chain of round_size spawns: each process spawns the next and returns (exit normal).
class spawn_exit_workload {
  public:
    spawn_exit_workload()
        : link_([this](process& self) {
              if (--remaining_ > 0) {
                  (void)self.spawn(link_);
              }
          }) {}

    [[gnu::noinline]] double round() {
        remaining_ = round_size;
        const auto exited_before = node_.stats().exited;
        const auto start = wall_clock::now();
        (void)node_.spawn(link_);
        node_.run_until_idle();
        const double seconds = seconds_since(start);
        const bool complete =
            node_.stats().exited - exited_before == static_cast<std::uint64_t>(round_size) &&
            node_.process_count() == 0;
        return remaining_ == 0 && complete ? seconds : -1.0;
    }

  private:
    runtime::node node_;
    std::int64_t remaining_ = 0;
    runtime::behavior link_;
};

/// A chain of round_size spawn_linked processes waiting forever (built, not timed), then
/// exit(Head, kill) until all are dead.
class link_exit_workload {
  public:
    link_exit_workload()
        : link_([this](process& self) {
              if (--remaining_ > 0) {
                  (void)self.spawn_link(link_);
              }
              self.receive(std::vector<runtime::clause>{});  // matches nothing: waits forever
          }) {}

    [[gnu::noinline]] double round() {
        remaining_ = round_size;
        const dist::pid head = node_.spawn(link_);
        node_.run_until_idle();
        if (node_.process_count() != static_cast<std::size_t>(round_size)) {
            return -1.0;
        }
        const auto start = wall_clock::now();
        node_.exit(head, kill_);
        node_.run_until_idle();
        const double seconds = seconds_since(start);
        return node_.process_count() == 0 ? seconds : -1.0;
    }

  private:
    runtime::node node_;
    dist::atom kill_ = node_.a("kill");
    std::int64_t remaining_ = 0;
    runtime::behavior link_;
};

// ---------------------------------------------------------------------------------------------
// Paired rounds and the table.

beam_node* the_beam = nullptr;  // set in main; null or failed: the vdist side only

/// One benchmark: per iteration a vdist round and a BEAM round of the same name, in
/// alternating order. The manual time is the vdist round's, so `items_per_second` is vdist's
/// rate; the counters `beam_per_second` and `ratio` (vdist rate / BEAM rate) cover the rounds
/// of the same repetition, which ran interleaved with vdist's.
template <class Workload>
void compare(benchmark::State& state, const char* name) {
    Workload vdist;
    beam_node* beam = the_beam != nullptr && the_beam->ok() ? the_beam : nullptr;
    double vdist_seconds = 0;
    double beam_seconds = 0;
    std::int64_t beam_operations = 0;
    std::int64_t iteration = 0;
    for (auto _ : state) {
        const bool beam_first = (iteration++ % 2) == 1;
        std::optional<beam_round> theirs;
        if (beam != nullptr && beam_first) {
            theirs = beam->round(name);
        }
        const double ours = vdist.round();
        if (beam != nullptr && !beam_first) {
            theirs = beam->round(name);
        }
        if (ours < 0) {
            state.SkipWithError("a vdist round did not complete");
            return;
        }
        if (beam != nullptr && !theirs) {
            state.SkipWithError(beam->error().c_str());
            return;
        }
        state.SetIterationTime(ours);
        vdist_seconds += ours;
        if (theirs) {
            beam_seconds += theirs->seconds;
            beam_operations += theirs->operations;
        }
    }
    const auto vdist_operations = state.iterations() * round_size;
    state.SetItemsProcessed(vdist_operations);
    if (beam != nullptr && beam_seconds > 0 && vdist_seconds > 0) {
        const double beam_rate = static_cast<double>(beam_operations) / beam_seconds;
        const double vdist_rate = static_cast<double>(vdist_operations) / vdist_seconds;
        state.counters["beam_per_second"] = benchmark::Counter(beam_rate);
        state.counters["ratio"] = benchmark::Counter(vdist_rate / beam_rate);
    }
}

struct comparison {
    const char* name;
    const char* unit;
    void (*run)(benchmark::State&, const char*);
};

constexpr comparison comparisons[] = {
    {"stream_int", "msgs/s", &compare<stream_workload<false>>},
    {"stream_tuple", "msgs/s", &compare<stream_workload<true>>},
    {"ping_pong", "trips/s", &compare<ping_pong_workload>},
    {"spawn_exit", "spawns/s", &compare<spawn_exit_workload>},
    {"link_exit", "exits/s", &compare<link_exit_workload>},
};

/// The console output, plus the counters of every repetition kept by benchmark name.
class ratio_reporter : public benchmark::ConsoleReporter {
  public:
    ratio_reporter()
        : ConsoleReporter(::isatty(STDOUT_FILENO) != 0 ? OO_ColorTabular : OO_Tabular) {}

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& run : runs) {
            if (run.error_occurred) {
                continue;
            }
            for (const auto& [counter, value] : run.counters) {
                const std::string key = run.run_name.function_name + " " + counter;
                if (run.run_type == Run::RT_Iteration) {
                    values_[key].push_back(value.value);
                } else if (run.aggregate_name == "median") {
                    // With --benchmark_display_aggregates_only only the aggregates come here.
                    medians_[key] = value.value;
                }
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }

    /// Median of `counter` of benchmark `name` over its repetitions, or < 0 if absent.
    [[nodiscard]] double median(const std::string& name, const std::string& counter) const {
        const std::string key = name + " " + counter;
        const auto found = values_.find(key);
        if (found == values_.end() || found->second.empty()) {
            const auto aggregate = medians_.find(key);
            return aggregate == medians_.end() ? -1 : aggregate->second;
        }
        return vdist::bench::median(found->second);
    }

  private:
    std::map<std::string, std::vector<double>> values_;
    std::map<std::string, double> medians_;
};

void print_table(const ratio_reporter& reporter) {
    std::printf(
        "\nratio = vdist rate / BEAM rate over the interleaved rounds of a repetition, median "
        "over repetitions (> 1: vdist faster), target %.1f\n",
        target_ratio);
    std::printf("%-14s %-9s %14s %14s %7s  %s\n", "benchmark", "unit", "vdist", "BEAM", "ratio",
                "target");
    for (const auto& c : comparisons) {
        const double ours = reporter.median(c.name, "items_per_second");
        const double theirs = reporter.median(c.name, "beam_per_second");
        const double ratio = reporter.median(c.name, "ratio");
        if (ours <= 0) {
            continue;  // filtered out or failed
        }
        if (theirs <= 0 || ratio <= 0) {
            std::printf("%-14s %-9s %14.0f %14s %7s  %s\n", c.name, c.unit, ours, "-", "-", "n/a");
            continue;
        }
        std::printf("%-14s %-9s %14.0f %14.0f %7.2f  %s\n", c.name, c.unit, ours, theirs, ratio,
                    ratio >= target_ratio ? "PASS" : "MISS");
    }
}

/// Takes --name=value out of the command line.
[[nodiscard]] std::optional<std::string> take_flag(std::vector<char*>& args,
                                                   std::string_view name) {
    std::optional<std::string> value;
    const std::string prefix = "--" + std::string(name) + "=";
    std::erase_if(args, [&](const char* arg) {
        if (arg != nullptr && std::string_view(arg).starts_with(prefix)) {
            value = std::string(arg + prefix.size());
            return true;
        }
        return false;
    });
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    // A BEAM that died must show as a failed write (EPIPE), not kill this program.
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<char*> args(argv, argv + argc);
    const auto schedulers_flag = take_flag(args, "beam_schedulers");
    const auto script_flag = take_flag(args, "beam_script");
    const auto cpu_flag = take_flag(args, "pin_cpu");
    const int schedulers = schedulers_flag ? std::atoi(schedulers_flag->c_str()) : 1;
    const std::string script = script_flag.value_or(VDIST_BEAM_BASELINE_SCRIPT);
    if (schedulers < 1) {
        std::fprintf(stderr, "runtime_bench: --beam_schedulers must be at least 1\n");
        return 1;
    }
    // Defaults first: a later flag on the command line overrides them.
    static char repetitions[] = "--benchmark_repetitions=5";
    static char min_time[] = "--benchmark_min_time=0.2";
    static char interleave[] = "--benchmark_enable_random_interleaving=true";
    static char aggregates[] = "--benchmark_display_aggregates_only=true";
    args.insert(args.begin() + 1, {repetitions, min_time, interleave, aggregates});
    int count = static_cast<int>(args.size());
    args.push_back(nullptr);
    benchmark::Initialize(&count, args.data());
    if (benchmark::ReportUnrecognizedArguments(count, args.data())) {
        return 1;
    }

    std::printf("runtime_bench: vdist::runtime node vs a BEAM node, %lld operations per round\n",
                static_cast<long long>(round_size));
#ifdef __OPTIMIZE__
    std::printf("build: optimized\n");
#else
    std::printf("build: NOT optimized (use -DCMAKE_BUILD_TYPE=RelWithDebInfo)\n");
#endif
    // Both sides on one CPU (the BEAM inherits the affinity): a neighbour busy on the other
    // vCPU then slows both alike instead of whichever side the kernel placed there.
    const int cpu = cpu_flag ? std::atoi(cpu_flag->c_str()) : ::sched_getcpu();
    if (cpu >= 0) {
        cpu_set_t one{};
        CPU_ZERO(&one);
        CPU_SET(static_cast<std::size_t>(cpu), &one);
        if (::sched_setaffinity(0, sizeof one, &one) == 0) {
            std::printf("cpu: this program and the BEAM pinned to CPU %d (--pin_cpu=-1: not)\n",
                        cpu);
        } else {
            std::printf("cpu: pinning to CPU %d failed (%s), not pinned\n", cpu,
                        std::strerror(errno));
        }
    } else {
        std::printf("cpu: not pinned\n");
    }
    std::fflush(stdout);
    beam_node beam(VDIST_ESCRIPT, script, schedulers);
    if (beam.ok()) {
        std::printf("beam: %s (%s)\n", beam.config().c_str(), beam.command().c_str());
        the_beam = &beam;
    } else {
        std::printf("beam: unavailable, no ratios: %s\n", beam.error().c_str());
    }
    std::fflush(stdout);

    for (const auto& c : comparisons) {
        benchmark::RegisterBenchmark(c.name, c.run, c.name)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    }
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    print_table(reporter);
    the_beam = nullptr;
    benchmark::Shutdown();
    return 0;
}
