#include "demo_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "vdist/dist/epmd.hpp"

extern char** environ;

namespace vdist::cli {

using namespace std::chrono_literals;
using clock = demo_clock;

/// Prints one line of `who` (a child's label or "demo"), prefixed, and flushes: the demo's
/// output is read live.
void show(std::string_view who, std::string_view line) {
    const std::string prefix = std::string(who) + ">";
    if (line.empty()) {
        std::printf("%s\n", prefix.c_str());
    } else {
        std::printf("%-6s%.*s\n", prefix.c_str(), static_cast<int>(line.size()), line.data());
    }
    std::fflush(stdout);
}

std::string describe_status(const std::optional<int>& status) {
    if (!status) {
        return "did not exit";
    }
    if (WIFEXITED(*status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(*status));
    }
    if (WIFSIGNALED(*status)) {
        return std::string("ended by SIG") + ::sigabbrev_np(WTERMSIG(*status));
    }
    return "stopped";
}

/// The full path of `program` on PATH, or empty.
std::string find_on_path(std::string_view program) {
    const char* path = std::getenv("PATH");
    std::string_view rest = path != nullptr ? path : "";
    while (!rest.empty()) {
        const auto colon = rest.find(':');
        const std::string_view directory = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
        const auto candidate = std::filesystem::path(directory.empty() ? "." : directory) / program;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate.string();
        }
    }
    return {};
}

/// A TCP port nothing listens on right now (bound, then released: someone could take it
/// before epmd does, which shows as epmd failing to start).
std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t length = sizeof address;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
        port = ntohs(address.sin_port);
    }
    ::close(fd);
    return port;
}

/// A cookie for this run only: the nodes listen on every interface while the demo runs.
std::string random_cookie() {
    constexpr std::string_view letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::random_device random;
    std::uniform_int_distribution<std::size_t> pick(0, letters.size() - 1);
    std::string cookie = "vdist-demo-";
    for (int i = 0; i < 20; ++i) {
        cookie += letters[pick(random)];
    }
    return cookie;
}

/// The environment of the children: ours, with ERL_EPMD_PORT set to the private epmd.
std::vector<std::string> child_environment(std::uint16_t epmd_port) {
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        if (std::string_view(*entry).starts_with("ERL_EPMD_PORT=")) {
            continue;
        }
        environment.emplace_back(*entry);
    }
    environment.push_back("ERL_EPMD_PORT=" + std::to_string(epmd_port));
    return environment;
}

/// Shows what `c` prints until it closes its output or `timeout` passes, then reaps it
/// (SIGKILL if it has not exited by then). Its exit status.
std::optional<int> drain_and_reap(child& c, clock::duration timeout) {
    const auto deadline = clock::now() + timeout;
    while (c.output() >= 0 && clock::now() < deadline) {
        pollfd fd{c.output(), POLLIN, 0};
        if (::poll(&fd, 1, 100) > 0) {
            for (const auto& line : c.read_lines()) {
                show(c.label(), line);
            }
        }
    }
    const auto left = std::max<clock::duration>(deadline - clock::now(), 100ms);
    if (!c.wait(left)) {
        c.signal(SIGKILL);
        show("demo", c.label() + " did not stop: SIGKILL");
        (void)c.wait(stop_timeout);
    }
    return c.status();
}

/// Asks `c` to stop (SIGTERM), shows its last lines, reaps it.
std::optional<int> stop(child* c) {
    if (c == nullptr || c->status()) {
        return c != nullptr ? c->status() : std::nullopt;
    }
    c->signal(SIGTERM);
    return drain_and_reap(*c, stop_timeout);
}

/// Starts epmd in the foreground on `port` (our child, so ours to stop) and waits until it
/// answers NAMES. Null, with the reason shown, if it does not.
std::unique_ptr<child> start_epmd(const std::string& program, std::uint16_t port,
                                  const std::vector<std::string>& environment) {
    auto epmd = child::start(
        "epmd", {program, "-port", std::to_string(port), "-relaxed_command_check"}, environment);
    if (!epmd) {
        show("demo", "cannot start epmd: " + std::string(std::strerror(errno)));
        return nullptr;
    }
    const auto deadline = clock::now() + 5s;
    while (clock::now() < deadline) {
        if (dist::epmd_names("127.0.0.1", 500ms, port)) {
            return epmd;
        }
        if (epmd->wait(0ms)) {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    if (!epmd->wait(0ms)) {
        epmd->signal(SIGKILL);
    }
    const auto status = drain_and_reap(*epmd, 1s);
    show("demo", "epmd on port " + std::to_string(port) + " did not answer (" +
                     describe_status(status) + ")");
    return nullptr;
}

std::unique_ptr<child> child::start(std::string label, std::vector<std::string> argv,
                                    std::vector<std::string> environment) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return nullptr;
    }
    // Everything exec needs is made before fork: the child only calls async-signal-safe
    // functions.
    std::vector<char*> argv_pointers;
    for (auto& arg : argv) {
        argv_pointers.push_back(arg.data());
    }
    argv_pointers.push_back(nullptr);
    std::vector<char*> environment_pointers;
    for (auto& entry : environment) {
        environment_pointers.push_back(entry.data());
    }
    environment_pointers.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(127);  // the demo died before prctl
        }
        const int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, STDIN_FILENO);
        ::dup2(pipe_fds[1], STDOUT_FILENO);
        ::dup2(pipe_fds[1], STDERR_FILENO);
        ::execvpe(argv_pointers[0], argv_pointers.data(), environment_pointers.data());
        ::_exit(127);
    }
    ::close(pipe_fds[1]);
    if (pid < 0) {
        ::close(pipe_fds[0]);
        return nullptr;
    }
    return std::unique_ptr<child>(new child(std::move(label), pid, pipe_fds[0]));
}

}  // namespace vdist::cli
