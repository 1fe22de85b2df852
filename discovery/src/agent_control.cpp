#include "vdist/discovery/agent_control.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "unix_address.hpp"
namespace vdist::discovery {

std::expected<int, std::error_code> control_send(const std::filesystem::path& dir,
                                                 std::string_view request) {
    const auto address = internal::unix_address(dir / "agent.sock");
    if (!address || request.size() >= max_control_line) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        ::connect(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0) {
        const std::error_code error(errno, std::system_category());
        if (fd >= 0) {
            ::close(fd);
        }
        return std::unexpected(error);
    }
    const std::string line = std::string(request) + "\n";
    if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
        const std::error_code error(errno, std::system_category());
        ::close(fd);
        return std::unexpected(error);
    }
    return fd;
}

std::expected<std::vector<std::string>, std::error_code> read_control_answer(int fd) {
    std::string text;
    char buffer[4096];
    for (;;) {
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    std::vector<std::string> lines;
    for (std::size_t at = 0; at < text.size();) {
        const auto end = text.find('\n', at);
        lines.push_back(text.substr(at, end == std::string::npos ? end : end - at));
        at = end == std::string::npos ? text.size() : end + 1;
    }
    if (lines.empty()) {
        return std::unexpected(std::make_error_code(std::errc::connection_reset));
    }
    return lines;
}

std::expected<std::vector<std::string>, std::error_code> control_request(
    const std::filesystem::path& dir, std::string_view request) {
    auto fd = control_send(dir, request);
    if (!fd) {
        return std::unexpected(fd.error());
    }
    return read_control_answer(*fd);
}

}  // namespace vdist::discovery
