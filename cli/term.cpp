#include "term.hpp"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_encoder.hpp"
#include "vdist/dist/term_text.hpp"

namespace vdist::cli {
namespace {

using namespace vdist::dist;

// Exit statuses: bad input is 2 (one line on stderr says what and at which byte), a failure to
// read or write is 1.
constexpr int bad_input = 2;
constexpr int io_failure = 1;

[[noreturn]] void fail(int status, const std::string& message) {
    std::fprintf(stderr, "vdist term: %s\n", message.c_str());
    throw CLI::RuntimeError(status);
}

/// All of stdin.
[[nodiscard]] std::vector<std::byte> read_stdin() {
    std::vector<std::byte> input;
    std::byte buffer[65536];
    for (;;) {
        const std::size_t n = std::fread(buffer, 1, sizeof buffer, stdin);
        input.insert(input.end(), buffer, buffer + n);
        if (n < sizeof buffer) {
            if (std::ferror(stdin) != 0) {
                fail(io_failure, std::string("cannot read stdin: ") + std::strerror(errno));
            }
            return input;
        }
    }
}

void write_stdout(std::span<const std::byte> bytes) {
    if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() ||
        std::fflush(stdout) != 0) {
        fail(io_failure, std::string("cannot write stdout: ") + std::strerror(errno));
    }
}

/// stdin as one external term (131, then the term, possibly compressed).
[[nodiscard]] term decode_stdin(atom_table& atoms) {
    const auto input = read_stdin();
    auto decoded = etf_decoder(atoms).decode(input);
    if (!decoded) {
        fail(bad_input, decoded.error().message());
    }
    return std::move(*decoded);
}

[[nodiscard]] std::vector<std::byte> encode_or_fail(const term& t, int compression_level) {
    auto encoded = encode(t, {.compression_level = compression_level});
    if (!encoded) {
        fail(bad_input, make_error_code(encoded.error()).message());
    }
    return std::move(*encoded);
}

void print_command() {
    atom_table atoms;
    std::string text = to_erlang_text(decode_stdin(atoms));
    text += '\n';
    write_stdout(std::as_bytes(std::span(text)));
}

void reencode_command(int compression_level) {
    atom_table atoms;
    write_stdout(encode_or_fail(decode_stdin(atoms), compression_level));
}

void parse_command() {
    const auto input = read_stdin();
    const std::string_view text(reinterpret_cast<const char*>(input.data()), input.size());
    atom_table atoms;
    auto parsed = parse_erlang_text(text, atoms);
    if (!parsed) {
        fail(bad_input, parsed.error().describe());
    }
    write_stdout(encode_or_fail(*parsed, 0));
}

}  // namespace

void add_term_commands(CLI::App& app) {
    auto* term_command = app.add_subcommand(
        "term", "External Term Format and Erlang text: one term from stdin to stdout");
    term_command->require_subcommand(1);
    term_command->footer(
        "Bad input exits with status 2 and one line on stderr naming the problem and the byte "
        "offset.\nPids, ports, references and local funs print as #Pid<...>, #Port<...>, "
        "#Ref<...> and #Fun<...>\n(vdist's notation, every field kept; see "
        "dist/include/vdist/dist/term_text.hpp).");

    term_command
        ->add_subcommand("print", "Read one external term (131 ...) and print it as Erlang text")
        ->callback(print_command);

    auto compression_level = std::make_shared<int>(0);
    auto* reencode = term_command->add_subcommand(
        "reencode", "Read one external term and write vdist's minimal encoding of it");
    reencode
        ->add_option("--compressed", *compression_level,
                     "Compress with zlib at LEVEL 1-9 (default 6, as OTP's `compressed`); kept "
                     "only when smaller")
        ->expected(0, 1)
        ->default_str("6")  // what a bare --compressed means
        ->check(CLI::Range(1, 9))
        ->option_text("[=LEVEL]");
    reencode->callback([compression_level] { reencode_command(*compression_level); });

    term_command
        ->add_subcommand("parse",
                         "Read Erlang text (one term, optional trailing '.') and write "
                         "it as an external term")
        ->callback(parse_command);
}

}  // namespace vdist::cli
