#pragma once
/// \file
/// Real Erlang/OTP peers for `erlang`-labelled tests: a private EPMD on a free port and `erl`
/// nodes that use it, each a child process of the test (killed and reaped when the object goes,
/// pass or fail). An interactive node reads Erlang expressions on its stdin and prints each
/// value on a line of its own, so a test drives it step by step:
///
/// ```
///  test::private_epmd epmd;                             // epmd -port P -relaxed_command_check
///  test::erlang_node erl(epmd.port(), {"-name", "e1@127.0.0.1", "-setcookie", "c"},
///                        test::erlang_node::interactive);
///  EXPECT_EQ(erl.eval("net_adm:ping('cpp@127.0.0.1')."), "pong");
///  EXPECT_EQ(erl.eval("X = 1 + 1."), "2");               // bindings persist between evals
/// ```
///
/// The interactive loop runs in a process registered as `repl` (its mailbox, links and
/// monitors persist between evals); a value is printed with `~tw`, an exception as
/// `!Class:Reason`. Every node halts itself after `erlang_node_lifetime` whatever happens.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vdist/test/child_process.hpp"
#include "vdist/test/socket.hpp"

namespace vdist::test {

/// How long an erl started here lives at most (the watchdog of a test that hangs).
inline constexpr std::chrono::seconds erlang_node_lifetime{120};

/// `epmd -port P -relaxed_command_check` in the foreground on a free port, as a child of the
/// test: nothing is shared with a system EPMD or with other tests.
class private_epmd {
  public:
    private_epmd() {
        const std::string epmd = on_path("epmd");
        port_ = free_port();
        if (epmd.empty() || port_ == 0) {
            return;
        }
        process_.emplace(epmd, std::vector<std::string>{"-port", std::to_string(port_),
                                                        "-relaxed_command_check"});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!answers() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    /// Sends `signal` to the epmd process (SIGSTOP makes every lookup wait, SIGCONT resumes).
    void kill(int signal) noexcept {
        if (process_) {
            process_->kill(signal);
        }
    }

    /// Whether it answers a NAMES_REQ (a whole request: a bare connection makes it log "got
    /// partial packet").
    [[nodiscard]] bool answers() const {
        const fd_guard epmd = connect_to(port_, std::chrono::seconds(1));
        return epmd.valid() && send_all(epmd.get(), wire({0, 1, 'n'})) &&
               read_exactly(epmd.get(), 4, std::chrono::seconds(5)).has_value();
    }

  private:
    std::uint16_t port_ = 0;
    std::optional<child_process> process_;
};

/// One `erl` node: started with `ERL_EPMD_PORT` pointing at a private EPMD (and -start_epmd
/// false); what it prints on stdout and stderr is collected as it comes.
class erlang_node {
  public:
    /// Reads expressions on stdin (eval()).
    static constexpr struct interactive_t {
    } interactive{};

    /// erl with `args` (e.g. -noshell -name ... -eval ...).
    erlang_node(std::uint16_t epmd_port, const std::vector<std::string>& args)
        : process_("/usr/bin/env", command(epmd_port, args, false),
                   child_options{.merge_stderr = true}) {}
    /// erl -noshell with `args` and the interactive loop.
    erlang_node(std::uint16_t epmd_port, const std::vector<std::string>& args, interactive_t)
        : process_("/usr/bin/env", command(epmd_port, args, true),
                   child_options{.pipe_stdin = true, .merge_stderr = true}) {}

    /// Waits until erl has printed `text` (true), or `timeout` passed or erl closed its
    /// stdout (false).
    bool wait_for(std::string_view text,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (output_.find(text) == std::string::npos) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || !read_more(left)) {
                return output_.find(text) != std::string::npos;
            }
        }
        return true;
    }

    /// Evaluates `expression` (Erlang expressions ending with a dot; newlines are folded into
    /// spaces) in the interactive loop and returns its value as `~tw` prints it, `!Class:Reason`
    /// for an exception, or `<timeout>` / `<erl exited>`.
    std::string eval(std::string_view expression,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        std::string line(expression);
        for (char& c : line) {
            if (c == '\n') {
                c = ' ';
            }
        }
        const std::string marker = "=vdist-result " + std::to_string(++evals_) + " ";
        if (!process_.write_stdin(line + "\n")) {
            return "<erl exited>";
        }
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (const auto at = output_.find(marker, scanned_); at != std::string::npos) {
                const auto end = output_.find('\n', at);
                if (end != std::string::npos) {
                    scanned_ = end;
                    const auto start = at + marker.size();
                    return output_.substr(start, end - start);
                }
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return "<timeout>";
            }
            if (!read_more(left)) {
                return "<erl exited>";
            }
        }
    }

    /// Everything erl printed so far (stdout and stderr).
    [[nodiscard]] const std::string& output() const noexcept { return output_; }
    /// Reads what erl printed meanwhile (at most `timeout` waiting) and returns all of it.
    const std::string& collect(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
        (void)read_more(timeout);
        return output_;
    }

    [[nodiscard]] child_process& process() noexcept { return process_; }

  private:
    static std::vector<std::string> command(std::uint16_t epmd_port,
                                            const std::vector<std::string>& args, bool with_repl) {
        // -start_epmd false: ours is running; erl would otherwise try `epmd -daemon`. env
        // execs erl, which execs erlexec, which execs beam.smp: one pid to signal.
        std::vector<std::string> all{"ERL_EPMD_PORT=" + std::to_string(epmd_port), "erl",
                                     "-start_epmd", "false"};
        if (with_repl) {
            all.push_back("-noshell");
        }
        all.insert(all.end(), args.begin(), args.end());
        if (with_repl) {
            all.push_back("-eval");
            all.push_back(repl());
        }
        return all;
    }

    static std::string repl() {
        return "spawn(fun() -> receive after " +
               std::to_string(erlang_node_lifetime.count() * 1000) +
               " -> halt(3) end end), "
               "spawn(fun() -> register(repl, self()), "
               "Loop = fun Loop(N, Bindings) -> "
               "  case io:get_line('') of "
               "    eof -> halt(0); "
               "    {error, _} -> halt(0); "
               "    Line -> "
               "      {Text, Next} = "
               "        try "
               "          {ok, Tokens, _} = erl_scan:string(Line), "
               "          {ok, Exprs} = erl_parse:parse_exprs(Tokens), "
               "          {value, Value, NewBindings} = erl_eval:exprs(Exprs, Bindings), "
               "          {io_lib:format(\"~tw\", [Value]), NewBindings} "
               "        catch Class:Reason -> "
               "          {io_lib:format(\"!~w:~tw\", [Class, Reason]), Bindings} "
               "        end, "
               "      io:format(\"~n=vdist-result ~b ~ts~n\", [N, Text]), "
               "      Loop(N + 1, Next) "
               "  end "
               "end, "
               "Loop(1, erl_eval:new_bindings()) end).";
    }

    // False once erl closed its output.
    bool read_more(std::chrono::milliseconds timeout) {
        const auto got = process_.read_some(timeout);
        if (!got) {
            return false;
        }
        output_ += *got;
        return true;
    }

    child_process process_;
    std::string output_;
    std::size_t scanned_ = 0;
    int evals_ = 0;
};

}  // namespace vdist::test
