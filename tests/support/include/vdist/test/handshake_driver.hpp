#pragma once
/// \file
/// Drives a dist::handshake (sans-IO) over a blocking socket, for tests that play one end of
/// a connection by hand. Every read is bounded.

#include <chrono>
#include <utility>

#include "vdist/dist/handshake.hpp"
#include "vdist/test/bytes.hpp"
#include "vdist/test/socket.hpp"

namespace vdist::test {

/// How driving a handshake over a socket ended.
struct drive_outcome {
    bool peer_closed = false;  ///< end of stream while the handshake was still in progress
    bool timed_out = false;
    bool send_failed = false;
    bytes leftover;  ///< read but not consumed (after done: the connection's)
};

/// Sends what `hs` has to say and feeds it what arrives until it leaves in_progress (done,
/// failed, needs_*), the peer closes, or a read waits longer than `timeout`.
[[nodiscard]] inline drive_outcome drive(dist::handshake& hs, int fd,
                                         std::chrono::milliseconds timeout, bytes pending = {}) {
    drive_outcome outcome;
    for (;;) {
        const bytes out = hs.take_output();
        if (!out.empty() && !send_all(fd, out)) {
            outcome.send_failed = true;
        }
        if (hs.state() != dist::handshake_state::in_progress) {
            outcome.leftover = std::move(pending);
            return outcome;
        }
        if (!pending.empty()) {
            const std::size_t used = hs.feed(pending);
            pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(used));
            continue;
        }
        const auto arrived = read_some(fd, timeout);
        if (!arrived) {
            outcome.timed_out = true;
            return outcome;
        }
        if (arrived->empty()) {
            outcome.peer_closed = true;
            return outcome;
        }
        pending = *arrived;
    }
}

}  // namespace vdist::test
