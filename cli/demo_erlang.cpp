#include "demo_erlang.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vdist/dist/epmd.hpp"

extern char** environ;

namespace vdist::cli {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

constexpr std::string_view erlang_node = "demo@127.0.0.1";
constexpr std::array<std::string_view, 2> cpp_nodes{"cpp1@127.0.0.1", "cpp2@127.0.0.1"};
/// The whole exchange, from starting erl to its exit (the escript's own watchdog is 20 s).
constexpr auto part_timeout = 30s;
/// How long a child may take to exit after SIGTERM before it gets SIGKILL.
constexpr auto stop_timeout = 3s;

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

/// demo_erlang.escript: next to the binary, else where the source tree had it at build time.
std::optional<std::filesystem::path> find_escript(std::vector<std::filesystem::path>& tried) {
    std::error_code error;
    const auto binary = std::filesystem::read_symlink("/proc/self/exe", error);
    if (!error) {
        tried.push_back(binary.parent_path() / "demo_erlang.escript");
    }
    tried.emplace_back(VDIST_DEMO_ESCRIPT);
    for (const auto& path : tried) {
        if (std::filesystem::is_regular_file(path, error)) {
            return path;
        }
    }
    return std::nullopt;
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

/// One child of the demo: stdin on /dev/null, stdout and stderr on one pipe read line by
/// line. The destructor kills (SIGKILL) and reaps it if that has not happened yet; the child
/// also gets SIGKILL if the demo dies first (PR_SET_PDEATHSIG), so no path leaves one behind.
class child {
  public:
    /// Starts `argv[0]` (searched on PATH when it has no '/') with `environment`. Null when
    /// no pipe or process could be made; a failed exec shows as exit status 127.
    static std::unique_ptr<child> start(std::string label, std::vector<std::string> argv,
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

    child(const child&) = delete;
    child& operator=(const child&) = delete;
    ~child() {
        if (!status_) {
            ::kill(pid_, SIGKILL);
            (void)wait(stop_timeout);
        }
        close_output();
    }

    [[nodiscard]] const std::string& label() const noexcept { return label_; }
    /// The pipe to poll; -1 once the child closed its output.
    [[nodiscard]] int output() const noexcept { return output_; }
    [[nodiscard]] const std::optional<int>& status() const noexcept { return status_; }

    /// Reads what the child wrote (call when output() is readable): its complete lines, and
    /// at end of output the unterminated rest; then output() is -1.
    [[nodiscard]] std::vector<std::string> read_lines() {
        std::vector<std::string> lines;
        char buffer[4096];
        const ssize_t n = ::read(output_, buffer, sizeof buffer);
        if (n > 0) {
            pending_.append(buffer, static_cast<std::size_t>(n));
        }
        for (auto newline = pending_.find('\n'); newline != std::string::npos;
             newline = pending_.find('\n')) {
            lines.push_back(pending_.substr(0, newline));
            pending_.erase(0, newline + 1);
        }
        if (n <= 0) {
            if (!pending_.empty()) {
                lines.push_back(std::move(pending_));
                pending_.clear();
            }
            close_output();
        }
        return lines;
    }

    void signal(int number) const noexcept {
        if (!status_) {
            ::kill(pid_, number);
        }
    }

    /// Waits up to `timeout` for the child to exit: its status as waitpid gives it, or nullopt.
    std::optional<int> wait(clock::duration timeout) {
        const auto deadline = clock::now() + timeout;
        while (!status_) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                status_ = status;
            } else if (clock::now() >= deadline) {
                break;
            } else {
                std::this_thread::sleep_for(5ms);
            }
        }
        return status_;
    }

  private:
    child(std::string label, pid_t pid, int output)
        : label_(std::move(label)), pid_(pid), output_(output) {}

    void close_output() noexcept {
        if (output_ >= 0) {
            ::close(output_);
            output_ = -1;
        }
    }

    std::string label_;
    pid_t pid_;
    int output_;
    std::string pending_;
    std::optional<int> status_;
};

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

/// The children and what the driver saw of them.
struct erlang_part {
    std::vector<std::string> environment;
    std::string cookie;
    std::string vdist_binary;
    // Declared before the nodes, destroyed after them: the nodes go before their epmd.
    std::unique_ptr<child> epmd;
    std::unique_ptr<child> erl;
    std::array<std::unique_ptr<child>, 2> cpp;
    std::string result_line;          // "result: ..." from the escript
    std::string ping_of_erlang;       // what cpp2 printed for --ping demo@127.0.0.1
    std::vector<std::string> errors;  // what went wrong on the driver's side
    std::string waiting_for = "erl to start";

    /// Starts C++ node `index` (0 or 1); node 2 pings the Erlang node once up.
    void start_cpp(std::size_t index) {
        // Visible, so that erl lists them in nodes() (the demo does not use global:sync()).
        std::vector<std::string> argv{
            vdist_binary, "node", "--name",   std::string(cpp_nodes[index]),
            "--cookie",   cookie, "--visible"};
        std::string what = "starting " + std::string(cpp_nodes[index]);
        if (index == 1) {
            argv.insert(argv.end(), {"--ping", std::string(erlang_node)});
            what += " with --ping " + std::string(erlang_node);
        }
        show("demo", what);
        cpp[index] = child::start("cpp" + std::to_string(index + 1), std::move(argv), environment);
        if (!cpp[index]) {
            errors.push_back("cannot start " + std::string(cpp_nodes[index]));
            return;
        }
        waiting_for = std::string(cpp_nodes[index]) + " to come up";
    }

    void on_erl_line(const std::string& line) {
        if (line == "@ready") {
            show("demo", "erl is ready");
            start_cpp(0);
        } else if (line.starts_with("@stop ")) {
            const std::string name = line.substr(6);
            for (std::size_t i = 0; i < cpp.size(); ++i) {
                if (name == cpp_nodes[i] && cpp[i]) {
                    show("demo", "erl asks to stop " + name + ": SIGTERM");
                    cpp[i]->signal(SIGTERM);
                }
            }
            waiting_for = "erl to see " + name + " go";
        } else {
            if (line.starts_with("result: ")) {
                result_line = line;
            }
            show("erl", line);
        }
    }

    void on_cpp_line(std::size_t index, const std::string& line) {
        show(cpp[index]->label(), line);
        if (line.starts_with("node ") && line.find(" up on port ") != std::string::npos) {
            if (index == 0) {
                start_cpp(1);
            } else {
                waiting_for = "erl's checks";
            }
        }
        const std::string ping_prefix = "ping " + std::string(erlang_node) + ": ";
        if (index == 1 && line.starts_with(ping_prefix)) {
            ping_of_erlang = line.substr(ping_prefix.size());
        }
    }

    /// Shows every child's output and acts on erl's requests until erl closes its output or
    /// `deadline` passes (false).
    bool run_until_erl_exits(clock::time_point deadline) {
        while (erl->output() >= 0) {
            if (clock::now() >= deadline) {
                errors.push_back("timed out after " + std::to_string(part_timeout.count()) +
                                 " s waiting for " + waiting_for);
                return false;
            }
            std::array<child*, 4> watched{erl.get(), cpp[0].get(), cpp[1].get(), epmd.get()};
            std::array<pollfd, 4> fds{};
            for (std::size_t i = 0; i < watched.size(); ++i) {
                fds[i] = {watched[i] != nullptr ? watched[i]->output() : -1, POLLIN, 0};
            }
            ::poll(fds.data(), fds.size(), 100);
            for (std::size_t i = 0; i < watched.size(); ++i) {
                if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                    continue;
                }
                for (const auto& line : watched[i]->read_lines()) {
                    if (i == 0) {
                        on_erl_line(line);
                    } else if (i <= cpp.size()) {
                        on_cpp_line(i - 1, line);
                    } else {
                        show("epmd", line);
                    }
                }
                if (i > 0 && watched[i]->output() < 0) {
                    const auto status = watched[i]->wait(stop_timeout);
                    show("demo", watched[i]->label() + " " + describe_status(status));
                }
            }
        }
        return true;
    }
};

}  // namespace

int run_erlang_demo() {
    std::printf(
        "Erlang part: a real OTP node and two C++ nodes over TCP distribution (vdist node), on\n"
        "a private epmd. Each line is prefixed with who printed it.\n\n");
    const std::string erl_program = find_on_path("erl");
    const std::string epmd_program = find_on_path("epmd");
    if (erl_program.empty() || epmd_program.empty()) {
        std::printf(
            "  skipped: %s is not on PATH (Debian's erlang-nox; `make demo` installs it)\n\n",
            erl_program.empty() ? "erl" : "epmd");
        return 0;
    }
    std::vector<std::filesystem::path> tried;
    const auto escript = find_escript(tried);
    if (!escript) {
        std::printf("  FAILED: demo_erlang.escript is in neither %s nor %s\n",
                    tried.front().c_str(), tried.back().c_str());
        return 1;
    }

    const auto started = clock::now();
    erlang_part part;
    const std::uint16_t epmd_port = free_port();
    if (epmd_port == 0) {
        std::printf("  Erlang part FAILED: no free TCP port for epmd\n\n");
        return 1;
    }
    part.environment = child_environment(epmd_port);
    part.cookie = random_cookie();
    std::error_code error;
    part.vdist_binary = std::filesystem::read_symlink("/proc/self/exe", error).string();
    if (error) {
        part.vdist_binary = "/proc/self/exe";
    }
    show("demo", "starting epmd -port " + std::to_string(epmd_port) +
                     " -relaxed_command_check (ERL_EPMD_PORT=" + std::to_string(epmd_port) +
                     " for every node)");
    part.epmd = start_epmd(epmd_program, epmd_port, part.environment);
    if (!part.epmd) {
        std::printf("\n  Erlang part FAILED: no epmd\n\n");
        return 1;
    }
    show("demo", "starting erl -name " + std::string(erlang_node) + " running " +
                     escript->filename().string());
    part.erl = child::start(
        "erl",
        {erl_program, "-noshell", "+Bd", "-start_epmd", "false", "-name", std::string(erlang_node),
         "-setcookie", part.cookie, "-run", "escript", "start", "-extra", escript->string(),
         std::string(cpp_nodes[0]), std::string(cpp_nodes[1])},
        part.environment);
    if (!part.erl) {
        part.errors.push_back("cannot start erl");
    }

    std::optional<int> erl_status;
    if (part.erl && part.run_until_erl_exits(clock::now() + part_timeout)) {
        erl_status = part.erl->wait(stop_timeout);
        show("demo", "erl " + describe_status(erl_status));
    } else if (part.erl) {
        show("demo", "stopping erl: SIGTERM");
        erl_status = stop(part.erl.get());
        show("demo", "erl " + describe_status(erl_status));
    }
    for (auto& node : part.cpp) {
        if (node && !node->status()) {
            show("demo", "stopping " + node->label() + ": SIGTERM");
            show("demo", node->label() + " " + describe_status(stop(node.get())));
        }
    }
    show("demo", "stopping epmd: SIGTERM");
    show("demo", "epmd " + describe_status(stop(part.epmd.get())));

    const bool erl_passed = erl_status && WIFEXITED(*erl_status) && WEXITSTATUS(*erl_status) == 0 &&
                            part.result_line.ends_with("all passed");
    if (!erl_passed) {
        part.errors.push_back(
            "erl " + describe_status(erl_status) +
            (part.result_line.empty() ? ", without printing a result" : ", " + part.result_line));
    }
    if (part.ping_of_erlang != "pong") {
        part.errors.push_back(
            "cpp2's net_adm:ping of " + std::string(erlang_node) + ": " +
            (part.ping_of_erlang.empty() ? "no answer printed" : part.ping_of_erlang));
    }
    const double elapsed = std::chrono::duration<double>(clock::now() - started).count();
    if (part.errors.empty()) {
        std::printf(
            "\n  Erlang part passed (%.1f s)\n"
            "    C++ -> erl:  %s pinged %s: pong\n"
            "    erl -> C++:  %s (pings, echo calls, messages back in order,\n"
            "                 rpc, erpc, 'DOWN' and nodedown of a stopped node)\n"
            "    every process the part started has exited\n\n",
            elapsed, std::string(cpp_nodes[1]).c_str(), std::string(erlang_node).c_str(),
            part.result_line.substr(std::string_view("result: ").size()).c_str());
        return 0;
    }
    std::printf("\n  Erlang part FAILED (%.1f s):\n", elapsed);
    for (const auto& problem : part.errors) {
        std::printf("    %s\n", problem.c_str());
    }
    std::printf("\n");
    return 1;
}

}  // namespace vdist::cli
