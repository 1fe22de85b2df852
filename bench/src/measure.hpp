#pragma once
/// \file
/// What every transport of `vdist bench transport` shares: one measurement's configuration,
/// the endpoint concept each transport implements, and the two measurements written once
/// over it (ping-pong round trips and one-way throughput).
///
/// One measurement ("cell") is one transport at one message size in one repetition. Side A
/// (the parent process or main thread, on the first CPU) measures; side B (a forked child or
/// a second thread, on the second CPU) echoes and writes:
///
/// ```
///   side A (measures)                         side B
///   ping:    send ─────────────────────────▶  recv
///            recv ◀─────────────────────────  send        (N round trips, one sample each)
///            send stop ────────────────────▶  recv stop
///   stream:  stream_in (count, time) ◀─────── stream_out (back to back until its deadline,
///                                                          then one stop message)
/// ```
///
/// Every message is `message_size` bytes; byte 0 says data (0) or stop (1). Every transport
/// does the same work per message: one copy in at the sender, one copy out at the receiver.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace vdist::bench::internal {

using clock = std::chrono::steady_clock;

/// A bench-level failure: what failed, in words (the error crosses process boundaries).
template <class T>
using outcome = std::expected<T, std::string>;

/// "what: message" as a failed outcome.
[[nodiscard]] inline std::unexpected<std::string> failure(std::string_view what,
                                                          std::error_code error) {
    return std::unexpected(std::string(what) + ": " + error.message());
}
[[nodiscard]] inline std::unexpected<std::string> failure(std::string_view what) {
    return std::unexpected(std::string(what));
}

/// The two CPUs of a run; -1 when the machine offers fewer than two (then nothing is pinned).
struct cpu_pair {
    int a = -1;  ///< side A: the parent process / main thread
    int b = -1;  ///< side B: the child process / second thread
};

/// Everything one measurement needs.
struct cell_config {
    std::size_t message_size = 64;
    std::chrono::nanoseconds stream_duration = std::chrono::milliseconds(300);
    std::chrono::nanoseconds ping_duration = std::chrono::milliseconds(100);
    std::size_t max_rtt_samples = std::size_t{1} << 20;
    std::size_t ring_bytes = std::size_t{1} << 20;  ///< per direction, rings and queue capacity
    std::size_t batch = 64;                         ///< messages per batch / per time check
    std::chrono::nanoseconds io_timeout = std::chrono::seconds(5);  ///< any single wait
    cpu_pair cpus;
    std::filesystem::path run_dir;  ///< rendezvous sockets of the vdist rings
    std::string port;               ///< vchan port name, unique per measurement
};

inline constexpr std::byte data_flag{0};
inline constexpr std::byte stop_flag{1};

/// Round-trip percentiles of one ping-pong run.
struct rtt_summary {
    double p50_us = 0;
    double p90_us = 0;
    double p99_us = 0;
    double max_us = 0;
    std::size_t samples = 0;
};

/// Messages counted by a stream reader between the first message and the stop message.
struct stream_count {
    std::uint64_t messages = 0;
    std::chrono::nanoseconds elapsed{0};
};

/// What one measurement reports.
struct cell_result {
    double msgs_per_s = 0;
    double bytes_per_s = 0;
    rtt_summary rtt;
};

/// One side of a transport. `buffer()` is the endpoint's own message buffer (for the queues,
/// the storage of a queue element): send() copies it into the transport, recv() copies the
/// next message out of the transport into it. Every wait is bounded by the cell's io_timeout.
template <class E>
concept endpoint = requires(E& e, clock::time_point until) {
    { e.buffer() } -> std::same_as<std::span<std::byte>>;
    { e.send() } -> std::same_as<outcome<void>>;
    { e.recv() } -> std::same_as<outcome<void>>;
    /// Send buffer() as data back to back (batched as the transport is meant to be used),
    /// checking the clock once per batch, until `until`; then one stop message.
    { e.stream_out(until) } -> std::same_as<outcome<void>>;
    /// Receive until the stop message, counting data messages after the first one.
    { e.stream_in() } -> std::same_as<outcome<stream_count>>;
};

/// Counts a stream on the reader's side: the clock starts at the first message.
class stream_counter {
  public:
    /// Call for every data message received.
    void on_message() noexcept {
        if (!started_) {
            started_ = true;
            first_ = clock::now();
            return;
        }
        ++messages_;
    }
    /// Call once for the stop message.
    [[nodiscard]] stream_count finish() const noexcept {
        const auto end = clock::now();
        return {messages_,
                started_ ? std::chrono::nanoseconds(end - first_) : std::chrono::nanoseconds(0)};
    }

  private:
    bool started_ = false;
    std::uint64_t messages_ = 0;
    clock::time_point first_{};
};

/// Percentiles of round-trip samples in nanoseconds (sorts them).
[[nodiscard]] inline rtt_summary summarize(std::vector<std::int64_t>& samples_ns) {
    rtt_summary summary;
    summary.samples = samples_ns.size();
    if (samples_ns.empty()) {
        return summary;
    }
    std::ranges::sort(samples_ns);
    auto at = [&](double quantile) {
        const auto last = samples_ns.size() - 1;
        const auto index = static_cast<std::size_t>(quantile * static_cast<double>(last) + 0.5);
        return static_cast<double>(samples_ns[std::min(index, last)]) / 1000.0;
    };
    summary.p50_us = at(0.50);
    summary.p90_us = at(0.90);
    summary.p99_us = at(0.99);
    summary.max_us = at(1.0);
    return summary;
}

/// Side A of ping-pong: warm up for a tenth of the budget, then time each round trip with
/// steady_clock until the budget is spent; finally tell side B to stop. A slow transport gets
/// at least 50 warm-up round trips and 100 samples, unless that takes 3 budgets.
template <endpoint E>
[[nodiscard]] outcome<rtt_summary> ping(E& e, const cell_config& config) {
    constexpr std::size_t min_warmup = 50;
    constexpr std::size_t min_samples = 100;
    auto buffer = e.buffer();
    std::ranges::fill(buffer, std::byte{0x5a});
    const auto start = clock::now();
    const auto warm_until = start + config.ping_duration / 10;
    const auto until = start + config.ping_duration;
    const auto hard_stop = start + 3 * config.ping_duration;
    auto round_trip = [&]() -> outcome<void> {
        buffer[0] = data_flag;
        if (auto sent = e.send(); !sent) {
            return sent;
        }
        if (auto got = e.recv(); !got) {
            return got;
        }
        if (buffer[0] != data_flag) {
            return failure("ping: the echo is not a data message");
        }
        return {};
    };
    for (std::size_t i = 0;; ++i) {
        const auto now = clock::now();
        if ((i >= min_warmup && now >= warm_until) || now >= until) {
            break;
        }
        if (auto done = round_trip(); !done) {
            return std::unexpected(done.error());
        }
    }
    std::vector<std::int64_t> samples;
    samples.reserve(config.max_rtt_samples);
    auto before = clock::now();
    while (samples.size() < config.max_rtt_samples) {
        if (auto done = round_trip(); !done) {
            return std::unexpected(done.error());
        }
        const auto after = clock::now();
        samples.push_back(std::chrono::nanoseconds(after - before).count());
        before = after;
        if ((after >= until && samples.size() >= min_samples) || after >= hard_stop) {
            break;
        }
    }
    buffer[0] = stop_flag;
    if (auto sent = e.send(); !sent) {
        return std::unexpected(sent.error());
    }
    return summarize(samples);
}

/// Side B of ping-pong: send every message back until the stop message.
template <endpoint E>
[[nodiscard]] outcome<void> echo(E& e) {
    auto buffer = e.buffer();
    for (;;) {
        if (auto got = e.recv(); !got) {
            return got;
        }
        if (buffer[0] == stop_flag) {
            return {};
        }
        if (auto sent = e.send(); !sent) {
            return sent;
        }
    }
}

/// Side A of a whole cell: ping-pong, then read the stream.
template <endpoint E>
[[nodiscard]] outcome<cell_result> measure_side_a(E& e, const cell_config& config) {
    auto rtt = ping(e, config);
    if (!rtt) {
        return std::unexpected("ping-pong: " + rtt.error());
    }
    auto count = e.stream_in();
    if (!count) {
        return std::unexpected("stream: " + count.error());
    }
    cell_result result;
    result.rtt = *rtt;
    const double seconds = std::chrono::duration<double>(count->elapsed).count();
    if (seconds > 0) {
        result.msgs_per_s = static_cast<double>(count->messages) / seconds;
        result.bytes_per_s = result.msgs_per_s * static_cast<double>(config.message_size);
    }
    return result;
}

/// Side B of a whole cell: echo, then write the stream for the configured duration.
template <endpoint E>
[[nodiscard]] outcome<void> run_side_b(E& e, const cell_config& config) {
    if (auto echoed = echo(e); !echoed) {
        return std::unexpected("echo: " + echoed.error());
    }
    std::ranges::fill(e.buffer(), std::byte{0xa5});
    e.buffer()[0] = data_flag;
    if (auto streamed = e.stream_out(clock::now() + config.stream_duration); !streamed) {
        return std::unexpected("stream: " + streamed.error());
    }
    return {};
}

/// Spin-wait hint for the baselines' busy loops (the same one the vdist ring uses).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/// Busy-waits until `attempt()` returns true, checking the clock every 1024 attempts and
/// giving up after `timeout`. The first attempt costs no clock read.
template <class Attempt>
[[nodiscard]] bool spin_until(Attempt&& attempt, std::chrono::nanoseconds timeout) {
    if (attempt()) {
        return true;
    }
    const auto deadline = clock::now() + timeout;
    for (std::uint32_t spins = 1;; ++spins) {
        if (attempt()) {
            return true;
        }
        cpu_relax();
        if (spins % 1024 == 0 && clock::now() >= deadline) {
            return false;
        }
    }
}

}  // namespace vdist::bench::internal
