#include "vdist/dist/epmd.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "vdist/dist/atom.hpp"

extern char** environ;

namespace vdist::dist {
namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.epmd"; }

    std::string message(int value) const override {
        switch (static_cast<epmd_errc>(value)) {
            case epmd_errc::unreachable:
                return "EPMD unreachable: nothing listens there, or the connection was reset";
            case epmd_errc::timed_out:
                return "EPMD did not answer within the timeout";
            case epmd_errc::malformed_reply:
                return "malformed or truncated reply from EPMD";
            case epmd_errc::duplicate_name:
                return "EPMD refused the registration: the name is taken";
            case epmd_errc::not_found:
                return "EPMD has no node of that name";
            case epmd_errc::start_failed:
                return "could not start EPMD (no epmd program, or it did not answer in time)";
            case epmd_errc::invalid_argument:
                return "invalid node name, extra data or port for EPMD";
        }
        return "unknown EPMD error " + std::to_string(value);
    }
};

[[nodiscard]] std::unexpected<std::error_code> fail(epmd_errc e) {
    return std::unexpected(make_error_code(e));
}

[[nodiscard]] std::unexpected<std::error_code> fail_errno() {
    return std::unexpected(std::error_code(errno, std::system_category()));
}

// -- bytes ----------------------------------------------------------------------------------------

[[nodiscard]] std::uint16_t load_be16(std::span<const std::byte> bytes, std::size_t at) noexcept {
    return static_cast<std::uint16_t>(std::to_integer<unsigned>(bytes[at]) << 8 |
                                      std::to_integer<unsigned>(bytes[at + 1]));
}

[[nodiscard]] std::uint32_t load_be32(std::span<const std::byte> bytes, std::size_t at) noexcept {
    return std::uint32_t{load_be16(bytes, at)} << 16 | load_be16(bytes, at + 2);
}

void append_u8(std::vector<std::byte>& out, std::uint8_t value) {
    out.push_back(static_cast<std::byte>(value));
}

void append_be16(std::vector<std::byte>& out, std::size_t value) {
    out.push_back(static_cast<std::byte>((value >> 8) & 0xffu));
    out.push_back(static_cast<std::byte>(value & 0xffu));
}

void append_text(std::vector<std::byte>& out, std::string_view text) {
    const auto raw = std::as_bytes(std::span(text));
    out.insert(out.end(), raw.begin(), raw.end());
}

[[nodiscard]] std::string text_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

constexpr std::size_t max_request_body = 0xffff;  // the 2-byte length prefix

// ALIVE2_REQ's fixed part: tag, port, type, protocol, highest, lowest, Nlen, Elen.
constexpr std::size_t alive2_fixed_bytes = 1 + 2 + 1 + 1 + 2 + 2 + 2 + 2;
// PORT2_RESP up to Nlen: tag, result, port, type, protocol, highest, lowest, Nlen.
constexpr std::size_t port2_head_bytes = 1 + 1 + 2 + 1 + 1 + 2 + 2 + 2;

// -- sockets --------------------------------------------------------------------------------------

using steady_clock = std::chrono::steady_clock;

/// A socket closed on destruction unless released.
class socket_fd {
  public:
    explicit socket_fd(int fd) noexcept : fd_(fd) {}
    socket_fd(socket_fd&& other) noexcept : fd_(other.release()) {}
    socket_fd(const socket_fd&) = delete;
    socket_fd& operator=(const socket_fd&) = delete;
    socket_fd& operator=(socket_fd&&) = delete;
    ~socket_fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  private:
    int fd_;
};

/// `timeout` from now, saturating (std::chrono::milliseconds::max() waits for ever).
[[nodiscard]] steady_clock::time_point deadline_after(std::chrono::milliseconds timeout) {
    const auto now = steady_clock::now();
    if (timeout <= std::chrono::milliseconds::zero()) {
        return now;
    }
    // Compared in milliseconds: milliseconds::max() in nanoseconds would overflow.
    if (timeout >=
        std::chrono::floor<std::chrono::milliseconds>(steady_clock::time_point::max() - now)) {
        return steady_clock::time_point::max();
    }
    return now + std::chrono::duration_cast<steady_clock::duration>(timeout);
}

/// Waits until `socket` reports one of `events` (or hang-up or an error, which the next
/// system call reports), or fails with timed_out at `deadline`.
[[nodiscard]] epmd_result<void> wait_for(int socket, short events,
                                         steady_clock::time_point deadline) {
    for (;;) {
        const auto left = deadline - steady_clock::now();
        if (left <= steady_clock::duration::zero()) {
            return fail(epmd_errc::timed_out);
        }
        // Rounded up: rounding down would spin on poll(0) through the last millisecond.
        const auto left_ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
        pollfd watched{socket, events, 0};
        const int ready =
            ::poll(&watched, 1,
                   static_cast<int>(std::min<std::chrono::milliseconds::rep>(left_ms, INT_MAX)));
        if (ready > 0) {
            return {};
        }
        if (ready < 0 && errno != EINTR) {
            return fail_errno();
        }
    }
}

/// One non-blocking connect attempt to `address`, waited for until `deadline`.
[[nodiscard]] epmd_result<socket_fd> connect_to(const addrinfo& address,
                                                steady_clock::time_point deadline) {
    socket_fd socket(::socket(address.ai_family, address.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                              address.ai_protocol));
    if (socket.get() < 0) {
        return fail_errno();
    }
    if (::connect(socket.get(), address.ai_addr, address.ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            return fail(epmd_errc::unreachable);
        }
        if (auto writable = wait_for(socket.get(), POLLOUT, deadline); !writable) {
            return std::unexpected(writable.error());
        }
        int error = 0;
        socklen_t length = sizeof error;
        if (::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
            return fail_errno();
        }
        if (error != 0) {
            return fail(epmd_errc::unreachable);
        }
    }
    return socket;
}

/// A TCP connection to `host`:`port`, trying each address getaddrinfo gives until one
/// connects. unreachable if none does (or the host has no address), timed_out at `deadline`.
[[nodiscard]] epmd_result<socket_fd> connect_epmd(std::string_view host, std::uint16_t port,
                                                  steady_clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    const std::string host_name(host);
    const std::string service = std::to_string(port);
    addrinfo* found = nullptr;
    if (::getaddrinfo(host_name.c_str(), service.c_str(), &hints, &found) != 0) {
        return fail(epmd_errc::unreachable);
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
    std::error_code last_error = make_error_code(epmd_errc::unreachable);
    for (const addrinfo* address = found; address != nullptr; address = address->ai_next) {
        auto socket = connect_to(*address, deadline);
        if (socket) {
            return socket;
        }
        last_error = socket.error();
        if (last_error == epmd_errc::timed_out) {
            break;
        }
    }
    return std::unexpected(last_error);
}

[[nodiscard]] epmd_result<void> send_all(int socket, std::span<const std::byte> bytes,
                                         steady_clock::time_point deadline) {
    while (!bytes.empty()) {
        const ssize_t sent = ::send(socket, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent >= 0) {
            bytes = bytes.subspan(static_cast<std::size_t>(sent));
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno == EPIPE || errno == ECONNRESET ? fail(epmd_errc::unreachable)
                                                         : fail_errno();
        }
        if (auto writable = wait_for(socket, POLLOUT, deadline); !writable) {
            return writable;
        }
    }
    return {};
}

/// Appends what arrives next (up to `limit` bytes) to `into`; 0 at end of stream.
[[nodiscard]] epmd_result<std::size_t> receive_some(int socket, std::vector<std::byte>& into,
                                                    std::size_t limit,
                                                    steady_clock::time_point deadline) {
    std::array<std::byte, 4096> buffer;
    for (;;) {
        const ssize_t got = ::recv(socket, buffer.data(), std::min(buffer.size(), limit), 0);
        if (got >= 0) {
            const auto count = static_cast<std::size_t>(got);
            into.insert(into.end(), buffer.begin(), buffer.begin() + got);
            return count;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return errno == ECONNRESET ? fail(epmd_errc::unreachable) : fail_errno();
        }
        if (auto readable = wait_for(socket, POLLIN, deadline); !readable) {
            return std::unexpected(readable.error());
        }
    }
}

/// Connects and sends `request` (empty: the arguments could not be framed).
[[nodiscard]] epmd_result<socket_fd> open_request(std::string_view host, std::uint16_t port,
                                                  std::span<const std::byte> request,
                                                  steady_clock::time_point deadline) {
    if (request.empty()) {
        return fail(epmd_errc::invalid_argument);
    }
    auto socket = connect_epmd(host, port, deadline);
    if (!socket) {
        return socket;
    }
    if (auto sent = send_all(socket->get(), request, deadline); !sent) {
        return std::unexpected(sent.error());
    }
    return socket;
}

/// Feeds what arrives on `socket` to `decode` until it returns a value (or an error).
/// End of stream before that is malformed_reply. The replies decoded this way are bounded by
/// their format (16-bit lengths), so `received` is too.
template <class T>
[[nodiscard]] epmd_result<T> receive_reply(
    int socket, steady_clock::time_point deadline,
    epmd_result<std::optional<T>> (*decode)(std::span<const std::byte>)) {
    std::vector<std::byte> received;
    for (;;) {
        auto got = receive_some(socket, received, SIZE_MAX, deadline);
        if (!got) {
            return std::unexpected(got.error());
        }
        if (*got == 0) {
            return fail(epmd_errc::malformed_reply);
        }
        auto decoded = decode(std::span<const std::byte>(received));
        if (!decoded) {
            return std::unexpected(decoded.error());
        }
        if (decoded->has_value()) {
            return std::move(**decoded);
        }
    }
}

// -- finding and starting epmd --------------------------------------------------------------------

[[nodiscard]] bool is_executable(const std::filesystem::path& file) {
    std::error_code ignored;
    return std::filesystem::is_regular_file(file, ignored) && ::access(file.c_str(), X_OK) == 0;
}

/// The epmd program: on PATH, in $BINDIR, or in an Erlang install directory (its erts-*
/// directories in descending name order).
[[nodiscard]] std::optional<std::filesystem::path> find_epmd_program() {
    if (const char* path = std::getenv("PATH"); path != nullptr) {
        std::string_view rest(path);
        while (!rest.empty()) {
            const auto colon = rest.find(':');
            const auto directory = rest.substr(0, colon);
            rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
            if (!directory.empty()) {  // an empty entry means the working directory: skip it
                if (auto candidate = std::filesystem::path(directory) / "epmd";
                    is_executable(candidate)) {
                    return candidate;
                }
            }
        }
    }
    if (const char* bindir = std::getenv("BINDIR"); bindir != nullptr && *bindir != '\0') {
        if (auto candidate = std::filesystem::path(bindir) / "epmd"; is_executable(candidate)) {
            return candidate;
        }
    }
    for (const std::filesystem::path root : {"/usr/lib/erlang", "/usr/local/lib/erlang"}) {
        if (auto candidate = root / "bin" / "epmd"; is_executable(candidate)) {
            return candidate;
        }
        std::vector<std::filesystem::path> erts;
        std::error_code error;
        for (std::filesystem::directory_iterator entry(root, error), end; !error && entry != end;
             entry.increment(error)) {
            if (entry->path().filename().string().starts_with("erts-")) {
                erts.push_back(entry->path() / "bin" / "epmd");
            }
        }
        std::ranges::sort(erts, std::greater<>());
        for (const auto& candidate : erts) {
            if (is_executable(candidate)) {
                return candidate;
            }
        }
    }
    return std::nullopt;
}

/// Runs `program -daemon [-port P]` and reaps it (it exits once the daemon has forked),
/// killing it at `deadline`. False if it could not be spawned.
[[nodiscard]] bool run_epmd_daemon(const std::filesystem::path& program, std::uint16_t port,
                                   steady_clock::time_point deadline) {
    std::vector<std::string> arguments{program.string(), "-daemon"};
    // epmd reads ERL_EPMD_PORT itself: say the port whenever that could differ from 4369.
    if (port != default_epmd_port || std::getenv("ERL_EPMD_PORT") != nullptr) {
        arguments.push_back("-port");
        arguments.push_back(std::to_string(port));
    }
    std::vector<char*> argv;
    for (auto& argument : arguments) {
        argv.push_back(argument.data());
    }
    argv.push_back(nullptr);

    // The daemon keeps no descriptor of ours: a caller's captured stdout stays closable.
    posix_spawn_file_actions_t actions;
    if (::posix_spawn_file_actions_init(&actions) != 0) {
        return false;
    }
    for (const int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        (void)::posix_spawn_file_actions_addopen(&actions, fd, "/dev/null",
                                                 fd == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0);
    }
    pid_t child = -1;
    const int spawned =
        ::posix_spawn(&child, program.c_str(), &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
        return false;
    }
    for (;;) {
        int status = 0;
        const pid_t done = ::waitpid(child, &status, WNOHANG);
        if (done == child || (done < 0 && errno != EINTR)) {
            return true;  // exited (or already reaped by a SIGCHLD handler of the caller)
        }
        if (steady_clock::now() >= deadline) {
            ::kill(child, SIGKILL);
            while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
            }
            return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

[[nodiscard]] std::chrono::milliseconds left_until(steady_clock::time_point deadline) {
    return std::max(std::chrono::ceil<std::chrono::milliseconds>(deadline - steady_clock::now()),
                    std::chrono::milliseconds::zero());
}

}  // namespace

const std::error_category& epmd_category() noexcept {
    static const category instance;
    return instance;
}

std::uint16_t epmd_port_from_environment() {
    const char* text = std::getenv("ERL_EPMD_PORT");
    if (text == nullptr) {
        return default_epmd_port;
    }
    const std::string_view digits(text);
    unsigned value = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc{} || end != digits.data() + digits.size() || value == 0 ||
        value > 0xffff) {
        return default_epmd_port;
    }
    return static_cast<std::uint16_t>(value);
}

bool is_valid_epmd_alive(std::string_view alive) noexcept {
    return !alive.empty() && alive.find('\0') == std::string_view::npos &&
           alive.find('@') == std::string_view::npos && is_valid_atom_text(alive);
}

// -- codecs ---------------------------------------------------------------------------------------

std::vector<std::byte> encode_alive2_request(const epmd_node_info& node) {
    const std::size_t body = alive2_fixed_bytes + node.name.size() + node.extra.size();
    if (body > max_request_body) {
        return {};
    }
    std::vector<std::byte> out;
    out.reserve(2 + body);
    append_be16(out, body);
    append_u8(out, EPMD_ALIVE2_REQ);
    append_be16(out, node.port);
    append_u8(out, node.hidden ? EPMD_NODE_TYPE_HIDDEN : EPMD_NODE_TYPE_NORMAL);
    append_u8(out, node.protocol);
    append_be16(out, node.highest_version);
    append_be16(out, node.lowest_version);
    append_be16(out, node.name.size());
    append_text(out, node.name);
    append_be16(out, node.extra.size());
    append_text(out, node.extra);
    return out;
}

std::vector<std::byte> encode_port_please2_request(std::string_view alive) {
    const std::size_t body = 1 + alive.size();
    if (body > max_request_body) {
        return {};
    }
    std::vector<std::byte> out;
    out.reserve(2 + body);
    append_be16(out, body);
    append_u8(out, EPMD_PORT_PLEASE2_REQ);
    append_text(out, alive);
    return out;
}

std::vector<std::byte> encode_names_request() {
    std::vector<std::byte> out;
    append_be16(out, 1);
    append_u8(out, EPMD_NAMES_REQ);
    return out;
}

epmd_result<std::optional<std::uint32_t>> decode_alive2_response(std::span<const std::byte> bytes) {
    if (bytes.empty()) {
        return std::nullopt;
    }
    const auto tag = std::to_integer<std::uint8_t>(bytes[0]);
    if (tag != EPMD_ALIVE2_X_RESP && tag != EPMD_ALIVE2_RESP) {
        return fail(epmd_errc::malformed_reply);
    }
    if (bytes.size() < 2) {
        return std::nullopt;
    }
    if (bytes[1] != std::byte{0}) {
        return fail(epmd_errc::duplicate_name);
    }
    const std::size_t length = tag == EPMD_ALIVE2_X_RESP ? 6 : 4;
    if (bytes.size() < length) {
        return std::nullopt;
    }
    if (bytes.size() > length) {
        return fail(epmd_errc::malformed_reply);  // EPMD sends nothing more on this connection
    }
    return tag == EPMD_ALIVE2_X_RESP ? load_be32(bytes, 2) : std::uint32_t{load_be16(bytes, 2)};
}

epmd_result<std::optional<epmd_node_info>> decode_port2_response(std::span<const std::byte> bytes) {
    if (bytes.empty()) {
        return std::nullopt;
    }
    if (std::to_integer<std::uint8_t>(bytes[0]) != EPMD_PORT2_RESP) {
        return fail(epmd_errc::malformed_reply);
    }
    if (bytes.size() < 2) {
        return std::nullopt;
    }
    if (bytes[1] != std::byte{0}) {
        return fail(epmd_errc::not_found);
    }
    if (bytes.size() < port2_head_bytes) {
        return std::nullopt;
    }
    const std::size_t name_length = load_be16(bytes, 10);
    if (name_length == 0) {
        return fail(epmd_errc::malformed_reply);
    }
    const std::size_t extra_length_at = port2_head_bytes + name_length;
    if (bytes.size() < extra_length_at + 2) {
        return std::nullopt;
    }
    const std::size_t extra_length = load_be16(bytes, extra_length_at);
    const std::size_t total = extra_length_at + 2 + extra_length;
    if (bytes.size() < total) {
        return std::nullopt;
    }
    if (bytes.size() > total) {
        return fail(epmd_errc::malformed_reply);
    }
    epmd_node_info node;
    node.port = load_be16(bytes, 2);
    node.hidden = std::to_integer<std::uint8_t>(bytes[4]) == EPMD_NODE_TYPE_HIDDEN;
    node.protocol = std::to_integer<std::uint8_t>(bytes[5]);
    node.highest_version = load_be16(bytes, 6);
    node.lowest_version = load_be16(bytes, 8);
    node.name = text_of(bytes.subspan(port2_head_bytes, name_length));
    node.extra = text_of(bytes.subspan(extra_length_at + 2, extra_length));
    return node;
}

epmd_result<std::vector<std::pair<std::string, std::uint16_t>>> decode_names_response(
    std::span<const std::byte> all) {
    if (all.size() < 4) {
        return fail(epmd_errc::malformed_reply);
    }
    constexpr std::string_view prefix = "name ";
    constexpr std::string_view infix = " at port ";
    const std::string text = text_of(all.subspan(4));
    std::string_view rest(text);
    std::vector<std::pair<std::string, std::uint16_t>> names;
    while (!rest.empty()) {
        const auto newline = rest.find('\n');
        if (newline == std::string_view::npos) {
            return fail(epmd_errc::malformed_reply);
        }
        const std::string_view line = rest.substr(0, newline);
        rest.remove_prefix(newline + 1);
        const auto at = line.rfind(infix);
        // An empty name would put the infix inside the prefix.
        if (!line.starts_with(prefix) || at == std::string_view::npos || at <= prefix.size()) {
            return fail(epmd_errc::malformed_reply);
        }
        const std::string_view digits = line.substr(at + infix.size());
        unsigned port = 0;
        const auto [end, error] =
            std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (digits.empty() || error != std::errc{} || end != digits.data() + digits.size() ||
            port > 0xffff) {
            return fail(epmd_errc::malformed_reply);
        }
        names.emplace_back(std::string(line.substr(prefix.size(), at - prefix.size())),
                           static_cast<std::uint16_t>(port));
    }
    return names;
}

// -- talking to EPMD ------------------------------------------------------------------------------

epmd_result<epmd_registration> epmd_registration::register_node(
    std::string_view alive, std::uint16_t listen_port, bool hidden,
    std::chrono::milliseconds timeout, std::uint16_t epmd_port, std::string_view epmd_host) {
    const auto deadline = deadline_after(timeout);
    auto registration = begin(alive, listen_port, hidden, timeout, epmd_port, epmd_host);
    if (!registration) {
        return registration;
    }
    if (auto answered = registration->finish(left_until(deadline)); !answered) {
        return std::unexpected(answered.error());
    }
    return registration;
}

epmd_result<epmd_registration> epmd_registration::begin(std::string_view alive,
                                                        std::uint16_t listen_port, bool hidden,
                                                        std::chrono::milliseconds timeout,
                                                        std::uint16_t epmd_port,
                                                        std::string_view epmd_host) {
    if (!is_valid_epmd_alive(alive) || listen_port == 0) {
        return fail(epmd_errc::invalid_argument);
    }
    epmd_node_info node;
    node.name = std::string(alive);
    node.port = listen_port;
    node.hidden = hidden;
    auto socket =
        open_request(epmd_host, epmd_port, encode_alive2_request(node), deadline_after(timeout));
    if (!socket) {
        return std::unexpected(socket.error());
    }
    return epmd_registration(socket->release(), 0);
}

epmd_result<void> epmd_registration::finish(std::chrono::milliseconds timeout) {
    auto creation = receive_reply(socket_, deadline_after(timeout), decode_alive2_response);
    if (!creation) {
        return std::unexpected(creation.error());
    }
    creation_ = *creation;
    answered_ = true;
    return {};
}

epmd_registration::epmd_registration(epmd_registration&& other) noexcept
    : socket_(std::exchange(other.socket_, -1)),
      creation_(other.creation_),
      answered_(other.answered_) {}

epmd_registration& epmd_registration::operator=(epmd_registration&& other) noexcept {
    if (this != &other) {
        if (socket_ >= 0) {
            ::close(socket_);
        }
        socket_ = std::exchange(other.socket_, -1);
        creation_ = other.creation_;
        answered_ = other.answered_;
    }
    return *this;
}

epmd_registration::~epmd_registration() {
    if (socket_ >= 0) {
        ::close(socket_);
    }
}

epmd_result<epmd_node_info> epmd_port_please(std::string_view host, std::string_view alive,
                                             std::chrono::milliseconds timeout,
                                             std::uint16_t epmd_port) {
    if (!is_valid_epmd_alive(alive)) {
        return fail(epmd_errc::invalid_argument);
    }
    const auto deadline = deadline_after(timeout);
    auto socket = open_request(host, epmd_port, encode_port_please2_request(alive), deadline);
    if (!socket) {
        return std::unexpected(socket.error());
    }
    auto node = receive_reply(socket->get(), deadline, decode_port2_response);
    if (node && node->name != alive) {
        return fail(epmd_errc::malformed_reply);
    }
    return node;
}

epmd_result<std::vector<std::pair<std::string, std::uint16_t>>> epmd_names(
    std::string_view host, std::chrono::milliseconds timeout, std::uint16_t epmd_port) {
    const auto deadline = deadline_after(timeout);
    auto socket = open_request(host, epmd_port, encode_names_request(), deadline);
    if (!socket) {
        return std::unexpected(socket.error());
    }
    std::vector<std::byte> all;
    for (;;) {
        const std::size_t room = epmd_max_names_reply_bytes + 1 - all.size();
        auto got = receive_some(socket->get(), all, room, deadline);
        if (!got) {
            return std::unexpected(got.error());
        }
        if (*got == 0) {
            return decode_names_response(all);
        }
        if (all.size() > epmd_max_names_reply_bytes) {
            return fail(epmd_errc::malformed_reply);
        }
    }
}

epmd_result<void> ensure_epmd(std::uint16_t epmd_port, std::chrono::milliseconds timeout) {
    if (epmd_port == 0) {
        return fail(epmd_errc::invalid_argument);
    }
    constexpr std::string_view localhost = "127.0.0.1";
    const auto deadline = deadline_after(timeout);
    auto probe = epmd_names(localhost, left_until(deadline), epmd_port);
    if (probe) {
        return {};
    }
    if (probe.error() != epmd_errc::unreachable) {
        return std::unexpected(probe.error());
    }
    const auto program = find_epmd_program();
    if (!program || !run_epmd_daemon(*program, epmd_port, deadline)) {
        return fail(epmd_errc::start_failed);
    }
    // The daemon binds its port after the fork: until then connections are refused.
    while (steady_clock::now() < deadline) {
        if (epmd_names(localhost, left_until(deadline), epmd_port)) {
            return {};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return fail(epmd_errc::start_failed);
}

}  // namespace vdist::dist
