/// \file
/// The baseline the vdist ring must approach: a minimal busy-polled single-producer,
/// single-consumer byte ring in shared memory between two processes, with none of the vchan
/// layout, framing, validation or notification. One anonymous shared mapping, made before
/// fork:
///
/// ```
///   0          64         128        192        256      4096             4096 + size
///   +----------+----------+----------+----------+--...---+----------------+----------------+
///   | A→B head | A→B tail | B→A head | B→A tail | unused | ring A→B bytes | ring B→A bytes |
///   +----------+----------+----------+----------+--...---+----------------+----------------+
///   head: free-running uint64 the producer stores; tail: the consumer's; one cache line each
/// ```
///
/// A message is its `message_size` bytes, nothing else (both sides know the size); it may wrap.
/// Each side caches the other's index and re-reads it only when the cached value says "full" or
/// "empty", as any decent SPSC ring does.

#include <sys/mman.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include "transports.hpp"

namespace vdist::bench::internal {
namespace {

struct alignas(64) padded_index {
    std::atomic<std::uint64_t> value{0};
};

struct plain_ring_indices {
    padded_index head;  ///< written by the producer only
    padded_index tail;  ///< written by the consumer only
};

static_assert(sizeof(plain_ring_indices) == 128);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the indices are shared between processes");

constexpr std::size_t data_offset = 4096;

/// The shared mapping (unmapped on destruction; the child has its own copy of the mapping).
class shared_mapping {
  public:
    explicit shared_mapping(std::size_t size) : size_(size) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        data_ = p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
    }
    ~shared_mapping() {
        if (data_ != nullptr) {
            ::munmap(data_, size_);
        }
    }
    shared_mapping(const shared_mapping&) = delete;
    shared_mapping& operator=(const shared_mapping&) = delete;

    [[nodiscard]] std::byte* data() const noexcept { return data_; }

  private:
    std::byte* data_ = nullptr;
    std::size_t size_;
};

class plain_ring_writer {
  public:
    plain_ring_writer(plain_ring_indices& indices, std::byte* ring, std::size_t size) noexcept
        : indices_(indices), ring_(ring), size_(size) {}

    /// All or nothing.
    [[nodiscard]] bool try_write(std::span<const std::byte> bytes) noexcept {
        const std::size_t n = bytes.size();
        if (size_ - (head_ - tail_seen_) < n) {
            // Acquire: the consumer's reads of that space happen before we overwrite it.
            tail_seen_ = indices_.tail.value.load(std::memory_order_acquire);
            if (size_ - (head_ - tail_seen_) < n) {
                return false;
            }
        }
        const std::size_t position = head_ & (size_ - 1);
        const std::size_t first = std::min(n, size_ - position);
        std::memcpy(ring_ + position, bytes.data(), first);
        std::memcpy(ring_, bytes.data() + first, n - first);
        head_ += n;
        // Release: the bytes are visible before the index that publishes them.
        indices_.head.value.store(head_, std::memory_order_release);
        return true;
    }

  private:
    plain_ring_indices& indices_;
    std::byte* ring_;
    std::size_t size_;
    std::uint64_t head_ = 0;
    std::uint64_t tail_seen_ = 0;
};

class plain_ring_reader {
  public:
    plain_ring_reader(plain_ring_indices& indices, const std::byte* ring, std::size_t size) noexcept
        : indices_(indices), ring_(ring), size_(size) {}

    /// All or nothing.
    [[nodiscard]] bool try_read(std::span<std::byte> bytes) noexcept {
        const std::size_t n = bytes.size();
        if (head_seen_ - tail_ < n) {
            // Acquire: the producer's bytes are visible once we see its index.
            head_seen_ = indices_.head.value.load(std::memory_order_acquire);
            if (head_seen_ - tail_ < n) {
                return false;
            }
        }
        const std::size_t position = tail_ & (size_ - 1);
        const std::size_t first = std::min(n, size_ - position);
        std::memcpy(bytes.data(), ring_ + position, first);
        std::memcpy(bytes.data() + first, ring_, n - first);
        tail_ += n;
        // Release: our reads of the space are done before the producer may reuse it.
        indices_.tail.value.store(tail_, std::memory_order_release);
        return true;
    }

  private:
    plain_ring_indices& indices_;
    const std::byte* ring_;
    std::size_t size_;
    std::uint64_t tail_ = 0;
    std::uint64_t head_seen_ = 0;
};

class plain_ring_endpoint {
  public:
    plain_ring_endpoint(plain_ring_writer writer, plain_ring_reader reader,
                        const cell_config& config)
        : writer_(writer), reader_(reader), message_(config.message_size), config_(config) {}

    [[nodiscard]] std::span<std::byte> buffer() noexcept { return message_; }

    [[nodiscard]] outcome<void> send() {
        if (!spin_until([&] { return writer_.try_write(message_); }, config_.io_timeout)) {
            return failure("write timed out");
        }
        return {};
    }
    [[nodiscard]] outcome<void> recv() {
        if (!spin_until([&] { return reader_.try_read(message_); }, config_.io_timeout)) {
            return failure("read timed out");
        }
        return {};
    }
    [[nodiscard]] outcome<void> stream_out(clock::time_point until) {
        return send_until(*this, until, config_.batch);
    }
    [[nodiscard]] outcome<stream_count> stream_in() { return receive_until_stop(*this); }

  private:
    plain_ring_writer writer_;
    plain_ring_reader reader_;
    std::vector<std::byte> message_;
    const cell_config& config_;
};

}  // namespace

outcome<cell_result> run_baseline_ring(const cell_config& config) {
    const std::size_t size = config.ring_bytes;
    if (size == 0 || (size & (size - 1)) != 0 || config.message_size > size) {
        return failure("baseline ring: size must be a power of two >= the message size");
    }
    shared_mapping mapping(data_offset + 2 * size);
    if (mapping.data() == nullptr) {
        return failure("mmap", std::error_code(errno, std::system_category()));
    }
    auto* a_to_b = new (mapping.data()) plain_ring_indices;
    auto* b_to_a = new (mapping.data() + sizeof(plain_ring_indices)) plain_ring_indices;
    std::byte* ring_a_to_b = mapping.data() + data_offset;
    std::byte* ring_b_to_a = ring_a_to_b + size;
    return run_two_processes(
        config,
        [&]() -> outcome<cell_result> {
            plain_ring_endpoint endpoint({*a_to_b, ring_a_to_b, size}, {*b_to_a, ring_b_to_a, size},
                                         config);
            return measure_side_a(endpoint, config);
        },
        [&]() -> outcome<void> {
            plain_ring_endpoint endpoint({*b_to_a, ring_b_to_a, size}, {*a_to_b, ring_a_to_b, size},
                                         config);
            return run_side_b(endpoint, config);
        });
}

}  // namespace vdist::bench::internal
