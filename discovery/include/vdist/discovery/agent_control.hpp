#pragma once
/// \file
/// The agent's control socket, DIR/agent.sock: one request line per connection, answered with
/// lines, then the agent closes the connection.
///
/// ```
///   spawn <name|-> <permanent|transient|temporary>
///        → ok <name> <domid> <os-pid> <spawn-to-ready-us>   | error <why>
///   ls   → node <name> <domid> <os-pid> <generation> <state> <restart>   (one per slot)
///          conn <name> <peer> <tcp|ring> <msgs-in> <msgs-out> <bytes-in> <bytes-out>
///          shell <domid> <os-pid>   (a domain kept ready for the next spawn, no node yet)
///          end
///   kill <name> <signal>        (signal 0: stop cleanly, not restarted)
///        → ok | error <why>
///   store → key <path> ... end  (every store path, for leak checks)
///   stop  → ok, and the agent winds down as on SIGTERM
/// ```
/// States: starting, running, stopping, given_up. A line is at most 4096 bytes.

#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace vdist::discovery {

inline constexpr std::size_t max_control_line = 4096;

/// Sends `request` to the agent in `dir` and returns its answer, one line per element.
[[nodiscard]] std::expected<std::vector<std::string>, std::error_code> control_request(
    const std::filesystem::path& dir, std::string_view request);

/// Connects and sends `request` without reading: the fd to read the answer from
/// (read_control_answer), for many requests in flight at once.
[[nodiscard]] std::expected<int, std::error_code> control_send(const std::filesystem::path& dir,
                                                               std::string_view request);
/// Reads the answer to EOF and closes `fd`.
[[nodiscard]] std::expected<std::vector<std::string>, std::error_code> read_control_answer(int fd);

}  // namespace vdist::discovery
