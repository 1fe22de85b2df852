// `vdist term print | reencode | parse` run as a real program, stdin from a file, on the golden
// vectors (tests/dist/golden/): the text, byte-exact re-encoding, Erlang's own text parsed to
// the golden bytes, and bad input (exit status 2, one line on stderr with the byte offset).
//
// Built twice. term_cli_test (label integration) holds the tests above. term_text_erlang_test
// (label erlang, compiled with VDIST_TEXT_CHECK_SCRIPT) holds the Erlang check: Erlang's own
// erl_scan + erl_parse must read what vdist prints for every golden vector as the same term
// (tests/dist/erlang/text_check.escript).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef VDIST_TEXT_CHECK_SCRIPT
#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/term.hpp"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const fs::path golden_dir = VDIST_GOLDEN_DIR;

[[nodiscard]] std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

/// What a finished program did.
struct run_result {
    int status = -1;  // exit status, or -1 if it did not exit normally in time
    std::string out;
    std::string err;
};

/// A scratch directory for one test, removed afterwards.
class scratch_dir {
  public:
    scratch_dir() {
        std::string pattern = (fs::temp_directory_path() / "vdist_term_cli_XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr) {
            path_ = pattern;
        }
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    ~scratch_dir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    [[nodiscard]] const fs::path& path() const noexcept { return path_; }

  private:
    fs::path path_;
};

/// Runs `program` with `args`, stdin from `input_file`, stdout and stderr captured in files of
/// `dir`. Watchdog: killed after `timeout`.
[[nodiscard]] run_result run_program(const std::string& program,
                                     const std::vector<std::string>& args,
                                     const fs::path& input_file, const fs::path& dir,
                                     std::chrono::milliseconds timeout = 60s) {
    const auto out_file = dir / "stdout";
    const auto err_file = dir / "stderr";
    std::vector<std::string> argv_storage{program};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_storage) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);

    const pid_t child = ::fork();
    if (child == 0) {
        const int in = ::open(input_file.c_str(), O_RDONLY);
        const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int err = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || ::dup2(in, STDIN_FILENO) < 0 ||
            ::dup2(out, STDOUT_FILENO) < 0 || ::dup2(err, STDERR_FILENO) < 0) {
            ::_exit(126);
        }
        ::execv(program.c_str(), argv.data());
        ::_exit(127);
    }
    run_result result;
    if (child < 0) {
        return result;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
        const pid_t done = ::waitpid(child, &status, WNOHANG);
        if (done == child) {
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            ADD_FAILURE() << program << " did not finish within " << timeout.count() << " ms";
            ::kill(child, SIGKILL);
            (void)::waitpid(child, &status, 0);
            status = -1;
            break;
        }
        std::this_thread::sleep_for(1ms);
    }
    if (status != -1 && WIFEXITED(status)) {
        result.status = WEXITSTATUS(status);
    }
    result.out = read_file(out_file);
    result.err = read_file(err_file);
    return result;
}

/// `vdist term <args>` with `input` on stdin.
[[nodiscard]] run_result vdist_term(const std::vector<std::string>& args, const std::string& input,
                                    const fs::path& dir) {
    const auto input_file = dir / "stdin";
    write_file(input_file, input);
    std::vector<std::string> full{"term"};
    full.insert(full.end(), args.begin(), args.end());
    return run_program(VDIST_CLI, full, input_file, dir);
}

/// Every whole external term in the golden folder (originals and re-encodings), by name.
[[nodiscard]] std::vector<std::string> golden_etf_names() {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(golden_dir)) {
        if (entry.is_regular_file() && entry.path().extension() == ".etf") {
            names.push_back(entry.path().stem().string());
        }
    }
    std::ranges::sort(names);
    return names;
}

[[nodiscard]] std::string golden_etf(const std::string& name) {
    return read_file(golden_dir / (name + ".etf"));
}

#ifndef VDIST_TEXT_CHECK_SCRIPT

/// The lines of the golden manifest.
struct golden_case {
    std::string name;
    std::string encoding;  // minimal | decode-only
    std::string erlang_text;
};

[[nodiscard]] std::vector<golden_case> golden_cases() {
    std::vector<golden_case> cases;
    std::istringstream lines(read_file(golden_dir / "cases.txt"));
    for (std::string line; std::getline(lines, line);) {
        const auto first = line.find(' ');
        const auto second = line.find(' ', first + 1);
        if (first != std::string::npos && second != std::string::npos) {
            cases.push_back({line.substr(0, first), line.substr(first + 1, second - first - 1),
                             line.substr(second + 1)});
        }
    }
    return cases;
}

[[nodiscard]] vdist::dist::term decoded(const std::string& etf) {
    const auto raw = std::as_bytes(std::span(etf));
    auto result = vdist::dist::etf_decoder(vdist::dist::default_atom_table()).decode(raw);
    EXPECT_TRUE(result) << result.error().message();
    return result ? *result : vdist::dist::term{};
}

/// Whether `t` holds a map of more than 32 entries (which OTP keeps as a HAMT).
[[nodiscard]] bool has_large_map(const vdist::dist::term& t) {
    using namespace vdist::dist;
    if (const auto* m = t.get_if<map>()) {
        return m->entries.size() > 32 || std::ranges::any_of(m->entries, [](const auto& entry) {
                   return has_large_map(entry.first) || has_large_map(entry.second);
               });
    }
    const std::vector<term>* elements = nullptr;
    if (const auto* l = t.get_if<list>()) {
        if (l->tail && has_large_map(*l->tail)) {
            return true;
        }
        elements = &l->elements;
    } else if (const auto* tu = t.get_if<tuple>()) {
        elements = &tu->elements;
    }
    return elements != nullptr && std::ranges::any_of(*elements, has_large_map);
}

class TermCliTest : public ::testing::Test {
  protected:
    [[nodiscard]] run_result term(const std::vector<std::string>& args, const std::string& input) {
        return vdist_term(args, input, scratch_.path());
    }

    /// Runs `vdist term <args>`, expecting success and nothing on stderr.
    [[nodiscard]] std::string term_ok(const std::vector<std::string>& args,
                                      const std::string& input, const std::string& what) {
        const auto result = term(args, input);
        EXPECT_EQ(result.status, 0) << what << ": " << result.err;
        EXPECT_EQ(result.err, "") << what;
        return result.out;
    }

    scratch_dir scratch_;
};

TEST_F(TermCliTest, shouldPrintErlangTextAndANewlineWhenGivenAGoldenVector) {
    EXPECT_EQ(term_ok({"print"}, golden_etf("map_small_mixed_keys"), "map"),
              "#{1 => a,2.5 => x,a => 1,{t} => [],[] => nil,\"s\" => <<>>,<<\"k\">> => #{}}\n");
    EXPECT_EQ(term_ok({"print"}, golden_etf("float_minus_zero"), "float"), "-0.0\n");
    EXPECT_EQ(term_ok({"print"}, golden_etf("atom_lambda"), "atom"), "'\xce\xbb'\n");
    EXPECT_EQ(term_ok({"print"}, golden_etf("pid_new_pid"), "pid"),
              "#Pid<'golden@127.0.0.1'.9.0.1592590337>\n");
    EXPECT_TRUE(term_ok({"print"}, golden_etf("compressed_minor2"), "compressed")
                    .starts_with("{[<<\"hello\">>,<<\"hello\">>,"));
}

TEST_F(TermCliTest, shouldReencodeByteForByteWhenGivenEveryMinimalGoldenCase) {
    std::size_t checked = 0;
    for (const auto& c : golden_cases()) {
        if (c.encoding == "minimal") {
            EXPECT_TRUE(term_ok({"reencode"}, golden_etf(c.name), c.name) == golden_etf(c.name))
                << c.name;
            ++checked;
        }
    }
    EXPECT_GE(checked, 80u);
}

TEST_F(TermCliTest, shouldCompressWhenAskedForALevel) {
    const auto original = golden_etf("binary_1_kib");
    for (const std::string option : {"--compressed", "--compressed=1", "--compressed=9"}) {
        const auto packed = term_ok({"reencode", option}, original, option);
        ASSERT_GE(packed.size(), 6u) << option;
        EXPECT_EQ(static_cast<unsigned char>(packed[1]), 80u) << option << ": COMPRESSED tag";
        EXPECT_LT(packed.size(), original.size()) << option;
        EXPECT_TRUE(term_ok({"reencode"}, packed, option) == original) << option;
    }
    const auto refused = term({"reencode", "--compressed=10"}, original);
    EXPECT_NE(refused.status, 0);
}

TEST_F(TermCliTest, shouldParseWhatItPrintsToTheSameBytesWhenGivenEveryGoldenVector) {
    for (const auto& name : golden_etf_names()) {
        const auto text = term_ok({"print"}, golden_etf(name), name);
        ASSERT_EQ(text.find('\n'), text.size() - 1) << name << ": one line";
        EXPECT_TRUE(term_ok({"parse"}, text, name) == term_ok({"reencode"}, golden_etf(name), name))
            << name;
    }
}

TEST_F(TermCliTest, shouldWriteTheGoldenTermWhenParsingErlangsOwnText) {
    std::size_t checked = 0;
    for (const auto& c : golden_cases()) {
        // Erlang's ~w text has no syntax for pids, ports, refs and local funs; and OTP 25
        // prints an export fun's Unicode name as its UTF-8 bytes (see term_text_test).
        const bool literal =
            std::ranges::none_of(std::vector<std::string>{"#Pid{", "#Port{", "#Ref{", "#Fun<"},
                                 [&](const std::string& notation) {
                                     return c.erlang_text.find(notation) != std::string::npos;
                                 });
        if (c.encoding != "minimal" || !literal || c.name == "fun_export_unknown_module") {
            continue;
        }
        const auto etf = term_ok({"parse"}, c.erlang_text + ".\n", c.name);
        const auto expected = decoded(golden_etf(c.name));
        EXPECT_EQ(decoded(etf), expected) << c.name;
        // ~w writes a map of more than 32 keys (a HAMT) in the reverse of the order
        // term_to_binary writes it; vdist keeps the order of the text.
        if (!has_large_map(expected)) {
            EXPECT_TRUE(etf == golden_etf(c.name)) << c.name << ": same bytes";
        }
        ++checked;
    }
    EXPECT_GE(checked, 60u);
}

struct bad_input_case {
    const char* name;
    std::vector<std::string> args;
    std::string input;
    std::string message;  // the whole stderr line, without "vdist term: " and the newline
};

void PrintTo(const bad_input_case& c, std::ostream* os) {
    *os << c.name;
}

[[nodiscard]] std::string case_name(const ::testing::TestParamInfo<bad_input_case>& tested) {
    return tested.param.name;
}

class TermCliBadInputTest : public ::testing::TestWithParam<bad_input_case> {
  protected:
    scratch_dir scratch_;
};

TEST_P(TermCliBadInputTest, shouldExitWith2AndOneLineNamingTheByteWhenTheInputIsBad) {
    const auto& c = GetParam();
    const auto result = vdist_term(c.args, c.input, scratch_.path());
    EXPECT_EQ(result.status, 2);
    EXPECT_EQ(result.out, "");
    EXPECT_EQ(result.err, "vdist term: " + c.message + "\n");
    EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << "exactly one line";
    EXPECT_NE(result.err.find(" at byte "), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Bad, TermCliBadInputTest,
    ::testing::Values(
        bad_input_case{"print_truncated",
                       {"print"},
                       golden_etf("int_300_byte_large_big").substr(0, 7),
                       "truncated term: the input ends inside it at byte 7"},
        bad_input_case{"print_bad_version",
                       {"print"},
                       std::string("\x82\x61\x01", 3),
                       "not an external term: the first byte is not 131 at byte 0"},
        bad_input_case{
            "print_empty", {"print"}, "", "truncated term: the input ends inside it at byte 0"},
        bad_input_case{"print_trailing_bytes",
                       {"print"},
                       std::string("\x83\x61\x01\x00", 4),
                       "bytes left after the term at byte 3"},
        bad_input_case{"print_text_instead_of_etf",
                       {"print"},
                       "{a,b}.\n",
                       "not an external term: the first byte is not 131 at byte 0"},
        bad_input_case{"reencode_truncated",
                       {"reencode"},
                       // 255 elements cannot fit in the 98 bytes left: refused at the header
                       golden_etf("tuple_255_small_tuple").substr(0, 100),
                       "truncated term: the input ends inside it at byte 1"},
        bad_input_case{"parse_unclosed",
                       {"parse"},
                       "{1,2",
                       "expected '}', found the end of the input at byte 4"},
        bad_input_case{"parse_garbage",
                       {"parse"},
                       "{a, b} junk.\n",
                       "unexpected text after the term at byte 7"},
        bad_input_case{
            "parse_empty", {"parse"}, "", "expected a term, found the end of the input at byte 0"},
        bad_input_case{"parse_variable", {"parse"}, "[X]", "a variable is not a term at byte 1"},
        bad_input_case{"parse_etf_instead_of_text",
                       {"parse"},
                       std::string("\x83\x61\x01", 3),
                       "invalid UTF-8 at byte 0"}),
    case_name);

#else  // VDIST_TEXT_CHECK_SCRIPT: the Erlang check

/// The full path of `name` on PATH, or nothing.
[[nodiscard]] std::optional<std::string> find_on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    if (path == nullptr) {
        return std::nullopt;
    }
    std::istringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) {
        const auto candidate = fs::path(dir.empty() ? "." : dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate.string();
        }
    }
    return std::nullopt;
}

TEST(TermCliErlangTest, shouldBeReadByErlangAsTheSameTermWhenPrintingEveryGoldenVector) {
    const auto escript = find_on_path("escript");
    if (!escript) {
        GTEST_SKIP() << "escript is not on PATH (Debian: erlang-nox)";
    }
    scratch_dir scratch;
    std::string printed;
    for (const auto& name : golden_etf_names()) {
        const auto result = vdist_term({"print"}, golden_etf(name), scratch.path());
        ASSERT_EQ(result.status, 0) << name << ": " << result.err;
        printed += name + " " + result.out;
    }
    const auto printed_file = scratch.path() / "printed.txt";
    write_file(printed_file, printed);
    const auto empty_input = scratch.path() / "empty";
    write_file(empty_input, "");

    const auto check =
        run_program(*escript, {VDIST_TEXT_CHECK_SCRIPT, golden_dir.string(), printed_file.string()},
                    empty_input, scratch.path(), 300s);
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    const auto summary = check.out.find("TEXT_CHECK ");
    ASSERT_NE(summary, std::string::npos) << check.out << check.err;
    std::cout << check.out.substr(summary);
    EXPECT_NE(check.out.find("failures=0"), std::string::npos) << check.out;
    // 131 of the 160 vectors have literal syntax; the rest hold pids, ports, refs or local funs.
    int checked = 0;
    std::istringstream(check.out.substr(check.out.find("checked=", summary) + 8)) >> checked;
    EXPECT_GE(checked, 120);
}

#endif  // VDIST_TEXT_CHECK_SCRIPT

}  // namespace
