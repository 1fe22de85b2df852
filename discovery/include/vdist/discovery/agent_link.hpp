#pragma once
/// \file
/// The node's end of the first channel (agent_protocol.hpp): reads the agent's frames from the
/// node's loop, answers `{stats, Ref}`, stops the node on `stop` or when the agent is gone, and
/// asks the agent for child nodes on demand.
///
/// Also registers `vdist_agent` on the node, so that any process (of this node or another,
/// C++ or BEAM) can ask: `{spawn, From, Ref}` → From ! `{spawned, Ref, NodeName, Pid}` or
/// `{spawn_failed, Ref, Reason}`; Pid is the new node's `echo` server. `{spawn_and_call, From,
/// Ref}` also has this node message the child's echo and wait for the answer, then
/// `{spawned, Ref, NodeName, Pid, Microseconds}`: spawn-to-ready as the parent sees it.
///
/// Threads: the node's thread only.

#include <chrono>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "vdist/discovery/agent_protocol.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"

namespace vdist::discovery {

/// A node the agent spawned for us.
struct spawned_node {
    std::string name;
    dist::pid echo;
};

class agent_link {
  public:
    /// Reads one message from `fd` (blocking, at most `timeout`; nullopt: as long as it takes),
    /// before the link exists: the domain, the config. The channel stays open.
    [[nodiscard]] static std::expected<agent_to_node, std::error_code> read_message(
        int fd, std::optional<std::chrono::milliseconds> timeout);

    /// Takes over `fd` (the first channel) for `host`, whose distribution is `dist`.
    agent_link(int fd, runtime::node& host, runtime::distribution& dist);
    agent_link(const agent_link&) = delete;
    agent_link& operator=(const agent_link&) = delete;
    ~agent_link();

    /// Sends `{ready, Echo}` and starts watching the channel and serving `vdist_agent`.
    [[nodiscard]] std::expected<void, std::error_code> ready(const dist::pid& echo);
    /// Asks the agent for a child node; `done` runs on the node's loop with its name and pid.
    void spawn(std::string restart,
               std::function<void(std::expected<spawned_node, std::string>)> done);
    /// Set when the channel broke (a malformed frame): the node should exit non-zero.
    [[nodiscard]] std::error_code failure() const noexcept { return failure_; }

  private:
    void readable();
    /// `{spawn_and_call, ...}`: the first message to `child`, then the answer to `from`.
    void call_child(const dist::pid& from, const dist::term& ref, const spawned_node& child,
                    std::chrono::steady_clock::time_point started);
    [[nodiscard]] bool send(const dist::term& t);

    int fd_;
    runtime::node* host_;
    runtime::distribution* dist_;
    frame_reader reader_;
    std::uint32_t next_ref_ = 1;
    std::map<std::uint32_t, std::function<void(std::expected<spawned_node, std::string>)>> pending_;
    std::error_code failure_;
};

}  // namespace vdist::discovery
