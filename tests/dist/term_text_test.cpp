// Unit tests of terms as Erlang text (term_text.hpp): print and parse for every term kind and
// each boundary, Erlang's own ~w text of every golden vector read back, errors with their
// offsets, and the limits. That Erlang itself reads what vdist prints is term_cli_test's
// Erlang check (tests/dist/erlang/text_check.escript).

#include "vdist/dist/term_text.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::dist {
namespace {

using bytes = std::vector<std::byte>;

[[nodiscard]] std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

[[nodiscard]] bytes as_bytes(const std::string& text) {
    const auto raw = std::as_bytes(std::span(text));
    return {raw.begin(), raw.end()};
}

[[nodiscard]] atom a(std::string_view name) {
    return default_atom_table()(name);
}

[[nodiscard]] big_integer big(bool negative, std::vector<std::uint8_t> magnitude) {
    return {.negative = negative, .magnitude = std::move(magnitude)};
}

[[nodiscard]] bitstring bits(std::vector<std::uint8_t> values, std::uint8_t last_bits) {
    std::vector<std::byte> raw;
    for (const auto v : values) {
        raw.push_back(std::byte{v});
    }
    return {.bytes = binary(std::span<const std::byte>(raw)), .last_bits = last_bits};
}

[[nodiscard]] binary bin(std::vector<std::uint8_t> values) {
    std::vector<std::byte> raw;
    for (const auto v : values) {
        raw.push_back(std::byte{v});
    }
    return binary(std::span<const std::byte>(raw));
}

[[nodiscard]] list string_list(std::string_view text) {
    std::vector<term> elements;
    for (const char c : text) {
        elements.emplace_back(std::int64_t{static_cast<unsigned char>(c)});
    }
    return list(std::move(elements));
}

[[nodiscard]] local_fun sample_fun() {
    local_fun fun;
    fun.arity = 2;
    for (std::size_t i = 0; i < fun.uniq.size(); ++i) {
        fun.uniq[i] = static_cast<std::uint8_t>(i * 17 + 1);  // 01 12 .. ef 00
    }
    fun.index = 3;
    fun.module = a("vdist_golden_fun");
    fun.old_index = 0;
    fun.old_uniq = -44755415;
    fun.pid = pid{.node = a("golden@127.0.0.1"), .id = 9, .serial = 0, .creation = 7};
    fun.free_vars = {term(1), term(a("x")), term(string_list("ab"))};
    return fun;
}

[[nodiscard]] std::expected<term, text_error> parse(std::string_view text,
                                                    text_limits limits = {}) {
    return parse_erlang_text(text, default_atom_table(), limits);
}

/// A parameterised case's name in the test name.
template <class Case>
[[nodiscard]] std::string case_name(const ::testing::TestParamInfo<Case>& tested) {
    return tested.param.name;
}

// --- one case per kind and boundary: the text printed, and parsed back --------------------------

struct text_case {
    const char* name;
    term value;
    std::string text;
};

void PrintTo(const text_case& c, std::ostream* os) {
    *os << c.name;
}

class TermTextRoundTripTest : public ::testing::TestWithParam<text_case> {};

TEST_P(TermTextRoundTripTest, shouldPrintErlangTextWhenGivenATerm) {
    EXPECT_EQ(to_erlang_text(GetParam().value), GetParam().text);
}

TEST_P(TermTextRoundTripTest, shouldParseBackTheSameTermWhenGivenThePrintedText) {
    const auto parsed = parse(GetParam().text);
    ASSERT_TRUE(parsed) << parsed.error().describe();
    EXPECT_EQ(*parsed, GetParam().value);
    if (const auto* x = GetParam().value.get_if<double>()) {
        ASSERT_TRUE(parsed->is<double>());
        EXPECT_EQ(std::bit_cast<std::uint64_t>(*parsed->get_if<double>()),
                  std::bit_cast<std::uint64_t>(*x));
    }
}

constexpr auto int64_max = std::numeric_limits<std::int64_t>::max();
constexpr auto int64_min = std::numeric_limits<std::int64_t>::min();

INSTANTIATE_TEST_SUITE_P(
    Integers, TermTextRoundTripTest,
    ::testing::Values(
        text_case{"zero", term(0), "0"}, text_case{"minus_one", term(-1), "-1"},
        text_case{"int64_max", term(int64_max), "9223372036854775807"},
        text_case{"int64_min", term(int64_min), "-9223372036854775808"},
        text_case{"int64_max_plus_1", big(false, {0, 0, 0, 0, 0, 0, 0, 0x80}),
                  "9223372036854775808"},
        text_case{"int64_min_minus_1", big(true, {1, 0, 0, 0, 0, 0, 0, 0x80}),
                  "-9223372036854775809"},
        text_case{"two_pow_64", big(false, {0, 0, 0, 0, 0, 0, 0, 0, 1}), "18446744073709551616"},
        text_case{"minus_two_pow_64", big(true, {0, 0, 0, 0, 0, 0, 0, 0, 1}),
                  "-18446744073709551616"},
        // 10^30 = 0xC9F2C9CD04674EDEA40000000: nine-digit chunks that need zero padding.
        text_case{"ten_pow_30",
                  big(false, {0x00, 0x00, 0x00, 0x40, 0xEA, 0xED, 0x74, 0x46, 0xD0, 0x9C, 0x2C,
                              0x9F, 0x0C}),
                  "1000000000000000000000000000000"}),
    case_name<text_case>);

INSTANTIATE_TEST_SUITE_P(
    Floats, TermTextRoundTripTest,
    ::testing::Values(
        text_case{"zero", term(0.0), "0.0"}, text_case{"minus_zero", term(-0.0), "-0.0"},
        text_case{"one_and_a_half", term(1.5), "1.5"}, text_case{"tenth", term(0.1), "0.1"},
        text_case{"hundred", term(100.0), "100.0"}, text_case{"thousand", term(1000.0), "1.0e3"},
        text_case{"ten_thousandth", term(0.0001), "0.0001"},
        text_case{"hundred_thousandth", term(1e-5), "1.0e-5"},
        text_case{"e300", term(1e300), "1.0e300"},
        text_case{"minus_e_minus_300", term(-1e-300), "-1.0e-300"},
        text_case{"smallest_denormal", term(5e-324), "5.0e-324"},
        text_case{"largest", term(1.7976931348623157e308), "1.7976931348623157e308"},
        text_case{"exact_integer_below_2_pow_53", term(1234567890123456.0), "1234567890123456.0"},
        text_case{"two_pow_53", term(9007199254740992.0), "9.007199254740992e15"}),
    case_name<text_case>);

INSTANTIATE_TEST_SUITE_P(
    Atoms, TermTextRoundTripTest,
    ::testing::Values(
        text_case{"plain", term(a("ok")), "ok"}, text_case{"boolean", term(a("true")), "true"},
        text_case{"name_chars", term(a("node_1@host")), "node_1@host"},
        text_case{"empty", term(a("")), "''"}, text_case{"upper_case", term(a("Hello")), "'Hello'"},
        text_case{"underscore_first", term(a("_x")), "'_x'"},
        text_case{"digit_first", term(a("1a")), "'1a'"}, text_case{"dot", term(a("a.b")), "'a.b'"},
        text_case{"space", term(a("a b")), "'a b'"}, text_case{"reserved", term(a("end")), "'end'"},
        text_case{"reserved_maybe", term(a("maybe")), "'maybe'"},
        text_case{"quote", term(a("it's")), "'it\\'s'"},
        text_case{"backslash", term(a("back\\slash")), "'back\\\\slash'"},
        text_case{"newline", term(a("new\nline")), "'new\\nline'"},
        text_case{"control", term(a(std::string_view("\x01\x7f", 2))), "'\\x{1}\\x{7F}'"},
        text_case{"latin1", term(a("h\xc3\xa9llo")), "'h\xc3\xa9llo'"},
        text_case{"lambda", term(a("\xce\xbb")), "'\xce\xbb'"},
        text_case{"emoji", term(a("\xf0\x9f\x98\x80")), "'\xf0\x9f\x98\x80'"}),
    case_name<text_case>);

INSTANTIATE_TEST_SUITE_P(
    Lists, TermTextRoundTripTest,
    ::testing::Values(
        text_case{"nil", term(), "[]"}, text_case{"of_nil", list{term()}, "[[]]"},
        text_case{"integers", list{1, 2, 300}, "[1,2,300]"},
        text_case{"string", string_list("abc"), "\"abc\""},
        text_case{"string_escapes", string_list("a\"b\\"), "\"a\\\"b\\\\\""},
        text_case{"string_all_printable", string_list(" ~"), "\" ~\""},
        text_case{"below_printable", list{31}, "[31]"},
        text_case{"above_printable", list{97, 127}, "[97,127]"},
        text_case{"latin1_is_no_string", list{97, 233}, "[97,233]"},
        text_case{"improper", list({term(a("a"))}, term(a("b"))), "[a|b]"},
        text_case{"improper_longer", list({1, 2}, term(3)), "[1,2|3]"},
        text_case{"improper_printable", list({97, 98}, term(99)), "[97,98|99]"},
        text_case{"improper_binary_tail", list({term(a("a"))}, term(bin({1, 2}))), "[a|<<1,2>>]"},
        text_case{"mixed", list{a("a"), 1, list{120}, tuple{}, binary()}, "[a,1,\"x\",{},<<>>]"}),
    case_name<text_case>);

INSTANTIATE_TEST_SUITE_P(
    Containers, TermTextRoundTripTest,
    ::testing::Values(
        text_case{"tuple_empty", tuple{}, "{}"},
        text_case{"tuple", tuple{a("a"), 1, 2.5}, "{a,1,2.5}"},
        text_case{"map_empty", map{}, "#{}"},
        text_case{"map", map({{term(a("a")), term(1)}, {term(1), term(a("a"))}}),
                  "#{a => 1,1 => a}"},
        text_case{"map_nested",
                  map({{term(a("a")), map({{term(a("b")), map({{term(a("c")), map{}}})}})},
                       {map{}, tuple{}}}),
                  "#{a => #{b => #{c => #{}}},#{} => {}}"},
        text_case{"binary_empty", binary(), "<<>>"},
        text_case{"binary_text", binary(std::string_view("hello world")), "<<\"hello world\">>"},
        text_case{"binary_text_escapes", binary(std::string_view("\"\\")), "<<\"\\\"\\\\\">>"},
        text_case{"binary_bytes", bin({0, 1, 255}), "<<0,1,255>>"},
        text_case{"binary_newline", binary(std::string_view("a\n")), "<<97,10>>"},
        text_case{"bitstring_3_bits", bits({0x20}, 3), "<<1:3>>"},
        text_case{"bitstring_7_bits", bits({0xFE}, 7), "<<127:7>>"},
        text_case{"bitstring_bytes_and_bits", bits({255, 0x38}, 5), "<<255,7:5>>"},
        text_case{"export_fun", export_fun{a("lists"), a("map"), 2}, "fun lists:map/2"},
        text_case{"export_fun_quoted", export_fun{a("Mod"), a("end"), 255}, "fun 'Mod':'end'/255"}),
    case_name<text_case>);

INSTANTIATE_TEST_SUITE_P(
    VdistNotation, TermTextRoundTripTest,
    ::testing::Values(
        text_case{"pid", pid{a("node@host"), 1, 2, 3}, "#Pid<'node@host'.1.2.3>"},
        text_case{"pid_max", pid{a("node@host"), 4294967295, 4294967295, 4294967295},
                  "#Pid<'node@host'.4294967295.4294967295.4294967295>"},
        text_case{"pid_empty_node", pid{a(""), 0, 0, 0}, "#Pid<''.0.0.0>"},
        text_case{"port", port{a("n@h"), 8, 1}, "#Port<'n@h'.8.1>"},
        text_case{"port_64_bit_id", port{a("n@h"), 18446744073709551615u, 1},
                  "#Port<'n@h'.18446744073709551615.1>"},
        text_case{"ref", reference{a("n@h"), 7, {1, 2, 4294967295}},
                  "#Ref<'n@h'.7.1.2.4294967295>"},
        text_case{"ref_0_words", reference{a("n@h"), 7, {}}, "#Ref<'n@h'.7>"},
        text_case{"ref_5_words", reference{a("n@h"), 7, {1, 2, 3, 4, 5}},
                  "#Ref<'n@h'.7.1.2.3.4.5>"},
        text_case{"local_fun", sample_fun(),
                  "#Fun<2.0112233445566778899aabbccddeef00.3.'vdist_golden_fun'.0.-44755415."
                  "#Pid<'golden@127.0.0.1'.9.0.7>.[1,x,\"ab\"]>"},
        text_case{"nested", tuple{pid{a("a@b"), 1, 2, 3}, list{reference{a("a@b"), 1, {2}}}},
                  "{#Pid<'a@b'.1.2.3>,[#Ref<'a@b'.1.2>]}"}),
    case_name<text_case>);

TEST(TermTextTest, shouldRoundTripBignumsWhenTheirMagnitudesAreRandom) {
    std::mt19937_64 random(42);
    for (std::size_t length : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 100u, 255u, 256u, 1000u}) {
        for (int trial = 0; trial < 5; ++trial) {
            std::vector<std::uint8_t> magnitude(length);
            for (auto& b : magnitude) {
                b = static_cast<std::uint8_t>(random());
            }
            magnitude.back() |= 0x80;  // no leading zero; beyond int64 from 8 bytes on
            const term value = length < 8 ? term(static_cast<std::int64_t>(magnitude[0]))
                                          : term(big(trial % 2 == 1, magnitude));
            const auto text = to_erlang_text(value);
            const auto parsed = parse(text);
            ASSERT_TRUE(parsed) << parsed.error().describe();
            EXPECT_EQ(*parsed, value) << text;
        }
    }
}

// --- golden vectors: vdist's text, and Erlang's own ~w text --------------------------------------

struct golden_case {
    std::string name;
    std::string encoding;
    std::string erlang_text;  // io_lib:format("~w"), or #Pid{...} etc. for terms without syntax
};

[[nodiscard]] std::vector<golden_case> golden_cases() {
    std::vector<golden_case> cases;
    std::istringstream lines(read_file(std::string(VDIST_GOLDEN_DIR) + "/cases.txt"));
    for (std::string line; std::getline(lines, line);) {
        const auto first = line.find(' ');
        const auto second = line.find(' ', first + 1);
        if (first == std::string::npos || second == std::string::npos) {
            continue;
        }
        cases.push_back({line.substr(0, first), line.substr(first + 1, second - first - 1),
                         line.substr(second + 1)});
    }
    return cases;
}

[[nodiscard]] bool has_erlang_syntax(const std::string& erlang_text) {
    for (const char* notation : {"#Pid{", "#Port{", "#Ref{", "#Fun<"}) {
        if (erlang_text.find(notation) != std::string::npos) {
            return false;
        }
    }
    return true;
}

class TermTextGoldenTest : public ::testing::Test {
  protected:
    [[nodiscard]] term decoded(const golden_case& c) {
        const auto etf = read_file(std::string(VDIST_GOLDEN_DIR) + "/" + c.name + ".etf");
        auto result = etf_decoder(default_atom_table()).decode(as_bytes(etf));
        EXPECT_TRUE(result) << c.name << ": " << result.error().message();
        return result ? *result : term{};
    }
};

TEST_F(TermTextGoldenTest, shouldReadBackWhatItPrintsWhenGivenEveryGoldenVector) {
    const auto cases = golden_cases();
    ASSERT_GE(cases.size(), 100u);
    for (const auto& c : cases) {
        const term value = decoded(c);
        const auto text = to_erlang_text(value);
        const auto parsed = parse(text);
        ASSERT_TRUE(parsed) << c.name << ": " << parsed.error().describe();
        EXPECT_EQ(*parsed, value) << c.name << ": " << text.substr(0, 200);
    }
}

TEST_F(TermTextGoldenTest, shouldReadErlangsOwnTextWhenGivenTheWTextOfEveryGoldenVector) {
    std::size_t checked = 0;
    for (const auto& c : golden_cases()) {
        // OTP 25 prints an export fun with fun_to_list/1, which writes a Unicode atom's UTF-8
        // bytes as Latin-1 characters ('\x{3BB}' comes out as 'Î»'), even with ~tw.
        if (!has_erlang_syntax(c.erlang_text) || c.name == "fun_export_unknown_module") {
            continue;
        }
        const auto parsed = parse(c.erlang_text);
        ASSERT_TRUE(parsed) << c.name << ": " << parsed.error().describe();
        EXPECT_EQ(*parsed, decoded(c)) << c.name;
        ++checked;
    }
    EXPECT_GE(checked, 90u);
}

TEST_F(TermTextGoldenTest, shouldPrintNumbersExactlyAsErlangWhenGivenGoldenIntegersAndFloats) {
    std::size_t checked = 0;
    for (const auto& c : golden_cases()) {
        const term value = decoded(c);
        if (value.is<std::int64_t>() || value.is<big_integer>() || value.is<double>()) {
            EXPECT_EQ(to_erlang_text(value), c.erlang_text) << c.name;
            ++checked;
        }
    }
    EXPECT_GE(checked, 30u);
}

// --- what a person types ------------------------------------------------------------------------

struct typed_case {
    const char* name;
    const char* text;
    term value;
};

void PrintTo(const typed_case& c, std::ostream* os) {
    *os << c.name;
}

class TermTextTypedTest : public ::testing::TestWithParam<typed_case> {};

TEST_P(TermTextTypedTest, shouldParseTheTermWhenGivenShellSyntax) {
    const auto parsed = parse(GetParam().text);
    ASSERT_TRUE(parsed) << parsed.error().describe();
    EXPECT_EQ(*parsed, GetParam().value) << to_erlang_text(*parsed);
}

INSTANTIATE_TEST_SUITE_P(
    Shell, TermTextTypedTest,
    ::testing::Values(
        typed_case{"whitespace_and_dot", " \n\t{ a , 1 } .\n", tuple{a("a"), 1}},
        typed_case{"comment", "% a comment\n[1, % one\n 2].", list{1, 2}},
        typed_case{"char", "$a", term(97)}, typed_case{"char_space", "$ ", term(32)},
        typed_case{"char_escape", "$\\n", term(10)},
        typed_case{"char_utf8", "$\xce\xbb", term(955)},
        typed_case{"negative_char", "-$a", term(-97)}, typed_case{"hex", "16#ff", term(255)},
        typed_case{"hex_upper", "-16#FF", term(-255)},
        typed_case{"binary_base", "2#1010", term(10)}, typed_case{"base_36", "36#zz", term(1295)},
        typed_case{"big_hex", "16#10000000000000000", big(false, {0, 0, 0, 0, 0, 0, 0, 0, 1})},
        typed_case{"underscores", "1_000_000", term(1000000)}, typed_case{"plus", "+5", term(5)},
        typed_case{"sign_space", "- 5", term(-5)}, typed_case{"leading_zeros", "007", term(7)},
        typed_case{"minus_zero_integer", "-0", term(0)},
        typed_case{"upper_exponent", "1.0E5", term(1e5)},
        typed_case{"plus_exponent", "1.5e+3", term(1500.0)},
        typed_case{"float_underscores", "1_000.5", term(1000.5)},
        typed_case{"underflow_is_zero", "1.0e-400", term(0.0)},
        typed_case{"negative_underflow", "-1.0e-400", term(-0.0)},
        typed_case{"string_escapes", "\"\\x{3bb}\\x41\\101\\^A\\s\\e\\d\\z\\'\"",
                   list{955, 65, 65, 1, 32, 27, 127, 122, 39}},
        typed_case{"string_utf8", "\"\xce\xbb\"", list{955}},
        typed_case{"empty_string", "\"\"", term()},
        typed_case{"adjacent_strings", "\"ab\" \"c\"", string_list("abc")},
        typed_case{"atom_escapes", "'\\x{3BB}'", term(a("\xce\xbb"))},
        typed_case{"latin1_unquoted", "h\xc3\xa9llo", term(a("h\xc3\xa9llo"))},
        typed_case{"quoted_plain", "'ok'", term(a("ok"))},
        typed_case{"maybe_unquoted", "maybe", term(a("maybe"))},
        typed_case{"splice_tail", "[1|[2,3]]", list{1, 2, 3}},
        typed_case{"nil_tail", "[1|[]]", list{1}},
        typed_case{"string_tail", "[1|\"ab\"]", list{1, 97, 98}},
        typed_case{"binary_chars", "<<$a,$b>>", binary(std::string_view("ab"))},
        typed_case{"binary_string_and_bits", "<<\"a\",1:4>>", bits({97, 0x10}, 4)},
        typed_case{"binary_negative", "<<-1>>", bin({255})},
        typed_case{"binary_sized", "<<256:16,1:1>>", bits({1, 0, 0x80}, 1)},
        typed_case{"binary_wide", "<<-1:72>>", bin({255, 255, 255, 255, 255, 255, 255, 255, 255})},
        typed_case{"binary_truncates", "<<257>>", bin({1})},
        typed_case{"binary_string_sized", "<<\"ab\":4>>", bin({0x12})},
        typed_case{"binary_zero_size", "<<1:0>>", binary()},
        typed_case{"binary_whole_bits", "<<1:4,2:4>>", bin({0x12})},
        typed_case{"export_fun_spaces", "fun  lists : map / 2",
                   export_fun{a("lists"), a("map"), 2}},
        typed_case{"map_spaces", "#{ a=>1 , b =>2}",
                   map({{term(a("a")), term(1)}, {term(a("b")), term(2)}})},
        typed_case{"pid_unquoted_node", "#Pid<nonode@nohost.9.0.0>",
                   pid{a("nonode@nohost"), 9, 0, 0}}),
    case_name<typed_case>);

// --- errors: what and where ---------------------------------------------------------------------

struct error_case {
    const char* name;
    std::string text;
    std::string message;  // a part of the message
    std::size_t offset;
};

void PrintTo(const error_case& c, std::ostream* os) {
    *os << c.name;
}

class TermTextErrorTest : public ::testing::TestWithParam<error_case> {};

TEST_P(TermTextErrorTest, shouldFailWithTheOffsetWhenTheTextIsBad) {
    const auto parsed = parse(GetParam().text);
    ASSERT_FALSE(parsed) << to_erlang_text(*parsed);
    EXPECT_NE(parsed.error().message.find(GetParam().message), std::string::npos)
        << parsed.error().describe();
    EXPECT_EQ(parsed.error().offset, GetParam().offset) << parsed.error().describe();
    EXPECT_EQ(parsed.error().describe(),
              parsed.error().message + " at byte " + std::to_string(GetParam().offset));
}

INSTANTIATE_TEST_SUITE_P(
    Bad, TermTextErrorTest,
    ::testing::Values(
        error_case{"empty", "", "expected a term, found the end of the input", 0},
        error_case{"only_whitespace", "  \n", "expected a term", 3},
        error_case{"only_dot", ".", "expected a term, found '.'", 0},
        error_case{"unclosed_tuple", "{1,2", "expected '}', found the end of the input", 4},
        error_case{"unclosed_list", "[1,2", "expected ']'", 4},
        error_case{"missing_element", "[1,]", "expected a term, found ']'", 3},
        error_case{"two_terms", "1 2", "unexpected text after the term", 2},
        error_case{"two_dots", "1..", "unexpected text after the term", 2},
        error_case{"variable", "{a,Abc}", "a variable is not a term", 3},
        error_case{"underscore_variable", "_", "a variable is not a term", 0},
        error_case{"reserved_word", "[end]", "'end' is a reserved word", 1},
        error_case{"unterminated_atom", "'abc", "unterminated quoted atom", 0},
        error_case{"unterminated_string", "[\"abc]", "unterminated string", 1},
        error_case{"float_overflow", "{1.0e999}", "float out of range", 1},
        error_case{"float_without_fraction", "1.e5", "unexpected text after the term", 2},
        error_case{"duplicate_key", "#{a => 1, a => 2}", "map with a duplicate key", 0},
        error_case{"missing_arrow", "#{a, 1}", "expected '=>', found ','", 3},
        error_case{"bad_base", "37#1", "the base of an integer must be 2 to 36", 0},
        error_case{"bad_digit_for_base", "2#2", "expected a digit of the base", 2},
        error_case{"trailing_underscore", "1_", "unexpected text after the term", 1},
        error_case{"sign_without_number", "-a", "expected a number after the sign", 1},
        error_case{"float_segment", "<<1.5>>", "a binary segment holds no float here", 2},
        error_case{"atom_segment", "<<a>>", "expected an integer or a string in a binary", 2},
        error_case{"segment_size_beyond_32_bits", "<<0:4294967296>>", "segment size out of range",
                   4},
        error_case{"segment_beyond_the_limit", "<<1,0:4294967295>>",
                   "binaries larger than the limit", 4},
        error_case{"pid_missing_field", "#Pid<'a@b'.1.2>", "expected '.', found '>'", 14},
        error_case{"pid_id_too_large", "#Pid<'a@b'.4294967296.0.0>", "pid id out of range", 11},
        error_case{"pid_negative", "#Pid<'a@b'.-1.0.0>", "expected pid id", 11},
        error_case{"ref_6_words", "#Ref<'a@b'.1.1.2.3.4.5.6>", "at most 5 words", 22},
        error_case{"fun_uniq_short", "#Fun<1.00ff.0.'m'.0.0.#Pid<'a@b'.1.2.3>.[]>", "32 hex digits",
                   7},
        error_case{"export_fun_arity", "fun m:f/256", "fun arity out of range", 8},
        error_case{"export_fun_no_slash", "fun m:f", "expected '/'", 7},
        error_case{"invalid_utf8", "'\xff'", "invalid UTF-8", 1},
        error_case{"invalid_utf8_term", "\xc3", "invalid UTF-8", 0},
        error_case{"atom_256_chars", "'" + std::string(256, 'a') + "'", "invalid atom", 0},
        error_case{"char_beyond_unicode", "\"\\x{110000}\"", "beyond U+10FFFF", 1},
        error_case{"bad_hex_escape", "\"\\xg\"", "two hex digits", 1},
        error_case{"unknown_notation", "#Foo<1>", "expected a term, found '#'", 0},
        error_case{"erlang_pid_text", "<0.85.0>", "expected a term, found '<'", 0},
        error_case{"erlang_ref_text", "#Ref<0.1.2.3>", "expected an atom, found '0'", 5},
        error_case{"erlang_fun_text", "#Fun<m.0.123>", "expected fun arity", 5},
        error_case{"control_character", "\x01", "found '\\x{1}'", 0}),
    case_name<error_case>);

// --- limits -------------------------------------------------------------------------------------

[[nodiscard]] std::string nested_tuples(std::size_t depth) {
    return std::string(depth, '{') + "leaf" + std::string(depth, '}');
}

TEST(TermTextTest, shouldFailWithTheOffsetOfTheTooDeepTermWhenNestingPassesTheLimit) {
    EXPECT_TRUE(parse(nested_tuples(10), {.max_depth = 10}));
    const auto result = parse(nested_tuples(11), {.max_depth = 10});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "term nested deeper than the limit");
    EXPECT_EQ(result.error().offset, 11u) << "the leaf, at depth 11";
}

TEST(TermTextTest, shouldAcceptWhatTheDecoderAcceptsWhenNestingIsAtTheDefaultLimit) {
    const auto at_limit = parse(nested_tuples(1000));
    ASSERT_TRUE(at_limit) << at_limit.error().describe();
    EXPECT_FALSE(parse(nested_tuples(1001)));
    EXPECT_FALSE(parse("[" + nested_tuples(1000) + "]"));
    EXPECT_FALSE(parse("#{k => " + nested_tuples(1000) + "}"));
}

TEST(TermTextTest, shouldNotExhaustTheStackWhenNestingIsHostile) {
    const auto result = parse(std::string(1'000'000, '['));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "term nested deeper than the limit");
    EXPECT_EQ(result.error().offset, 1001u);
}

TEST(TermTextTest, shouldCountFreeVariablesOneLevelDownWhenNestingIsInAFun) {
    const std::string fun_prefix =
        "#Fun<0.00000000000000000000000000000000.0.m.0.0.#Pid<a.0.0.0>.[";
    EXPECT_TRUE(parse(fun_prefix + "{{x}}]>", {.max_depth = 3}));
    EXPECT_FALSE(parse(fun_prefix + "{{{x}}}]>", {.max_depth = 3}));
}

TEST(TermTextTest, shouldFailWhenABignumPassesTheLimit) {
    const std::string digits(2000, '9');  // about 831 bytes
    EXPECT_TRUE(parse(digits, {.max_bignum_bytes = 1024}));
    const auto result = parse("[" + digits + "9" + digits + "]", {.max_bignum_bytes = 1024});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "integer larger than the limit");
    EXPECT_EQ(result.error().offset, 1u);
}

TEST(TermTextTest, shouldParseTheLargestBignumQuicklyWhenItHasTheDefaultLimitOfDigits) {
    // 10^157826 - 1 is the largest run of nines in 65536 bytes; the chunked conversions (nine
    // digits per pass over the limbs) keep this at a fraction of a second.
    const std::string digits(157'827, '9');
    const auto result = parse(digits);
    ASSERT_FALSE(result) << "10^157827 - 1 needs 65537 bytes";
    const auto fits = parse(digits.substr(1));
    ASSERT_TRUE(fits) << fits.error().describe();
    ASSERT_TRUE(fits->is<big_integer>());
    EXPECT_EQ(fits->get_if<big_integer>()->magnitude.size(), 65536u);
    EXPECT_EQ(to_erlang_text(*fits), digits.substr(1));
}

TEST(TermTextTest, shouldFailWhenBinariesTogetherPassTheLimit) {
    EXPECT_TRUE(parse("{<<1,2>>,<<3:12>>}", {.max_binary_bytes = 4}));
    const auto result = parse("{<<1,2>>,<<3,\"ab\">>}", {.max_binary_bytes = 4});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "binaries larger than the limit");
    EXPECT_EQ(result.error().offset, 13u) << "the string segment";
}

TEST(TermTextTest, shouldFillWideSegmentsWithTheSignWhenTheSizePassesSixtyFourBits) {
    const auto wide = parse("<<-2:100,1:4>>");  // 96 one bits, 1110, then 0001
    ASSERT_TRUE(wide) << wide.error().describe();
    std::vector<std::uint8_t> expected(12, 0xFF);
    expected.push_back(0xE1);
    EXPECT_EQ(*wide, term(bin(expected)));
    const auto big_zero = parse("<<0:8000000>>");
    ASSERT_TRUE(big_zero);
    ASSERT_TRUE(big_zero->is<binary>());
    EXPECT_EQ(big_zero->get_if<binary>()->size(), 1'000'000u);
}

TEST(TermTextTest, shouldFailWhenTheTextCreatesMoreAtomsThanTheLimit) {
    atom_table atoms;
    (void)atoms("known");
    text_limits limits{.max_new_atoms = 2};
    EXPECT_TRUE(parse_erlang_text("{known,new1,new2,known}", atoms, limits));
    atom_table fresh;
    const auto result = parse_erlang_text("{x1,x2,'x3'}", fresh, limits);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "text creates more new atoms than the limit");
    EXPECT_EQ(result.error().offset, 7u);
    EXPECT_EQ(fresh.size(), 2u);
}

}  // namespace
}  // namespace vdist::dist
