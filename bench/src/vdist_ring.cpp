/// \file
/// The vdist ring between two processes over the host backend: side A (parent) is the vchan
/// server (domain 1), side B (child) the client (domain 2); both rings have
/// config.ring_bytes. Messages are frames: the writer reserves, memcpys the message in and
/// commits; the reader takes the frame, memcpys the message out and releases it. Streams are
/// batched as vdist is meant to be used: begin_batch(), up to config.batch frames with
/// try_reserve / try_read_frame, end_batch(); when the ring is full (or empty) the batch ends
/// and one blocking reserve (read_frame) waits under the channel's wait policy.

#include <time.h>

#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "transports.hpp"
#include "vdist/transport/host_backend.hpp"
#include "vdist/transport/vchan.hpp"

namespace vdist::bench::internal {
namespace {

using transport::host_backend;
using transport::ring_channel;
using transport::ring_orders;
using transport::vchan_address;
using transport::wait_mode;
using transport::wait_policy;

using channel_type = ring_channel<host_backend>;

constexpr transport::domid_t server_domain = 1;
constexpr transport::domid_t client_domain = 2;

class ring_endpoint {
  public:
    ring_endpoint(channel_type& channel, const cell_config& config)
        : channel_(channel), message_(config.message_size), config_(config) {}

    [[nodiscard]] std::span<std::byte> buffer() noexcept { return message_; }

    [[nodiscard]] outcome<void> send() {
        auto frame = channel_.reserve(message_.size(), config_.io_timeout);
        if (!frame) {
            return failure("reserve", frame.error());
        }
        return fill_and_commit(*frame);
    }

    [[nodiscard]] outcome<void> recv() {
        auto frame = channel_.read_frame(config_.io_timeout);
        if (!frame) {
            return failure("read_frame", frame.error());
        }
        return copy_out_and_release(*frame);
    }

    // The stream loops below are the measured path: per message they do the ring's work, one
    // memcpy and a few branches, nothing else. Errors leave the loop as a trivial batch_error
    // and become an outcome once the batch has ended. An outcome<void> per message (a
    // std::string inside, assigned and returned through memory) cost 15-20 % at 64 B.

    [[nodiscard]] outcome<void> stream_out(clock::time_point until) {
        const std::size_t size = message_.size();
        message_[0] = data_flag;
        do {
            channel_.begin_batch();
            std::size_t written = 0;
            batch_error failed;
            for (; written < config_.batch; ++written) {
                auto frame = channel_.try_reserve(size);
                if (!frame) {
                    failed = {"try_reserve", frame.error()};
                    break;
                }
                if (!*frame) {
                    break;  // the ring is full
                }
                if (frame->payload.size() < size) {
                    failed = {"reserve returned a frame smaller than asked for", {}};
                    break;
                }
                std::memcpy(frame->payload.data(), message_.data(), size);
                if (auto committed = channel_.commit(*frame, size); !committed) {
                    failed = {"commit", committed.error()};
                    break;
                }
            }
            if (auto ended = channel_.end_batch(); !ended && !failed) {
                failed = {"end_batch", ended.error()};
            }
            if (failed) {
                return failed.report();
            }
            if (written < config_.batch) {
                // Full: wait for room outside the batch, under the wait policy.
                if (auto sent = send(); !sent) {
                    return sent;
                }
            }
        } while (clock::now() < until);
        message_[0] = stop_flag;
        return send();
    }

    [[nodiscard]] outcome<stream_count> stream_in() {
        const std::size_t size = message_.size();
        stream_counter counter;
        for (;;) {
            channel_.begin_batch();
            std::size_t taken = 0;
            bool stopped = false;
            batch_error failed;
            std::optional<std::size_t> wrong_size;
            for (; taken < config_.batch; ++taken) {
                auto frame = channel_.try_read_frame();
                if (!frame) {
                    failed = {"try_read_frame", frame.error()};
                    break;
                }
                if (!*frame) {
                    break;  // the ring is empty
                }
                if (frame->payload.size() != size) {
                    wrong_size = frame->payload.size();
                    break;
                }
                std::memcpy(message_.data(), frame->payload.data(), size);
                if (auto released = channel_.release(*frame); !released) {
                    failed = {"release", released.error()};
                    break;
                }
                if (message_[0] == stop_flag) {
                    stopped = true;
                    break;
                }
                counter.on_message();
            }
            if (auto ended = channel_.end_batch(); !ended && !failed) {
                failed = {"end_batch", ended.error()};
            }
            if (wrong_size) {
                return wrong_frame_size(*wrong_size);
            }
            if (failed) {
                return failed.report();
            }
            if (stopped) {
                return counter.finish();
            }
            if (taken < config_.batch) {
                // Empty: wait for a frame outside the batch, under the wait policy.
                if (auto got = recv(); !got) {
                    return std::unexpected(got.error());
                }
                if (message_[0] == stop_flag) {
                    return counter.finish();
                }
                counter.on_message();
            }
        }
    }

  private:
    /// An error met inside a batch; `what` is nullptr when there was none.
    struct batch_error {
        const char* what = nullptr;
        std::error_code error;  ///< none when `what` says it all

        [[nodiscard]] explicit operator bool() const noexcept { return what != nullptr; }
        [[nodiscard]] std::unexpected<std::string> report() const {
            return error ? failure(what, error) : failure(what);
        }
    };

    [[nodiscard]] std::unexpected<std::string> wrong_frame_size(std::size_t got) const {
        return failure("received a frame of " + std::to_string(got) + " bytes, expected " +
                       std::to_string(message_.size()));
    }

    // Frames by reference: GCC copies a by-value frame argument with a 16-byte load of what
    // try_reserve / try_read_frame had just stored as two 8-byte fields. Such a load cannot be
    // forwarded from the store buffer; it waits until every older store is in the cache,
    // including the stores into ring lines the peer holds: one cross-core round trip per
    // message. The stream, through a by-value fill_and_commit, ran at 5.3 M msgs/s at 64 B
    // instead of the standalone loop's 14-25 M.
    [[nodiscard]] outcome<void> fill_and_commit(const transport::write_frame& frame) {
        if (frame.payload.size() < message_.size()) {
            return failure("reserve returned a frame smaller than asked for");
        }
        std::memcpy(frame.payload.data(), message_.data(), message_.size());
        if (auto committed = channel_.commit(frame, message_.size()); !committed) {
            return failure("commit", committed.error());
        }
        return {};
    }

    [[nodiscard]] outcome<void> copy_out_and_release(const transport::read_frame& frame) {
        if (frame.payload.size() != message_.size()) {
            return wrong_frame_size(frame.payload.size());
        }
        std::memcpy(message_.data(), frame.payload.data(), message_.size());
        if (auto released = channel_.release(frame); !released) {
            return failure("release", released.error());
        }
        return {};
    }

    channel_type& channel_;
    std::vector<std::byte> message_;
    const cell_config& config_;
};

[[nodiscard]] vchan_address address_of(const cell_config& config) {
    return {server_domain, client_domain, config.port};
}

/// Side A: create domain 1, serve the vchan, wait for the client, run `body(channel)`.
template <class Body>
[[nodiscard]] auto with_server(const cell_config& config, wait_mode mode, Body&& body)
    -> std::invoke_result_t<Body&, channel_type&> {
    auto backend = host_backend::create(server_domain, config.run_dir);
    if (!backend) {
        return failure("host_backend::create(1)", backend.error());
    }
    auto server = transport::vchan_server(
        *backend, address_of(config), ring_orders::for_sizes(config.ring_bytes, config.ring_bytes),
        wait_policy{mode});
    if (!server) {
        return failure("vchan_server", server.error());
    }
    if (auto connected = server->wait_connected(config.io_timeout); !connected) {
        return failure("wait_connected", connected.error());
    }
    if (server->max_frame_payload() < config.message_size) {
        return failure("the ring's max_frame_payload() is smaller than the message");
    }
    return body(*server);
}

/// Side B: create domain 2, attach to the vchan, run `body(channel)`.
template <class Body>
[[nodiscard]] outcome<void> with_client(const cell_config& config, wait_mode mode, Body&& body) {
    auto backend = host_backend::create(client_domain, config.run_dir);
    if (!backend) {
        return failure("host_backend::create(2)", backend.error());
    }
    auto client =
        transport::vchan_client(*backend, address_of(config), wait_policy{mode}, config.io_timeout);
    if (!client) {
        return failure("vchan_client", client.error());
    }
    return body(*client);
}

[[nodiscard]] std::chrono::nanoseconds process_cpu_time() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

}  // namespace

outcome<cell_result> run_vdist_ring(const cell_config& config, wait_mode mode) {
    return run_two_processes(
        config,
        [&]() -> outcome<cell_result> {
            return with_server(config, mode, [&](channel_type& channel) -> outcome<cell_result> {
                ring_endpoint endpoint(channel, config);
                return measure_side_a(endpoint, config);
            });
        },
        [&]() -> outcome<void> {
            return with_client(config, mode, [&](channel_type& channel) -> outcome<void> {
                ring_endpoint endpoint(channel, config);
                return run_side_b(endpoint, config);
            });
        });
}

outcome<idle_result> measure_idle_wait(const cell_config& config, wait_mode mode,
                                       std::chrono::nanoseconds idle) {
    return run_two_processes(
        config,
        [&]() -> outcome<idle_result> {
            return with_server(config, mode, [&](channel_type& channel) -> outcome<idle_result> {
                ring_endpoint endpoint(channel, config);
                const auto cpu_before = process_cpu_time();
                const auto wall_before = clock::now();
                if (auto got = endpoint.recv(); !got) {  // the peer writes after `idle`
                    return std::unexpected("idle wait: " + got.error());
                }
                return idle_result{process_cpu_time() - cpu_before, clock::now() - wall_before};
            });
        },
        [&]() -> outcome<void> {
            return with_client(config, mode, [&](channel_type& channel) -> outcome<void> {
                ring_endpoint endpoint(channel, config);
                std::this_thread::sleep_for(idle);
                // Then leave: the frame lives in side A's pages and stays readable.
                return endpoint.send();
            });
        });
}

}  // namespace vdist::bench::internal
