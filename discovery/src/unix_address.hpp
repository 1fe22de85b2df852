#pragma once
/// The sockaddr_un of a Unix socket's path, for the discovery library's sockets (the host
/// store's, the agent's control socket, and their clients).
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>
#include <optional>

namespace vdist::discovery::internal {

/// nullopt when the path does not fit sun_path (with its terminating NUL).
[[nodiscard]] inline std::optional<sockaddr_un> unix_address(const std::filesystem::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const auto& text = path.native();
    if (text.size() >= sizeof address.sun_path) {
        return std::nullopt;
    }
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    return address;
}

}  // namespace vdist::discovery::internal
