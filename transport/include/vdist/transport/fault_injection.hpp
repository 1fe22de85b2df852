#pragma once
/// \file
/// Fault-injecting decorators that model the same seams as real backends, for tests: a backend
/// whose event ports drop or duplicate notifications. The vchan protocol must still deliver
/// everything over it (a dropped notification costs at most one wait_policy::recheck period).

#include <atomic>
#include <memory>
#include <mutex>
#include <random>
#include <utility>

#include "vdist/transport/seams.hpp"

namespace vdist::transport {

/// What the faulty event channel does to notifications.
struct notification_faults {
    double drop_probability = 0.0;
    double duplicate_probability = 0.0;
    std::uint64_t seed = 1;
};

/// Counts of injected faults.
struct notification_fault_counts {
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> dropped{0};
    std::atomic<std::uint64_t> duplicated{0};
};

/// Wraps backend B; memory and rendezvous pass through, notifications are tampered with.
template <vchan_backend B>
class faulty_backend {
  public:
    using grant_memory_type = typename B::grant_memory_type;
    using rendezvous_type = typename B::rendezvous_type;
    using inner_port = typename B::event_channel_type::port;

    struct shared_state {
        notification_faults faults;
        notification_fault_counts counts;
        std::mutex mutex;
        std::mt19937_64 random;
    };

    /// The decorated event channel.
    class faulty_event_channel {
      public:
        /// A port whose notify() may do nothing or signal twice.
        class port {
          public:
            port(inner_port inner, std::shared_ptr<shared_state> state)
                : inner_(std::move(inner)), state_(std::move(state)) {}
            [[nodiscard]] event_port local_port() const noexcept { return inner_.local_port(); }
            [[nodiscard]] result<void> notify() {
                state_->counts.sent.fetch_add(1, std::memory_order_relaxed);
                double roll = 0;
                {
                    std::lock_guard lock(state_->mutex);
                    roll = std::uniform_real_distribution<double>(0.0, 1.0)(state_->random);
                }
                const auto& faults = state_->faults;
                if (roll < faults.drop_probability) {
                    state_->counts.dropped.fetch_add(1, std::memory_order_relaxed);
                    return {};
                }
                if (roll < faults.drop_probability + faults.duplicate_probability) {
                    state_->counts.duplicated.fetch_add(1, std::memory_order_relaxed);
                    if (auto first = inner_.notify(); !first) {
                        return first;
                    }
                }
                return inner_.notify();
            }
            [[nodiscard]] result<wait_outcome> wait(std::chrono::nanoseconds timeout) {
                return inner_.wait(timeout);
            }
            [[nodiscard]] int native_handle() const noexcept { return inner_.native_handle(); }
            [[nodiscard]] bool peer_alive() { return inner_.peer_alive(); }

          private:
            inner_port inner_;
            std::shared_ptr<shared_state> state_;
        };

        faulty_event_channel(typename B::event_channel_type& inner,
                             std::shared_ptr<shared_state> state)
            : inner_(&inner), state_(std::move(state)) {}

        [[nodiscard]] result<port> bind_unbound_port(domid_t peer) {
            return wrap(inner_->bind_unbound_port(peer));
        }
        [[nodiscard]] result<port> bind_interdomain(domid_t peer, event_port remote) {
            return wrap(inner_->bind_interdomain(peer, remote));
        }

      private:
        [[nodiscard]] result<port> wrap(result<inner_port> bound) {
            if (!bound) {
                return std::unexpected(bound.error());
            }
            return port(std::move(*bound), state_);
        }
        typename B::event_channel_type* inner_;
        std::shared_ptr<shared_state> state_;
    };

    using event_channel_type = faulty_event_channel;

    faulty_backend(B& inner, notification_faults faults)
        : inner_(&inner),
          state_(std::make_shared<shared_state>()),
          events_(inner.events(), state_) {
        state_->faults = faults;
        state_->random.seed(faults.seed);
    }

    [[nodiscard]] domid_t domid() const noexcept { return inner_->domid(); }
    [[nodiscard]] grant_memory_type& memory() noexcept { return inner_->memory(); }
    [[nodiscard]] faulty_event_channel& events() noexcept { return events_; }
    [[nodiscard]] rendezvous_type& directory() noexcept { return inner_->directory(); }
    [[nodiscard]] const notification_fault_counts& counts() const noexcept {
        return state_->counts;
    }

  private:
    B* inner_;
    std::shared_ptr<shared_state> state_;
    faulty_event_channel events_;
};

}  // namespace vdist::transport
