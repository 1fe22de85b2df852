#include "poll_fd.hpp"

#include <poll.h>

#include <cerrno>

namespace vdist::transport::internal {

result<wait_outcome> wait_readable(int fd, std::chrono::nanoseconds timeout) {
    pollfd watched{fd, POLLIN, 0};
    timespec limit{};
    timespec* limit_ptr = nullptr;
    if (timeout != forever) {
        const auto t = std::max(timeout, std::chrono::nanoseconds::zero());
        const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(t);
        limit = {static_cast<time_t>(seconds.count()), static_cast<long>((t - seconds).count())};
        limit_ptr = &limit;
    }
    const int ready = ::ppoll(&watched, 1, limit_ptr, nullptr);
    if (ready < 0) {
        return errno == EINTR ? result<wait_outcome>(wait_outcome::notified) : fail_errno();
    }
    return ready == 0 ? wait_outcome::timed_out : wait_outcome::notified;
}

}  // namespace vdist::transport::internal
