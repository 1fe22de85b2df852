// Unit tests of etf_reader (etf_reader.hpp): every read on valid input (each encoding it
// accepts), on truncated and on malformed input with the error and offset the decoder gives,
// and the position left unchanged by a failed read; the limits; and agreement with
// etf_decoder on every golden vector OTP made (walked with skip_term, read with read_term), on
// every prefix of the small ones and on every single-byte corruption of them.

#include "vdist/dist/etf_reader.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "vdist/dist/etf.hpp"
#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_encoder.hpp"
#include "vdist/dist/term.hpp"
#include "vdist/test/bytes.hpp"

namespace vdist::dist {
namespace {

using test::bytes;
using test::concat;
using test::text;
using test::wire;

[[nodiscard]] bytes repeated(std::size_t n, int value) {
    return bytes(n, static_cast<std::byte>(value));
}

// Node atom 'n@h' as SMALL_ATOM_UTF8_EXT (5 bytes).
const bytes node = wire({119, 3, 'n', '@', 'h'});

class EtfReaderTest : public ::testing::Test {
  protected:
    [[nodiscard]] atom a(std::string_view name) { return atoms(name); }

    atom_table atoms;
};

// --- every read's failures, table-driven
// ----------------------------------------------------------

enum class read_kind {
    version,
    peek,
    tuple,
    list,
    string,
    map,
    integer,
    floating,
    atom_text,
    atom,
    binary,
    bitstring,
    pid_text,
    pid,
    port,
    reference,
    skip,
    term,
};

// One read of `kind`, its value dropped.
[[nodiscard]] decode_result<void> run(read_kind kind, etf_reader& in, atom_table& atoms) {
    const auto drop = [](const auto& result) -> decode_result<void> {
        if (!result) {
            return std::unexpected(result.error());
        }
        return {};
    };
    switch (kind) {
        case read_kind::version:
            return in.read_version();
        case read_kind::peek:
            return drop(in.peek_tag());
        case read_kind::tuple:
            return drop(in.read_tuple_header());
        case read_kind::list:
            return drop(in.read_list_header());
        case read_kind::string:
            return drop(in.read_string());
        case read_kind::map:
            return drop(in.read_map_header());
        case read_kind::integer:
            return drop(in.read_integer());
        case read_kind::floating:
            return drop(in.read_double());
        case read_kind::atom_text:
            return drop(in.read_atom_text());
        case read_kind::atom:
            return drop(in.read_atom(atoms));
        case read_kind::binary:
            return drop(in.read_binary());
        case read_kind::bitstring:
            return drop(in.read_bitstring());
        case read_kind::pid_text:
            return drop(in.read_pid());
        case read_kind::pid:
            return drop(in.read_pid(atoms));
        case read_kind::port:
            return drop(in.read_port(atoms));
        case read_kind::reference:
            return drop(in.read_reference(atoms));
        case read_kind::skip:
            return in.skip_term();
        case read_kind::term:
            return drop(in.read_term(atoms));
    }
    return {};
}

struct failure_case {
    const char* name;
    read_kind kind;
    bytes input;  // no version byte, except for read_kind::version
    decode_error expected;
    // Whether decode() fails the same way: not for a read of the wrong type (the decoder
    // takes any) nor an integer beyond int64 (a big_integer).
    bool decoder_agrees = true;
};

/// `input` fails `kind` with `code` at `offset`, as decode() does.
[[nodiscard]] failure_case fails(const char* name, read_kind kind, bytes input, etf_errc code,
                                 std::size_t offset) {
    return {name, kind, std::move(input), {code, offset}, true};
}
/// `input` fails `kind` with `code` at `offset`, where decode() succeeds.
[[nodiscard]] failure_case refuses(const char* name, read_kind kind, bytes input, etf_errc code,
                                   std::size_t offset) {
    return {name, kind, std::move(input), {code, offset}, false};
}

void PrintTo(const failure_case& c, std::ostream* out) {
    *out << c.name;
}

class EtfReaderFailureTest : public EtfReaderTest,
                             public ::testing::WithParamInterface<failure_case> {};

TEST_P(EtfReaderFailureTest, shouldFailWithTheDecodersErrorAndKeepItsPositionWhenMalformed) {
    const auto& c = GetParam();
    etf_reader in(c.input);
    const auto result = run(c.kind, in, atoms);
    ASSERT_FALSE(result) << "read succeeded";
    EXPECT_EQ(result.error(), c.expected) << result.error().message();
    EXPECT_EQ(in.position(), 0u) << "a failed read moved the position";
}

// decode() of the same term (after a version byte, so one byte further) fails the same way, or,
// for a read of another type, succeeds.
TEST_P(EtfReaderFailureTest, shouldMatchTheDecoderWhenTheInputIsOneTerm) {
    const auto& c = GetParam();
    const bool has_version = c.kind == read_kind::version;
    const auto decoded =
        etf_decoder(atoms).decode(has_version ? c.input : concat(wire({131}), c.input));
    if (!c.decoder_agrees) {
        EXPECT_TRUE(decoded) << decoded.error().message();
        return;
    }
    ASSERT_FALSE(decoded);
    EXPECT_EQ(decoded.error(),
              (decode_error{c.expected.code, c.expected.offset + (has_version ? 0 : 1)}))
        << decoded.error().message();
}

// 256 'a's: an atom of one character too many.
const bytes a256 = repeated(256, 'a');
const bytes float_garbage = concat(text("one and a half"), bytes(17));

INSTANTIATE_TEST_SUITE_P(
    Reads, EtfReaderFailureTest,
    ::testing::Values(
        fails("version_empty", read_kind::version, {}, etf_errc::truncated, 0),
        fails("version_wrong", read_kind::version, wire({130}), etf_errc::bad_version, 0),
        fails("peek_empty", read_kind::peek, {}, etf_errc::truncated, 0),
        fails("tuple_empty", read_kind::tuple, {}, etf_errc::truncated, 0),
        fails("tuple_no_arity", read_kind::tuple, wire({104}), etf_errc::truncated, 1),
        fails("large_tuple_short_arity", read_kind::tuple, wire({105, 0, 0, 0}),
              etf_errc::truncated, 4),
        fails("tuple_more_elements_than_bytes", read_kind::tuple, wire({104, 3, 97, 1}),
              etf_errc::truncated, 0),
        fails("large_tuple_more_elements_than_bytes", read_kind::tuple,
              wire({105, 0, 0, 0, 2, 106}), etf_errc::truncated, 0),
        refuses("tuple_of_an_integer", read_kind::tuple, wire({97, 1}), etf_errc::invalid_field, 0),
        fails("tuple_unknown_tag", read_kind::tuple, wire({255}), etf_errc::unknown_tag, 0),
        fails("list_short_length", read_kind::list, wire({108, 0, 0, 0}), etf_errc::truncated, 4),
        fails("list_more_elements_than_bytes", read_kind::list, wire({108, 0, 0, 0, 2, 106}),
              etf_errc::truncated, 0),
        refuses("list_of_a_string_ext", read_kind::list, wire({107, 0, 1, 'a'}),
                etf_errc::invalid_field, 0),
        fails("string_short_length", read_kind::string, wire({107, 0}), etf_errc::truncated, 2),
        fails("string_short_bytes", read_kind::string, wire({107, 0, 3, 'a'}), etf_errc::truncated,
              4),
        refuses("string_of_a_list_ext", read_kind::string, wire({108, 0, 0, 0, 0, 106}),
                etf_errc::invalid_field, 0),
        fails("map_short_arity", read_kind::map, wire({116, 0, 0}), etf_errc::truncated, 3),
        fails("map_more_pairs_than_bytes", read_kind::map,
              wire({116, 0, 0, 0, 3, 97, 1, 97, 2, 97}), etf_errc::truncated, 0),
        refuses("map_of_a_tuple", read_kind::map, wire({104, 0}), etf_errc::invalid_field, 0),
        fails("small_integer_cut", read_kind::integer, wire({97}), etf_errc::truncated, 1),
        fails("integer_cut", read_kind::integer, wire({98, 0, 0}), etf_errc::truncated, 3),
        fails("small_big_no_digits", read_kind::integer, wire({110}), etf_errc::truncated, 1),
        fails("small_big_cut", read_kind::integer, wire({110, 1, 0}), etf_errc::truncated, 3),
        fails("small_big_bad_sign", read_kind::integer, wire({110, 1, 2, 5}),
              etf_errc::invalid_field, 0),
        refuses("small_big_two_to_64", read_kind::integer,
                wire({110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), etf_errc::integer_out_of_range, 0),
        refuses("small_big_two_to_63", read_kind::integer,
                wire({110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}), etf_errc::integer_out_of_range, 0),
        fails("large_big_over_the_limit", read_kind::integer,
              wire({111, 0x7f, 0xff, 0xff, 0xff, 0}), etf_errc::bignum_too_large, 0),
        refuses("integer_of_an_atom", read_kind::integer, wire({119, 1, 'a'}),
                etf_errc::invalid_field, 0),
        fails("float_nan", read_kind::floating, wire({70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}),
              etf_errc::invalid_float, 0),
        fails("float_infinity", read_kind::floating, wire({70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}),
              etf_errc::invalid_float, 0),
        fails("float_cut", read_kind::floating, wire({70, 0, 0}), etf_errc::truncated, 3),
        fails("float_ext_garbage", read_kind::floating, concat(wire({99}), float_garbage),
              etf_errc::invalid_float, 0),
        fails("float_ext_cut", read_kind::floating, wire({99, '1'}), etf_errc::truncated, 2),
        refuses("float_of_an_integer", read_kind::floating, wire({97, 1}), etf_errc::invalid_field,
                0),
        fails("atom_broken_utf8", read_kind::atom_text, wire({119, 2, 0xce, 'x'}),
              etf_errc::invalid_atom, 0),
        fails("atom_overlong_utf8", read_kind::atom_text, wire({119, 2, 0xc0, 0xaf}),
              etf_errc::invalid_atom, 0),
        fails("atom_utf8_256_characters", read_kind::atom_text, concat(wire({118, 1, 0}), a256),
              etf_errc::invalid_atom, 0),
        fails("atom_latin1_256_characters", read_kind::atom_text, concat(wire({100, 1, 0}), a256),
              etf_errc::invalid_atom, 0),
        fails("atom_latin1_cut", read_kind::atom_text, wire({115, 3, 'a'}), etf_errc::truncated, 3),
        fails("atom_no_length", read_kind::atom_text, wire({119}), etf_errc::truncated, 1),
        fails("atom_cache_ref_without_cache", read_kind::atom_text, wire({82, 0}),
              etf_errc::atom_cache_miss, 0),
        fails("atom_cache_ref_cut", read_kind::atom_text, wire({82}), etf_errc::truncated, 1),
        refuses("atom_text_of_an_integer", read_kind::atom_text, wire({97, 1}),
                etf_errc::invalid_field, 0),
        fails("interned_atom_broken_utf8", read_kind::atom, wire({119, 2, 0xce, 'x'}),
              etf_errc::invalid_atom, 0),
        refuses("interned_atom_of_a_binary", read_kind::atom, wire({109, 0, 0, 0, 0}),
                etf_errc::invalid_field, 0),
        fails("binary_cut", read_kind::binary, wire({109, 0, 0, 0, 4, 1}), etf_errc::truncated, 6),
        fails("binary_short_length", read_kind::binary, wire({109, 0, 0}), etf_errc::truncated, 3),
        refuses("binary_of_a_bitstring", read_kind::binary, wire({77, 0, 0, 0, 1, 3, 0xe0}),
                etf_errc::invalid_field, 0),
        fails("binary_bits_9", read_kind::binary, wire({77, 0, 0, 0, 1, 9, 0xff}),
              etf_errc::invalid_length, 0),
        refuses("binary_of_a_string", read_kind::binary, wire({107, 0, 1, 1}),
                etf_errc::invalid_field, 0),
        fails("bitstring_cut", read_kind::bitstring, wire({77, 0, 0, 0, 2, 3, 0xff}),
              etf_errc::truncated, 7),
        fails("bitstring_empty_with_bits", read_kind::bitstring, wire({77, 0, 0, 0, 0, 1}),
              etf_errc::invalid_length, 0),
        fails("bitstring_bits_0", read_kind::bitstring, wire({77, 0, 0, 0, 1, 0, 0}),
              etf_errc::invalid_length, 0),
        fails("pid_node_not_an_atom", read_kind::pid_text, concat(wire({88, 97, 1}), bytes(12)),
              etf_errc::invalid_field, 1),
        fails("pid_numbers_cut", read_kind::pid_text, concat(concat(wire({88}), node), bytes(11)),
              etf_errc::truncated, 17),
        fails("pid_ext_creation_4", read_kind::pid_text,
              concat(concat(wire({103}), node), wire({0, 0, 0, 1, 0, 0, 0, 0, 4})),
              etf_errc::invalid_field, 14),
        refuses("pid_of_a_port", read_kind::pid_text, concat(concat(wire({89}), node), bytes(8)),
                etf_errc::invalid_field, 0),
        fails("pid_no_node", read_kind::pid_text, wire({88}), etf_errc::truncated, 1),
        fails("pid_node_broken_utf8", read_kind::pid_text,
              concat(wire({88, 119, 1, 0xff}), bytes(12)), etf_errc::invalid_atom, 1),
        fails("interned_pid_node_not_an_atom", read_kind::pid, concat(wire({88, 106}), bytes(12)),
              etf_errc::invalid_field, 1),
        fails("interned_pid_ext_creation_4", read_kind::pid,
              concat(concat(wire({103}), node), wire({0, 0, 0, 1, 0, 0, 0, 0, 4})),
              etf_errc::invalid_field, 14),
        fails("port_node_a_string", read_kind::port, concat(wire({89, 107, 0, 0}), bytes(8)),
              etf_errc::invalid_field, 1),
        fails("v4_port_cut", read_kind::port, concat(concat(wire({120}), node), bytes(11)),
              etf_errc::truncated, 17),
        fails("port_ext_creation_7", read_kind::port,
              concat(concat(wire({102}), node), wire({0, 0, 0, 1, 7})), etf_errc::invalid_field,
              10),
        refuses("port_of_a_pid", read_kind::port, concat(concat(wire({88}), node), bytes(12)),
                etf_errc::invalid_field, 0),
        fails("reference_6_words", read_kind::reference,
              concat(concat(wire({90, 0, 6}), node), bytes(28)), etf_errc::invalid_length, 0),
        fails("new_reference_6_words", read_kind::reference,
              concat(concat(wire({114, 0, 6}), node), bytes(25)), etf_errc::invalid_length, 0),
        fails("reference_ext_node_an_integer", read_kind::reference,
              concat(wire({101, 97, 0}), bytes(5)), etf_errc::invalid_field, 1),
        fails("reference_words_cut", read_kind::reference,
              concat(concat(wire({90, 0, 3}), node), bytes(15)), etf_errc::truncated, 23),
        fails("new_reference_creation_9", read_kind::reference,
              concat(concat(wire({114, 0, 1}), node), wire({9, 0, 0, 0, 1})),
              etf_errc::invalid_field, 0),
        fails("reference_no_length", read_kind::reference, wire({90}), etf_errc::truncated, 1),
        fails("skip_unknown_tag", read_kind::skip, wire({255}), etf_errc::unknown_tag, 0),
        fails("skip_local_ext", read_kind::skip, wire({121, 0}), etf_errc::unknown_tag, 0),
        fails("skip_unknown_tag_inside", read_kind::skip, wire({108, 0, 0, 0, 1, 97, 1, 255}),
              etf_errc::unknown_tag, 7),
        fails("skip_tuple_too_long", read_kind::skip, wire({104, 2, 97, 1}), etf_errc::truncated,
              4),
        fails("skip_inner_tuple_too_long", read_kind::skip, wire({104, 1, 104, 1}),
              etf_errc::truncated, 2),
        fails("skip_missing_element", read_kind::skip, wire({104, 3, 97, 1, 106}),
              etf_errc::truncated, 5),
        fails("skip_export_arity_not_small", read_kind::skip,
              wire({113, 119, 1, 'm', 119, 1, 'f', 98, 0, 0, 0, 2}), etf_errc::invalid_field, 7),
        fails("skip_nan_inside", read_kind::skip, wire({104, 1, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}),
              etf_errc::invalid_float, 2),
        fails("skip_bad_atom_inside", read_kind::skip,
              wire({116, 0, 0, 0, 1, 119, 2, 0xce, 'x', 106}), etf_errc::invalid_atom, 5),
        fails("skip_bad_pid_inside", read_kind::skip,
              concat(wire({108, 0, 0, 0, 1, 88, 97, 1}), bytes(13)), etf_errc::invalid_field, 6),
        fails("skip_bits_9", read_kind::skip, wire({77, 0, 0, 0, 1, 9, 0xff}),
              etf_errc::invalid_length, 0),
        fails("skip_big_bad_sign", read_kind::skip, wire({110, 1, 2, 5}), etf_errc::invalid_field,
              0),
        fails("skip_reference_6_words", read_kind::skip,
              concat(concat(wire({90, 0, 6}), node), bytes(28)), etf_errc::invalid_length, 0),
        fails("skip_port_ext_creation_7", read_kind::skip,
              concat(concat(wire({102}), node), wire({0, 0, 0, 1, 7})), etf_errc::invalid_field,
              10),
        fails("skip_string_cut", read_kind::skip, wire({107, 0, 4, 'a'}), etf_errc::truncated, 4),
        fails("term_unknown_tag_inside", read_kind::term, wire({108, 0, 0, 0, 1, 97, 1, 255}),
              etf_errc::unknown_tag, 7),
        fails("term_duplicate_map_key", read_kind::term,
              wire({116, 0, 0, 0, 2, 97, 1, 97, 2, 97, 1, 97, 3}), etf_errc::duplicate_map_key, 0)),
    [](const auto& tested) { return std::string(tested.param.name); });

// --- every read's values
// --------------------------------------------------------------------------

TEST_F(EtfReaderTest, shouldReadTheVersionAndPeekWithoutConsumingWhenGivenAnExternalTerm) {
    const bytes input = wire({131, 97, 7});
    etf_reader in(input);
    ASSERT_TRUE(in.read_version());
    EXPECT_EQ(in.position(), 1u);
    EXPECT_EQ(in.peek_tag(), std::uint8_t{etf::SMALL_INTEGER_EXT});
    EXPECT_EQ(in.position(), 1u);
    EXPECT_EQ(in.read_integer(), 7);
    EXPECT_TRUE(in.at_end());
    EXPECT_EQ(in.remaining(), 0u);
    EXPECT_EQ(in.peek_tag().error(), (decode_error{etf_errc::truncated, 3}));
}

TEST_F(EtfReaderTest, shouldReadTupleHeadersWhenSmallOrLarge) {
    const bytes input = wire({104, 2, 105, 0, 0, 0, 1, 106, 104, 0});
    etf_reader in(input);
    EXPECT_EQ(in.read_tuple_header(), 2u);
    EXPECT_EQ(in.read_tuple_header(), 1u);
    EXPECT_EQ(in.read_list_header(), 0u);  // the large tuple's element: []
    EXPECT_EQ(in.read_tuple_header(), 0u);
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldReadListsAndStringsWhenEachEncodingComes) {
    // [1, 2 | []], "ab", [], [x | y]
    const bytes input = wire({108, 0,   0,   0, 2, 97, 1, 97,  2, 106, 107, 0, 2,  'a',
                              'b', 106, 108, 0, 0, 0,  1, 119, 1, 'x', 119, 1, 'y'});
    etf_reader in(input);
    EXPECT_EQ(in.read_list_header(), 2u);
    EXPECT_EQ(in.read_integer(), 1);
    EXPECT_EQ(in.read_integer(), 2);
    EXPECT_EQ(in.read_list_header(), 0u);
    EXPECT_EQ(in.peek_tag(), std::uint8_t{etf::STRING_EXT});
    const auto string = in.read_string();
    ASSERT_TRUE(string);
    EXPECT_EQ(std::string(string->begin(), string->end()), "ab");
    const auto empty = in.read_string();
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
    EXPECT_EQ(in.read_list_header(), 1u);
    EXPECT_EQ(in.read_atom_text(), "x");
    EXPECT_EQ(in.read_atom_text(), "y");  // the improper tail
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldReadAMapHeaderWhenPairsFollow) {
    const bytes input = wire({116, 0, 0, 0, 2, 119, 1, 'a', 97, 1, 119, 1, 'b', 97, 2});
    etf_reader in(input);
    EXPECT_EQ(in.read_map_header(), 2u);
    EXPECT_EQ(in.read_atom_text(), "a");
    EXPECT_EQ(in.read_integer(), 1);
    EXPECT_EQ(in.read_atom_text(), "b");
    EXPECT_EQ(in.read_integer(), 2);
    EXPECT_TRUE(in.at_end());
}

// Integers at every boundary of every encoding, including non-minimal ones.
class EtfReaderIntegerTest : public EtfReaderTest,
                             public ::testing::WithParamInterface<std::pair<bytes, std::int64_t>> {
};

TEST_P(EtfReaderIntegerTest, shouldReadTheValueWhenItFitsInt64) {
    const auto& [input, value] = GetParam();
    etf_reader in(input);
    EXPECT_EQ(in.read_integer(), value);
    EXPECT_TRUE(in.at_end());
}

INSTANTIATE_TEST_SUITE_P(
    Boundaries, EtfReaderIntegerTest,
    ::testing::Values(
        std::pair{wire({97, 0}), std::int64_t{0}}, std::pair{wire({97, 255}), std::int64_t{255}},
        std::pair{wire({98, 0, 0, 1, 0}), std::int64_t{256}},
        std::pair{wire({98, 0xff, 0xff, 0xff, 0xff}), std::int64_t{-1}},
        std::pair{wire({98, 0x7f, 0xff, 0xff, 0xff}), std::int64_t{INT32_MAX}},
        std::pair{wire({98, 0x80, 0, 0, 0}), std::int64_t{INT32_MIN}},
        std::pair{wire({98, 0, 0, 0, 5}), std::int64_t{5}},  // not minimal
        std::pair{wire({110, 4, 0, 0, 0, 0, 0x80}), std::int64_t{INT32_MAX} + 1},
        std::pair{wire({110, 4, 1, 1, 0, 0, 0x80}), std::int64_t{INT32_MIN} - 1},
        std::pair{wire({110, 8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}), INT64_MAX},
        std::pair{wire({110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0x80}), INT64_MIN},
        std::pair{wire({110, 9, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0}), std::int64_t{7}},  // zero digits
        std::pair{wire({110, 0, 0}), std::int64_t{0}},
        std::pair{wire({111, 0, 0, 0, 1, 1, 9}), std::int64_t{-9}}));

TEST_F(EtfReaderTest, shouldReadFloatsWhenNewOrOld) {
    const bytes input = concat(wire({70, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 99}),
                               concat(text("-2.50000000000000000000e+00"), bytes(4)));
    etf_reader in(input);
    EXPECT_EQ(in.read_double(), 1.5);
    EXPECT_EQ(in.read_double(), -2.5);
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldGiveUtf8TextWhenReadingAtomsOfEveryEncoding) {
    const std::vector<atom> cache{a("cached")};
    const bytes input = wire({119, 3, 0xce, 0xbb, 'x',  // 'λx'
                              118, 0, 2,    'o',  'k',  // ATOM_UTF8_EXT
                              115, 2, 'h',  0xe9,       // Latin-1 'hé'
                              100, 0, 1,    0xff,       // Latin-1 'ÿ'
                              82,  0, 119,  0});        // cache ref, ''
    etf_reader in(input, {}, cache);
    EXPECT_EQ(in.read_atom_text(), "λx");
    EXPECT_EQ(in.read_atom_text(), "ok");
    EXPECT_EQ(in.read_atom_text(), "h\xc3\xa9");
    EXPECT_EQ(in.read_atom_text(), "\xc3\xbf");
    EXPECT_EQ(in.read_atom_text(), "cached");
    EXPECT_EQ(in.read_atom_text(), "");
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldAcceptTheLongestAtomWhenItHas255Characters) {
    const bytes ascii = concat(wire({118, 0, 255}), repeated(255, 'a'));
    etf_reader ascii_in(ascii);
    EXPECT_EQ(ascii_in.read_atom_text(), std::string(255, 'a'));
    bytes lambdas = wire({118, 1, 254});  // 255 'λ': 510 bytes
    for (int i = 0; i < 255; ++i) {
        lambdas = concat(lambdas, wire({0xce, 0xbb}));
    }
    etf_reader lambdas_in(lambdas);
    const auto name = lambdas_in.read_atom_text();
    ASSERT_TRUE(name) << name.error().message();
    EXPECT_EQ(name->size(), 510u);
    const bytes latin1 = concat(wire({100, 0, 255}), repeated(255, 0xe9));
    etf_reader latin1_in(latin1);
    const auto converted = latin1_in.read_atom_text();
    ASSERT_TRUE(converted) << converted.error().message();
    EXPECT_EQ(converted->size(), 510u);
}

// The inline check reads names in overlapping words: a non-ASCII byte must be seen at every
// position of names of every length around the word sizes.
TEST_F(EtfReaderTest, shouldCheckEveryByteOfANameWhenItsLengthIsAroundAWord) {
    for (std::size_t length = 1; length <= 40; ++length) {
        for (std::size_t bad = 0; bad < length; ++bad) {
            bytes input = concat(wire({119, static_cast<int>(length)}), repeated(length, 'a'));
            input[2 + bad] = std::byte{0xff};  // never valid in UTF-8
            etf_reader in(input);
            const auto name = in.read_atom_text();
            ASSERT_FALSE(name) << "length " << length << ", 0xff at " << bad;
            EXPECT_EQ(name.error(), (decode_error{etf_errc::invalid_atom, 0}));
        }
        const bytes ascii = concat(wire({119, static_cast<int>(length)}), repeated(length, 'z'));
        etf_reader in(ascii);
        EXPECT_EQ(in.read_atom_text(), std::string(length, 'z'));
    }
}

TEST_F(EtfReaderTest, shouldKeepALatin1NameUntilTheNextLatin1AtomWhenConverting) {
    const bytes input = wire({115, 1, 0xe9, 119, 1, 'b', 115, 1, 0xe8});
    etf_reader in(input);
    const auto first = in.read_atom_text();
    ASSERT_TRUE(first);
    EXPECT_EQ(in.read_atom_text(), "b");  // a UTF-8 atom leaves the buffer alone
    EXPECT_EQ(*first, "\xc3\xa9");
    EXPECT_EQ(in.read_atom_text(), "\xc3\xa8");
}

TEST_F(EtfReaderTest, shouldInternAndCountNewAtomsWhenReadingAtoms) {
    const atom known = a("known");
    const std::vector<atom> cache{a("cached")};
    const bytes input = wire({119, 5,   'k', 'n', 'o', 'w', 'n', 119, 3,   'n', 'e', 'w', 82,
                              0,   119, 3,   'n', 'e', 'w', 119, 4,   'n', 'e', 'w', '2'});
    decode_limits limits;
    limits.max_new_atoms = 1;
    etf_reader in(input, limits, cache);
    EXPECT_EQ(in.read_atom(atoms), known);
    EXPECT_EQ(in.new_atoms(), 0u);
    const std::size_t before = atoms.size();
    const auto made = in.read_atom(atoms);
    ASSERT_TRUE(made);
    EXPECT_EQ(made->text(), "new");
    EXPECT_EQ(atoms.size(), before + 1);
    EXPECT_EQ(in.new_atoms(), 1u);
    EXPECT_EQ(in.read_atom(atoms), cache[0]);
    EXPECT_EQ(in.read_atom(atoms), *made);  // interned now: not new
    const std::size_t at = in.position();
    EXPECT_EQ(in.read_atom(atoms).error(), (decode_error{etf_errc::too_many_new_atoms, at}));
    EXPECT_EQ(in.position(), at);
    EXPECT_FALSE(atoms.find("new2"));
}

TEST_F(EtfReaderTest, shouldFailWithAtomTableFullWhenTheTableIsAtCapacity) {
    atom_table tiny(1);
    const bytes input = wire({119, 1, 'x', 119, 1, 'y'});
    etf_reader in(input);
    ASSERT_TRUE(in.read_atom(tiny));
    EXPECT_EQ(in.read_atom(tiny).error(), (decode_error{etf_errc::atom_table_full, 3}));
}

TEST_F(EtfReaderTest, shouldViewTheInputWhenReadingBinaries) {
    const bytes input = wire({109, 0,  0, 0, 3, 1, 2, 3,    77,   0,   0, 0, 1, 8,
                              9,   77, 0, 0, 0, 2, 3, 0xff, 0xff, 109, 0, 0, 0, 0});
    etf_reader in(input);
    const auto whole = in.read_binary();
    ASSERT_TRUE(whole);
    EXPECT_EQ(whole->data(), input.data() + 5) << "a view, not a copy";
    EXPECT_EQ(whole->size(), 3u);
    const auto eight_bits = in.read_binary();  // BIT_BINARY_EXT of whole bytes
    ASSERT_TRUE(eight_bits);
    EXPECT_EQ(eight_bits->size(), 1u);
    const std::size_t bits_at = in.position();
    EXPECT_EQ(in.read_binary().error(), (decode_error{etf_errc::invalid_field, bits_at}));
    const auto bits = in.read_bitstring();
    ASSERT_TRUE(bits);
    EXPECT_EQ(bits->bytes.size(), 2u);
    EXPECT_EQ(bits->last_bits, 3);
    const auto empty = in.read_bitstring();
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->bytes.empty());
    EXPECT_EQ(empty->last_bits, 8);
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldReadPidsWhenNewOrOldWithTheirNodeAsTextOrInterned) {
    const atom n_at_h = a("n@h");
    const bytes input = concat(
        concat(concat(concat(wire({88}), node), wire({0, 0, 0, 85, 0, 0, 0, 1, 0, 0, 0, 9, 103})),
               wire({115, 2, 'n', 0xe9})),  // Latin-1 node 'né'
        wire({0, 0, 0, 85, 0, 0, 0, 1, 3}));
    etf_reader in(input);
    const auto first = in.read_pid();
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->node, "n@h");
    EXPECT_EQ(first->id, 85u);
    EXPECT_EQ(first->serial, 1u);
    EXPECT_EQ(first->creation, 9u);
    const auto old = in.read_pid();
    ASSERT_TRUE(old) << old.error().message();
    EXPECT_EQ(old->node, "n\xc3\xa9");
    EXPECT_EQ(old->creation, 3u);
    EXPECT_TRUE(in.at_end());

    etf_reader interned(input);
    const auto new_pid = interned.read_pid(atoms);
    const auto old_pid = interned.read_pid(atoms);
    EXPECT_EQ(interned.new_atoms(), 1u) << "only 'né' is new";
    EXPECT_EQ(new_pid, (pid{n_at_h, 85, 1, 9}));
    EXPECT_EQ(old_pid, (pid{a("n\xc3\xa9"), 85, 1, 3}));
}

TEST_F(EtfReaderTest, shouldReadPortsWhenNewV4OrOld) {
    const bytes input = concat(
        concat(concat(concat(concat(wire({89}), node), wire({0, 0, 0, 7, 0, 0, 0, 2, 120})), node),
               wire({0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 102})),
        concat(node, wire({0, 0, 0, 4, 1})));
    etf_reader in(input);
    EXPECT_EQ(in.read_port(atoms), (port{a("n@h"), 7, 2}));
    EXPECT_EQ(in.read_port(atoms), (port{a("n@h"), std::uint64_t{1} << 32, 3}));
    EXPECT_EQ(in.read_port(atoms), (port{a("n@h"), 4, 1}));
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldReadReferencesWithoutAllocatingWhenNewerNewOrOld) {
    const bytes input =
        concat(concat(concat(concat(concat(wire({90, 0, 3}), node),
                                    wire({0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3})),
                             concat(wire({114, 0, 2}), node)),
                      concat(wire({2, 0, 0, 0, 8, 0, 0, 0, 9, 101}), node)),
               wire({0, 0, 0, 6, 1}));
    etf_reader in(input);
    const auto newer = in.read_reference(atoms);
    ASSERT_TRUE(newer) << newer.error().message();
    EXPECT_EQ(newer->to_reference(), (reference{a("n@h"), 5, {1, 2, 3}}));
    const auto middle = in.read_reference(atoms);
    ASSERT_TRUE(middle) << middle.error().message();
    EXPECT_EQ(middle->to_reference(), (reference{a("n@h"), 2, {8, 9}}));
    const auto old = in.read_reference(atoms);
    ASSERT_TRUE(old) << old.error().message();
    EXPECT_EQ(old->to_reference(), (reference{a("n@h"), 1, {6}}));
    EXPECT_EQ(old->words().size(), 1u);
    EXPECT_TRUE(in.at_end());
}

// --- skip_term and read_term
// ----------------------------------------------------------------------

TEST_F(EtfReaderTest, shouldStepOverEachTermWhenSkipping) {
    const pid from{a("n@h"), 85, 0, 3};
    const term parts[] = {
        term(tuple{a("$gen_call"), tuple{from, reference{a("n@h"), 3, {1, 2, 3}}}, a("hi")}),
        term(list{term(1), term(2.5), term(binary(text("bytes")))}),
        term(map(std::vector<std::pair<term, term>>{{term(a("k")), term(list{})}})),
        term(big_integer{false, {1, 2, 3, 4, 5, 6, 7, 8, 9}}),
        term(export_fun{a("m"), a("f"), 2}),
        term(port{a("n@h"), 1, 2}),
        term(bitstring{binary(wire({0xe0})), 3}),
    };
    bytes input;
    {
        etf_writer out(input);
        for (const auto& part : parts) {
            ASSERT_TRUE(out.term(part));
        }
    }
    etf_reader in(input);
    for (const auto& part : parts) {
        const std::size_t start = in.position();
        ASSERT_TRUE(in.skip_term());
        const auto alone = encode(part);
        ASSERT_TRUE(alone);
        EXPECT_EQ(in.position() - start, alone->size() - 1);
    }
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldFailWithTooManyTermsWhenSkippingMoreThanTheLimit) {
    decode_limits limits;
    limits.max_terms = 3;
    const bytes tuple3 = wire({104, 3, 97, 1, 97, 2, 97, 3});
    etf_reader in(tuple3, limits);
    EXPECT_EQ(in.skip_term().error(), (decode_error{etf_errc::too_many_terms, 0}));
    limits.max_terms = 4;
    etf_reader enough(tuple3, limits);
    EXPECT_TRUE(enough.skip_term());
    const bytes string = wire({107, 0, 3, 'a', 'b', 'c'});
    limits.max_terms = 3;
    etf_reader chars(string, limits);
    EXPECT_EQ(chars.skip_term().error(), (decode_error{etf_errc::too_many_terms, 0}));
}

TEST_F(EtfReaderTest, shouldNotExhaustTheStackWhenSkippingDeepNesting) {
    constexpr std::size_t depth = 200'000;  // the decoder refuses this (max_depth)
    bytes input;
    for (std::size_t i = 0; i < depth; ++i) {
        input = concat(std::move(input), wire({108, 0, 0, 0, 1}));
    }
    input.insert(input.end(), depth + 1, std::byte{106});
    etf_reader in(input);
    ASSERT_TRUE(in.skip_term());
    EXPECT_TRUE(in.at_end());
}

TEST_F(EtfReaderTest, shouldDecodeASubTermWholeWhenReadingATerm) {
    const bytes input = wire({104, 3, 97, 6, 108, 0, 0, 0, 1, 119, 1, 'z', 106, 97, 9});
    etf_reader in(input);
    EXPECT_EQ(in.read_tuple_header(), 3u);
    EXPECT_EQ(in.read_integer(), 6);
    const auto rest = in.read_term(atoms);
    ASSERT_TRUE(rest) << rest.error().message();
    EXPECT_EQ(*rest, term(list{term(a("z"))}));
    EXPECT_EQ(in.position(), 13u);
    EXPECT_EQ(in.read_integer(), 9);
}

TEST_F(EtfReaderTest, shouldCountNewAtomsOfASubTermAgainstTheReadersLimit) {
    decode_limits limits;
    limits.max_new_atoms = 2;
    const bytes input = wire({119, 1, 'p', 104, 2, 119, 1, 'q', 119, 1, 'r'});
    etf_reader in(input, limits);
    ASSERT_TRUE(in.read_atom(atoms));
    const auto rest = in.read_term(atoms);
    ASSERT_FALSE(rest);
    EXPECT_EQ(rest.error(), (decode_error{etf_errc::too_many_new_atoms, 8}));
    EXPECT_EQ(in.position(), 3u);
}

TEST_F(EtfReaderTest, shouldShareTheBufferWhenReadingATermWithAnOwner) {
    const auto owner =
        std::make_shared<const bytes>(concat(wire({109, 0, 0, 0, 100}), repeated(100, 1)));
    etf_reader in(*owner);
    const auto read = in.read_term(atoms, owner);
    ASSERT_TRUE(read);
    const auto* shared = read->get_if<binary>();
    ASSERT_NE(shared, nullptr);
    EXPECT_TRUE(shared->shares(owner));
}

// The example of etf_reader.hpp: a REG_SEND control message, as etf_writer builds it.
TEST_F(EtfReaderTest, shouldReadARegSendControlMessageWhenWalkedPieceByPiece) {
    const pid from{a("sender@host"), 81, 3, 1'700'000'003};
    bytes message;
    {
        etf_writer out(message);
        out.tuple_header(4);
        out.integer(6);
        out.pid(from);
        out.atom(atom{});
        out.atom(a("net_kernel"));
        out.version();
        ASSERT_TRUE(out.term(term(tuple{a("hello"), term(42)})));
    }
    etf_reader in(message);
    EXPECT_EQ(in.read_tuple_header(), 4u);
    EXPECT_EQ(in.read_integer(), 6);
    EXPECT_EQ(in.read_pid(atoms), from);
    EXPECT_TRUE(in.skip_term());
    EXPECT_EQ(in.read_atom(atoms), a("net_kernel"));
    ASSERT_TRUE(in.read_version());
    EXPECT_EQ(in.read_term(atoms), term(tuple{a("hello"), term(42)}));
    EXPECT_TRUE(in.at_end());
    EXPECT_EQ(in.new_atoms(), 0u);
}

TEST_F(EtfReaderTest, shouldInflateACompressedTermForAReader) {
    const term big_list(list(std::vector<term>(200, term(a("same")))));
    const auto packed = encode(big_list, {.compression_level = 6});
    ASSERT_TRUE(packed);
    ASSERT_EQ(std::to_integer<int>((*packed)[1]), etf::COMPRESSED);
    etf_reader direct(*packed);
    ASSERT_TRUE(direct.read_version());
    EXPECT_EQ(direct.skip_term().error(), (decode_error{etf_errc::unknown_tag, 1}));
    const auto inflated = inflate_external(*packed);
    ASSERT_TRUE(inflated) << inflated.error().message();
    etf_reader in(*inflated);
    EXPECT_EQ(in.read_term(atoms), big_list);
    EXPECT_TRUE(in.at_end());
    EXPECT_EQ(inflate_external(wire({131, 97, 1})).error(),
              (decode_error{etf_errc::unknown_tag, 1}));
    EXPECT_EQ(inflate_external(wire({130})).error(), (decode_error{etf_errc::bad_version, 0}));
}

// --- agreement with the decoder on OTP's own vectors
// ----------------------------------------------

const std::filesystem::path golden_dir = VDIST_GOLDEN_DIR;

[[nodiscard]] bytes read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    const std::string content{std::istreambuf_iterator<char>(in), {}};
    const auto raw = std::as_bytes(std::span(content));
    return {raw.begin(), raw.end()};
}

// The first word of each line of a manifest.
[[nodiscard]] std::vector<std::string> names(const std::filesystem::path& path) {
    std::vector<std::string> all;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        std::istringstream words(line);
        if (std::string first; words >> first) {
            all.push_back(first);
        }
    }
    return all;
}

[[nodiscard]] bool is_compressed(std::span<const std::byte> external) {
    return external.size() >= 2 && std::to_integer<int>(external[0]) == etf::VERSION_MAGIC &&
           std::to_integer<int>(external[1]) == etf::COMPRESSED;
}

// After the version: one term, nothing after it.
[[nodiscard]] decode_result<void> walk_body(etf_reader& in) {
    if (auto skipped = in.skip_term(); !skipped) {
        return skipped;
    }
    if (!in.at_end()) {
        return std::unexpected(decode_error{etf_errc::trailing_bytes, in.position()});
    }
    return {};
}

// What decode() checks, done with a reader: the version (or inflation), then walk_body.
[[nodiscard]] decode_result<void> walk(std::span<const std::byte> external) {
    if (is_compressed(external)) {
        const auto inflated = inflate_external(external);
        if (!inflated) {
            return std::unexpected(inflated.error());
        }
        etf_reader in(*inflated);
        return walk_body(in);
    }
    etf_reader in(external);
    if (auto version = in.read_version(); !version) {
        return version;
    }
    return walk_body(in);
}

// Errors the walk cannot see: they need the terms (map keys), a stack (nesting) or interning.
[[nodiscard]] bool needs_the_term(etf_errc code) {
    return code == etf_errc::duplicate_map_key || code == etf_errc::depth_exceeded ||
           code == etf_errc::too_many_new_atoms || code == etf_errc::atom_table_full;
}

// The walk agrees with decode(): both succeed, or both fail with the same error at the same
// offset (unless the decoder's error is one the walk cannot see).
void expect_agreement(std::span<const std::byte> external, atom_table& atoms,
                      const std::string& what) {
    const auto decoded = etf_decoder(atoms).decode(external);
    const auto walked = walk(external);
    if (decoded) {
        EXPECT_TRUE(walked) << what << ": " << walked.error().message();
        return;
    }
    if (needs_the_term(decoded.error().code)) {
        return;
    }
    ASSERT_FALSE(walked) << what << ": the decoder says " << decoded.error().message();
    EXPECT_EQ(walked.error(), decoded.error()) << what << ": walk " << walked.error().message()
                                               << ", decoder " << decoded.error().message();
}

class EtfReaderGoldenTest : public EtfReaderTest,
                            public ::testing::WithParamInterface<std::string> {};

TEST_P(EtfReaderGoldenTest, shouldWalkToTheEndAndReadWhatTheDecoderDecodesWhenOtpMadeIt) {
    const auto external = read_file(golden_dir / (GetParam() + ".etf"));
    ASSERT_FALSE(external.empty());
    const auto decoded = etf_decoder(atoms).decode(external);
    ASSERT_TRUE(decoded) << decoded.error().message();
    const auto walked = walk(external);
    EXPECT_TRUE(walked) << walked.error().message();

    bytes inflated;
    std::span<const std::byte> body = std::span(external).subspan(1);
    if (is_compressed(external)) {
        inflated = *inflate_external(external);
        body = inflated;
    }
    etf_reader in(body);
    const auto read = in.read_term(atoms);
    ASSERT_TRUE(read) << read.error().message();
    EXPECT_EQ(*read, *decoded);
    EXPECT_TRUE(in.at_end());
}

TEST_P(EtfReaderGoldenTest, shouldFailAsTheDecoderWhenCutAnywhere) {
    const auto external = read_file(golden_dir / (GetParam() + ".etf"));
    // Every prefix of small vectors, 64 spread over large ones.
    const std::size_t step = std::max<std::size_t>(1, external.size() / 64);
    for (std::size_t n = 0; n < external.size(); n += step) {
        expect_agreement(std::span(external).first(n), atoms,
                         GetParam() + " cut to " + std::to_string(n));
    }
}

// Every byte of every small, uncompressed golden vector (the cuts above cover the large and
// compressed ones).
TEST_F(EtfReaderTest, shouldFailAsTheDecoderWhenAnyByteOfASmallGoldenVectorIsCorrupted) {
    for (const auto& name : names(golden_dir / "cases.txt")) {
        const auto external = read_file(golden_dir / (name + ".etf"));
        if (external.size() > 300 || is_compressed(external)) {
            continue;
        }
        for (std::size_t at = 1; at < external.size(); ++at) {
            const auto original = std::to_integer<int>(external[at]);
            for (const int value : {0, 1, 3, 4, 0x7f, 0x80, 0xff, original + 1, original - 1}) {
                bytes corrupted = external;
                corrupted[at] = static_cast<std::byte>(value);
                expect_agreement(
                    corrupted, atoms,
                    name + " with " + std::to_string(value & 0xff) + " at " + std::to_string(at));
                if (::testing::Test::HasFailure()) {
                    return;  // one report is enough
                }
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Otp25, EtfReaderGoldenTest,
                         ::testing::ValuesIn(names(golden_dir / "cases.txt")),
                         [](const auto& tested) { return tested.param; });

class EtfReaderRejectedTest : public EtfReaderTest,
                              public ::testing::WithParamInterface<std::string> {};

TEST_P(EtfReaderRejectedTest, shouldRefuseAsTheDecoderWhenOtpRefuses) {
    const auto external = read_file(golden_dir / "rejected" / (GetParam() + ".etf"));
    const auto decoded = etf_decoder(atoms).decode(external);
    ASSERT_FALSE(decoded);
    expect_agreement(external, atoms, GetParam());
    if (!needs_the_term(decoded.error().code)) {
        EXPECT_FALSE(walk(external));
    }
}

INSTANTIATE_TEST_SUITE_P(Otp25, EtfReaderRejectedTest,
                         ::testing::ValuesIn(names(golden_dir / "rejected" / "rejected.txt")),
                         [](const auto& tested) { return tested.param; });

}  // namespace
}  // namespace vdist::dist
