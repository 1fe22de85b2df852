#include "vdist/discovery/store_server.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <map>
#include <set>
#include <utility>

#include "store_model.hpp"
#include "unix_address.hpp"
#include "vdist/discovery/xs_wire.hpp"

namespace vdist::discovery {

namespace {

using internal::connection_id;

constexpr connection_id listener_id = ~connection_id{0};
/// Replies and events queued for one client; beyond this it is not reading: disconnect it.
constexpr std::size_t max_output = 256 * 1024;

std::error_code errno_code(int error) {
    return {error, std::generic_category()};
}

template <class T>
std::expected<T, std::error_code> to_code(std::expected<T, int> result) {
    if (!result) {
        return std::unexpected(errno_code(result.error()));
    }
    if constexpr (std::is_void_v<T>) {
        return {};
    } else {
        return std::move(*result);
    }
}

std::string with_nul(std::string_view text) {
    std::string out(text);
    out.push_back('\0');
    return out;
}

}  // namespace

struct store_server::impl {
    struct connection {
        int fd = -1;
        store_domid domid = 0;
        xs::message_splitter input;
        std::string output;
        bool writable_armed = false;
        bool doomed = false;
    };

    std::filesystem::path path;
    identify_fn identify;
    int listen_fd = -1;
    int epoll_fd = -1;
    internal::store_model model;
    std::map<connection_id, connection> connections;
    /// Connections that may have output to flush or be doomed since the last settle(): the
    /// ones served, the ones events were queued for. settle() looks at these only, not at
    /// every connection (a host agent serves hundreds, and settles after each request).
    std::set<connection_id> unsettled;
    connection_id next_connection = 1;

    ~impl() {
        for (auto& [id, conn] : connections) {
            ::close(conn.fd);
        }
        if (listen_fd >= 0) {
            ::close(listen_fd);
            std::error_code ignored;
            std::filesystem::remove(path, ignored);
        }
        if (epoll_fd >= 0) {
            ::close(epoll_fd);
        }
    }

    void accept_all() {
        for (;;) {
            const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                return;  // EAGAIN, or a client that went away before we accepted it
            }
            ucred credentials{};
            socklen_t size = sizeof(credentials);
            std::optional<store_domid> domid;
            if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) == 0) {
                domid = identify(credentials.pid, credentials.uid);
            }
            if (!domid) {
                ::close(fd);
                continue;
            }
            const connection_id id = next_connection++;
            epoll_event event{};
            event.events = EPOLLIN;
            event.data.u64 = id;
            if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
                ::close(fd);
                continue;
            }
            connections.emplace(id,
                                connection{fd, *domid, xs::message_splitter{}, {}, false, false});
        }
    }

    void close_connection(connection_id id) {
        const auto it = connections.find(id);
        if (it == connections.end()) {
            return;
        }
        ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, it->second.fd, nullptr);
        ::close(it->second.fd);
        connections.erase(it);
        model.drop_connection(id);
    }

    void queue(connection& conn, std::string bytes) {
        if (conn.output.size() + bytes.size() > max_output) {
            conn.doomed = true;
            return;
        }
        conn.output.append(bytes);
    }

    void flush(connection_id id, connection& conn) {
        while (!conn.output.empty() && !conn.doomed) {
            const ssize_t sent = ::send(conn.fd, conn.output.data(), conn.output.size(),
                                        MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN) {
                    conn.doomed = true;
                }
                break;
            }
            conn.output.erase(0, static_cast<std::size_t>(sent));
        }
        const bool want_writable = !conn.output.empty();
        if (want_writable != conn.writable_armed && !conn.doomed) {
            epoll_event event{};
            event.events = EPOLLIN | (want_writable ? EPOLLOUT : 0U);
            event.data.u64 = id;
            ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, conn.fd, &event);
            conn.writable_armed = want_writable;
        }
    }

    /// Watch events to their connections, everything flushed, the doomed closed.
    void settle() {
        for (auto& event : model.take_deliveries()) {
            const auto it = connections.find(event.connection);
            if (it != connections.end()) {
                queue(it->second, xs::build_watch_event(event.path, event.token));
                unsettled.insert(event.connection);
            }
        }
        for (const auto id : std::exchange(unsettled, {})) {
            const auto it = connections.find(id);
            if (it == connections.end()) {
                continue;
            }
            flush(id, it->second);
            if (it->second.doomed) {
                close_connection(id);
            }
        }
    }

    void serve(connection_id id, std::uint32_t ready) {
        auto it = connections.find(id);
        if (it == connections.end()) {
            return;
        }
        connection& conn = it->second;
        unsettled.insert(id);
        if ((ready & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
            std::array<char, 8192> buffer{};
            while (!conn.doomed) {
                const std::size_t room = std::min(buffer.size(), conn.input.room());
                const ssize_t got = ::recv(conn.fd, buffer.data(), room, MSG_DONTWAIT);
                if (got == 0) {
                    conn.doomed = true;
                    break;
                }
                if (got < 0) {
                    if (errno == EINTR) {
                        continue;
                    }
                    conn.doomed = errno != EAGAIN;
                    break;
                }
                if (!conn.input.feed({buffer.data(), static_cast<std::size_t>(got)})) {
                    conn.doomed = true;
                    break;
                }
                while (!conn.doomed) {
                    auto next = conn.input.next();
                    if (!next) {
                        conn.doomed = true;  // framing is broken: nothing after it is trustworthy
                        break;
                    }
                    if (!*next) {
                        break;
                    }
                    handle(id, conn, **next);
                }
            }
        }
        flush(id, conn);
    }

    void reply(connection& conn, const xs::header& head, std::string_view payload) {
        if (payload.size() > xs::payload_max) {
            queue(conn, xs::build_error(head.req_id, head.tx_id, E2BIG));
            return;
        }
        queue(conn, xs::build(head.type, head.req_id, head.tx_id, payload));
    }

    void reply(connection& conn, const xs::header& head, const std::expected<void, int>& result) {
        if (result) {
            reply(conn, head, std::string_view("OK\0", 3));
        } else {
            queue(conn, xs::build_error(head.req_id, head.tx_id, result.error()));
        }
    }

    void fail(connection& conn, const xs::header& head, int error) {
        queue(conn, xs::build_error(head.req_id, head.tx_id, error));
    }

    void handle(connection_id id, connection& conn, const xs::message& request) {
        const xs::header& head = request.head;
        const std::string_view payload = request.payload;
        const store_domid domid = conn.domid;
        const std::uint32_t tx = head.tx_id;

        if (head.type == xs::XS_WRITE) {
            const auto nul = payload.find('\0');
            if (nul == std::string_view::npos) {
                return fail(conn, head, EINVAL);
            }
            return reply(
                conn, head,
                model.write(domid, id, tx, payload.substr(0, nul), payload.substr(nul + 1)));
        }
        const auto strings = xs::split_strings(payload);
        if (!strings) {
            return fail(conn, head, EINVAL);
        }
        const auto& args = *strings;
        switch (head.type) {
            case xs::XS_READ: {
                auto value = model.read(domid, id, tx, args[0]);
                return value ? reply(conn, head, *value) : fail(conn, head, value.error());
            }
            case xs::XS_MKDIR:
                return reply(conn, head, model.mkdir(domid, id, tx, args[0]));
            case xs::XS_RM:
                return reply(conn, head, model.rm(domid, id, tx, args[0]));
            case xs::XS_DIRECTORY: {
                auto names = model.directory(domid, id, tx, args[0]);
                if (!names) {
                    return fail(conn, head, names.error());
                }
                std::string out;
                for (const auto& name : *names) {
                    out.append(name).push_back('\0');
                }
                return reply(conn, head, out);
            }
            case xs::XS_GET_PERMS: {
                auto permissions = model.get_permissions(domid, id, tx, args[0]);
                return permissions ? reply(conn, head, internal::format_permissions(*permissions))
                                   : fail(conn, head, permissions.error());
            }
            case xs::XS_SET_PERMS: {
                std::vector<permission> permissions;
                for (std::size_t i = 1; i < args.size(); ++i) {
                    auto parsed = internal::parse_permission(args[i]);
                    if (!parsed) {
                        return fail(conn, head, EINVAL);
                    }
                    permissions.push_back(*parsed);
                }
                return reply(conn, head,
                             model.set_permissions(domid, id, tx, args[0], std::move(permissions)));
            }
            case xs::XS_WATCH:
            case xs::XS_UNWATCH: {
                if (args.size() < 2) {
                    return fail(conn, head, EINVAL);
                }
                return reply(conn, head,
                             head.type == xs::XS_WATCH
                                 ? model.watch(domid, id, args[0], args[1])
                                 : model.unwatch(domid, id, args[0], args[1]));
            }
            case xs::XS_TRANSACTION_START: {
                if (tx != 0) {
                    return fail(conn, head, EBUSY);  // no nesting, as xenstored
                }
                auto started = model.transaction_start(id);
                return started ? reply(conn, head, with_nul(std::to_string(*started)))
                               : fail(conn, head, started.error());
            }
            case xs::XS_TRANSACTION_END: {
                if (args[0] != "T" && args[0] != "F") {
                    return fail(conn, head, EINVAL);
                }
                return reply(conn, head, model.transaction_end(id, tx, args[0] == "T"));
            }
            case xs::XS_GET_DOMAIN_PATH: {
                store_domid asked = 0;
                const auto [end, error] =
                    std::from_chars(args[0].data(), args[0].data() + args[0].size(), asked);
                if (error != std::errc{} || end != args[0].data() + args[0].size()) {
                    return fail(conn, head, EINVAL);
                }
                return reply(conn, head, with_nul(domain_path(asked)));
            }
            case xs::XS_RELEASE:
            case xs::XS_INTRODUCE:
            case xs::XS_RESUME:
            case xs::XS_SET_TARGET:
            case xs::XS_IS_DOMAIN_INTRODUCED:
            case xs::XS_RESET_WATCHES:
            case xs::XS_CONTROL:
                // The toolstack's operations: its direct API on a host, not the wire.
                return fail(conn, head, domid == 0 ? ENOSYS : EACCES);
            case xs::XS_DIRECTORY_PART:
                return fail(conn, head, ENOSYS);  // libxenstore reports it as E2BIG
            default:
                return fail(conn, head, EINVAL);
        }
    }
};

store_server::store_server(std::unique_ptr<impl> self) : self_(std::move(self)) {}
store_server::~store_server() = default;

std::expected<std::unique_ptr<store_server>, std::error_code> store_server::listen(
    const std::filesystem::path& socket, identify_fn identify) {
    auto self = std::make_unique<impl>();
    self->identify = std::move(identify);
    const auto address = internal::unix_address(socket);
    if (!address) {
        return std::unexpected(errno_code(ENAMETOOLONG));
    }
    self->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (self->epoll_fd < 0) {
        return std::unexpected(errno_code(errno));
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return std::unexpected(errno_code(errno));
    }
    ::unlink(socket.c_str());  // a stale socket file from an earlier run
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0 ||
        ::listen(fd, 64) != 0) {
        const int error = errno;
        ::close(fd);
        return std::unexpected(errno_code(error));
    }
    self->listen_fd = fd;
    self->path = socket;
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = listener_id;
    if (::epoll_ctl(self->epoll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
        return std::unexpected(errno_code(errno));
    }
    return std::unique_ptr<store_server>(new store_server(std::move(self)));
}

int store_server::native_handle() const {
    return self_->epoll_fd;
}

void store_server::poll() {
    std::array<epoll_event, 32> events{};
    for (;;) {
        const int ready =
            ::epoll_wait(self_->epoll_fd, events.data(), static_cast<int>(events.size()), 0);
        if (ready <= 0) {
            break;
        }
        for (int i = 0; i < ready; ++i) {
            const auto& event = events[static_cast<std::size_t>(i)];
            if (event.data.u64 == listener_id) {
                self_->accept_all();
            } else {
                self_->serve(event.data.u64, event.events);
            }
        }
        self_->settle();
        if (static_cast<std::size_t>(ready) < events.size()) {
            break;
        }
    }
    self_->settle();
}

std::expected<std::string, std::error_code> store_server::read(std::string_view path) const {
    return to_code(self_->model.read(0, internal::no_connection, 0, path));
}

std::expected<void, std::error_code> store_server::write(std::string_view path,
                                                         std::string_view value) {
    auto result = self_->model.write(0, internal::no_connection, 0, path, value);
    self_->settle();
    return to_code(result);
}

std::expected<void, std::error_code> store_server::mkdir(std::string_view path) {
    auto result = self_->model.mkdir(0, internal::no_connection, 0, path);
    self_->settle();
    return to_code(result);
}

std::expected<void, std::error_code> store_server::rm(std::string_view path) {
    auto result = self_->model.rm(0, internal::no_connection, 0, path);
    self_->settle();
    return to_code(result);
}

std::expected<std::vector<std::string>, std::error_code> store_server::directory(
    std::string_view path) const {
    return to_code(self_->model.directory(0, internal::no_connection, 0, path));
}

std::expected<void, std::error_code> store_server::set_permissions(
    std::string_view path, const std::vector<permission>& permissions) {
    auto result = self_->model.set_permissions(0, internal::no_connection, 0, path, permissions);
    self_->settle();
    return to_code(result);
}

void store_server::release_domain(store_domid domid) {
    std::vector<connection_id> gone;
    for (const auto& [id, conn] : self_->connections) {
        if (conn.domid == domid) {
            gone.push_back(id);
        }
    }
    for (const auto id : gone) {
        self_->close_connection(id);
    }
    self_->model.fire_special("@releaseDomain");
    self_->settle();
}

std::size_t store_server::key_count() const {
    return self_->model.key_count();
}

std::vector<std::string> store_server::all_paths() const {
    return self_->model.all_paths();
}

std::size_t store_server::connection_count() const {
    return self_->connections.size();
}

std::size_t store_server::watch_count() const {
    return self_->model.watch_count();
}

std::size_t store_server::transaction_count() const {
    return self_->model.transaction_count();
}

}  // namespace vdist::discovery
