#pragma once
/// \file
/// Waiting for a condition another process or thread makes true, bounded.

#include <chrono>
#include <thread>

namespace vdist::test {

/// Polls `condition` every 20 ms for at most `limit`; true once it holds.
template <class Condition>
[[nodiscard]] bool eventually(Condition condition,
                              std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

}  // namespace vdist::test
