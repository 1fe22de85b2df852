#pragma once
/// \file
/// The transports of `vdist bench transport`. Each run_* function performs one measurement
/// (ping-pong, then stream) at config.message_size, with side A on the calling thread, which
/// the caller has pinned to config.cpus.a.

#include <chrono>
#include <type_traits>
#include <utility>

#include "measure.hpp"
#include "process.hpp"
#include "vdist/transport/channel.hpp"

namespace vdist::bench::internal {

/// The vdist ring (host backend, frames) between two processes, both sides in `mode`.
[[nodiscard]] outcome<cell_result> run_vdist_ring(const cell_config& config,
                                                  transport::wait_mode mode);

/// CPU time a process spends waiting on an idle vdist ring.
struct idle_result {
    std::chrono::nanoseconds cpu{0};   ///< CLOCK_PROCESS_CPUTIME_ID of the waiting process
    std::chrono::nanoseconds wall{0};  ///< how long it waited
};

/// Side A waits (read_frame, `mode`) on a ring whose peer writes only after `idle`.
[[nodiscard]] outcome<idle_result> measure_idle_wait(const cell_config& config,
                                                     transport::wait_mode mode,
                                                     std::chrono::nanoseconds idle);

/// A minimal busy-polled SPSC byte ring in shared memory between two processes (baseline).
[[nodiscard]] outcome<cell_result> run_baseline_ring(const cell_config& config);

/// Queues between two threads: std::mutex + std::condition_variable (blocking), and
/// boost::lockfree::spsc_queue / boost::lockfree::queue (busy-polled).
[[nodiscard]] outcome<cell_result> run_mutex_condvar(const cell_config& config);
[[nodiscard]] outcome<cell_result> run_spsc_queue(const cell_config& config);
[[nodiscard]] outcome<cell_result> run_lockfree_queue(const cell_config& config);

/// Stream sockets between two processes: socketpair(AF_UNIX) and TCP over 127.0.0.1.
[[nodiscard]] outcome<cell_result> run_unix_socket(const cell_config& config);
[[nodiscard]] outcome<cell_result> run_tcp_loopback(const cell_config& config);

/// Queue capacity in items: as many messages as a ring of config.ring_bytes carries payload.
[[nodiscard]] inline std::size_t queue_capacity(const cell_config& config) noexcept {
    return std::max<std::size_t>(config.ring_bytes / config.message_size, 2);
}

/// Fork `side_b` into a child on cpus.b, run `side_a` here, then collect the child (killing
/// it when it does not finish in time). Either side's failure fails the measurement.
template <class SideA, class SideB>
[[nodiscard]] std::invoke_result_t<SideA&> run_two_processes(const cell_config& config,
                                                             SideA&& side_a, SideB&& side_b) {
    auto child = fork_child(config.cpus.b, std::forward<SideB>(side_b));
    if (!child) {
        return std::unexpected(child.error());
    }
    auto measured = side_a();
    if (!measured) {
        // The child's report, if it failed first, usually names the cause.
        auto child_status = child->finish(std::chrono::milliseconds(200));
        return std::unexpected(measured.error() +
                               (child_status ? std::string() : "; " + child_status.error()));
    }
    if (auto finished = child->finish(config.io_timeout); !finished) {
        return std::unexpected(finished.error());
    }
    return measured;
}

/// stream_out for transports without batching of their own: send() back to back, one
/// clock check per config.batch messages, then the stop message.
template <class E>
[[nodiscard]] outcome<void> send_until(E& e, clock::time_point until, std::size_t batch) {
    auto buffer = e.buffer();
    buffer[0] = data_flag;
    do {
        for (std::size_t i = 0; i < batch; ++i) {
            if (auto sent = e.send(); !sent) {
                return sent;
            }
        }
    } while (clock::now() < until);
    buffer[0] = stop_flag;
    return e.send();
}

/// stream_in for transports without batching of their own: recv() until the stop message.
template <class E>
[[nodiscard]] outcome<stream_count> receive_until_stop(E& e) {
    auto buffer = e.buffer();
    stream_counter counter;
    for (;;) {
        if (auto got = e.recv(); !got) {
            return std::unexpected(got.error());
        }
        if (buffer[0] == stop_flag) {
            return counter.finish();
        }
        counter.on_message();
    }
}

}  // namespace vdist::bench::internal
