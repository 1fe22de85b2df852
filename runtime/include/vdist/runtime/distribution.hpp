#pragma once
/// \file
/// Erlang distribution for a node: the connections to other nodes (C++ or BEAM) and the
/// remote_router that carries the node's remote sends and signals over them.
///
/// ```
///   node ──remote_router──> distribution ──> connection per peer node
///                              │               ├─ handshake (dist/handshake.hpp, sans-IO)
///                              │               ├─ packet_writer / packet_reader (dist/control.hpp)
///                              │               ├─ ticker (net_ticktime) and a set-up deadline
///                              │               └─ a carrier in the node's loop: a non-blocking
///                              │                  TCP socket, or a vchan ring to a co-located
///                              │                  peer (transport/vchan.hpp, host backend)
///                              ├─ listener (accepts), EPMD registration (ALIVE2, creation)
///                              └─ spawnables: what a SPAWN_REQUEST {Module, Function} may start
/// ```
///
/// Everything runs on the node's thread, from its loop (`node::run`): sockets are watched with
/// `node::watch_fd`, ticks and deadlines are `node::call_after` callbacks. A connection is set
/// up on first use, as in Erlang: a send, link or monitor to a process of another node looks
/// the node up in EPMD (PORT_PLEASE2, a blocking exchange with the EPMD of the peer's host,
/// bounded by `epmd_timeout`), connects without blocking, and queues what is sent until the
/// handshake is done; a failed set-up drops the queue and fires `noconnection` for the links
/// and monitors taken meanwhile. Simultaneous connects are resolved as OTP does (the node with
/// the greater name keeps its own attempt and answers `nok` to the other's; the other keeps
/// the greater's: `ok_simultaneous`, and an attempt answered `nok` waits for it).
///
/// Rings: with `ring_backend` and `directory` set, a peer that the directory locates on
/// this host is reached over a vchan instead of TCP. The initiator is the vchan server (fresh
/// port, `offer` to the peer, handshake once the peer attached); offers from others (the
/// directory's native_handle) are attached to as vchan client and accepted. The same
/// handshake, framing, ticks and simultaneous-connect rules run over either carrier.
///
/// Incoming control messages become the node's `*_from_remote` calls. The peer is untrusted:
/// a malformed packet, a bad handshake or a peer silent for net_ticktime ends its connection
/// (logged), never the node or its other connections.

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "vdist/dist/control.hpp"
#include "vdist/dist/handshake.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/runtime/ring_directory.hpp"
#include "vdist/transport/host_backend.hpp"
#include "vdist/transport/vchan_layout.hpp"

namespace vdist::runtime {

/// Default ring sizes of a distribution vchan: 256 KiB per direction (order 18), so a full
/// mesh of 16 nodes on a host (120 vchans) takes 120 x 2 x 256 KiB = 60 MiB. Larger messages
/// stream. Smaller rings starve streams of large messages: at 128 KiB a 64 KiB message stream
/// fell into a sleep/wake-up turn per half ring (dist_bench: 1.9k msgs/s against 6–48k).
inline constexpr transport::ring_orders default_distribution_ring_orders{{18}, {18}};

/// How a node takes part in distribution.
struct distribution_config {
    std::string cookie;
    /// A hidden node (no DFLAG_PUBLISHED): peers list it in nodes(hidden), not nodes(). The
    /// default: a visible node is drawn into OTP's `global` name protocol (locks, name
    /// exchange), which vdist does not speak, so `global:sync()` on an OTP peer would wait for
    /// it forever. A visible vdist node works for everything else (global:register_name, pg,
    /// messages, links, monitors, rpc); choose it when peers must list it in nodes().
    bool hidden = true;
    /// Where to listen (numeric address); port 0 takes an ephemeral port.
    std::string listen_address = "0.0.0.0";
    std::uint16_t listen_port = 0;
    /// Register with EPMD (ALIVE2) and look peers up in it (PORT_PLEASE2).
    bool use_epmd = true;
    /// Start `epmd -daemon` when none answers, as erl does.
    bool start_epmd = true;
    /// Register with EPMD without waiting for its answer: the node picks its own creation (as
    /// without EPMD) and is up at once; the answer is read on the loop, and a refusal (the
    /// name taken) is logged: the node is then not reachable over TCP. For nodes that start
    /// often and reach their peers over rings (a host agent's).
    bool epmd_in_background = false;
    /// EPMD's port (ERL_EPMD_PORT, else 4369).
    std::uint16_t epmd_port = 0;
    std::chrono::milliseconds epmd_timeout = std::chrono::seconds(5);
    /// A connection is down after net_ticktime without a byte from the peer (OTP's default).
    std::chrono::milliseconds net_ticktime = std::chrono::seconds(60);
    /// A handshake must finish within this (OTP's net_setuptime).
    std::chrono::milliseconds net_setuptime = std::chrono::seconds(7);
    /// Rings to co-located peers: the backend the vchans are made with (null: TCP only).
    std::shared_ptr<transport::host_backend> ring_backend{};
    /// Where co-located peers are found and offers arrive (not owned; must outlive the
    /// distribution; null: TCP only).
    ring_directory* directory = nullptr;
    /// Sizes of the rings this node creates as vchan server (left: peer -> us, right: us ->
    /// peer).
    transport::ring_orders ring_orders = default_distribution_ring_orders;
    /// The rings' wait policy. The node's loop never blocks inside a ring; what decides
    /// latency is node_config::idle (busy_poll there for the lowest round trip).
    transport::wait_policy ring_wait{};
    /// How long one attempt to attach to an offered ring may block the loop; a timed-out
    /// attempt is retried (every 2 ms) until net_setuptime. 0, the default: never block. The
    /// offering node answers an attach from its own loop, so a node blocked in an attach
    /// cannot answer others: with many nodes connecting at once, blocking attaches wait on
    /// each other in cycles (A on B, B on C, C on A) until every one times out (seen with 8
    /// nodes all-to-all: no handshake finished within net_setuptime).
    std::chrono::milliseconds ring_attach_timeout = std::chrono::milliseconds(0);
    /// Where connection events go, one line each (null: standard error).
    std::function<void(std::string_view)> log;
    dist::packet_limits limits{};
};

/// Counters of one connection.
struct connection_stats {
    std::uint64_t messages_in = 0;   ///< control messages received
    std::uint64_t messages_out = 0;  ///< control messages sent
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t ticks_in = 0;
    std::uint64_t ticks_out = 0;
};

/// What carries a connection's bytes.
enum class carrier_kind {
    tcp,   ///< a TCP socket (peers on other hosts, or no ring directory)
    ring,  ///< a vchan ring pair in shared memory (a peer on this host)
};

/// One connection, as `connections()` reports it.
struct connection_info {
    atom peer;
    bool up = false;         ///< the handshake is done
    bool initiated = false;  ///< we connected (rather than accepted)
    bool peer_hidden = false;
    std::uint64_t flags = 0;  ///< negotiated (0 until up)
    connection_stats stats;
    carrier_kind carrier = carrier_kind::tcp;
};

/// What a SPAWN_REQUEST for one {Module, Function} starts: given the argument list, the
/// behavior of the new process, or nullopt to refuse (the requester gets `badarg`).
using spawnable = std::function<std::optional<behavior>(const dist::list& arguments)>;

/// Distribution for one node.
class distribution final : public remote_router {
  public:
    /// Starts distribution on `host` (whose name must be `alive@host`): listens, starts and
    /// registers with EPMD (the node takes the creation EPMD gives), and becomes the node's
    /// router. The object must outlive the node's loop; destroying it disconnects every peer
    /// and unregisters.
    [[nodiscard]] static std::expected<std::unique_ptr<distribution>, std::error_code> start(
        node& host, distribution_config config);

    distribution(const distribution&) = delete;
    distribution& operator=(const distribution&) = delete;
    ~distribution() override;

    /// The port this node listens on.
    [[nodiscard]] std::uint16_t listen_port() const noexcept { return listen_port_; }
    /// The creation this node runs with.
    [[nodiscard]] std::uint32_t creation() const noexcept { return host_->creation(); }

    /// net_kernel:connect_node/1 without waiting: starts setting up a connection if there is
    /// none. False if it cannot even start (unknown in EPMD, unreachable). `domain`: the peer's
    /// domid on this host when the caller knows it (the toolstack said so), instead of the
    /// directory's answer.
    bool connect(atom peer, std::optional<transport::domid_t> domain = std::nullopt);
    /// Ends the connection to `peer` (disconnect_node/1); its links and monitors fire
    /// `noconnection`. False if there was none.
    bool disconnect(atom peer);
    /// Nodes with a connection that is up; `hidden` selects hidden or visible ones.
    [[nodiscard]] std::vector<atom> nodes(bool hidden) const;
    /// Every connection, up or being set up.
    [[nodiscard]] std::vector<connection_info> connections() const;

    /// What a remote spawn (SPAWN_REQUEST, e.g. erlang:spawn(Node, M, F, A), erpc) of
    /// `module:function` starts. Unregistered ones are refused with `badarg`.
    void register_spawnable(std::string_view module, std::string_view function, spawnable make);

    // -- remote_router -------------------------------------------------------------------------
    void send(const std::optional<pid>& from, const pid& to, term message) override;
    void send_named(const pid& from, atom name, atom node_name, term message) override;
    void send_alias(const pid& from, const reference& alias, term message) override;
    [[nodiscard]] bool reachable(atom node_name) override;
    void link(const pid& from, const pid& to) override;
    void unlink(const pid& from, const pid& to) override;
    void monitor(const pid& from, const pid& to, const std::optional<atom>& name,
                 const reference& ref) override;
    void demonitor(const pid& from, const pid& to, const std::optional<atom>& name,
                   const reference& ref) override;
    void exit(const pid& from, const pid& to, term reason, bool is_link) override;
    void down(const pid& from, const std::optional<atom>& name, const pid& to, const reference& ref,
              term reason) override;

  private:
    struct connection;
    struct state;
    class byte_carrier;
    class tcp_carrier;
    class ring_carrier;
    distribution(node& host, distribution_config config);

    void log(const std::string& line) const;
    [[nodiscard]] dist::handshake_config handshake_config();
    [[nodiscard]] connection* find_connection(atom peer) const;
    /// The connection to `peer`, set up now if there is none; null if that cannot start.
    connection* ensure_connection(atom peer,
                                  std::optional<transport::domid_t> domain = std::nullopt);
    connection& add_connection(std::unique_ptr<byte_carrier> io, atom peer, bool initiated);
    [[nodiscard]] connection* start_ring_connection(atom peer, transport::domid_t domid);
    void recheck_offer(int key);
    void offers_ready();
    void attach_pending_offers();
    [[nodiscard]] bool ring_attached(connection& c);
    [[nodiscard]] bool poll_rings();
    [[nodiscard]] bool arm_rings();
    void heat(connection& c);
    void withdraw_offer(connection& c);
    void accept_ready();
    void epmd_answered();
    void socket_ready(int fd);
    void read_ready(connection& c);
    bool handle_handshake_bytes(connection& c, std::span<const std::byte> bytes);
    [[nodiscard]] dist::handshake_status decide_status(connection& c);
    void await_peer(connection& c);
    /// False if `c` closed meanwhile (it is gone then).
    [[nodiscard]] bool connection_up(connection& c);
    void start_ticking(int fd);
    bool handle_packets(connection& c);
    void queue_bytes(connection& c, std::vector<std::byte> bytes);
    bool flush(connection& c);
    void flush_batch();
    void set_writable(connection& c, bool on);
    void close_connection(connection& c, const std::string& why, bool notify);
    void enqueue(connection& c, dist::control_message&& message);
    void write_message(connection& c, const dist::control_message& message);
    void route(atom peer, dist::control_message&& message);
    void dispatch(connection& c, dist::control_message&& message);
    void spawn_request(connection& c, dist::spawn_request_message request);

    node* host_;
    distribution_config config_;
    std::uint16_t listen_port_ = 0;
    std::unique_ptr<state> state_;
};

}  // namespace vdist::runtime
