#pragma once
// A host store served on a background thread, for tests that use real libxenstore (which blocks
// on every reply, so the server must run concurrently). Every use of the server from the test
// thread goes through with_server(), under the same lock as the polling thread.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "vdist/discovery/store_client.hpp"
#include "vdist/discovery/store_server.hpp"
#include "vdist/discovery/xs_wire.hpp"
#include "vdist/test/eventually.hpp"

namespace vdist::discovery::test {

/// A parameterized test's name suffix for the client's way.
inline std::string way_name(const testing::TestParamInfo<store_way>& param) {
    return param.param == store_way::direct ? "direct" : "libxenstore";
}

class served_store {
  public:
    served_store() {
        directory_ =
            std::filesystem::temp_directory_path() /
            ("vdist-store-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
        std::filesystem::create_directories(directory_);
        socket_ = directory_ / "socket";
        auto listening = store_server::listen(socket_, [this](pid_t, uid_t) {
            // Called under the lock, from poll(): the domain the test announced last.
            return next_domid_;
        });
        if (listening) {
            server_ = std::move(*listening);
            thread_ = std::thread([this] { run(); });
        }
    }
    ~served_store() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        server_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
    }

    [[nodiscard]] bool ok() const { return server_ != nullptr; }
    [[nodiscard]] const std::filesystem::path& socket() const { return socket_; }

    template <class F>
    auto with_server(F f) {
        std::lock_guard lock(mutex_);
        return f(*server_);
    }

    /// The domain the next connection is identified as (nullopt: refused).
    void identify_next_as(std::optional<store_domid> domid) {
        std::lock_guard lock(mutex_);
        next_domid_ = domid;
    }

    /// A libxenstore client identified as `domid` (waits until the server accepted it).
    [[nodiscard]] std::optional<store_client> client_as(store_domid domid,
                                                        store_way way = store_way::libxenstore) {
        identify_next_as(domid);
        const auto before = connections();
        auto client = store_client::open(socket_, way);
        if (!client || !vdist::test::eventually([&] { return connections() > before; })) {
            return std::nullopt;
        }
        return std::move(*client);
    }

    [[nodiscard]] std::size_t connections() {
        return with_server([](store_server& s) { return s.connection_count(); });
    }

  private:
    static std::atomic<int>& counter() {
        static std::atomic<int> value{0};
        return value;
    }

    void run() {
        while (!stop_) {
            pollfd ready{server_->native_handle(), POLLIN, 0};
            (void)::poll(&ready, 1, 10);
            std::lock_guard lock(mutex_);
            server_->poll();
        }
    }

    std::filesystem::path directory_;
    std::filesystem::path socket_;
    std::unique_ptr<store_server> server_;
    std::optional<store_domid> next_domid_ = 0;
    std::mutex mutex_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

/// Waits (bounded) for the next watch event of `client`.
[[nodiscard]] inline std::optional<watch_event> next_event_within(
    store_client& client, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (auto event = client.next_event()) {
            return event;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::nullopt;
        }
        pollfd ready{client.fileno(), POLLIN, 0};
        (void)::poll(&ready, 1, static_cast<int>(std::min<long>(left.count(), 50)));
    }
}

/// A raw socket speaking the wire protocol by hand, for hostile input.
class raw_client {
  public:
    explicit raw_client(const std::filesystem::path& socket) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, socket.c_str(), sizeof(address.sun_path) - 1);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~raw_client() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    [[nodiscard]] bool connected() const { return fd_ >= 0; }

    [[nodiscard]] bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent <= 0) {
                return false;
            }
            bytes.remove_prefix(static_cast<std::size_t>(sent));
        }
        return true;
    }

    /// The next message, or nullopt on timeout or hang-up.
    [[nodiscard]] std::optional<xs::message> receive(
        std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        for (;;) {
            auto next = splitter_.next();
            if (!next) {
                return std::nullopt;
            }
            if (*next) {
                return **next;
            }
            if (!read_some(deadline)) {
                return std::nullopt;
            }
        }
    }

    /// True when the server closed the connection within `limit` (whatever it sent before).
    [[nodiscard]] bool closed_by_server(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd ready{fd_, POLLIN, 0};
            if (::poll(&ready, 1, 50) > 0) {
                char buffer[4096];
                const ssize_t got = ::recv(fd_, buffer, sizeof(buffer), 0);
                if (got <= 0) {
                    return true;
                }
            }
        }
        return false;
    }

  private:
    bool read_some(std::chrono::steady_clock::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return false;
        }
        pollfd ready{fd_, POLLIN, 0};
        if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) {
            return false;
        }
        char buffer[4096];
        const ssize_t got = ::recv(fd_, buffer, sizeof(buffer), 0);
        if (got <= 0) {
            return false;
        }
        return splitter_.feed({buffer, static_cast<std::size_t>(got)}).has_value();
    }

    int fd_ = -1;
    xs::message_splitter splitter_;
};

}  // namespace vdist::discovery::test
