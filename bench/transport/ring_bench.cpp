/// \file
/// Micro-benchmarks of the vdist ring in one process (loopback backend, no second core, no
/// waiting): the cost of the ring's own code per message, for 8 B .. 64 KiB.
///
///  - FrameWriteRead:      per iteration reserve + memcpy in + commit, then read_frame +
///                         memcpy out + release (notification checked per frame);
///  - FrameBatchWriteRead: per iteration a batch of frames written, then read, in
///                         begin_batch()/end_batch() (notification checked once per batch);
///  - SendRecv:            the copying all-or-nothing byte API, try_send then try_recv.
///
/// Both ends busy-poll; the client writes the left ring and the server reads it, as in
/// `vdist bench transport`. Rings are order 20 (1 MiB) per direction.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "vdist/transport/loopback_backend.hpp"
#include "vdist/transport/vchan.hpp"

namespace {

using namespace vdist::transport;

constexpr std::size_t ring_bytes = std::size_t{1} << 20;
constexpr std::size_t batch_limit = 64;

/// A connected loopback vchan. Members are destroyed in reverse order: channels before the
/// backends, backends before the hypervisor (whose leak check aborts otherwise).
class loopback_pair {
  public:
    loopback_pair() : server_domain_(hypervisor_, 1), client_domain_(hypervisor_, 2) {
        const vchan_address address{1, 2, "ring_bench"};
        const wait_policy policy{wait_mode::busy_poll};
        auto server = vchan_server(server_domain_, address,
                                   ring_orders::for_sizes(ring_bytes, ring_bytes), policy);
        if (!server) {
            error_ = "vchan_server: " + server.error().message();
            return;
        }
        server_.emplace(std::move(*server));
        auto client = vchan_client(client_domain_, address, policy, std::chrono::seconds(1));
        if (!client) {
            error_ = "vchan_client: " + client.error().message();
            return;
        }
        client_.emplace(std::move(*client));
        if (auto connected = server_->wait_connected(std::chrono::seconds(1)); !connected) {
            error_ = "wait_connected: " + connected.error().message();
        }
    }

    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    [[nodiscard]] ring_channel<loopback_backend>& writer() { return *client_; }
    [[nodiscard]] ring_channel<loopback_backend>& reader() { return *server_; }

  private:
    loopback_hypervisor hypervisor_;
    loopback_backend server_domain_;
    loopback_backend client_domain_;
    std::optional<ring_channel<loopback_backend>> server_;
    std::optional<ring_channel<loopback_backend>> client_;
    std::string error_;
};

/// Write one frame of `message` and read it back into `out`; false (with the reason in
/// `error`) when the ring misbehaves.
[[nodiscard]] bool write_frame_to(ring_channel<loopback_backend>& channel,
                                  const std::vector<std::byte>& message, std::string& error) {
    auto frame = channel.try_reserve(message.size());
    if (!frame || !*frame) {
        error = frame ? "try_reserve: ring full" : "try_reserve: " + frame.error().message();
        return false;
    }
    std::memcpy(frame->payload.data(), message.data(), message.size());
    if (auto committed = channel.commit(*frame, message.size()); !committed) {
        error = "commit: " + committed.error().message();
        return false;
    }
    return true;
}

[[nodiscard]] bool read_frame_from(ring_channel<loopback_backend>& channel,
                                   std::vector<std::byte>& out, std::string& error) {
    auto frame = channel.try_read_frame();
    if (!frame || !*frame || frame->payload.size() != out.size()) {
        error = !frame ? "try_read_frame: " + frame.error().message()
                       : (!*frame ? "try_read_frame: ring empty" : "frame of the wrong size");
        return false;
    }
    std::memcpy(out.data(), frame->payload.data(), out.size());
    if (auto released = channel.release(*frame); !released) {
        error = "release: " + released.error().message();
        return false;
    }
    return true;
}

void FrameWriteRead(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    loopback_pair pair;
    if (!pair.error().empty()) {
        state.SkipWithError(pair.error().c_str());
        return;
    }
    std::vector<std::byte> message(size, std::byte{0x5a});
    std::vector<std::byte> out(size);
    std::string error;
    for (auto _ : state) {
        if (!write_frame_to(pair.writer(), message, error) ||
            !read_frame_from(pair.reader(), out, error)) {
            state.SkipWithError(error.c_str());
            break;
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void FrameBatchWriteRead(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    // As many frames as fit in the ring at once, at most batch_limit.
    const std::size_t batch = std::min(batch_limit, ring_bytes / frame_footprint(size) - 1);
    loopback_pair pair;
    if (!pair.error().empty()) {
        state.SkipWithError(pair.error().c_str());
        return;
    }
    std::vector<std::byte> message(size, std::byte{0x5a});
    std::vector<std::byte> out(size);
    std::string error;
    for (auto _ : state) {
        bool ok = true;
        pair.writer().begin_batch();
        for (std::size_t i = 0; ok && i < batch; ++i) {
            ok = write_frame_to(pair.writer(), message, error);
        }
        ok = pair.writer().end_batch().has_value() && ok;
        pair.reader().begin_batch();
        for (std::size_t i = 0; ok && i < batch; ++i) {
            ok = read_frame_from(pair.reader(), out, error);
            benchmark::DoNotOptimize(out.data());
        }
        ok = pair.reader().end_batch().has_value() && ok;
        if (!ok) {
            state.SkipWithError(error.empty() ? "end_batch failed" : error.c_str());
            break;
        }
        benchmark::ClobberMemory();
    }
    const auto messages = state.iterations() * static_cast<benchmark::IterationCount>(batch);
    state.counters["batch"] = static_cast<double>(batch);
    state.SetItemsProcessed(messages);
    state.SetBytesProcessed(messages * state.range(0));
}

void SendRecv(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    loopback_pair pair;
    if (!pair.error().empty()) {
        state.SkipWithError(pair.error().c_str());
        return;
    }
    std::vector<std::byte> message(size, std::byte{0x5a});
    std::vector<std::byte> out(size);
    for (auto _ : state) {
        auto sent = pair.writer().try_send(message);
        auto got = pair.reader().try_recv(out);
        if (!sent || *sent != write_status::sent || !got || *got != read_status::received) {
            state.SkipWithError("try_send / try_recv failed");
            break;
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

BENCHMARK(FrameWriteRead)->Arg(8)->Arg(64)->Arg(1024)->Arg(65536);
BENCHMARK(FrameBatchWriteRead)->Arg(8)->Arg(64)->Arg(1024)->Arg(65536);
BENCHMARK(SendRecv)->Arg(8)->Arg(64)->Arg(1024)->Arg(65536);

}  // namespace

BENCHMARK_MAIN();
