/// \file
/// Queue baselines between two threads of one process: side A on the calling thread, side B
/// on a second thread pinned to cpus.b.
///
/// Items carry the message itself, copied in by push and out by pop. Sizes of 8..1024 bytes
/// (powers of two) are queue items of std::array<std::byte, N>; other sizes (64 KiB) travel
/// as pointers into a ring of preallocated buffers owned by the sender: the sender memcpys the
/// message into the next buffer and pushes its address, the receiver pops it and memcpys the
/// message out. The pool has capacity + 2 buffers, so the sender never overwrites a buffer
/// still queued or being copied out.

#include <array>
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "transports.hpp"

namespace vdist::bench::internal {
namespace {

/// A bounded queue under one std::mutex, with one condition variable per direction.
template <class T>
class mutex_condvar_queue {
  public:
    explicit mutex_condvar_queue(std::size_t capacity) : slots_(capacity) {}

    [[nodiscard]] bool push(const T& item, std::chrono::nanoseconds timeout) {
        {
            std::unique_lock lock(mutex_);
            if (count_ == slots_.size() &&
                !not_full_.wait_for(lock, timeout, [&] { return count_ < slots_.size(); })) {
                return false;
            }
            std::size_t tail = head_ + count_;
            if (tail >= slots_.size()) {
                tail -= slots_.size();
            }
            slots_[tail] = item;
            ++count_;
        }
        not_empty_.notify_one();
        return true;
    }

    [[nodiscard]] bool pop(T& item, std::chrono::nanoseconds timeout) {
        {
            std::unique_lock lock(mutex_);
            if (count_ == 0 && !not_empty_.wait_for(lock, timeout, [&] { return count_ > 0; })) {
                return false;
            }
            item = slots_[head_];
            if (++head_ == slots_.size()) {
                head_ = 0;
            }
            --count_;
        }
        not_full_.notify_one();
        return true;
    }

  private:
    std::mutex mutex_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    std::vector<T> slots_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
};

/// boost::lockfree::spsc_queue, busy-polled.
template <class T>
class spsc_queue {
  public:
    explicit spsc_queue(std::size_t capacity) : queue_(capacity) {}

    [[nodiscard]] bool push(const T& item, std::chrono::nanoseconds timeout) {
        return spin_until([&] { return queue_.push(item); }, timeout);
    }
    [[nodiscard]] bool pop(T& item, std::chrono::nanoseconds timeout) {
        return spin_until([&] { return queue_.pop(item); }, timeout);
    }

  private:
    boost::lockfree::spsc_queue<T> queue_;
};

/// boost::lockfree::queue (multi-producer, multi-consumer), nodes preallocated, busy-polled.
template <class T>
class lockfree_queue {
  public:
    explicit lockfree_queue(std::size_t capacity) : queue_(capacity) {}

    [[nodiscard]] bool push(const T& item, std::chrono::nanoseconds timeout) {
        return spin_until([&] { return queue_.bounded_push(item); }, timeout);
    }
    [[nodiscard]] bool pop(T& item, std::chrono::nanoseconds timeout) {
        return spin_until([&] { return queue_.pop(item); }, timeout);
    }

  private:
    boost::lockfree::queue<T> queue_;
};

/// The sender's ring of preallocated message buffers (pointer items).
class buffer_pool {
  public:
    buffer_pool(std::size_t buffers, std::size_t size)
        : storage_(buffers * size), size_(size), buffers_(buffers) {}

    /// The next buffer to fill (sender only).
    [[nodiscard]] std::byte* next() noexcept {
        std::byte* buffer = storage_.data() + next_ * size_;
        if (++next_ == buffers_) {
            next_ = 0;
        }
        return buffer;
    }

  private:
    std::vector<std::byte> storage_;
    std::size_t size_;
    std::size_t buffers_;
    std::size_t next_ = 0;
};

/// One side of a pair of queues. T is std::array<std::byte, N> (the item is the message) or
/// std::byte* (the item points into the sender's buffer_pool).
// Cache-line aligned: both endpoints live side by side on side A's stack, and unaligned, side
// A's message shared a cache line with side B's message and references (false sharing on
// every message: spsc_queue at 64 B ran at 5 M instead of 16 M msgs/s).
template <template <class> class Queue, class T>
class alignas(64) queue_endpoint {
  public:
    static constexpr bool pooled = std::is_pointer_v<T>;

    queue_endpoint(Queue<T>& out, Queue<T>& in, buffer_pool* out_pool, const cell_config& config)
        : out_(out), in_(in), pool_(out_pool), config_(config) {
        if constexpr (pooled) {
            message_.resize(config.message_size);
        }
    }

    [[nodiscard]] std::span<std::byte> buffer() noexcept { return message_; }

    [[nodiscard]] outcome<void> send() {
        bool pushed = false;
        if constexpr (pooled) {
            std::byte* slot = pool_->next();
            std::memcpy(slot, message_.data(), message_.size());
            pushed = out_.push(slot, config_.io_timeout);
        } else {
            pushed = out_.push(message_, config_.io_timeout);
        }
        return pushed ? outcome<void>{} : failure("push timed out");
    }

    [[nodiscard]] outcome<void> recv() {
        if constexpr (pooled) {
            std::byte* slot = nullptr;
            if (!in_.pop(slot, config_.io_timeout)) {
                return failure("pop timed out");
            }
            std::memcpy(message_.data(), slot, message_.size());
        } else {
            if (!in_.pop(message_, config_.io_timeout)) {
                return failure("pop timed out");
            }
        }
        return {};
    }

    [[nodiscard]] outcome<void> stream_out(clock::time_point until) {
        return send_until(*this, until, config_.batch);
    }
    [[nodiscard]] outcome<stream_count> stream_in() { return receive_until_stop(*this); }

  private:
    Queue<T>& out_;
    Queue<T>& in_;
    buffer_pool* pool_;
    const cell_config& config_;
    // The message: the queue item itself, or the buffer copied into / out of the pool.
    std::conditional_t<pooled, std::vector<std::byte>, T> message_{};
};

template <template <class> class Queue, class T>
[[nodiscard]] outcome<cell_result> run_queue_pair(const cell_config& config) {
    constexpr bool pooled = std::is_pointer_v<T>;
    if constexpr (!pooled) {
        if (sizeof(T) != config.message_size) {
            return failure("queue item size mismatch");
        }
    }
    const std::size_t capacity = queue_capacity(config);
    Queue<T> a_to_b(capacity);
    Queue<T> b_to_a(capacity);
    std::optional<buffer_pool> a_pool;
    std::optional<buffer_pool> b_pool;
    if constexpr (pooled) {
        a_pool.emplace(capacity + 2, config.message_size);
        b_pool.emplace(capacity + 2, config.message_size);
    }
    queue_endpoint<Queue, T> a(a_to_b, b_to_a, a_pool ? &*a_pool : nullptr, config);
    queue_endpoint<Queue, T> b(b_to_a, a_to_b, b_pool ? &*b_pool : nullptr, config);

    outcome<void> side_b = failure("side B did not run");
    std::thread thread([&] {
        side_b = pin_this_thread(config.cpus.b);
        if (side_b) {
            side_b = run_side_b(b, config);
        }
    });
    auto measured = measure_side_a(a, config);
    thread.join();
    if (!side_b) {
        return std::unexpected((measured ? std::string() : measured.error() + "; ") +
                               "side B: " + side_b.error());
    }
    return measured;
}

/// Item sizes that travel inline as std::array<std::byte, N>.
template <template <class> class Queue>
[[nodiscard]] outcome<cell_result> run_queue(const cell_config& config) {
    switch (config.message_size) {
        case 8:
            return run_queue_pair<Queue, std::array<std::byte, 8>>(config);
        case 16:
            return run_queue_pair<Queue, std::array<std::byte, 16>>(config);
        case 32:
            return run_queue_pair<Queue, std::array<std::byte, 32>>(config);
        case 64:
            return run_queue_pair<Queue, std::array<std::byte, 64>>(config);
        case 128:
            return run_queue_pair<Queue, std::array<std::byte, 128>>(config);
        case 256:
            return run_queue_pair<Queue, std::array<std::byte, 256>>(config);
        case 512:
            return run_queue_pair<Queue, std::array<std::byte, 512>>(config);
        case 1024:
            return run_queue_pair<Queue, std::array<std::byte, 1024>>(config);
        default:
            return run_queue_pair<Queue, std::byte*>(config);
    }
}

}  // namespace

outcome<cell_result> run_mutex_condvar(const cell_config& config) {
    return run_queue<mutex_condvar_queue>(config);
}

outcome<cell_result> run_spsc_queue(const cell_config& config) {
    return run_queue<spsc_queue>(config);
}

outcome<cell_result> run_lockfree_queue(const cell_config& config) {
    return run_queue<lockfree_queue>(config);
}

}  // namespace vdist::bench::internal
