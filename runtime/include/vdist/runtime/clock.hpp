#pragma once
/// \file
/// The node's clock, injected so that timers, receive timeouts and supervisor restart
/// intensity can be tested without waiting: a steady clock in production, a manual one in
/// tests (tests/support/.../test_node.hpp).

#include <chrono>

namespace vdist::runtime {

/// Monotonic time as the node sees it.
class clock {
  public:
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

    virtual ~clock() = default;
    /// Now. Never goes backwards.
    [[nodiscard]] virtual time_point now() const noexcept = 0;
};

/// std::chrono::steady_clock.
class steady_clock_source final : public clock {
  public:
    [[nodiscard]] time_point now() const noexcept override {
        return std::chrono::steady_clock::now();
    }
};

/// A clock that moves only when told to (tests).
class manual_clock final : public clock {
  public:
    [[nodiscard]] time_point now() const noexcept override { return now_; }
    /// Moves time forward by `by` (negative values are ignored).
    void advance(duration by) noexcept {
        if (by > duration::zero()) {
            now_ += by;
        }
    }

  private:
    time_point now_{};
};

}  // namespace vdist::runtime
