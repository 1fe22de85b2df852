#pragma once
/// \file
/// The host agent: the toolstack of one emulated Xen host (ARCHITECTURE §1, §5).
///
/// ```
///   vdist host --dir DIR
///     ├─ DIR/store.sock   the host store (store_server; nodes connect, identified by pid)
///     ├─ DIR/agent.sock   control: one line in, lines out (agent_control.hpp)
///     ├─ a zygote process (`vdist --zygote <fd>`, exec'd once): forks every domain (and
///     │  reports its exit), see zygote.hpp
///     └─ per domain d:    a fork of the zygote (running the node, or exec'ing `vdist node
///                         --agent-fd 3`), fd 3 = the first channel (agent_protocol.hpp),
///                         store records:
///           /local/domain/<d>                         owner d, nobody else
///           /local/domain/<d>/data/vdist/connect      owner d, everyone may write offers
///           /local/domain/<d>/data/vdist/node/{name,host,generation}
///           /vdist/nodes/<enc(name)>/{domid,host,generation}   readable by all
/// ```
///
/// Supervision follows supervisor.hpp: a node slot is permanent (always restarted), transient
/// (restarted after an abnormal exit) or temporary (never); more than `max_restarts` restarts
/// within `restart_period` gives the slot up. A restarted node gets a new domid and generation+1
/// (Xen re-creates a domain). A dead domain's every resource is released: its store keys, the
/// offers it wrote into other inboxes, its store connections, its rendezvous sockets.
///
/// Threads: single-threaded; everything runs in run()'s loop.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "vdist/discovery/keys.hpp"
#include "vdist/discovery/store_client.hpp"

namespace vdist::discovery {

/// The toolstack's own (dom0) access to the host store: what the agent needs of it.
class agent_store {
  public:
    virtual ~agent_store() = default;
    [[nodiscard]] virtual std::expected<void, std::error_code> write(std::string_view path,
                                                                     std::string_view value) = 0;
    [[nodiscard]] virtual std::expected<void, std::error_code> mkdir(std::string_view path) = 0;
    [[nodiscard]] virtual std::expected<void, std::error_code> rm(std::string_view path) = 0;
    [[nodiscard]] virtual std::expected<std::string, std::error_code> read(
        std::string_view path) const = 0;
    [[nodiscard]] virtual std::expected<std::vector<std::string>, std::error_code> directory(
        std::string_view path) const = 0;
    [[nodiscard]] virtual std::expected<void, std::error_code> set_permissions(
        std::string_view path, const std::vector<permission>& permissions) = 0;
    /// Every path in the store (sorted), for `vdist store` and leak checks.
    [[nodiscard]] virtual std::vector<std::string> all_paths() const = 0;
    /// A domain is gone: its connections, watches and transactions go.
    virtual void release_domain(store_domid domid) = 0;
    /// Readable when the store has work (call poll()); -1 when it never has.
    [[nodiscard]] virtual int native_handle() const { return -1; }
    virtual void poll() {}
    /// Where nodes connect ("" when they cannot).
    [[nodiscard]] virtual std::string socket_path() const { return {}; }
};

/// A store kept in the agent's memory, with no socket: for tests, and for builds without the
/// host store server.
[[nodiscard]] std::unique_ptr<agent_store> make_memory_store();

/// Whether this build has the host store server (discovery/src/store_server.cpp).
[[nodiscard]] bool host_store_available() noexcept;
/// The host store served on `socket`; `identify` maps a connecting pid to its domid.
[[nodiscard]] std::expected<std::unique_ptr<agent_store>, std::error_code> serve_host_store(
    const std::filesystem::path& socket, std::function<std::optional<store_domid>(pid_t)> identify);

/// What happens when a node exits (supervisor.hpp's restart types).
enum class restart_policy { permanent, transient, temporary };
[[nodiscard]] std::optional<restart_policy> parse_restart_policy(std::string_view text);
[[nodiscard]] std::string_view to_string(restart_policy policy);

struct agent_config {
    std::filesystem::path dir;  ///< created; holds agent.sock, store.sock and run/
    std::string host_name;      ///< this emulated host's name (default: agent-<pid>)
    bool pin = false;           ///< pin nodes to cores, round robin
    std::filesystem::path node_program = "/proc/self/exe";
    /// Set: a node is a fork of the agent's zygote (forked from the agent at start) that runs
    /// this with the first channel as fd 3 and exits with its result, instead of exec'ing
    /// node_program (no exec, no dynamic linking). The zygote is single-threaded, so the fork
    /// is safe; the child closes every inherited fd but 0, 1, 2 and 3 first.
    std::function<int(int channel_fd)> fork_node;
    /// Set: the zygote is node_program itself, exec'd as `node_program --zygote <fd>`, and runs
    /// its own fork_node (see serve_as_zygote): it starts from a fresh image instead of a copy
    /// of the agent's memory, so each domain has half as many pages to make its own.
    bool exec_zygote = false;
    std::string cookie = "vdist";
    std::string wait = "block";  ///< node idle wait: busy | spin | block
    std::int64_t ticktime_ms = 60'000;
    /// Domains kept ready without a node (shells: forked, store and inbox open), each taken
    /// by the next spawn and replaced when the agent is idle. 0: every spawn forks.
    std::size_t shells = 2;
    int max_restarts = 10;
    std::chrono::milliseconds restart_period = std::chrono::seconds(10);
    std::chrono::milliseconds ready_timeout = std::chrono::seconds(10);
    std::chrono::milliseconds stop_timeout = std::chrono::seconds(3);
    /// One line per event (null: standard error).
    std::function<void(std::string_view)> log;
};

/// The flag an exec'd zygote is started with (agent_config::exec_zygote), then its socket's fd.
inline constexpr std::string_view zygote_flag = "--zygote";

/// What node_program does when started with zygote_flag, first thing in main, before it makes
/// anything a domain would inherit: serves as its agent's zygote on `socket`, forking domains
/// that run `node_main` with their first channel as fd 3. Never returns.
[[noreturn]] void serve_as_zygote(int socket, std::function<int(int channel_fd)> node_main);

class host_agent {
  public:
    /// Creates the directory, the control socket and (with `store` null) the host store.
    [[nodiscard]] static std::expected<std::unique_ptr<host_agent>, std::error_code> create(
        agent_config config, std::unique_ptr<agent_store> store = nullptr);
    host_agent(const host_agent&) = delete;
    host_agent& operator=(const host_agent&) = delete;
    ~host_agent();

    /// Serves until SIGINT/SIGTERM or stop(); then stops every node, empties the store and
    /// removes the sockets. The caller must block SIGINT and SIGTERM in every thread first
    /// (they are read from a signalfd). Returns 0.
    int run();
    /// Makes run() wind down (callable from the loop).
    void stop() noexcept;

    struct impl;

  private:
    explicit host_agent(std::unique_ptr<impl> self);
    std::unique_ptr<impl> self_;
};

}  // namespace vdist::discovery
