#include "vdist/discovery/agent_link.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

namespace vdist::discovery {

std::expected<agent_to_node, std::error_code> agent_link::read_message(
    int fd, std::optional<std::chrono::milliseconds> timeout) {
    // Exactly one frame is read: what follows (a `stop` sent while the node starts) stays in
    // the socket for the link. SO_RCVTIMEO bounds each blocking read (zero: no bound).
    timeval limit{};
    if (timeout) {
        limit.tv_sec = static_cast<time_t>(timeout->count() / 1000);
        limit.tv_usec = static_cast<suseconds_t>((timeout->count() % 1000) * 1000);
    }
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) != 0) {
        return std::unexpected(std::error_code(errno, std::system_category()));
    }
    auto read_exactly = [fd](std::byte* at, std::size_t size) -> std::error_code {
        std::size_t got = 0;
        while (got < size) {
            const auto n = ::recv(fd, at + got, size - got, MSG_WAITALL);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return std::make_error_code(std::errc::timed_out);
            }
            if (n <= 0) {
                return n == 0 ? std::make_error_code(std::errc::connection_reset)
                              : std::error_code(errno, std::system_category());
            }
            got += static_cast<std::size_t>(n);
        }
        return {};
    };
    std::vector<std::byte> bytes(frame_header_size);
    if (auto error = read_exactly(bytes.data(), frame_header_size)) {
        return std::unexpected(error);
    }
    const std::size_t length = (std::to_integer<std::size_t>(bytes[0]) << 24) |
                               (std::to_integer<std::size_t>(bytes[1]) << 16) |
                               (std::to_integer<std::size_t>(bytes[2]) << 8) |
                               std::to_integer<std::size_t>(bytes[3]);
    if (length == 0 || length > max_frame_size) {
        return std::unexpected(make_error_code(agent_errc::frame_too_large));
    }
    bytes.resize(frame_header_size + length);
    if (auto error = read_exactly(bytes.data() + frame_header_size, length)) {
        return std::unexpected(error);
    }
    const timeval none{};
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    dist::atom_table atoms(256);
    frame_reader reader(atoms);
    reader.feed(bytes);
    auto next = reader.next();
    if (!next) {
        return std::unexpected(next.error());
    }
    return agent_to_node_from(**next);
}

agent_link::agent_link(int fd, runtime::node& host, runtime::distribution& dist)
    : fd_(fd), host_(&host), dist_(&dist), reader_(host.atoms()) {}

agent_link::~agent_link() {
    host_->unwatch_fd(fd_);
    ::close(fd_);
}

bool agent_link::send(const dist::term& t) {
    auto bytes = frame(t);
    if (!bytes) {
        return false;
    }
    std::size_t written = 0;
    while (written < bytes->size()) {
        const auto n = ::send(fd_, bytes->data() + written, bytes->size() - written, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        written += static_cast<std::size_t>(n);
    }
    return true;
}

std::expected<void, std::error_code> agent_link::ready(const dist::pid& echo) {
    if (!send(to_term(node_to_agent{ready_message{echo}}, host_->atoms()))) {
        return std::unexpected(std::error_code(errno, std::system_category()));
    }
    host_->watch_fd(fd_, [this] { readable(); });
    // `vdist_agent`: {spawn, From, Ref} from any process → From ! {spawned, Ref, Name, Pid};
    // {spawn_and_call, From, Ref} also sends the child's echo a first message from this node
    // and waits for its answer → From ! {spawned, Ref, Name, Pid, Microseconds}: spawn-to-ready
    // as a parent node sees it (spawned, handshake done, first message answered).
    (void)host_->spawn([this](runtime::process& self) {
        self.register_name(host_->a("vdist_agent"));
        self.become([this](runtime::process&, dist::term message) {
            const auto* t = message.get_if<dist::tuple>();
            if (t == nullptr || t->elements.size() != 3 || !t->elements[1].is<dist::pid>()) {
                return;
            }
            const bool call = t->elements[0] == dist::term(host_->a("spawn_and_call"));
            if (!call && t->elements[0] != dist::term(host_->a("spawn"))) {
                return;
            }
            const dist::pid from = *t->elements[1].get_if<dist::pid>();
            dist::term ref = t->elements[2];
            const auto started = std::chrono::steady_clock::now();
            spawn("temporary", [this, from, ref, call, started](auto result) {
                if (!result) {
                    host_->send(from, dist::tuple{host_->a("spawn_failed"), ref,
                                                  dist::binary(result.error())});
                } else if (!call) {
                    host_->send(from, dist::tuple{host_->a("spawned"), ref, host_->a(result->name),
                                                  result->echo});
                } else {
                    call_child(from, ref, *result, started);
                }
            });
        });
    });
    return {};
}

void agent_link::call_child(const dist::pid& from, const dist::term& ref, const spawned_node& child,
                            std::chrono::steady_clock::time_point started) {
    (void)host_->spawn([this, from, ref, child, started](runtime::process& self) {
        const auto ping = host_->a("ping");
        self.send(child.echo, dist::tuple{self.self(), ping});
        std::vector<runtime::clause> clauses;
        clauses.push_back(runtime::clause{
            [ping](const dist::term& m) { return m == dist::term(ping); },
            [this, from, ref, child, started](runtime::process&, dist::term) {
                const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - started);
                host_->send(from,
                            dist::tuple{host_->a("spawned"), ref, host_->a(child.name), child.echo,
                                        static_cast<std::int64_t>(elapsed.count())});
            }});
        self.receive(std::move(clauses), std::chrono::seconds(10), [this, from, ref](auto&) {
            host_->send(from, dist::tuple{host_->a("spawn_failed"), ref,
                                          dist::binary(std::string_view("child did not answer"))});
        });
    });
}

void agent_link::spawn(std::string restart,
                       std::function<void(std::expected<spawned_node, std::string>)> done) {
    const std::uint32_t word = next_ref_++;
    dist::reference ref{host_->name(), host_->creation(), {word, 0, 0}};
    pending_.emplace(word, std::move(done));
    if (!send(to_term(node_to_agent{spawn_request{ref, std::move(restart)}}, host_->atoms()))) {
        auto callback = std::move(pending_.at(word));
        pending_.erase(word);
        callback(std::unexpected(std::string("agent unreachable")));
    }
}

void agent_link::readable() {
    std::byte buffer[65536];
    bool closed = false;
    for (;;) {
        const auto n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) {
            reader_.feed(std::span(buffer, static_cast<std::size_t>(n)));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        }
        closed = true;
        break;
    }
    for (;;) {
        auto next = reader_.next();
        std::expected<agent_to_node, std::error_code> message = std::unexpected(std::error_code{});
        if (!next) {
            message = std::unexpected(next.error());
        } else if (!*next) {
            break;
        } else {
            message = agent_to_node_from(**next);
        }
        if (!message) {
            failure_ = message.error();
            host_->unwatch_fd(fd_);
            host_->stop();
            return;
        }
        if (std::holds_alternative<stop_message>(*message)) {
            host_->stop();
        } else if (auto* stats = std::get_if<stats_request>(&*message)) {
            stats_reply reply{stats->ref, {}};
            for (const auto& c : dist_->connections()) {
                reply.connections.push_back(
                    {std::string(c.peer.text()),
                     c.carrier == runtime::carrier_kind::ring ? "ring" : "tcp", c.stats.messages_in,
                     c.stats.messages_out, c.stats.bytes_in, c.stats.bytes_out});
            }
            (void)send(to_term(node_to_agent{std::move(reply)}, host_->atoms()));
        } else if (auto* assigned = std::get_if<assigned_reply>(&*message)) {
            // Connecting while the child starts: by the time it is ready, the ring is offered
            // (or attached, or the handshake done), as a peer node's child connects back.
            (void)dist_->connect(host_->a(assigned->node_name),
                                 static_cast<transport::domid_t>(assigned->domid));
        } else if (auto* spawned = std::get_if<spawned_reply>(&*message)) {
            const std::uint32_t word = spawned->ref.words.empty() ? 0 : spawned->ref.words[0];
            if (auto it = pending_.find(word); it != pending_.end()) {
                auto callback = std::move(it->second);
                pending_.erase(it);
                callback(spawned_node{spawned->node_name, spawned->echo});
            }
        } else if (auto* failed = std::get_if<spawn_failed_reply>(&*message)) {
            const std::uint32_t word = failed->ref.words.empty() ? 0 : failed->ref.words[0];
            if (auto it = pending_.find(word); it != pending_.end()) {
                auto callback = std::move(it->second);
                pending_.erase(it);
                callback(std::unexpected(failed->reason));
            }
        }
        // A second config is ignored: configuration is given once.
    }
    if (closed) {
        host_->unwatch_fd(fd_);
        host_->stop();  // the agent is gone
    }
}

}  // namespace vdist::discovery
