#pragma once
/// A XenStore client that speaks the wire protocol (xs_wire.hpp) on its connection itself,
/// without a thread: store_client's `direct` way. libxenstore starts a reader thread at a
/// handle's first watch and hands its events over through a pipe; a node is a single-threaded
/// process (on these VMs a thread's creation and first run alone cost a new process about
/// 0.8 ms), so its loop reads the events from this connection instead.
///
/// Requests are synchronous, as libxenstore's: one is sent, and messages are read until its
/// reply. Watch events read meanwhile are kept, and fileno() stays readable while any is kept
/// (it is an epoll set of the socket and an eventfd), so a loop polling it misses none.
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "vdist/discovery/store_client.hpp"
#include "vdist/discovery/xs_wire.hpp"

namespace vdist::discovery::internal {

class store_direct {
  public:
    /// Connects to the store's Unix socket.
    [[nodiscard]] static std::expected<std::unique_ptr<store_direct>, std::error_code> connect(
        const std::filesystem::path& socket);
    store_direct(const store_direct&) = delete;
    store_direct& operator=(const store_direct&) = delete;
    ~store_direct();

    /// Sends one request and returns its reply's payload, or the errno an XS_ERROR reply
    /// names. A connection that broke (closed, or a reply that does not parse) stays broken:
    /// every later request fails with EIO.
    [[nodiscard]] std::expected<std::string, std::error_code> request(std::uint32_t type,
                                                                      transaction_id tx,
                                                                      std::string_view payload);

    [[nodiscard]] int fileno() const noexcept { return poll_fd_; }
    /// The next watch event kept or already readable, without blocking.
    [[nodiscard]] std::optional<watch_event> next_event();

  private:
    store_direct(int socket, int poll_fd, int kept_fd) noexcept
        : socket_(socket), poll_fd_(poll_fd), kept_fd_(kept_fd) {}

    /// Reads what the socket has (waiting for some when `wait`) into the splitter; false when
    /// nothing came or the connection broke.
    bool receive(bool wait);
    /// Takes the complete messages read: events are kept, the reply to `req_id` returned.
    [[nodiscard]] std::optional<xs::message> take_messages(std::uint32_t req_id);
    void keep_event(const xs::message& event);
    /// Broken for good: every request fails with EIO, and fileno() says nothing more.
    void lose_connection();

    int socket_ = -1;
    int poll_fd_ = -1;  ///< epoll: the socket, and kept_fd_
    int kept_fd_ = -1;  ///< eventfd, non-zero while events_ is not empty
    bool broken_ = false;
    std::uint32_t next_req_id_ = 1;
    xs::message_splitter splitter_;
    std::deque<watch_event> events_;
};

}  // namespace vdist::discovery::internal
