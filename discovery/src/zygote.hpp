#pragma once
/// The process a host agent forks its domains from, as Android's zygote: started once (forked
/// from the agent, or forked and exec'd afresh: start_exec), before the agent serves anything, so
/// that the agent's loop (which also serves the host store) never pays for a fork. A fork costs the
/// forking process the copy of its page tables and then a copy-on-write fault on every page it
/// touches (about 20 µs each on these machines): measured, a few milliseconds of the agent's time
/// per node, during which it answered no store request and relayed no `ready`.
///
/// The zygote is the domains' parent: it reaps them and reports each exit (wait status) to
/// the agent, in order with the pids it reports. Its death kills them (PR_SET_PDEATHSIG), and
/// the agent's death kills it. Before its first fork it moves the program's code to huge pages
/// (when vdist is linked for it), which each domain then inherits.

#include <sys/types.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <functional>
#include <optional>
#include <system_error>

namespace vdist::discovery {

class zygote {
  public:
    /// What a domain process runs with its first channel as fd 3; its result is the exit
    /// status. Null: exec `program node --agent-fd 3` instead.
    using node_main = std::function<int(int channel_fd)>;

    /// Forks the zygote (it keeps only fds 0-2 and its end of the request socket).
    [[nodiscard]] static std::expected<zygote, std::error_code> start(
        node_main run, std::filesystem::path program);
    /// Forks the zygote and execs `program` as `program --zygote <fd>`, which calls
    /// serve_exec() before it makes anything else (cli/main.cpp): the zygote then starts from
    /// a fresh image, not from a copy of its agent's memory, and each domain has fewer pages
    /// to make its own (measured: 22 resident writable pages instead of 47).
    [[nodiscard]] static std::expected<zygote, std::error_code> start_exec(
        std::filesystem::path program);
    /// The exec'd zygote's work, on its end of the request socket: forks domains running `run`
    /// until the agent closes the socket, then exits.
    [[noreturn]] static void serve_exec(int socket, node_main run);

    zygote(zygote&& other) noexcept;
    zygote& operator=(zygote&&) = delete;
    zygote(const zygote&) = delete;
    zygote& operator=(const zygote&) = delete;
    /// Closes the request socket; the zygote exits on it and is reaped.
    ~zygote();

    /// What the zygote says, in order.
    struct event {
        enum class kind { spawned, spawn_failed, exited } what = kind::spawned;
        pid_t pid = -1;  ///< spawned, exited
        int value = 0;   ///< spawn_failed: errno; exited: the wait status
    };

    /// Asks for a domain process whose first channel is `channel` (the zygote gets a copy;
    /// the caller still closes its own), pinned to `core` (-1: not pinned). Each request is
    /// answered by one spawned or spawn_failed event, in request order.
    [[nodiscard]] bool request(int channel, int core);
    /// Readable when events arrived; hung up when the zygote is gone.
    [[nodiscard]] int native_handle() const noexcept { return socket_; }
    /// The next event, waiting at most `wait`; nullopt if none came (or the zygote is gone:
    /// then gone() is true).
    [[nodiscard]] std::optional<event> next_event(std::chrono::milliseconds wait);
    [[nodiscard]] bool gone() const noexcept { return gone_; }

  private:
    zygote(int socket, pid_t pid) noexcept : socket_(socket), pid_(pid) {}
    /// Forks the zygote process, which keeps only fds 0-2 and its end of the request socket
    /// and dies with the agent, then calls `become` with that socket (it must not return).
    [[nodiscard]] static std::expected<zygote, std::error_code> fork_zygote(
        const std::function<void(int socket)>& become);

    int socket_ = -1;
    pid_t pid_ = -1;
    bool gone_ = false;
};

}  // namespace vdist::discovery
