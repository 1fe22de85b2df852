#include "store_direct.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "unix_address.hpp"
namespace vdist::discovery::internal {
namespace {

std::error_code errno_code(int error) {
    return {error, std::generic_category()};
}

}  // namespace

std::expected<std::unique_ptr<store_direct>, std::error_code> store_direct::connect(
    const std::filesystem::path& socket) {
    const auto address = unix_address(socket);
    if (!address) {
        return std::unexpected(errno_code(ENAMETOOLONG));
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int poll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    const int kept_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    auto connection = std::unique_ptr<store_direct>(new store_direct(fd, poll_fd, kept_fd));
    if (fd < 0 || poll_fd < 0 || kept_fd < 0) {
        return std::unexpected(errno_code(errno));
    }
    int result = 0;
    do {
        result = ::connect(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
    } while (result != 0 && errno == EINTR);
    if (result != 0) {
        return std::unexpected(errno_code(errno));
    }
    for (const int member : {fd, kept_fd}) {
        epoll_event readable{};
        readable.events = EPOLLIN;
        readable.data.fd = member;
        if (::epoll_ctl(poll_fd, EPOLL_CTL_ADD, member, &readable) != 0) {
            return std::unexpected(errno_code(errno));
        }
    }
    return connection;
}

store_direct::~store_direct() {
    for (const int fd : {socket_, poll_fd_, kept_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

std::expected<std::string, std::error_code> store_direct::request(std::uint32_t type,
                                                                  transaction_id tx,
                                                                  std::string_view payload) {
    if (payload.size() > xs::payload_max) {
        return std::unexpected(errno_code(E2BIG));
    }
    if (broken_) {
        return std::unexpected(errno_code(EIO));
    }
    const std::uint32_t req_id = next_req_id_++;
    const std::string bytes = xs::build(type, req_id, tx, payload);
    for (std::size_t sent = 0; sent < bytes.size();) {
        const auto n = ::send(socket_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            lose_connection();
            return std::unexpected(errno_code(EIO));
        }
        sent += static_cast<std::size_t>(n);
    }
    for (;;) {
        if (auto reply = take_messages(req_id)) {
            if (reply->head.type != xs::XS_ERROR) {
                return std::move(reply->payload);
            }
            const auto name = std::string_view(reply->payload.c_str());
            return std::unexpected(errno_code(xs::error_from_name(name).value_or(EINVAL)));
        }
        if (broken_ || !receive(true)) {
            lose_connection();
            return std::unexpected(errno_code(EIO));
        }
    }
}

std::optional<watch_event> store_direct::next_event() {
    if (events_.empty() && !broken_ && receive(false)) {
        (void)take_messages(0);  // no request waits: only events come unasked
    }
    if (events_.empty()) {
        return std::nullopt;
    }
    watch_event event = std::move(events_.front());
    events_.pop_front();
    if (events_.empty()) {
        std::uint64_t count = 0;
        (void)::read(kept_fd_, &count, sizeof count);
    }
    return event;
}

bool store_direct::receive(bool wait) {
    std::array<char, xs::header_size + xs::payload_max> buffer{};
    for (;;) {
        const auto n = ::recv(socket_, buffer.data(), std::min(buffer.size(), splitter_.room()),
                              wait ? 0 : MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return false;
        }
        if (n <= 0 || !splitter_.feed({buffer.data(), static_cast<std::size_t>(n)})) {
            lose_connection();  // closed, failed, or more than a message's worth unread
            return false;
        }
        return true;
    }
}

std::optional<xs::message> store_direct::take_messages(std::uint32_t req_id) {
    // Every complete message is taken, also after the reply: an event behind it in the
    // buffer would otherwise wait there with nothing readable to say so.
    std::optional<xs::message> reply;
    for (;;) {
        auto next = splitter_.next();
        if (!next) {
            lose_connection();
            return reply;
        }
        if (!*next) {
            return reply;  // more bytes needed
        }
        if ((*next)->head.type == xs::XS_WATCH_EVENT) {
            keep_event(**next);
        } else if (req_id != 0 && (*next)->head.req_id == req_id && !reply) {
            reply = std::move(**next);
        }
        // Anything else answers no request of ours (one at a time): dropped.
    }
}

void store_direct::lose_connection() {
    if (!broken_) {
        broken_ = true;
        // A socket at its end stays readable: fileno() would wake its loop for ever.
        ::epoll_ctl(poll_fd_, EPOLL_CTL_DEL, socket_, nullptr);
    }
}

void store_direct::keep_event(const xs::message& event) {
    const auto parts = xs::split_strings(event.payload);
    if (!parts || parts->size() < 2) {
        return;  // not "path\0token\0": no event anyone could act on
    }
    events_.push_back({std::string((*parts)[0]), std::string((*parts)[1])});
    const std::uint64_t one = 1;
    (void)::write(kept_fd_, &one, sizeof one);
}

}  // namespace vdist::discovery::internal
