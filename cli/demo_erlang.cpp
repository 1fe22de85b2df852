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

#include "demo_support.hpp"
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
