#pragma once
/// \file
/// The first channel: what a host agent (the toolstack) and one node it spawned say to each
/// other over the socketpair the node inherits as fd 3. Configuration flows from the parent
/// only: the node has no config file and no command-line configuration but `--agent-fd`.
///
/// Framing: every frame is a 4-byte big-endian length, then that many bytes of one external
/// term (131, then the term). A length of 0 or above `max_frame_size`, bytes that are not one
/// term, or a term that is not one of the messages below is a protocol error: the reader
/// reports it (agent_errc) and the receiver closes the channel (a node then exits).
///
/// ```
///   agent                                              node (vdist node --agent-fd 3)
///     │ fork (+ exec), fd 3 = its end of the socketpair   │
///     │── {domain, #{domid => Int, store => Bin,         ──>│ optional: a domain made ahead
///     │      run_dir => Bin}}                               │ of its node (a shell): backend,
///     │                                                     │ store, inbox watch; then waits
///     │── {config, #{name => Atom, cookie => Bin,        ──>│ host_backend::create, store,
///     │      domid => Int, host => Bin, store => Bin,       │ distribution::start, services
///     │      run_dir => Bin, ticktime => Int (ms),          │
///     │      wait => busy | spin | block}}                  │
///     │<── {ready, Pid}                                   ───│ Pid: the node's `echo` server
///     │── {stats, Ref}                                   ──>│
///     │<── {stats, Ref, [{Peer, Carrier, MsgsIn, MsgsOut, ──│ Carrier: tcp | ring
///     │                   BytesIn, BytesOut}]}              │
///     │<── {spawn, Ref, Opts}                             ───│ on demand: a child node, please
///     │── {assigned, Ref, NodeName, Domid}               ──>│ (Opts: #{restart => Atom}) its
///     │                                                     │ name and domain, while it
///     │                                                     │ starts: connect
///     │── {spawned, Ref, NodeName, Pid}                  ──>│ it is ready
///     │   | {spawn_failed, Ref, Reason}                     │
///     │── stop                                           ──>│ the node stops cleanly, exits 0
///     │   EOF (agent gone)                                 ─>│ the node exits
/// ```

#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::discovery {

/// Errors of the first channel.
enum class agent_errc {
    frame_too_large = 1,  ///< a length prefix above max_frame_size, or 0
    bad_term,             ///< the frame's bytes are not one external term
    unknown_message,      ///< a term that is no message of this protocol
    bad_field,            ///< a message with a missing or mistyped field
    not_encodable,        ///< a message that ETF cannot carry
};
[[nodiscard]] const std::error_category& agent_category() noexcept;
[[nodiscard]] std::error_code make_error_code(agent_errc e) noexcept;

/// The largest frame either side accepts (stats of many connections fit easily).
inline constexpr std::size_t max_frame_size = 1 << 20;
/// The length prefix.
inline constexpr std::size_t frame_header_size = 4;

/// How an idle node waits (transport::wait_policy's kinds).
enum class node_wait { busy, spin, block };

/// agent → node, first: everything the node needs.
struct node_config_message {
    std::string name;  ///< alive@host
    std::string cookie;
    std::uint32_t domid = 0;
    std::string host;     ///< the agent's host name (not the node name's host part)
    std::string store;    ///< the host store's socket
    std::string run_dir;  ///< where rendezvous sockets live
    std::int64_t ticktime_ms = 60'000;
    node_wait wait = node_wait::block;
    friend bool operator==(const node_config_message&, const node_config_message&) = default;
};
/// agent → node, first when the toolstack creates the domain before it knows which node will
/// run there (as LightVM's split toolstack prepares domain shells): what needs no name is
/// done before the config comes, which must then name the same domid, store and run_dir.
struct domain_message {
    std::uint32_t domid = 0;
    std::string store;
    std::string run_dir;
    friend bool operator==(const domain_message&, const domain_message&) = default;
};
/// node → agent: distribution is up; `echo` answers messages.
struct ready_message {
    dist::pid echo;
};
/// agent → node: report your connections.
struct stats_request {
    dist::reference ref;
};
/// One connection in a stats reply.
struct connection_row {
    std::string peer;
    std::string carrier;  ///< "tcp" or "ring"
    std::uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
    friend bool operator==(const connection_row&, const connection_row&) = default;
};
/// node → agent.
struct stats_reply {
    dist::reference ref;
    std::vector<connection_row> connections;
};
/// node → agent: spawn a node for me. `restart`: permanent | transient | temporary.
struct spawn_request {
    dist::reference ref;
    std::string restart = "temporary";
};
/// agent → node.
struct spawned_reply {
    dist::reference ref;
    std::string node_name;
    dist::pid echo;
};
/// agent → node: the child has a domain and a name (its store records are written) and is
/// starting: the requester may start connecting to it now (ready or not, a ring offer waits),
/// to the domain named here (no store lookup on the way).
struct assigned_reply {
    dist::reference ref;
    std::string node_name;
    std::uint32_t domid = 0;
};
/// agent → node.
struct spawn_failed_reply {
    dist::reference ref;
    std::string reason;
};
/// agent → node.
struct stop_message {};

using agent_to_node = std::variant<node_config_message, domain_message, stats_request,
                                   assigned_reply, spawned_reply, spawn_failed_reply, stop_message>;
using node_to_agent = std::variant<ready_message, stats_reply, spawn_request>;

/// The term of a message (atoms interned in `atoms`).
[[nodiscard]] dist::term to_term(const agent_to_node& message, dist::atom_table& atoms);
[[nodiscard]] dist::term to_term(const node_to_agent& message, dist::atom_table& atoms);
/// The message a term is, or agent_errc::unknown_message / bad_field.
[[nodiscard]] std::expected<agent_to_node, std::error_code> agent_to_node_from(const dist::term& t);
[[nodiscard]] std::expected<node_to_agent, std::error_code> node_to_agent_from(const dist::term& t);

/// A whole frame: length prefix and the external term.
[[nodiscard]] std::expected<std::vector<std::byte>, std::error_code> frame(const dist::term& t);

/// Splits a byte stream into terms (sans-IO: feed bytes, take terms).
class frame_reader {
  public:
    explicit frame_reader(dist::atom_table& atoms) noexcept : atoms_(&atoms) {}
    /// Appends received bytes.
    void feed(std::span<const std::byte> bytes);
    /// The next whole term; nullopt if more bytes are needed; an error for a broken stream
    /// (after which the reader stays failed).
    [[nodiscard]] std::expected<std::optional<dist::term>, std::error_code> next();

  private:
    dist::atom_table* atoms_;
    std::vector<std::byte> buffer_;
    std::size_t consumed_ = 0;
    std::error_code failed_;
};

}  // namespace vdist::discovery

template <>
struct std::is_error_code_enum<vdist::discovery::agent_errc> : std::true_type {};
