#pragma once
/// \file
/// What a node's processes saw, handed to the test thread: a process puts terms in, the test
/// waits for them (with a deadline, never forever).

#include <chrono>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "vdist/dist/term.hpp"

namespace vdist::test {

class inbox {
  public:
    void put(dist::term t) {
        std::lock_guard lock(mutex_);
        items_.push_back(std::move(t));
    }
    /// Waits until `n` items arrived (or the timeout) and returns them.
    [[nodiscard]] std::vector<dist::term> wait_for(
        std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            {
                std::lock_guard lock(mutex_);
                if (items_.size() >= n || std::chrono::steady_clock::now() > deadline) {
                    return items_;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

  private:
    std::mutex mutex_;
    std::vector<dist::term> items_;
};

}  // namespace vdist::test
