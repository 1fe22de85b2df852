/// \file
/// `vdist bench transport`: plan, interleaved run, medians, ratios, table or JSON.

#include "vdist/bench/transport_compare.hpp"

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "process.hpp"
#include "transports.hpp"

namespace vdist::bench {
namespace {

using internal::cell_config;
using internal::cell_result;
using internal::clock;
using internal::outcome;
using transport::wait_mode;

// --- what runs -----------------------------------------------------------------------------

struct transport_entry {
    std::string_view name;
    std::string_view description;
    outcome<cell_result> (*run)(const cell_config&);
    std::optional<wait_mode> ring_mode;  ///< vdist rings: also measured idle
};

const std::array<transport_entry, 9> all_transports{{
    {"ring_busy_poll", "vdist ring, host backend, processes, busy_poll",
     [](const cell_config& c) { return internal::run_vdist_ring(c, wait_mode::busy_poll); },
     wait_mode::busy_poll},
    {"ring_spin_then_block", "vdist ring, host backend, processes, spin_then_block",
     [](const cell_config& c) { return internal::run_vdist_ring(c, wait_mode::spin_then_block); },
     wait_mode::spin_then_block},
    {"ring_block", "vdist ring, host backend, processes, block",
     [](const cell_config& c) { return internal::run_vdist_ring(c, wait_mode::block); },
     wait_mode::block},
    {"baseline_ring", "plain SPSC byte ring in shared memory, processes, busy-poll",
     internal::run_baseline_ring, std::nullopt},
    {"spsc_queue", "boost::lockfree::spsc_queue, threads, busy-poll", internal::run_spsc_queue,
     std::nullopt},
    {"lockfree_queue", "boost::lockfree::queue, threads, busy-poll", internal::run_lockfree_queue,
     std::nullopt},
    {"mutex_condvar", "std::mutex + std::condition_variable queue, threads, blocking",
     internal::run_mutex_condvar, std::nullopt},
    {"unix_socket", "socketpair(AF_UNIX, SOCK_STREAM), processes, blocking",
     internal::run_unix_socket, std::nullopt},
    {"tcp_loopback", "TCP over 127.0.0.1 with TCP_NODELAY, processes, blocking",
     internal::run_tcp_loopback, std::nullopt},
}};

constexpr std::size_t ring_bytes = std::size_t{1} << 20;  // order 20, libxenvchan's largest
constexpr std::size_t batch_messages = 64;
constexpr double idle_cpu_target = 0.01;  // "≈ 0": at most 1 % of the idle wall time

/// The resolved options of one run.
struct plan {
    std::vector<std::size_t> sizes;
    std::vector<const transport_entry*> transports;
    std::chrono::milliseconds duration{};
    std::chrono::milliseconds ping{};
    std::chrono::milliseconds idle{};
    unsigned repetitions = 0;
    bool short_run = false;
    internal::cpu_pair cpus;
};

[[nodiscard]] outcome<plan> make_plan(const transport_options& options) {
    plan p;
    p.short_run = options.short_run;
    p.duration = options.duration.value_or(std::chrono::milliseconds(options.short_run ? 50 : 300));
    p.ping = std::max(p.duration / 3, std::chrono::milliseconds(1));
    p.idle = options.idle.value_or(std::chrono::milliseconds(options.short_run ? 100 : 200));
    p.repetitions = options.repetitions.value_or(3);
    if (p.duration.count() <= 0 || p.idle.count() <= 0 || p.repetitions == 0) {
        return internal::failure("duration, idle time and repetitions must be positive");
    }
    p.sizes = options.sizes;
    if (p.sizes.empty()) {
        p.sizes = options.short_run ? std::vector<std::size_t>{64, 65536}
                                    : std::vector<std::size_t>{8, 64, 1024, 65536};
    }
    for (std::size_t size : p.sizes) {
        if (size < 1 || size > ring_bytes - transport::frame_header_size) {
            return internal::failure(fmt::format("message size {} is outside 1 .. {}", size,
                                                 ring_bytes - transport::frame_header_size));
        }
    }
    std::ranges::sort(p.sizes);
    const auto [first, last] = std::ranges::unique(p.sizes);
    p.sizes.erase(first, last);
    for (const auto& entry : all_transports) {
        if (options.transports.empty() ||
            std::ranges::find(options.transports, entry.name) != options.transports.end()) {
            p.transports.push_back(&entry);
        }
    }
    for (const auto& name : options.transports) {
        if (std::ranges::none_of(all_transports, [&](const auto& e) { return e.name == name; })) {
            return internal::failure("unknown transport " + name);
        }
    }
    p.cpus = internal::choose_cpus();
    return p;
}

/// A private directory for the rings' rendezvous sockets, removed at the end.
class run_directory {
  public:
    run_directory() {
        std::string pattern = (std::filesystem::temp_directory_path() / "vdist-bench-XXXXXX");
        if (::mkdtemp(pattern.data()) != nullptr) {
            path_ = pattern;
        }
    }
    ~run_directory() {
        if (!path_.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(path_, ignored);
        }
    }
    run_directory(const run_directory&) = delete;
    run_directory& operator=(const run_directory&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
};

// --- results -------------------------------------------------------------------------------

[[nodiscard]] double median(std::vector<double> values) {
    if (values.empty()) {
        return std::nan("");
    }
    std::ranges::sort(values);
    const std::size_t middle = values.size() / 2;
    return values.size() % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

/// Medians over the repetitions of one transport at one size.
struct summary {
    double msgs_per_s = std::nan("");
    double bytes_per_s = std::nan("");
    double p50_us = std::nan("");
    double p90_us = std::nan("");
    double p99_us = std::nan("");
    double max_us = std::nan("");
    double samples = std::nan("");
    std::size_t ok = 0;  ///< repetitions that succeeded
};

[[nodiscard]] summary summarize(const std::vector<cell_result>& cells) {
    summary s;
    s.ok = cells.size();
    if (cells.empty()) {
        return s;
    }
    auto of = [&](auto field) {
        std::vector<double> values;
        for (const auto& cell : cells) {
            values.push_back(field(cell));
        }
        return median(std::move(values));
    };
    s.msgs_per_s = of([](const cell_result& c) { return c.msgs_per_s; });
    s.bytes_per_s = of([](const cell_result& c) { return c.bytes_per_s; });
    s.p50_us = of([](const cell_result& c) { return c.rtt.p50_us; });
    s.p90_us = of([](const cell_result& c) { return c.rtt.p90_us; });
    s.p99_us = of([](const cell_result& c) { return c.rtt.p99_us; });
    s.max_us = of([](const cell_result& c) { return c.rtt.max_us; });
    s.samples = of([](const cell_result& c) { return static_cast<double>(c.rtt.samples); });
    return s;
}

struct idle_summary {
    std::string_view transport;
    double cpu_ms = std::nan("");
    double wall_ms = std::nan("");
    [[nodiscard]] double fraction() const { return cpu_ms / wall_ms; }
};

struct run_results {
    std::map<std::pair<std::string_view, std::size_t>, std::vector<cell_result>> cells;
    std::map<std::string_view, std::vector<internal::idle_result>> idle;
    std::vector<std::string> errors;
    double elapsed_s = 0;

    [[nodiscard]] summary at(std::string_view transport, std::size_t size) const {
        auto found = cells.find({transport, size});
        return found == cells.end() ? summary{} : summarize(found->second);
    }
};

enum class metric { msgs_per_s, bytes_per_s, rtt_p50 };

struct ratio_spec {
    std::string_view key;
    std::string_view numerator;
    std::string_view denominator;
    std::size_t size;
    metric what;
    bool at_least;  ///< target is a minimum (else a maximum)
    double target;
};

constexpr std::array<ratio_spec, 5> ratio_specs{{
    {"ring_busy_poll_vs_spsc_queue_msgs_per_s_64B", "ring_busy_poll", "spsc_queue", 64,
     metric::msgs_per_s, true, 1.0},
    {"ring_busy_poll_vs_mutex_condvar_msgs_per_s_64B", "ring_busy_poll", "mutex_condvar", 64,
     metric::msgs_per_s, true, 8.0},
    {"ring_busy_poll_vs_baseline_ring_bytes_per_s_64KiB", "ring_busy_poll", "baseline_ring", 65536,
     metric::bytes_per_s, true, 0.9},
    {"ring_busy_poll_vs_spsc_queue_rtt_p50_64B", "ring_busy_poll", "spsc_queue", 64,
     metric::rtt_p50, false, 1.0},
    {"ring_spin_then_block_vs_ring_busy_poll_rtt_p50_64B", "ring_spin_then_block", "ring_busy_poll",
     64, metric::rtt_p50, false, 2.0},
}};

[[nodiscard]] double metric_of(const summary& s, metric what) {
    switch (what) {
        case metric::msgs_per_s:
            return s.msgs_per_s;
        case metric::bytes_per_s:
            return s.bytes_per_s;
        case metric::rtt_p50:
            return s.p50_us;
    }
    return std::nan("");
}

[[nodiscard]] std::string_view metric_name(metric what) {
    switch (what) {
        case metric::msgs_per_s:
            return "msgs/s";
        case metric::bytes_per_s:
            return "bytes/s";
        case metric::rtt_p50:
            return "rtt p50";
    }
    return "";
}

[[nodiscard]] double ratio_value(const run_results& results, const ratio_spec& spec) {
    const double numerator = metric_of(results.at(spec.numerator, spec.size), spec.what);
    const double denominator = metric_of(results.at(spec.denominator, spec.size), spec.what);
    if (!std::isfinite(numerator) || !std::isfinite(denominator) || denominator <= 0) {
        return std::nan("");
    }
    return numerator / denominator;
}

[[nodiscard]] bool ratio_met(const ratio_spec& spec, double value) {
    return spec.at_least ? value >= spec.target : value <= spec.target;
}

[[nodiscard]] idle_summary idle_of(const run_results& results, std::string_view transport) {
    idle_summary s{transport};
    auto found = results.idle.find(transport);
    if (found == results.idle.end() || found->second.empty()) {
        return s;
    }
    std::vector<double> cpu;
    std::vector<double> wall;
    for (const auto& r : found->second) {
        cpu.push_back(std::chrono::duration<double, std::milli>(r.cpu).count());
        wall.push_back(std::chrono::duration<double, std::milli>(r.wall).count());
    }
    s.cpu_ms = median(std::move(cpu));
    s.wall_ms = median(std::move(wall));
    return s;
}

// --- the run -------------------------------------------------------------------------------

class progress {
  public:
    progress() : enabled_(::isatty(STDERR_FILENO) == 1) {}
    void show(const std::string& line) {
        if (enabled_) {
            std::cerr << "\r\033[K" << line << std::flush;
        }
    }
    ~progress() {
        if (enabled_) {
            std::cerr << "\r\033[K" << std::flush;
        }
    }

  private:
    bool enabled_;
};

[[nodiscard]] std::string size_label(std::size_t size) {
    if (size >= 1024 && size % 1024 == 0) {
        return fmt::format("{} KiB", size / 1024);
    }
    return fmt::format("{} B", size);
}

[[nodiscard]] run_results run_all(const plan& p, const std::filesystem::path& run_dir) {
    run_results results;
    progress status;
    const auto started = clock::now();
    std::size_t cell_number = 0;
    cell_config config;
    config.stream_duration = p.duration;
    config.ping_duration = p.ping;
    config.ring_bytes = ring_bytes;
    config.batch = batch_messages;
    config.cpus = p.cpus;
    config.run_dir = run_dir;
    for (unsigned rep = 1; rep <= p.repetitions; ++rep) {
        for (std::size_t size : p.sizes) {
            for (const transport_entry* entry : p.transports) {
                status.show(fmt::format("rep {}/{}  {}  {}", rep, p.repetitions, size_label(size),
                                        entry->name));
                config.message_size = size;
                config.port = fmt::format("bench-{}", ++cell_number);
                outcome<cell_result> cell = internal::failure("not run");
                try {
                    cell = entry->run(config);
                } catch (const std::exception& e) {
                    cell = internal::failure(std::string("exception: ") + e.what());
                }
                if (cell) {
                    results.cells[{entry->name, size}].push_back(*cell);
                } else {
                    results.errors.push_back(fmt::format(
                        "rep {}, {}, {}: {}", rep, size_label(size), entry->name, cell.error()));
                }
            }
        }
        for (const transport_entry* entry : p.transports) {
            if (!entry->ring_mode) {
                continue;
            }
            status.show(fmt::format("rep {}/{}  idle wait  {}", rep, p.repetitions, entry->name));
            config.message_size = 64;
            config.port = fmt::format("bench-{}", ++cell_number);
            outcome<internal::idle_result> idle = internal::failure("not run");
            try {
                idle = internal::measure_idle_wait(config, *entry->ring_mode, p.idle);
            } catch (const std::exception& e) {
                idle = internal::failure(std::string("exception: ") + e.what());
            }
            if (idle) {
                results.idle[entry->name].push_back(*idle);
            } else {
                results.errors.push_back(
                    fmt::format("rep {}, idle wait, {}: {}", rep, entry->name, idle.error()));
            }
        }
    }
    results.elapsed_s = std::chrono::duration<double>(clock::now() - started).count();
    return results;
}

// --- output --------------------------------------------------------------------------------

#ifdef __OPTIMIZE__
constexpr bool optimized_build = true;
#else
constexpr bool optimized_build = false;
#endif

[[nodiscard]] std::string si(double value, std::string_view unit) {
    if (!std::isfinite(value)) {
        return "-";
    }
    constexpr std::array<std::pair<double, std::string_view>, 3> prefixes{
        {{1e9, "G"}, {1e6, "M"}, {1e3, "k"}}};
    for (const auto& [scale, prefix] : prefixes) {
        if (value >= scale) {
            return fmt::format("{:.2f} {}{}", value / scale, prefix, unit);
        }
    }
    return fmt::format("{:.2f} {}", value, unit);
}

[[nodiscard]] std::string micros(double value) {
    return std::isfinite(value) ? fmt::format("{:.2f}", value) : "-";
}

[[nodiscard]] std::string cpu_label(int cpu) {
    return cpu < 0 ? "unpinned" : fmt::format("CPU {}", cpu);
}

[[nodiscard]] std::string join_sizes(const std::vector<std::size_t>& sizes) {
    std::string joined;
    for (std::size_t size : sizes) {
        joined += (joined.empty() ? "" : ", ") + size_label(size);
    }
    return joined;
}

void print_configuration(const plan& p) {
    std::cout << "vdist bench transport\n";
    std::cout << fmt::format(
        "  cores        side A (parent process / main thread) on {}, side B (child process / "
        "second thread) on {}, sched_setaffinity{}\n",
        cpu_label(p.cpus.a), cpu_label(p.cpus.b),
        p.cpus.a < 0 ? " (fewer than 2 CPUs allowed: NOT pinned)" : "");
    std::cout << fmt::format("  sizes        {}\n", join_sizes(p.sizes));
    std::cout << fmt::format(
        "  durations    per transport and size: {} ms ping-pong (first 10 % warm-up), then {} ms "
        "stream; idle wait {} ms per ring mode\n",
        p.ping.count(), p.duration.count(), p.idle.count());
    std::cout << fmt::format(
        "  repetitions  {}, interleaved (rep 1 of every size and transport, then rep 2, ...); "
        "medians shown{}\n",
        p.repetitions, p.short_run ? "; short run" : "");
    std::cout << fmt::format(
        "  rings        vdist: host backend, order 20 (1 MiB) per direction, frames "
        "(reserve/commit, read_frame/release), batches of up to {}, spin 50 us in "
        "spin_then_block\n"
        "               baseline_ring: plain SPSC byte ring in shared memory, 1 MiB per "
        "direction, busy-poll\n",
        batch_messages);
    std::cout << "  queues       capacity = 1 MiB / message size; items of 8 .. 1024 B are "
                 "std::array<std::byte, N> copied in and out;\n"
                 "               other sizes (64 KiB) are pointers into the sender's ring of "
                 "preallocated buffers, memcpy in and out\n";
    std::cout << fmt::format(
        "  sockets      blocking; the stream writer batches up to {} messages (<= 64 KiB) per "
        "write(), the reader reads 256 KiB chunks\n",
        batch_messages);
    std::cout << "  work         one copy in and one copy out per message on every transport\n";
    std::cout << fmt::format("  build        {}\n",
                             optimized_build
                                 ? "optimized"
                                 : "NOT OPTIMIZED: numbers are not meaningful (configure with "
                                   "-DCMAKE_BUILD_TYPE=RelWithDebInfo)");
    std::cout << "  transports\n";
    for (const transport_entry* entry : p.transports) {
        std::cout << fmt::format("    {:<22}{}\n", entry->name, entry->description);
    }
    std::cout << std::endl;
}

void print_text(const plan& p, const run_results& results) {
    std::cout << fmt::format("{:<8}{:<22}{:>12}{:>14}{:>10}{:>10}{:>10}{:>10}\n", "size",
                             "transport", "msgs/s", "bytes/s", "p50 us", "p90 us", "p99 us",
                             "max us");
    for (std::size_t size : p.sizes) {
        for (const transport_entry* entry : p.transports) {
            const summary s = results.at(entry->name, size);
            if (s.ok == 0) {
                std::cout << fmt::format("{:<8}{:<22}{:>12}\n", size_label(size), entry->name,
                                         "failed");
                continue;
            }
            std::cout << fmt::format(
                "{:<8}{:<22}{:>12}{:>14}{:>10}{:>10}{:>10}{:>10}{}\n", size_label(size),
                entry->name, si(s.msgs_per_s, ""), si(s.bytes_per_s, "B/s"), micros(s.p50_us),
                micros(s.p90_us), micros(s.p99_us), micros(s.max_us),
                s.ok < p.repetitions ? fmt::format("  ({}/{} reps)", s.ok, p.repetitions) : "");
        }
        std::cout << '\n';
    }

    std::cout << fmt::format("idle wait: CPU time of the waiting process, {} ms without traffic\n",
                             p.idle.count());
    for (const transport_entry* entry : p.transports) {
        if (!entry->ring_mode) {
            continue;
        }
        const idle_summary s = idle_of(results, entry->name);
        if (!std::isfinite(s.cpu_ms)) {
            std::cout << fmt::format("  {:<22}failed\n", entry->name);
            continue;
        }
        std::cout << fmt::format("  {:<22}{:>9.3f} ms CPU in {:.1f} ms ({:.2f} %)\n", entry->name,
                                 s.cpu_ms, s.wall_ms, 100 * s.fraction());
    }
    std::cout << '\n';

    std::cout << "ratios (medians of this run)\n";
    for (const auto& spec : ratio_specs) {
        const double value = ratio_value(results, spec);
        const std::string what = fmt::format("{} / {}, {} at {}", spec.numerator, spec.denominator,
                                             metric_name(spec.what), size_label(spec.size));
        std::cout << fmt::format(
            "  {:<62}{:>8}  target {} {:.1f}x  {}\n", what,
            std::isfinite(value) ? fmt::format("{:.2f}x", value) : "n/a",
            spec.at_least ? ">=" : "<=", spec.target,
            std::isfinite(value) ? (ratio_met(spec, value) ? "met" : "NOT MET") : "");
    }
    const idle_summary idle = idle_of(results, "ring_spin_then_block");
    const double fraction = idle.fraction();
    std::cout << fmt::format(
        "  {:<62}{:>8}  target ~0 (<= {:.0f} %)  {}\n",
        fmt::format("ring_spin_then_block idle CPU, {} ms without traffic", p.idle.count()),
        std::isfinite(fraction) ? fmt::format("{:.2f} %", 100 * fraction) : "n/a",
        100 * idle_cpu_target,
        std::isfinite(fraction) ? (fraction <= idle_cpu_target ? "met" : "NOT MET") : "");

    if (!results.errors.empty()) {
        std::cout << "\nfailures\n";
        for (const auto& error : results.errors) {
            std::cout << "  " << error << '\n';
        }
    }
    std::cout << fmt::format("\n(run took {:.1f} s)\n", results.elapsed_s);
}

[[nodiscard]] nlohmann::ordered_json number_or_null(double value) {
    return std::isfinite(value) ? nlohmann::ordered_json(value) : nlohmann::ordered_json(nullptr);
}

void print_json(const plan& p, const run_results& results) {
    using json = nlohmann::ordered_json;
    json document;
    json transports = json::array();
    for (const transport_entry* entry : p.transports) {
        transports.push_back({{"name", entry->name}, {"description", entry->description}});
    }
    document["config"] = {
        {"cpus", {p.cpus.a, p.cpus.b}},
        {"pinned", p.cpus.a >= 0},
        {"sizes", p.sizes},
        {"duration_ms", p.duration.count()},
        {"pingpong_ms", p.ping.count()},
        {"warmup_fraction", 0.1},
        {"idle_ms", p.idle.count()},
        {"repetitions", p.repetitions},
        {"interleaved", true},
        {"statistic", "median over repetitions"},
        {"short", p.short_run},
        {"ring_bytes", ring_bytes},
        {"batch", batch_messages},
        {"spin_us", 50},
        {"queue_items",
         "8..1024 B: std::array<std::byte, N> copied in and out; other sizes: pointers into the "
         "sender's ring of preallocated buffers, memcpy in and out"},
        {"optimized_build", optimized_build},
        {"transports", transports},
    };
    json rows = json::array();
    for (const transport_entry* entry : p.transports) {
        for (std::size_t size : p.sizes) {
            const summary s = results.at(entry->name, size);
            rows.push_back({
                {"transport", entry->name},
                {"msg_size", size},
                {"msgs_per_s", number_or_null(s.msgs_per_s)},
                {"bytes_per_s", number_or_null(s.bytes_per_s)},
                {"rtt_p50_us", number_or_null(s.p50_us)},
                {"rtt_p90_us", number_or_null(s.p90_us)},
                {"rtt_p99_us", number_or_null(s.p99_us)},
                {"rtt_max_us", number_or_null(s.max_us)},
                {"rtt_samples", number_or_null(s.samples)},
                {"repetitions_ok", s.ok},
            });
        }
    }
    document["results"] = rows;
    json ratios = json::object();
    for (const auto& spec : ratio_specs) {
        const double value = ratio_value(results, spec);
        ratios[std::string(spec.key)] = {
            {"value", number_or_null(value)},
            {"target", fmt::format("{} {}", spec.at_least ? ">=" : "<=", spec.target)},
            {"met", std::isfinite(value) ? json(ratio_met(spec, value)) : json(nullptr)},
        };
    }
    const idle_summary idle_spin = idle_of(results, "ring_spin_then_block");
    ratios["ring_spin_then_block_idle_cpu_fraction"] = {
        {"value", number_or_null(idle_spin.fraction())},
        {"target", fmt::format("<= {}", idle_cpu_target)},
        {"met", std::isfinite(idle_spin.fraction()) ? json(idle_spin.fraction() <= idle_cpu_target)
                                                    : json(nullptr)},
    };
    document["ratios"] = ratios;
    json idle = json::array();
    for (const transport_entry* entry : p.transports) {
        if (entry->ring_mode) {
            const idle_summary s = idle_of(results, entry->name);
            idle.push_back({{"transport", entry->name},
                            {"cpu_ms", number_or_null(s.cpu_ms)},
                            {"wall_ms", number_or_null(s.wall_ms)},
                            {"cpu_fraction", number_or_null(s.fraction())}});
        }
    }
    document["idle"] = idle;
    document["errors"] = results.errors;
    document["elapsed_s"] = results.elapsed_s;
    std::cout << document.dump(2) << std::endl;
}

}  // namespace

std::vector<std::string> transport_names() {
    std::vector<std::string> names;
    for (const auto& entry : all_transports) {
        names.emplace_back(entry.name);
    }
    return names;
}

int run_transport_comparison(const transport_options& options) {
    auto planned = make_plan(options);
    if (!planned) {
        std::cerr << "vdist bench transport: " << planned.error() << '\n';
        return 2;
    }
    const plan& p = *planned;
    run_directory run_dir;
    if (run_dir.path().empty()) {
        std::cerr << "vdist bench transport: cannot create a temporary directory\n";
        return 1;
    }
    internal::affinity_guard restore_affinity;
    if (auto pinned = internal::pin_this_thread(p.cpus.a); !pinned) {
        std::cerr << "vdist bench transport: " << pinned.error() << '\n';
        return 1;
    }
    if (!options.json) {
        print_configuration(p);
    }
    const run_results results = run_all(p, run_dir.path());
    if (options.json) {
        print_json(p, results);
    } else {
        print_text(p, results);
    }
    return results.errors.empty() ? 0 : 1;
}

void add_transport_command(CLI::App& bench) {
    struct values {
        unsigned duration_ms = 300;
        unsigned repetitions = 3;
        unsigned idle_ms = 200;
        std::vector<std::size_t> sizes;
        std::vector<std::string> transports;
        bool short_run = false;
        bool json = false;
        CLI::Option* duration_option = nullptr;
        CLI::Option* repetitions_option = nullptr;
        CLI::Option* idle_option = nullptr;
    };
    auto v = std::make_shared<values>();
    CLI::App* command = bench.add_subcommand(
        "transport",
        "Compare the vdist ring with queues, sockets and a plain shared-memory ring on two "
        "pinned cores (see bench/README.md)");
    v->duration_option =
        command
            ->add_option("--duration-ms", v->duration_ms,
                         "stream time per measurement in ms; ping-pong adds a third of it "
                         "(default 300, --short 50)")
            ->check(CLI::Range(1U, 600000U));
    v->repetitions_option =
        command
            ->add_option("--repetitions", v->repetitions,
                         "interleaved repetitions, the median is reported (default 3)")
            ->check(CLI::Range(1U, 1000U));
    v->idle_option = command
                         ->add_option("--idle-ms", v->idle_ms,
                                      "idle-wait CPU measurement in ms (default 200, --short 100)")
                         ->check(CLI::Range(1U, 600000U));
    command
        ->add_option("--sizes", v->sizes,
                     "message sizes, comma-separated, k = 1024 (default 8,64,1k,64k; "
                     "--short 64,64k)")
        ->delimiter(',')
        ->transform(CLI::AsSizeValue(false));
    command
        ->add_option("--transports", v->transports,
                     "transports to run, comma-separated (default: all)")
        ->delimiter(',')
        ->check(CLI::IsMember(transport_names()));
    command->add_flag("--short", v->short_run, "quick run for the demo: 64 B and 64 KiB, shorter");
    command->add_flag("--json", v->json, "print one JSON document instead of the table");
    command->callback([v] {
        transport_options options;
        if (v->duration_option->count() > 0) {
            options.duration = std::chrono::milliseconds(v->duration_ms);
        }
        if (v->repetitions_option->count() > 0) {
            options.repetitions = v->repetitions;
        }
        if (v->idle_option->count() > 0) {
            options.idle = std::chrono::milliseconds(v->idle_ms);
        }
        options.sizes = v->sizes;
        options.transports = v->transports;
        options.short_run = v->short_run;
        options.json = v->json;
        if (const int status = run_transport_comparison(options); status != 0) {
            throw CLI::RuntimeError(status);
        }
    });
}

}  // namespace vdist::bench
