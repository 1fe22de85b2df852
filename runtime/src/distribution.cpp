#include "vdist/runtime/distribution.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <random>
#include <utility>

#include "vdist/dist/epmd.hpp"
#include "vdist/dist/handshake.hpp"
#include "vdist/transport/vchan.hpp"

namespace vdist::runtime {
namespace {

using dist::control_message;

// The alive part and the host part of `alive@host`.
[[nodiscard]] std::optional<std::pair<std::string, std::string>> split_node_name(
    std::string_view name) {
    const auto at = name.find('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == name.size()) {
        return std::nullopt;
    }
    return std::pair{std::string(name.substr(0, at)), std::string(name.substr(at + 1))};
}

void set_nodelay(int fd) {
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

// Output buffer capacity a connection keeps between bursts.
constexpr std::size_t retained_output_capacity = std::size_t{4} << 20;
/// From a ring connection's set-up to the withdrawal of its offer (connection_up).
constexpr std::chrono::milliseconds offer_withdrawal_delay{20};
// How long a ring goes without a byte before it leaves the rings polled on every turn of the
// loop (and is armed for its peer's notification instead), checked every ring_idle_check idle
// polls. A node with hundreds of rings (a parent of as many on-demand children) otherwise read
// every ring's indices on every turn, and armed every one before each sleep. Long against a
// round trip: a busy-polling pair answers in microseconds, and must not wait for a
// notification between messages (dist_bench: 16 B round trip 0.07x erl's; after 64 idle polls,
// about a microsecond each, it was 0.95x).
constexpr std::chrono::milliseconds ring_cold_after{10};
constexpr std::uint32_t ring_idle_check = 64;
// A ring we offered that its peer has not attached to within this is checked against the
// directory again, and so on: the name may now locate elsewhere (distribution::recheck_offer).
constexpr std::chrono::milliseconds ring_offer_recheck{100};

[[nodiscard]] std::string errno_text(int error) {
    return std::error_code(error, std::generic_category()).message();
}

// What a carrier did with a read or write.
enum class io_status { moved, would_block, closed, failed };

struct io_result {
    io_result(io_status outcome, std::size_t count = 0, std::string why = {})
        : status(outcome), bytes(count), error(std::move(why)) {}
    io_status status;
    std::size_t bytes;
    std::string error;  // why, when failed
};

using ring_type = transport::ring_channel<transport::host_backend>;

}  // namespace

// How a connection's bytes move: the only place that knows sockets from rings. Chosen once,
// when the connection is made; the protocol above it is the same for both.
class distribution::byte_carrier {
  public:
    byte_carrier() = default;
    byte_carrier(const byte_carrier&) = delete;
    byte_carrier& operator=(const byte_carrier&) = delete;
    virtual ~byte_carrier() = default;
    /// The fd the loop watches (the connection's key).
    [[nodiscard]] virtual int handle() const noexcept = 0;
    [[nodiscard]] virtual carrier_kind kind() const noexcept = 0;
    /// Non-blocking; would_block when nothing is there, closed when the peer has gone.
    [[nodiscard]] virtual io_result read(std::span<std::byte> into) = 0;
    /// Non-blocking; would_block when no byte fits now.
    [[nodiscard]] virtual io_result write(std::span<const std::byte> bytes) = 0;
};

class distribution::tcp_carrier final : public byte_carrier {
  public:
    explicit tcp_carrier(int fd) noexcept : fd_(fd) {}
    ~tcp_carrier() override { ::close(fd_); }
    [[nodiscard]] int handle() const noexcept override { return fd_; }
    [[nodiscard]] carrier_kind kind() const noexcept override { return carrier_kind::tcp; }
    [[nodiscard]] io_result read(std::span<std::byte> into) override {
        const ssize_t n = ::recv(fd_, into.data(), into.size(), 0);
        if (n == 0) {
            return {io_status::closed};
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return {io_status::would_block};
            }
            return {io_status::failed, 0, "receive failed: " + errno_text(errno)};
        }
        return {io_status::moved, static_cast<std::size_t>(n)};
    }
    [[nodiscard]] io_result write(std::span<const std::byte> bytes) override {
        const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return {io_status::would_block};
            }
            return {io_status::failed, 0, "send failed: " + errno_text(errno)};
        }
        return {io_status::moved, static_cast<std::size_t>(n)};
    }

  private:
    int fd_;
};

// A vchan to a peer on this host. Its native_handle turns readable on a notification, a
// connecting client (server side) or the peer's hang-up; in between the loop polls it.
class distribution::ring_carrier final : public byte_carrier {
  public:
    ring_carrier(ring_type channel, transport::domid_t peer, std::uint32_t port) noexcept
        : ring(std::move(channel)), peer_domid(peer), ring_port(port) {}
    [[nodiscard]] int handle() const noexcept override { return ring.native_handle(); }
    [[nodiscard]] carrier_kind kind() const noexcept override { return carrier_kind::ring; }
    [[nodiscard]] io_result read(std::span<std::byte> into) override {
        auto n = ring.read_some(into);
        if (!n) {
            if (n.error() == transport::errc::peer_gone) {
                return {io_status::closed};
            }
            return {io_status::failed, 0, "ring read failed: " + n.error().message()};
        }
        if (*n == 0) {
            // A killed peer leaves its live byte set: the backend's hang-up (seen when the
            // handle fired) says it is gone, once what it wrote has been read.
            return {peer_dead ? io_status::closed : io_status::would_block};
        }
        return {io_status::moved, *n};
    }
    [[nodiscard]] io_result write(std::span<const std::byte> bytes) override {
        auto n = ring.write_some(bytes);
        if (!n) {
            if (n.error() == transport::errc::peer_gone) {
                return {io_status::closed};
            }
            return {io_status::failed, 0, "ring write failed: " + n.error().message()};
        }
        if (*n == 0) {
            return {peer_dead ? io_status::closed : io_status::would_block};
        }
        return {io_status::moved, *n};
    }

    ring_type ring;
    transport::domid_t peer_domid;
    std::uint32_t ring_port;
    bool offer_open = false;  // we offered it (server) and have not withdrawn the offer yet
    bool peer_dead = false;
};

// One connection to a peer node: a carrier, and the protocol state on it.
struct distribution::connection {
    int fd = -1;  // the carrier's handle: the key in by_fd (negative: no carrier)
    std::unique_ptr<byte_carrier> io;
    carrier_kind kind = carrier_kind::tcp;
    ring_carrier* ring = nullptr;  // io, when it is a ring
    bool ring_attaching = false;   // our ring is offered, the peer has not attached yet
    atom peer;  // the node asked for (initiator), or the name in send_name (acceptor)
    bool initiated = false;
    bool tcp_connecting = false;  // a non-blocking connect() in flight
    // Lost a simultaneous connect (the peer said nok): no socket, only the queue, waiting for
    // the peer's own connection to come up (until net_setuptime).
    bool awaiting_peer = false;
    std::optional<dist::handshake> handshake;
    bool up = false;
    std::uint64_t flags = 0;
    bool peer_hidden = false;
    std::optional<dist::packet_reader> reader;
    std::optional<dist::packet_writer> writer;
    std::deque<control_message> pending;  // sent before the handshake finished
    std::vector<std::byte> out;           // encoded, not yet taken by the kernel
    std::size_t out_sent = 0;
    bool want_writable = false;
    // A ring polled on every turn of the loop (state::hot_rings) until it has been idle for
    // ring_cold_after; then it is armed, and its peer's notification heats it again.
    bool hot = false;
    std::uint32_t idle_polls = 0;
    clock::time_point idle_since{};  // from its first check (ring_idle_check idle polls)
    dist::ticker ticker;
    std::uint64_t tick_timer = 0;
    std::uint64_t setup_timer = 0;
    std::uint64_t withdrawal_timer = 0;     // our taken ring offer's withdrawal (connection_up)
    std::uint64_t offer_recheck_timer = 0;  // while our ring is offered (recheck_offer)
    std::uint64_t next_unlink_id = 1;
    connection_stats stats;
};

struct distribution::state {
    int listen_fd = -1;
    std::optional<dist::epmd_registration> registration;
    std::unordered_map<int, std::unique_ptr<connection>> by_fd;
    // Hashes std::string keys and string_view lookups alike: a send looks its peer up by the
    // atom's text without building a std::string (a malloc for names over 15 bytes).
    struct text_hash {
        using is_transparent = void;
        [[nodiscard]] std::size_t operator()(std::string_view text) const noexcept {
            return std::hash<std::string_view>{}(text);
        }
    };
    // the one connection per peer
    std::unordered_map<std::string, connection*, text_hash, std::equal_to<>> by_node;
    std::unordered_map<std::string, spawnable> spawnables;  // "module:function"
    std::vector<int> to_flush;  // fds of connections with bytes encoded since the last flush
    bool flush_scheduled = false;
    std::mt19937 random{dist::random_word()};
    int next_placeholder = 0;  // keys (negative) of connections without a socket
    // Rings.
    std::vector<int> ring_fds;   // keys of connections over a ring
    std::vector<int> hot_rings;  // those polled on every turn (connection::hot)
    struct pending_offer {
        ring_offer offer;
        clock::time_point deadline;
        int answer_fd = -1;  // the rendezvous socket watched for the offerer's answer
    };
    std::vector<pending_offer> offers;  // offered to us, not attached yet
    bool offer_retry_scheduled = false;
    /// Until the next attach attempt: short at first (the offerer answers within microseconds
    /// when it is not busy), doubling up to a millisecond for an offerer that is.
    std::chrono::microseconds offer_retry_delay{20};
    std::uint32_t next_ring_port = 1;
    std::uint64_t poller = 0;
    atom badarg, link, monitor;
};

// -- setting up ---------------------------------------------------------------------------------

distribution::distribution(node& host, distribution_config config)
    : host_(&host), config_(std::move(config)), state_(std::make_unique<state>()) {
    if (config_.epmd_port == 0) {
        config_.epmd_port = dist::epmd_port_from_environment();
    }
    if (!config_.log) {
        config_.log = [](std::string_view line) {
            std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
        };
    }
    state_->badarg = host.a("badarg");
    state_->link = host.a("link");
    state_->monitor = host.a("monitor");
}

std::expected<std::unique_ptr<distribution>, std::error_code> distribution::start(
    node& host, distribution_config config) {
    const auto parts = split_node_name(host.name().text());
    if (!parts) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    std::unique_ptr<distribution> self(new distribution(host, std::move(config)));
    auto& s = *self->state_;

    s.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s.listen_fd < 0) {
        return std::unexpected(std::error_code(errno, std::generic_category()));
    }
    int on = 1;
    ::setsockopt(s.listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(self->config_.listen_port);
    if (::inet_pton(AF_INET, self->config_.listen_address.c_str(), &address.sin_addr) != 1) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    if (::bind(s.listen_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(s.listen_fd, 128) != 0) {
        return std::unexpected(std::error_code(errno, std::generic_category()));
    }
    socklen_t length = sizeof address;
    ::getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&address), &length);
    self->listen_port_ = ntohs(address.sin_port);

    // OTP avoids creations 0-3 for dynamic ones (net_kernel:wrap_creation/1).
    const auto own_creation = [&] {
        return 4 + static_cast<std::uint32_t>(s.random() % 0xfffffff0u);
    };
    const bool background = self->config_.epmd_in_background;
    if (self->config_.use_epmd) {
        const auto timeout = self->config_.epmd_timeout;
        const auto register_node = [&] {
            return background ? dist::epmd_registration::begin(parts->first, self->listen_port_,
                                                               self->config_.hidden, timeout,
                                                               self->config_.epmd_port)
                              : dist::epmd_registration::register_node(
                                    parts->first, self->listen_port_, self->config_.hidden, timeout,
                                    self->config_.epmd_port);
        };
        // Registering is the probe: EPMD is started (as erl does) only when nobody listens,
        // so a node on a host whose EPMD runs pays one round trip, not two connections.
        auto registered = register_node();
        if (!registered && registered.error() == dist::epmd_errc::unreachable &&
            self->config_.start_epmd) {
            if (auto started = dist::ensure_epmd(self->config_.epmd_port, timeout); !started) {
                return std::unexpected(started.error());
            }
            registered = register_node();
        }
        if (!registered) {
            return std::unexpected(registered.error());
        }
        host.set_creation(background ? own_creation() : registered->creation());
        s.registration.emplace(std::move(*registered));
    } else if (host.creation() == 0) {
        host.set_creation(own_creation());
    }

    host.set_router(self.get());
    distribution* raw = self.get();
    host.watch_fd(s.listen_fd, [raw] { raw->accept_ready(); });
    if (s.registration && !s.registration->answered()) {
        host.watch_fd(s.registration->native_handle(), [raw] { raw->epmd_answered(); });
    }
    if (self->config_.ring_backend && self->config_.directory != nullptr) {
        s.next_ring_port = 1 + static_cast<std::uint32_t>(s.random() % 1000000u);
        if (const int offers = self->config_.directory->native_handle(); offers >= 0) {
            host.watch_fd(offers, [raw] { raw->offers_ready(); });
        }
        s.poller = host.add_poller([raw] { return raw->poll_rings(); },
                                   [raw] { return raw->arm_rings(); });
        self->offers_ready();  // offers made before this node started
    }
    self->log("distribution: " + std::string(host.name().text()) + " listening on port " +
              std::to_string(self->listen_port_) + " (creation " + std::to_string(host.creation()) +
              (self->config_.hidden ? ", hidden)" : ")"));
    return self;
}

distribution::~distribution() {
    auto& s = *state_;
    std::vector<connection*> all;
    for (auto& [fd, c] : s.by_fd) {
        all.push_back(c.get());
    }
    for (connection* c : all) {
        close_connection(*c, "node stopping", false);
    }
    for (const auto& p : s.offers) {
        if (p.answer_fd >= 0) {
            host_->unwatch_fd(p.answer_fd);
        }
    }
    if (s.poller != 0) {
        host_->remove_poller(s.poller);
        if (const int offers = config_.directory->native_handle(); offers >= 0) {
            host_->unwatch_fd(offers);
        }
    }
    if (s.listen_fd >= 0) {
        host_->unwatch_fd(s.listen_fd);
        ::close(s.listen_fd);
    }
    host_->set_router(nullptr);
}

// EPMD's answer to a registration sent in the background (epmd_in_background).
void distribution::epmd_answered() {
    auto& registration = *state_->registration;
    host_->unwatch_fd(registration.native_handle());
    if (auto answered = registration.finish(std::chrono::milliseconds(0)); !answered) {
        log("distribution: EPMD did not register " + std::string(host_->name().text()) + ": " +
            answered.error().message() + "; not reachable over TCP");
    }
}

void distribution::log(const std::string& line) const {
    config_.log(line);
}

dist::handshake_config distribution::handshake_config() {
    dist::handshake_config hs;
    hs.this_node = std::string(host_->name().text());
    hs.creation = host_->creation();
    hs.cookie = config_.cookie;
    hs.flags = dist::vdist_flags | (config_.hidden ? 0 : dist::DFLAG_PUBLISHED);
    return hs;
}

void distribution::register_spawnable(std::string_view module, std::string_view function,
                                      spawnable make) {
    state_->spawnables[std::string(module) + ":" + std::string(function)] = std::move(make);
}

distribution::connection* distribution::find_connection(atom peer) const {
    const auto found = state_->by_node.find(peer.text());
    return found == state_->by_node.end() ? nullptr : found->second;
}

distribution::connection* distribution::ensure_connection(
    atom peer, std::optional<transport::domid_t> domain) {
    if (connection* existing = find_connection(peer)) {
        return existing;
    }
    if (peer == host_->name()) {
        return nullptr;
    }
    const auto parts = split_node_name(peer.text());
    if (!parts) {
        return nullptr;
    }
    if (state_->poller != 0) {
        if (const auto domid = domain ? domain : config_.directory->locate(peer.text())) {
            if (connection* c = start_ring_connection(peer, *domid)) {
                return c;
            }
            log("distribution: no ring to " + std::string(peer.text()) + ", trying TCP");
        }
    }
    auto found = dist::epmd_port_please(parts->second, parts->first, config_.epmd_timeout,
                                        config_.epmd_port);
    if (!found) {
        log("distribution: cannot reach " + std::string(peer.text()) + ": EPMD on " +
            parts->second + " says " + found.error().message());
        return nullptr;
    }
    if (found->highest_version < 6) {
        log("distribution: cannot reach " + std::string(peer.text()) +
            ": it speaks only handshake version " + std::to_string(found->highest_version));
        return nullptr;
    }
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* addresses = nullptr;
    const std::string port = std::to_string(found->port);
    if (::getaddrinfo(parts->second.c_str(), port.c_str(), &hints, &addresses) != 0 ||
        addresses == nullptr) {
        log("distribution: cannot resolve host " + parts->second);
        return nullptr;
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const int rc = fd < 0 ? -1 : ::connect(fd, addresses->ai_addr, addresses->ai_addrlen);
    const int error = errno;
    ::freeaddrinfo(addresses);
    if (fd < 0 || (rc != 0 && error != EINPROGRESS)) {
        log("distribution: cannot connect to " + std::string(peer.text()) + ": " +
            errno_text(error));
        if (fd >= 0) {
            ::close(fd);
        }
        return nullptr;
    }
    set_nodelay(fd);
    connection& c = add_connection(std::make_unique<tcp_carrier>(fd), peer, true);
    c.handshake.emplace(dist::handshake::initiate(handshake_config(), peer.text()));
    c.tcp_connecting = rc != 0;
    if (c.tcp_connecting) {
        set_writable(c, true);
    } else {
        queue_bytes(c, c.handshake->take_output());
        flush(c);
    }
    return &c;
}

distribution::connection& distribution::add_connection(std::unique_ptr<byte_carrier> io, atom peer,
                                                       bool initiated) {
    auto owned = std::make_unique<connection>();
    connection& c = *owned;
    const int fd = io->handle();
    c.fd = fd;
    c.kind = io->kind();
    c.io = std::move(io);
    if (c.kind == carrier_kind::ring) {
        c.ring = static_cast<ring_carrier*>(c.io.get());
        state_->ring_fds.push_back(fd);
        heat(c);
    }
    c.peer = peer;
    c.initiated = initiated;
    c.ticker = dist::ticker(config_.net_ticktime);
    state_->by_fd.emplace(fd, std::move(owned));
    if (initiated) {
        state_->by_node[std::string(peer.text())] = &c;
    }
    if (c.kind == carrier_kind::ring) {
        host_->watch_fd(fd, [this, fd] {
            auto found = state_->by_fd.find(fd);
            if (found == state_->by_fd.end()) {
                return;
            }
            connection& conn = *found->second;
            (void)conn.ring->ring.consume_notification();  // accepts a connecting client too
            heat(conn);
            if (!conn.ring->ring.peer_alive()) {
                conn.ring->peer_dead = true;
            }
            if (conn.ring_attaching && !ring_attached(conn)) {
                return;
            }
            socket_ready(fd);
        });
    } else {
        host_->watch_fd(fd, [this, fd] { socket_ready(fd); });
    }
    c.setup_timer = host_->call_after(config_.net_setuptime, [this, fd] {
        if (auto found = state_->by_fd.find(fd); found != state_->by_fd.end()) {
            found->second->setup_timer = 0;
            if (!found->second->up) {
                close_connection(*found->second, "handshake not finished within net_setuptime",
                                 true);
            }
        }
    });
    return c;
}

void distribution::accept_ready() {
    for (;;) {
        const int fd = ::accept4(state_->listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;  // EAGAIN, or an error that the next readiness will show again
        }
        set_nodelay(fd);
        connection& c = add_connection(std::make_unique<tcp_carrier>(fd), atom(), false);
        c.handshake.emplace(dist::handshake::accept(handshake_config()));
    }
}

// -- rings
// ------------------------------------------------------------------------------------------

// We initiate towards a co-located peer: we are the vchan server. The handshake starts once the
// peer has attached (ring_attached).
distribution::connection* distribution::start_ring_connection(atom peer, transport::domid_t domid) {
    const std::uint32_t port = state_->next_ring_port++;
    const transport::vchan_address address{config_.directory->self(), domid, std::to_string(port)};
    auto ring = transport::vchan_server(*config_.ring_backend, address, config_.ring_orders,
                                        config_.ring_wait);
    if (!ring) {
        log("distribution: cannot create a ring for " + std::string(peer.text()) + ": " +
            ring.error().message());
        return nullptr;
    }
    auto io = std::make_unique<ring_carrier>(std::move(*ring), domid, port);
    if (!config_.directory->offer(domid, port)) {
        log("distribution: cannot offer a ring to " + std::string(peer.text()));
        return nullptr;
    }
    io->offer_open = true;
    connection& c = add_connection(std::move(io), peer, true);
    c.ring_attaching = true;
    c.handshake.emplace(dist::handshake::initiate(handshake_config(), peer.text()));
    const int key = c.fd;
    c.offer_recheck_timer =
        host_->call_after(ring_offer_recheck, [this, key] { recheck_offer(key); });
    return &c;
}

// Our ring is offered and not attached yet. If the peer's name now locates another domain (or
// none), the domain we offered it to was a dead incarnation whose record the toolstack had not
// yet removed: the attempt ends now, as a TCP connect to a dead node is refused, instead of
// when net_setuptime passes, and the next send locates the new one.
void distribution::recheck_offer(int key) {
    const auto found = state_->by_fd.find(key);
    if (found == state_->by_fd.end()) {
        return;
    }
    connection& c = *found->second;
    c.offer_recheck_timer = 0;
    if (!c.ring_attaching || c.ring == nullptr) {
        return;
    }
    const auto domid = config_.directory->locate(c.peer.text());
    if (domid == c.ring->peer_domid) {
        c.offer_recheck_timer =
            host_->call_after(ring_offer_recheck, [this, key] { recheck_offer(key); });
        return;
    }
    close_connection(c,
                     "ring offered to domain " + std::to_string(c.ring->peer_domid) + ", where " +
                         std::string(c.peer.text()) + " no longer runs",
                     true);
}

// The peer attached to the ring we offered: withdraw the offer and start the handshake.
bool distribution::ring_attached(connection& c) {
    auto connected = c.ring->ring.wait_connected(std::chrono::nanoseconds::zero());
    if (!connected) {
        if (connected.error() == transport::errc::timed_out) {
            return false;  // not yet
        }
        close_connection(c,
                         "ring to " + std::string(c.peer.text()) +
                             " not attached: " + connected.error().message(),
                         true);
        return false;
    }
    c.ring_attaching = false;
    // The offer is withdrawn once the connection is up (connection_up), off the handshake's
    // path: the peer does not take an offer twice.
    queue_bytes(c, c.handshake->take_output());
    return true;
}

void distribution::withdraw_offer(connection& c) {
    if (c.ring != nullptr && c.ring->offer_open) {
        c.ring->offer_open = false;
        config_.directory->withdraw(c.ring->peer_domid, c.ring->ring_port);
    }
}

void distribution::offers_ready() {
    const auto deadline = host_->time().now() + config_.net_setuptime;
    for (const ring_offer& offer : config_.directory->take_offers()) {
        state_->offers.push_back({offer, deadline});
    }
    attach_pending_offers();
}

// Attaches to the rings offered to us, as vchan client, and accepts the handshake on them.
void distribution::attach_pending_offers() {
    auto& s = *state_;
    std::vector<state::pending_offer> later;
    const auto pending = std::move(s.offers);
    s.offers.clear();
    const std::string self(host_->name().text());
    for (auto p : pending) {
        if (p.answer_fd >= 0) {
            host_->unwatch_fd(std::exchange(p.answer_fd, -1));  // the lookup takes it over
        }
        const auto from = p.offer.from;
        // Our own ring to the same domain, if we are connecting to it too.
        connection* own = nullptr;
        for (const int fd : s.ring_fds) {
            connection& c = *s.by_fd.at(fd);
            if (c.initiated && c.ring->peer_domid == from) {
                own = &c;
            }
        }
        if (own != nullptr && self > own->peer.text()) {
            // A simultaneous connect that our attempt wins (the greater name keeps its own,
            // as OTP): while the peer has not attached to ours, attaching to its ring could
            // block both loops on each other; once it has, its own attempt gives way.
            if (own->ring_attaching) {
                later.push_back(p);
            } else {
                log("distribution: ring offered by domain " + std::to_string(from) +
                    " not taken: simultaneous connect, keeping ours");
            }
            continue;
        }
        const transport::vchan_address address{from, config_.directory->self(),
                                               std::to_string(p.offer.port)};
        auto ring = transport::vchan_client(*config_.ring_backend, address, config_.ring_wait,
                                            config_.ring_attach_timeout);
        if (!ring) {
            if (ring.error() == transport::errc::timed_out && host_->time().now() < p.deadline) {
                // Its node has not answered yet (busy, maybe attaching to ours): again when the
                // answer comes in, or at the next retry.
                p.answer_fd = config_.ring_backend->directory().pending_lookup(address);
                if (p.answer_fd >= 0) {
                    host_->watch_fd(p.answer_fd, [this] { attach_pending_offers(); });
                }
                later.push_back(p);
            } else {
                log("distribution: cannot attach to the ring offered by domain " +
                    std::to_string(from) + ": " + ring.error().message());
            }
            continue;
        }
        connection& c = add_connection(
            std::make_unique<ring_carrier>(std::move(*ring), from, p.offer.port), atom(), false);
        c.handshake.emplace(dist::handshake::accept(handshake_config()));
    }
    s.offers.insert(s.offers.end(), later.begin(), later.end());
    if (s.offers.empty()) {
        s.offer_retry_delay = std::chrono::microseconds(20);
    } else if (!s.offer_retry_scheduled) {
        s.offer_retry_scheduled = true;
        const auto delay = s.offer_retry_delay;
        s.offer_retry_delay = std::min(2 * delay, std::chrono::microseconds(1000));
        host_->call_after(delay, [this] {
            state_->offer_retry_scheduled = false;
            attach_pending_offers();
        });
    }
}

// Called on every loop iteration: moves what the rings have without waiting for a
// notification. True if any byte moved.
bool distribution::poll_rings() {
    auto& s = *state_;
    if (s.hot_rings.empty()) {
        return false;
    }
    bool moved = false;
    bool cooled = false;
    const auto fds = s.hot_rings;
    for (const int fd : fds) {
        auto found = s.by_fd.find(fd);
        if (found == s.by_fd.end() || found->second->ring_attaching) {
            continue;
        }
        connection& c = *found->second;
        const auto before = c.stats.bytes_in + c.stats.bytes_out;
        if (c.want_writable && !flush(c)) {
            moved = true;
            continue;
        }
        read_ready(c);
        auto after = s.by_fd.find(fd);
        if (after == s.by_fd.end()) {
            moved = true;
        } else if (after->second->stats.bytes_in + after->second->stats.bytes_out != before) {
            moved = true;
            c.idle_polls = 0;
        } else if (++c.idle_polls % ring_idle_check == 0 && !c.want_writable) {
            const auto now = host_->time().now();
            if (c.idle_polls == ring_idle_check) {
                c.idle_since = now;
            } else if (now - c.idle_since >= ring_cold_after) {
                // Idle: from now on its peer notifies when it writes (unless it has already).
                auto readable = c.ring->ring.arm_readable();
                if (readable && !*readable) {
                    c.hot = false;
                    cooled = true;
                } else {
                    c.idle_polls = 0;
                }
            }
        }
    }
    if (cooled) {
        std::erase_if(s.hot_rings, [&](int fd) {
            const auto found = s.by_fd.find(fd);
            return found == s.by_fd.end() || !found->second->hot;
        });
    }
    return moved;
}

// Before the loop blocks: ask each hot ring's peer for a notification (data, or room for what
// is queued); the others are armed already. True if a ring is ready already, so the loop must
// not sleep.
bool distribution::arm_rings() {
    bool ready = false;
    for (const int fd : state_->hot_rings) {
        connection& c = *state_->by_fd.at(fd);
        if (c.ring_attaching) {
            continue;  // the attaching client notifies
        }
        auto readable = c.ring->ring.arm_readable();
        ready = ready || !readable || *readable;
        if (c.want_writable) {
            const std::size_t wanted =
                std::min(c.out.size() - c.out_sent, c.ring->ring.write_capacity() / 2);
            auto room = c.ring->ring.arm_writable(wanted);
            ready = ready || !room || *room;
        }
    }
    return ready;
}

void distribution::heat(connection& c) {
    c.idle_polls = 0;
    if (!c.hot) {
        c.hot = true;
        state_->hot_rings.push_back(c.fd);
    }
}

// -- the socket -----------------------------------------------------------------------------------

void distribution::socket_ready(int fd) {
    auto found = state_->by_fd.find(fd);
    if (found == state_->by_fd.end()) {
        return;
    }
    connection& c = *found->second;
    if (c.tcp_connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error == EINPROGRESS || error == EALREADY) {
            return;
        }
        if (error != 0) {
            close_connection(c, "connect failed: " + errno_text(error), true);
            return;
        }
        c.tcp_connecting = false;
        queue_bytes(c, c.handshake->take_output());
    }
    if (!flush(c)) {
        return;  // closed
    }
    read_ready(c);
}

void distribution::read_ready(connection& c) {
    // Read until the socket is empty, handling what arrived after each read; a connection
    // closed while handling (a bad packet) stops the loop.
    for (int reads = 0; reads < 64; ++reads) {
        std::span<std::byte> into;
        std::byte handshake_buffer[4096];
        if (c.up) {
            into = c.reader->prepare();
        } else {
            into = std::span(handshake_buffer);
        }
        auto got = c.io->read(into);
        if (got.status == io_status::closed) {
            close_connection(c, "connection closed by peer", true);
            return;
        }
        if (got.status == io_status::failed) {
            close_connection(c, got.error, true);
            return;
        }
        if (got.status == io_status::would_block) {
            return;
        }
        const std::size_t received = got.bytes;
        c.stats.bytes_in += received;
        c.ticker.on_read();
        if (c.up) {
            c.reader->commit(received);
            if (!handle_packets(c)) {
                return;
            }
        } else if (!handle_handshake_bytes(c, std::span(handshake_buffer, received))) {
            return;
        }
    }
}

// Feeds handshake bytes; false if the connection was closed.
bool distribution::handle_handshake_bytes(connection& c, std::span<const std::byte> bytes) {
    while (!bytes.empty() || c.handshake->state() != dist::handshake_state::in_progress) {
        const std::size_t used = c.handshake->feed(bytes);
        bytes = bytes.subspan(used);
        switch (c.handshake->state()) {
            case dist::handshake_state::in_progress:
                queue_bytes(c, c.handshake->take_output());
                return flush(c);
            case dist::handshake_state::needs_status:
                c.handshake->set_status(decide_status(c));
                queue_bytes(c, c.handshake->take_output());
                if (!flush(c)) {
                    return false;
                }
                continue;
            case dist::handshake_state::needs_alive_answer:
                // We asked for this connection, so the acceptor's old one is stale.
                c.handshake->set_alive_answer(true);
                queue_bytes(c, c.handshake->take_output());
                if (!flush(c)) {
                    return false;
                }
                continue;
            case dist::handshake_state::failed: {
                if (c.initiated && c.handshake->received_status() == dist::handshake_status::nok) {
                    // As OTP's initiator (dist_util:recv_status), wait: the peer, whose name
                    // is greater, is connecting to us too, and its attempt takes this one's
                    // place with what was queued here (decide_status); the set-up deadline
                    // ends it otherwise, with noconnection for its links and monitors.
                    await_peer(c);
                    return false;
                }
                const auto& peer = c.handshake->peer_name();
                const std::string why = "handshake " + std::string(c.initiated ? "to " : "from ") +
                                        (peer.empty() ? std::string("unknown node") : peer) +
                                        " refused: " + c.handshake->error_detail();
                queue_bytes(c, c.handshake->take_output());
                if (!flush(c)) {
                    return false;  // closed (and logged) by flush
                }
                close_connection(c, why, true);
                return false;
            }
            case dist::handshake_state::done:
                // The acceptor's last message leaves before the connection's own set-up.
                queue_bytes(c, c.handshake->take_output());
                if (!flush(c) || !connection_up(c)) {
                    return false;
                }
                if (!bytes.empty()) {
                    c.reader->feed(bytes);
                    return handle_packets(c);
                }
                return true;
        }
    }
    return true;
}

// Our attempt lost a simultaneous connect: the peer's attempt, on its way to us, carries the
// connection. What we queued waits for it (OTP keeps it in the node's dist entry likewise).
void distribution::await_peer(connection& c) {
    log("distribution: handshake to " + std::string(c.peer.text()) +
        " refused: " + c.handshake->error_detail() + "; waiting for its own connection");
    withdraw_offer(c);
    host_->unwatch_fd(c.fd);
    std::erase(state_->ring_fds, c.fd);
    std::erase(state_->hot_rings, c.fd);
    c.ring = nullptr;
    c.io.reset();
    if (c.setup_timer != 0) {
        host_->cancel_callback(c.setup_timer);
    }
    auto owned = std::move(state_->by_fd.at(c.fd));
    state_->by_fd.erase(c.fd);
    const int key = -(++state_->next_placeholder);
    c.fd = key;
    c.awaiting_peer = true;
    c.out.clear();
    c.out_sent = 0;
    state_->by_fd.emplace(key, std::move(owned));
    c.setup_timer = host_->call_after(config_.net_setuptime, [this, key] {
        if (auto found = state_->by_fd.find(key); found != state_->by_fd.end()) {
            found->second->setup_timer = 0;
            close_connection(*found->second, "simultaneous connect: the peer never came", true);
        }
    });
}

// The acceptor's answer to a send_name from c.handshake->peer_name().
dist::handshake_status distribution::decide_status(connection& c) {
    const std::string& name = c.handshake->peer_name();
    if (name == host_->name().text()) {
        return dist::handshake_status::not_allowed;
    }
    c.peer = host_->a(name);
    connection* other = find_connection(c.peer);
    if (other == nullptr) {
        state_->by_node[name] = &c;
        return dist::handshake_status::ok;
    }
    if (other->awaiting_peer) {
        // Our attempt lost the simultaneous connect earlier: this is the connection it waited
        // for.
        c.pending = std::move(other->pending);
        state_->by_node[name] = &c;
        close_connection(*other, "simultaneous connect: keeping the peer's", false);
        return dist::handshake_status::ok;
    }
    if (other->up) {
        // The peer restarted (or lost our connection): it will answer "true" and take over;
        // connection_up() then retires the old one.
        return dist::handshake_status::alive;
    }
    // Both sides are connecting: the greater name keeps its own attempt and refuses the
    // other's (OTP's net_kernel: MyNode > Node -> nok_pending, else ok_pending).
    if (host_->name().text() < name) {
        // Our attempt gives way; what it queued moves to this connection.
        c.pending = std::move(other->pending);
        state_->by_node[name] = &c;
        close_connection(*other, "simultaneous connect: keeping the peer's", false);
        return dist::handshake_status::ok_simultaneous;
    }
    return dist::handshake_status::nok;
}

bool distribution::connection_up(connection& c) {
    const auto& result = c.handshake->result();
    c.peer = host_->a(result.peer_node);
    c.flags = result.flags;
    c.peer_hidden = result.peer_hidden();
    c.up = true;
    c.reader.emplace(c.flags, host_->atoms(), config_.limits);
    c.writer.emplace(c.flags);
    if (c.setup_timer != 0) {
        host_->cancel_callback(c.setup_timer);
        c.setup_timer = 0;
    }
    const std::string name(c.peer.text());
    if (auto old = state_->by_node.find(name); old != state_->by_node.end() && old->second != &c) {
        connection* stale = old->second;
        old->second = &c;
        close_connection(*stale, "replaced by a new connection", false);
        host_->node_down(c.peer);
    }
    state_->by_node[name] = &c;
    while (!c.pending.empty()) {
        auto message = std::move(c.pending.front());
        c.pending.pop_front();
        write_message(c, message);
    }
    // What waited for the connection leaves first.
    if (!flush(c)) {
        return false;  // closed (and its offer withdrawn)
    }
    log("distribution: connection " + std::string(c.initiated ? "to " : "from ") + name + " up (" +
        (c.peer_hidden ? "hidden" : "visible") + " peer, creation " +
        std::to_string(result.peer_creation) + ")");
    // Our ring offer, taken, is withdrawn a little later: the withdrawal blocks this loop for a
    // store round trip, which the first answers must not wait behind.
    if (c.ring != nullptr && c.ring->offer_open) {
        c.withdrawal_timer = host_->call_after(offer_withdrawal_delay, [this, fd = c.fd] {
            connection& later = *state_->by_fd.at(fd);  // closing it cancels this timer
            later.withdrawal_timer = 0;
            withdraw_offer(later);
        });
    }
    start_ticking(c.fd);
    return true;
}

void distribution::start_ticking(int fd) {
    auto found = state_->by_fd.find(fd);
    if (found == state_->by_fd.end()) {
        return;
    }
    connection& c = *found->second;
    c.tick_timer = host_->call_after(c.ticker.period(), [this, fd] {
        auto it = state_->by_fd.find(fd);
        if (it == state_->by_fd.end()) {
            return;
        }
        connection& conn = *it->second;
        conn.tick_timer = 0;
        switch (conn.ticker.poll()) {
            case dist::ticker::action::timed_out:
                close_connection(conn, "net_tick_timeout (nothing received for net_ticktime)",
                                 true);
                return;
            case dist::ticker::action::send_tick:
                dist::packet_writer::write_tick(conn.out);
                ++conn.stats.ticks_out;
                if (!flush(conn)) {
                    return;
                }
                break;
            case dist::ticker::action::none:
                break;
        }
        start_ticking(fd);
    });
}

// Handles every complete packet buffered; false if the connection was closed.
bool distribution::handle_packets(connection& c) {
    for (;;) {
        auto next = c.reader->next();
        c.stats.ticks_in = c.reader->ticks_received();
        if (!next) {
            close_connection(
                c, "bad packet from " + std::string(c.peer.text()) + ": " + next.error().detail,
                true);
            return false;
        }
        if (!*next) {
            return true;
        }
        ++c.stats.messages_in;
        const int fd = c.fd;
        dispatch(c, std::move(**next));
        if (!state_->by_fd.contains(fd)) {
            return false;
        }
    }
}

void distribution::queue_bytes(connection& c, std::vector<std::byte> bytes) {
    if (c.out.empty()) {
        c.out = std::move(bytes);
        c.out_sent = 0;
    } else {
        c.out.insert(c.out.end(), bytes.begin(), bytes.end());
    }
}

// Hands queued bytes to the kernel; false if the connection was closed.
bool distribution::flush(connection& c) {
    if (c.tcp_connecting || c.ring_attaching || !c.io) {
        return true;
    }
    while (c.out_sent < c.out.size()) {
        auto put = c.io->write(std::span(c.out).subspan(c.out_sent));
        if (put.status == io_status::would_block) {
            set_writable(c, true);
            return true;
        }
        if (put.status != io_status::moved) {
            close_connection(
                c, put.status == io_status::closed ? "connection closed by peer" : put.error, true);
            return false;
        }
        c.out_sent += put.bytes;
        c.stats.bytes_out += put.bytes;
        c.ticker.on_write();
    }
    c.out.clear();
    c.out_sent = 0;
    if (c.out.capacity() > retained_output_capacity) {
        c.out.shrink_to_fit();  // a 64 MB message once must not pin 64 MB per connection
    }
    set_writable(c, false);
    return true;
}

void distribution::set_writable(connection& c, bool on) {
    if (c.want_writable != on) {
        c.want_writable = on;
        if (c.kind == carrier_kind::tcp) {
            host_->watch_writable(c.fd, on);
        } else if (on) {
            heat(c);  // polled for room, and armed for it before the loop blocks (arm_rings)
        }
    }
}

void distribution::close_connection(connection& c, const std::string& why, bool notify) {
    const int fd = c.fd;
    const atom peer = c.peer;
    const bool was_up = c.up;
    const bool registered = !peer.text().empty() && find_connection(peer) == &c;
    if (c.withdrawal_timer != 0) {
        host_->cancel_callback(c.withdrawal_timer);
    }
    if (c.tick_timer != 0) {
        host_->cancel_callback(c.tick_timer);
    }
    if (c.offer_recheck_timer != 0) {
        host_->cancel_callback(c.offer_recheck_timer);
    }
    if (c.setup_timer != 0) {
        host_->cancel_callback(c.setup_timer);
    }
    if (c.io) {
        withdraw_offer(c);
        host_->unwatch_fd(fd);
        std::erase(state_->ring_fds, fd);
        std::erase(state_->hot_rings, fd);
        c.ring = nullptr;
        c.io.reset();  // a ring releases its pages and rendezvous socket here
    }
    if (registered) {
        state_->by_node.erase(std::string(peer.text()));
    }
    state_->by_fd.erase(fd);  // c is gone from here on
    if (was_up) {
        log("distribution: connection to " + std::string(peer.text()) + " down: " + why);
    } else {
        log("distribution: " + why);
    }
    if (notify && registered) {
        host_->node_down(peer);
    }
}

// -- sending --------------------------------------------------------------------------------------

void distribution::enqueue(connection& c, control_message&& message) {
    if (!c.up) {
        c.pending.push_back(std::move(message));
        return;
    }
    write_message(c, message);
}

void distribution::write_message(connection& c, const control_message& message) {
    if (std::holds_alternative<dist::alias_send_message>(message) &&
        (c.flags & dist::DFLAG_ALIAS) == 0) {
        return;  // the peer has no aliases, so no alias of it can exist
    }
    if (auto written = c.writer->write(c.out, message); !written) {
        log("distribution: message to " + std::string(c.peer.text()) +
            " not sent: " + written.error().detail);
        return;
    }
    ++c.stats.messages_out;
    // Sent when the node's current batch of steps is done: many messages, one send().
    if (std::ranges::find(state_->to_flush, c.fd) == state_->to_flush.end()) {
        state_->to_flush.push_back(c.fd);
    }
    if (!state_->flush_scheduled) {
        state_->flush_scheduled = true;
        host_->call_after(clock::duration::zero(), [this] { flush_batch(); });
    }
}

void distribution::flush_batch() {
    state_->flush_scheduled = false;
    const auto batch = std::move(state_->to_flush);
    state_->to_flush.clear();
    for (const int fd : batch) {
        if (auto found = state_->by_fd.find(fd); found != state_->by_fd.end()) {
            (void)flush(*found->second);
        }
    }
}

void distribution::route(atom peer, control_message&& message) {
    if (connection* c = ensure_connection(peer)) {
        enqueue(*c, std::move(message));
    }
}

void distribution::send(const std::optional<pid>& from, const pid& to, term message) {
    route(to.node, dist::send_message{from, to, std::move(message)});
}

void distribution::send_named(const pid& from, atom name, atom node_name, term message) {
    route(node_name, dist::reg_send_message{from, name, std::move(message)});
}

void distribution::send_alias(const pid& from, const reference& alias, term message) {
    route(alias.node, dist::alias_send_message{from, alias, std::move(message)});
}

bool distribution::reachable(atom node_name) {
    return ensure_connection(node_name) != nullptr;
}

void distribution::link(const pid& from, const pid& to) {
    route(to.node, dist::link_message{from, to});
}

void distribution::unlink(const pid& from, const pid& to) {
    if (connection* c = find_connection(to.node)) {
        enqueue(*c, dist::unlink_message{c->next_unlink_id++, from, to, false});
    }
}

void distribution::monitor(const pid& from, const pid& to, const std::optional<atom>& name,
                           const reference& ref) {
    dist::monitor_message message{from, to, ref, false};
    if (name) {
        message.to = *name;
    }
    route(to.node, std::move(message));
}

void distribution::demonitor(const pid& from, const pid& to, const std::optional<atom>& name,
                             const reference& ref) {
    if (connection* c = find_connection(to.node)) {
        dist::monitor_message message{from, to, ref, true};
        if (name) {
            message.to = *name;
        }
        enqueue(*c, std::move(message));
    }
}

void distribution::exit(const pid& from, const pid& to, term reason, bool is_link) {
    if (connection* c = is_link ? find_connection(to.node) : ensure_connection(to.node)) {
        enqueue(*c, dist::exit_message{from, to, std::move(reason), !is_link});
    }
}

void distribution::down(const pid& from, const std::optional<atom>& name, const pid& to,
                        const reference& ref, term reason) {
    if (connection* c = find_connection(to.node)) {
        dist::monitor_exit_message message{from, to, ref, std::move(reason)};
        if (name) {
            message.from = *name;
        }
        enqueue(*c, std::move(message));
    }
}

// -- receiving ------------------------------------------------------------------------------------

void distribution::dispatch(connection& c, control_message&& message) {
    node& n = *host_;
    std::visit(
        [&](auto&& m) {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, dist::link_message>) {
                n.link_from_remote(m.from, m.to);
            } else if constexpr (std::is_same_v<T, dist::send_message>) {
                n.deliver_from_remote(m.to, std::move(m.message));
            } else if constexpr (std::is_same_v<T, dist::reg_send_message>) {
                n.deliver_named_from_remote(m.to_name, std::move(m.message));
            } else if constexpr (std::is_same_v<T, dist::exit_message>) {
                n.exit_from_remote(m.from, m.to, std::move(m.reason), !m.exit2);
            } else if constexpr (std::is_same_v<T, dist::unlink_message>) {
                if (!m.ack) {
                    n.unlink_from_remote(m.from, m.to);
                    if (m.id != 0) {
                        enqueue(c, dist::unlink_message{m.id, m.to, m.from, true});
                    }
                }
            } else if constexpr (std::is_same_v<T, dist::monitor_message>) {
                if (const auto* target = std::get_if<pid>(&m.to)) {
                    if (m.demonitor) {
                        n.demonitor_from_remote(m.from, *target, m.ref);
                    } else {
                        n.monitor_from_remote(m.from, *target, m.ref);
                    }
                } else {
                    const atom name = std::get<atom>(m.to);
                    if (m.demonitor) {
                        n.demonitor_name_from_remote(m.from, name, m.ref);
                    } else {
                        n.monitor_name_from_remote(m.from, name, m.ref);
                    }
                }
            } else if constexpr (std::is_same_v<T, dist::monitor_exit_message>) {
                const pid from = std::holds_alternative<pid>(m.from) ? std::get<pid>(m.from)
                                                                     : pid{c.peer, 0, 0, 0};
                n.down_from_remote(from, m.to, m.ref, std::move(m.reason));
            } else if constexpr (std::is_same_v<T, dist::group_leader_message>) {
                // vdist has no group leaders (no I/O servers): nothing to change.
            } else if constexpr (std::is_same_v<T, dist::spawn_request_message>) {
                spawn_request(c, std::move(m));
            } else if constexpr (std::is_same_v<T, dist::spawn_reply_message>) {
                // vdist sends no SPAWN_REQUEST, so a reply answers nothing of ours.
            } else if constexpr (std::is_same_v<T, dist::alias_send_message>) {
                n.deliver_alias_from_remote(m.alias, std::move(m.message));
            }
        },
        std::move(message));
}

void distribution::spawn_request(connection& c, dist::spawn_request_message request) {
    const auto found = state_->spawnables.find(std::string(request.module.text()) + ":" +
                                               std::string(request.function.text()));
    std::optional<behavior> body;
    if (found != state_->spawnables.end()) {
        if (const auto* arguments = request.arguments.get_if<dist::list>()) {
            body = found->second(*arguments);
        }
    }
    if (!body) {
        enqueue(c, dist::spawn_reply_message{request.request, request.from, 0, state_->badarg});
        return;
    }
    const pid child = host_->spawn(std::move(*body));
    std::uint64_t flags = 0;
    if (const auto* options = request.options.get_if<dist::list>()) {
        for (const term& option : options->elements) {
            if (option == term(state_->link)) {
                flags |= dist::ERTS_DIST_SPAWN_FLAG_LINK;
            } else if (option == term(state_->monitor)) {
                flags |= dist::ERTS_DIST_SPAWN_FLAG_MONITOR;
            }
        }
    }
    // The reply goes first: the requester must know the pid before any signal from it.
    enqueue(c, dist::spawn_reply_message{request.request, request.from, flags, child});
    if ((flags & dist::ERTS_DIST_SPAWN_FLAG_LINK) != 0) {
        host_->link_from_remote(request.from, child);
    }
    if ((flags & dist::ERTS_DIST_SPAWN_FLAG_MONITOR) != 0) {
        host_->monitor_from_remote(request.from, child, request.request);
    }
}

// -- queries --------------------------------------------------------------------------------------

bool distribution::connect(atom peer, std::optional<transport::domid_t> domain) {
    return ensure_connection(peer, domain) != nullptr;
}

bool distribution::disconnect(atom peer) {
    if (connection* c = find_connection(peer)) {
        close_connection(*c, "disconnected by this node", true);
        return true;
    }
    return false;
}

std::vector<atom> distribution::nodes(bool hidden) const {
    std::vector<atom> result;
    for (const auto& [name, c] : state_->by_node) {
        if (c->up && c->peer_hidden == hidden) {
            result.push_back(c->peer);
        }
    }
    return result;
}

std::vector<connection_info> distribution::connections() const {
    std::vector<connection_info> result;
    for (const auto& [fd, c] : state_->by_fd) {
        result.push_back(
            {c->peer, c->up, c->initiated, c->peer_hidden, c->flags, c->stats, c->kind});
    }
    return result;
}

}  // namespace vdist::runtime
