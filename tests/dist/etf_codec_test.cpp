// Unit tests of the ETF codec (etf_decoder.hpp, etf_encoder.hpp): for each tag a valid case, a
// truncated case and a malformed case checked against its specific error; the limits; the
// normalisations; zero-copy binaries; compressed terms; etf_writer against encode(). Byte-exact
// agreement with OTP itself is in etf_golden_test.cpp and etf_roundtrip_test.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <compare>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <ostream>
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

class EtfCodecTest : public ::testing::Test {
  protected:
    [[nodiscard]] decode_result<term> decode(const bytes& external, decode_limits limits = {}) {
        return etf_decoder(atoms, limits).decode(external);
    }

    /// Decodes `external`, expecting success.
    [[nodiscard]] term decoded(const bytes& external) {
        auto result = decode(external);
        EXPECT_TRUE(result) << result.error().message();
        return result ? *result : term{};
    }

    /// Encodes `t`, expecting success.
    [[nodiscard]] bytes encoded(const term& t) {
        auto result = encode(t);
        EXPECT_TRUE(result) << make_error_code(result.error()).message();
        return result ? *result : bytes{};
    }

    [[nodiscard]] atom a(std::string_view name) { return atoms(name); }

    atom_table atoms;
};

// --- one case per tag: valid, truncated, malformed
// ------------------------------------------------

/// A tag's three cases: the bytes of a valid term and what it decodes to (and re-encodes to,
/// when minimal), a truncation, and a malformation with its error.
struct tag_case {
    const char* name;
    bytes valid;      // without the version byte
    bool minimal;     // valid is what the encoder produces for the decoded term
    bytes malformed;  // without the version byte
    etf_errc malformed_error;
};

void PrintTo(const tag_case& c, std::ostream* out) {
    *out << c.name;
}

class EtfTagTest : public EtfCodecTest, public ::testing::WithParamInterface<tag_case> {};

[[nodiscard]] bytes v(const bytes& body) {
    return concat(wire({131}), body);
}

TEST_P(EtfTagTest, shouldDecodeAndReencodeWhenTheTermIsValid) {
    const auto& c = GetParam();
    const term t = decoded(v(c.valid));
    if (c.minimal) {
        EXPECT_EQ(encoded(t), v(c.valid));
    } else {
        EXPECT_EQ(decoded(encoded(t)), t) << "re-encoding keeps the value";
    }
}

TEST_P(EtfTagTest, shouldFailWithTruncatedWhenAnyPrefixIsGiven) {
    const auto& c = GetParam();
    const bytes whole = v(c.valid);
    for (std::size_t n = 1; n < whole.size(); ++n) {
        const bytes prefix(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(n));
        const auto result = decode(prefix);
        ASSERT_FALSE(result) << "prefix of " << n << " bytes decoded";
        EXPECT_EQ(result.error().code, etf_errc::truncated) << "prefix of " << n << " bytes";
        EXPECT_LE(result.error().offset, n);
    }
}

TEST_P(EtfTagTest, shouldFailWithItsSpecificErrorWhenMalformed) {
    const auto& c = GetParam();
    const auto result = decode(v(c.malformed));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, c.malformed_error) << result.error().message();
}

TEST_P(EtfTagTest, shouldFailWithTrailingBytesWhenSomethingFollowsTheTerm) {
    const auto result = decode(concat(v(GetParam().valid), wire({106})));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::trailing_bytes);
    EXPECT_EQ(result.error().offset, 1 + GetParam().valid.size());
}

// Node atom 'n@h' as SMALL_ATOM_UTF8_EXT.
const bytes node = wire({119, 3, 'n', '@', 'h'});

INSTANTIATE_TEST_SUITE_P(
    Tags, EtfTagTest,
    ::testing::Values(
        tag_case{"SMALL_INTEGER_EXT", wire({97, 200}), true, wire({97}), etf_errc::truncated},
        tag_case{"INTEGER_EXT", wire({98, 0xff, 0xff, 0xff, 0x9c}), true, wire({98, 1}),
                 etf_errc::truncated},
        tag_case{"SMALL_BIG_EXT", wire({110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}), true,
                 wire({110, 1, 2, 5}), etf_errc::invalid_field},  // sign must be 0 or 1
        tag_case{"LARGE_BIG_EXT", concat(wire({111, 0, 0, 1, 0, 1}), bytes(256, std::byte{7})),
                 true, wire({111, 0x7f, 0xff, 0xff, 0xff, 0}), etf_errc::bignum_too_large},
        tag_case{"NEW_FLOAT_EXT", wire({70, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}), true,
                 wire({70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}), etf_errc::invalid_float},  // NaN
        tag_case{"FLOAT_EXT",
                 concat(concat(wire({99}), text("1.50000000000000000000e+00")), bytes(5)), false,
                 concat(concat(wire({99}), text("one and a half")), bytes(17)),
                 etf_errc::invalid_float},
        tag_case{"SMALL_ATOM_UTF8_EXT", wire({119, 3, 0xce, 0xbb, 'x'}) /* 'λx' */, true,
                 wire({119, 2, 0xce, 'x'}), etf_errc::invalid_atom},  // broken UTF-8
        tag_case{"ATOM_UTF8_EXT", concat(wire({118, 0, 255}), bytes(255, std::byte{'a'})), false,
                 concat(wire({118, 1, 0}), bytes(256, std::byte{'a'})) /* 256 chars */,
                 etf_errc::invalid_atom},
        tag_case{"SMALL_ATOM_EXT", wire({115, 2, 'h', 0xe9}) /* Latin-1 'hé' */, false,
                 wire({115, 3, 'a'}), etf_errc::truncated},
        tag_case{"ATOM_EXT", wire({100, 0, 2, 'o', 'k'}), false, wire({100, 0, 9, 'o'}),
                 etf_errc::truncated},
        tag_case{"SMALL_TUPLE_EXT", wire({104, 2, 97, 1, 106}), true, wire({104, 3, 97, 1}),
                 etf_errc::truncated},
        tag_case{"LARGE_TUPLE_EXT", wire({105, 0, 0, 0, 1, 106}), false,
                 wire({105, 0xff, 0xff, 0xff, 0xff, 106}), etf_errc::truncated},
        tag_case{"NIL_EXT", wire({106}), true, wire({107}), etf_errc::truncated},
        tag_case{"STRING_EXT", wire({107, 0, 3, 'a', 'b', 'c'}), true, wire({107, 0, 4, 'a'}),
                 etf_errc::truncated},
        tag_case{"LIST_EXT", wire({108, 0, 0, 0, 2, 97, 1, 119, 1, 'a', 119, 1, 'b'}), true,
                 wire({108, 0, 0, 0, 1, 97, 1, 255}), etf_errc::unknown_tag},
        tag_case{"BINARY_EXT", wire({109, 0, 0, 0, 3, 1, 2, 3}), true, wire({109, 0, 0, 0, 4, 1}),
                 etf_errc::truncated},
        tag_case{"BIT_BINARY_EXT", wire({77, 0, 0, 0, 2, 3, 0xff, 0xe0}), true,
                 wire({77, 0, 0, 0, 1, 9, 0xff}), etf_errc::invalid_length},
        tag_case{"MAP_EXT", wire({116, 0, 0, 0, 1, 119, 1, 'k', 97, 1}), true,
                 wire({116, 0, 0, 0, 2, 97, 1, 97, 2, 97, 1, 97, 3}), etf_errc::duplicate_map_key},
        tag_case{"NEW_PID_EXT", concat(concat(wire({88}), node), bytes(12, std::byte{1})), true,
                 concat(wire({88, 97, 1}), bytes(12)), etf_errc::invalid_field},
        tag_case{"PID_EXT", concat(concat(wire({103}), node), bytes(9, std::byte{1})), false,
                 concat(wire({103, 106}), bytes(9)), etf_errc::invalid_field},
        tag_case{"NEW_PORT_EXT", concat(concat(wire({89}), node), bytes(8, std::byte{2})), true,
                 concat(wire({89, 107, 0, 0}), bytes(8)), etf_errc::invalid_field},
        tag_case{"V4_PORT_EXT", concat(concat(wire({120}), node), bytes(12, std::byte{2})), true,
                 concat(concat(wire({120}), node), bytes(11)), etf_errc::truncated},
        tag_case{"PORT_EXT", concat(concat(wire({102}), node), bytes(5, std::byte{2})), false,
                 concat(wire({102, 110, 0, 0}), bytes(5)), etf_errc::invalid_field},
        tag_case{"NEWER_REFERENCE_EXT",
                 concat(concat(wire({90, 0, 3}), node), bytes(16, std::byte{3})), true,
                 concat(concat(wire({90, 0, 6}), node), bytes(28)), etf_errc::invalid_length},
        tag_case{"NEW_REFERENCE_EXT",
                 concat(concat(wire({114, 0, 2}), node), bytes(9, std::byte{2})), false,
                 concat(concat(wire({114, 0, 6}), node), bytes(25)), etf_errc::invalid_length},
        tag_case{"REFERENCE_EXT", concat(concat(wire({101}), node), bytes(5, std::byte{2})), false,
                 concat(wire({101, 97, 0}), bytes(5)), etf_errc::invalid_field},
        tag_case{"EXPORT_EXT", wire({113, 119, 1, 'm', 119, 1, 'f', 97, 2}), true,
                 wire({113, 119, 1, 'm', 119, 1, 'f', 98, 0, 0, 0, 2}), etf_errc::invalid_field}),
    [](const auto& tested) { return std::string(tested.param.name); });

// ATOM_CACHE_REF is valid only inside a distribution message, whose header gives the cache.
TEST_F(EtfCodecTest, shouldFailWithAtomCacheMissWhenNoCacheHoldsTheIndex) {
    const auto result = decode(wire({131, 82, 0}));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error(), (decode_error{etf_errc::atom_cache_miss, 1}));
    std::size_t consumed = 0;
    const std::vector<atom> cache{a("cached")};
    const auto past = etf_decoder(atoms).decode_term(wire({82, 1}), consumed, cache);
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().code, etf_errc::atom_cache_miss);
}

// OTP 26's LOCAL_EXT only means something to the node that made it.
TEST_F(EtfCodecTest, shouldFailWithUnknownTagWhenGivenLocalExtOrACompressedTermInside) {
    EXPECT_EQ(decode(wire({131, 121, 0, 0, 0, 0})).error(),
              (decode_error{etf_errc::unknown_tag, 1}));
    EXPECT_EQ(decode(wire({131, 104, 1, 80, 0, 0, 0, 1})).error(),
              (decode_error{etf_errc::unknown_tag, 3}));
}

TEST_F(EtfCodecTest, shouldResolveAtomCacheRefsWhenACacheIsGiven) {
    const std::vector<atom> cache{a("cached")};
    std::size_t consumed = 0;
    const auto result = etf_decoder(atoms).decode_term(wire({82, 0}), consumed, cache);
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_EQ(*result, term(a("cached")));
    EXPECT_EQ(consumed, 2u);
}

// --- NEW_FUN_EXT ---------------------------------------------------------------------------------

[[nodiscard]] bytes fun_bytes(std::uint32_t size_field) {
    bytes body = wire({2});                                           // Arity
    body.insert(body.end(), 16, std::byte{0xab});                     // Uniq
    body = concat(body, wire({0, 0, 0, 4, 0, 0, 0, 1}));              // Index, NumFree
    body = concat(body, wire({119, 1, 'm', 97, 4, 98, 1, 2, 3, 4}));  // Module, OldIndex, OldUniq
    body = concat(concat(body, wire({88})), node);
    body.insert(body.end(), 12, std::byte{0});  // the creator pid
    body = concat(body, wire({97, 42}));        // one free variable
    const auto size = std::byteswap(size_field);
    bytes head = wire({112});
    head.insert(head.end(), reinterpret_cast<const std::byte*>(&size),
                reinterpret_cast<const std::byte*>(&size) + 4);
    return concat(head, body);
}

TEST_F(EtfCodecTest, shouldKeepAClosureWholeWhenDecodingNewFunExt) {
    const bytes fun = fun_bytes(0);
    const bytes valid = fun_bytes(static_cast<std::uint32_t>(fun.size() - 1));  // not the tag
    const term t = decoded(v(valid));
    const auto* closure = t.get_if<box<local_fun>>();
    ASSERT_NE(closure, nullptr);
    EXPECT_EQ((*closure)->arity, 2);
    EXPECT_EQ((*closure)->index, 4u);
    EXPECT_EQ((*closure)->module, a("m"));
    EXPECT_EQ((*closure)->old_uniq, 0x01020304);
    ASSERT_EQ((*closure)->free_vars.size(), 1u);
    EXPECT_EQ((*closure)->free_vars[0], term(42));
    EXPECT_EQ(encoded(t), v(valid)) << "a closure re-encodes to its bytes";
}

TEST_F(EtfCodecTest, shouldFailWithInvalidLengthWhenNewFunExtSizeDisagrees) {
    const bytes fun = fun_bytes(0);
    const auto result = decode(v(fun_bytes(static_cast<std::uint32_t>(fun.size()))));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::invalid_length);
    EXPECT_EQ(result.error().offset, 1u);
}

// --- integers at every encoding boundary
// ----------------------------------------------------------

class EtfIntegerTest : public EtfCodecTest,
                       public ::testing::WithParamInterface<std::pair<std::int64_t, int>> {};

TEST_P(EtfIntegerTest, shouldUseTheSmallestEncodingWhenEncodingAnInteger) {
    const auto [value, tag] = GetParam();
    const bytes out = encoded(term(value));
    ASSERT_GE(out.size(), 2u);
    EXPECT_EQ(std::to_integer<int>(out[1]), tag);
    EXPECT_EQ(decoded(out), term(value));
}

INSTANTIATE_TEST_SUITE_P(
    Boundaries, EtfIntegerTest,
    ::testing::Values(std::pair<std::int64_t, int>{0, 97}, std::pair<std::int64_t, int>{255, 97},
                      std::pair<std::int64_t, int>{256, 98}, std::pair<std::int64_t, int>{-1, 98},
                      std::pair<std::int64_t, int>{INT32_MAX, 98},
                      std::pair<std::int64_t, int>{INT32_MIN, 98},
                      std::pair<std::int64_t, int>{std::int64_t{INT32_MAX} + 1, 110},
                      std::pair<std::int64_t, int>{std::int64_t{INT32_MIN} - 1, 110},
                      std::pair<std::int64_t, int>{INT64_MAX, 110},
                      std::pair<std::int64_t, int>{INT64_MIN, 110}));

TEST_F(EtfCodecTest, shouldDecodeBignumsBeyondInt64AsBigIntegers) {
    // 2^64 (SMALL_BIG_EXT, 9 digits) and -(2^63 + 1).
    const term two_to_64 = decoded(wire({131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    const auto* big = two_to_64.get_if<big_integer>();
    ASSERT_NE(big, nullptr);
    EXPECT_FALSE(big->negative);
    EXPECT_EQ(big->magnitude.size(), 9u);
    EXPECT_EQ(encoded(two_to_64), wire({131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));

    const term below_min = decoded(wire({131, 110, 8, 1, 1, 0, 0, 0, 0, 0, 0, 0x80}));
    ASSERT_TRUE(below_min.is<big_integer>());
    EXPECT_TRUE(below_min.get_if<big_integer>()->negative);
}

TEST_F(EtfCodecTest, shouldNormaliseNonMinimalIntegersWhenDecoding) {
    EXPECT_EQ(decoded(wire({131, 98, 0, 0, 0, 5})), term(5));
    EXPECT_EQ(decoded(wire({131, 110, 2, 0, 5, 0})), term(5)) << "leading zero digit";
    EXPECT_EQ(decoded(wire({131, 110, 0, 0})), term(0)) << "no digits";
    EXPECT_EQ(decoded(wire({131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0x80})), term(INT64_MIN));
}

// --- other normalisations ---------------------------------------------------------------------

TEST_F(EtfCodecTest, shouldSpliceAListTailThatIsAList) {
    // [1 | [2]] written as LIST_EXT(1) with a LIST_EXT(1) tail is [1, 2].
    const term t = decoded(wire({131, 108, 0, 0, 0, 1, 97, 1, 108, 0, 0, 0, 1, 97, 2, 106}));
    EXPECT_EQ(t, term(list{1, 2}));
    EXPECT_EQ(encoded(t), wire({131, 107, 0, 2, 1, 2}));
}

TEST_F(EtfCodecTest, shouldKeepAnImproperTail) {
    const term t = decoded(wire({131, 108, 0, 0, 0, 1, 97, 1, 119, 1, 'b'}));
    const auto* l = t.get_if<list>();
    ASSERT_NE(l, nullptr);
    EXPECT_FALSE(l->is_proper());
    EXPECT_EQ(*l->tail, term(a("b")));
    EXPECT_EQ(encoded(t), wire({131, 108, 0, 0, 0, 1, 97, 1, 119, 1, 'b'}));
}

TEST_F(EtfCodecTest, shouldClearUnusedBitsWhenDecodingABitBinary) {
    const term t = decoded(wire({131, 77, 0, 0, 0, 1, 3, 0xff}));
    const auto* bits = t.get_if<bitstring>();
    ASSERT_NE(bits, nullptr);
    EXPECT_EQ(bits->last_bits, 3);
    EXPECT_EQ(bits->bytes.bytes()[0], std::byte{0xe0});
    EXPECT_EQ(decoded(wire({131, 77, 0, 0, 0, 1, 8, 7})), term(binary(wire({7}))))
        << "8 bits used is a whole binary";
}

TEST_F(EtfCodecTest, shouldDecodeLatin1AtomsAsUtf8) {
    EXPECT_EQ(decoded(wire({131, 115, 2, 'h', 0xe9})), term(a("h\xc3\xa9")));
    EXPECT_EQ(encoded(term(a("h\xc3\xa9"))), wire({131, 119, 3, 'h', 0xc3, 0xa9}));
}

TEST_F(EtfCodecTest, shouldCompareMapsAsSetsWhenEntryOrdersDiffer) {
    map ab({{term(a("a")), term(1)}, {term(a("b")), term(2)}});
    map ba({{term(a("b")), term(2)}, {term(a("a")), term(1)}});
    EXPECT_EQ(term(ab), term(ba));
    std::vector<std::pair<term, term>> many;
    std::vector<std::pair<term, term>> reversed;
    for (int i = 0; i < 100; ++i) {
        many.emplace_back(term(i), term(list{i}));
        reversed.emplace_back(term(99 - i), term(list{99 - i}));
    }
    EXPECT_EQ(term(map(many)), term(map(reversed)));
    reversed.back().second = term(a("other"));
    EXPECT_NE(term(map(many)), term(map(reversed)));
}

TEST_F(EtfCodecTest, shouldFailWithDuplicateMapKeyWhenALargeMapRepeatsAKey) {
    bytes m = wire({131, 116, 0, 0, 0, 40});
    for (int i = 0; i < 40; ++i) {
        m = concat(m, wire({97, i == 39 ? 7 : i, 106}));
    }
    const auto result = decode(m);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::duplicate_map_key);
}

// --- limits ------------------------------------------------------------------------------------

[[nodiscard]] bytes nested_tuples(std::size_t depth) {
    bytes out = wire({131});
    for (std::size_t i = 0; i < depth; ++i) {
        out.push_back(std::byte{104});
        out.push_back(std::byte{1});
    }
    out.push_back(std::byte{106});
    return out;
}

TEST_F(EtfCodecTest, shouldFailWithDepthExceededWhenNestingPassesTheLimit) {
    EXPECT_TRUE(decode(nested_tuples(10), {.max_depth = 10}));
    const auto result = decode(nested_tuples(11), {.max_depth = 10});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::depth_exceeded);
    EXPECT_EQ(result.error().offset, 1u + 2 * 11) << "the [] at depth 11";
}

TEST_F(EtfCodecTest, shouldNotExhaustTheStackWhenNestingIsDeepAndTheLimitDefault) {
    const auto result = decode(nested_tuples(100000));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::depth_exceeded);
}

TEST_F(EtfCodecTest, shouldFailWithTooManyTermsBeforeAllocatingWhenACountIsHuge) {
    // A list claiming 2^32-1 elements in 10 bytes: refused before any allocation.
    const auto huge = decode(wire({131, 108, 0xff, 0xff, 0xff, 0xff, 106, 106}));
    ASSERT_FALSE(huge);
    EXPECT_EQ(huge.error().code, etf_errc::truncated);
    const auto many = decode(wire({131, 104, 3, 106, 106, 106}), {.max_terms = 3});
    ASSERT_FALSE(many);
    EXPECT_EQ(many.error().code, etf_errc::too_many_terms);
}

TEST_F(EtfCodecTest, shouldFailWithTooManyNewAtomsWhenATermCreatesMoreThanTheLimit) {
    const bytes three_atoms = wire({131, 104, 3, 119, 1, 'x', 119, 1, 'y', 119, 1, 'z'});
    const auto result = decode(three_atoms, {.max_new_atoms = 2});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::too_many_new_atoms);
    EXPECT_EQ(result.error().offset, 9u) << "the third atom";
    EXPECT_TRUE(decode(three_atoms, {.max_new_atoms = 2})) << "x and y exist now";
}

TEST_F(EtfCodecTest, shouldFailWithAtomTableFullWhenTheTableIsAtCapacity) {
    atom_table tiny(1);
    const auto result = etf_decoder(tiny).decode(wire({131, 104, 2, 119, 1, 'x', 119, 1, 'y'}));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::atom_table_full);
}

TEST_F(EtfCodecTest, shouldFailWithBadVersionWhenTheMagicByteIsMissing) {
    const auto result = decode(wire({97, 1}));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error(), (decode_error{etf_errc::bad_version, 0}));
    const auto empty = decode(bytes{});
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code, etf_errc::truncated);
}

// --- compressed terms ----------------------------------------------------------------------------

TEST_F(EtfCodecTest, shouldRoundTripACompressedTermWhenCompressionPays) {
    const term t(binary(bytes(10000, std::byte{'x'})));
    auto packed = encode(t, {.compression_level = 6});
    ASSERT_TRUE(packed);
    EXPECT_EQ(std::to_integer<int>((*packed)[1]), etf::COMPRESSED);
    EXPECT_LT(packed->size(), 200u);
    EXPECT_EQ(decoded(*packed), t);
    auto small = encode(term(1), {.compression_level = 6});
    ASSERT_TRUE(small);
    EXPECT_EQ(*small, wire({131, 97, 1})) << "compression that does not pay is skipped";
}

TEST_F(EtfCodecTest, shouldFailWithCompressedTooLargeBeforeInflatingWhenTheSizeIsOverTheLimit) {
    const auto result = decode(wire({131, 80, 0x7f, 0xff, 0xff, 0xff, 0x78, 0x9c}),
                               {.max_decompressed_bytes = 1 << 20});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, etf_errc::compressed_too_large);
}

TEST_F(EtfCodecTest, shouldFailWithDecompressionFailedWhenTheDataIsCorruptOrTheSizeWrong) {
    auto packed = encode(term(binary(bytes(1000, std::byte{'y'}))), {.compression_level = 6});
    ASSERT_TRUE(packed);
    bytes wrong_size = *packed;
    wrong_size[5] = static_cast<std::byte>(std::to_integer<int>(wrong_size[5]) + 1);
    EXPECT_EQ(decode(wrong_size).error().code, etf_errc::decompression_failed);
    bytes corrupt = *packed;
    corrupt[corrupt.size() / 2] ^= std::byte{0x55};
    EXPECT_EQ(decode(corrupt).error().code, etf_errc::decompression_failed);
    bytes cut(packed->begin(), packed->end() - 3);
    EXPECT_EQ(decode(cut).error().code, etf_errc::decompression_failed);
}

// --- zero copy -----------------------------------------------------------------------------------

TEST_F(EtfCodecTest, shouldShareTheReceiveBufferWhenABinaryIsLargeEnough) {
    auto buffer = std::make_shared<bytes>(
        concat(wire({131, 104, 2, 109, 0, 0, 1, 0}),
               concat(bytes(256, std::byte{9}), wire({109, 0, 0, 0, 2, 1, 2}))));
    const std::shared_ptr<const void> owner = buffer;
    const auto result = etf_decoder(atoms).decode(*buffer, owner);
    ASSERT_TRUE(result) << result.error().message();
    const auto& elements = result->get_if<tuple>()->elements;
    const auto& large = *elements[0].get_if<binary>();
    const auto& small = *elements[1].get_if<binary>();
    EXPECT_TRUE(large.shares(owner));
    EXPECT_EQ(large.bytes().data(), buffer->data() + 8) << "no copy";
    EXPECT_FALSE(small.shares(owner)) << "short binaries are copied";
}

// --- encoder refusals
// -------------------------------------------------------------------------------

TEST_F(EtfCodecTest, shouldRefuseWithNotEncodableWhenAValueHasNoEtfForm) {
    EXPECT_EQ(encode(term(std::nan(""))).error(), etf_errc::not_encodable);
    EXPECT_EQ(encode(term(std::numeric_limits<double>::infinity())).error(),
              etf_errc::not_encodable);
    EXPECT_EQ(encode(term(reference{a("n@h"), 1, {1, 2, 3, 4, 5, 6}})).error(),
              etf_errc::not_encodable);
    EXPECT_EQ(encode(term(bitstring{binary(wire({1})), 0})).error(), etf_errc::not_encodable);
}

TEST_F(EtfCodecTest, shouldAgreeWithEncodeWhenWritingPieceByPiece) {
    // {'$gen_call', {Pid, Ref}, hello} built without terms, as a control message would be.
    const pid from{a("n@h"), 85, 0, 3};
    const reference tag{a("n@h"), 3, {1, 2, 3}};
    bytes streamed;
    etf_writer writer(streamed);
    writer.version();
    writer.tuple_header(3);
    writer.atom(a("$gen_call"));
    writer.tuple_header(2);
    writer.pid(from);
    ASSERT_TRUE(writer.reference(tag));
    writer.atom(a("hello"));
    writer.finish();
    EXPECT_EQ(streamed, encoded(term(tuple{a("$gen_call"), tuple{from, tag}, a("hello")})));
}

// --- etf_writer, piece by piece
// -----------------------------------------------------------------------

/// One piece: the term it stands for and the writer call that writes it.
struct piece {
    term value;
    std::function<void(etf_writer&)> write;
};

[[nodiscard]] std::string repeat(std::string_view unit, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += unit;
    }
    return out;
}

// Every piece method on values that take each of its encodings (and each of the writer's
// paths: inline, out of line, a block too large for the room left).
[[nodiscard]] std::vector<piece> pieces(atom_table& atoms) {
    std::vector<piece> all;
    for (const std::int64_t n :
         {std::int64_t{0}, std::int64_t{255}, std::int64_t{256}, std::int64_t{-1},
          std::int64_t{INT32_MIN}, std::int64_t{INT32_MAX}, std::int64_t{INT32_MAX} + 1,
          std::int64_t{INT32_MIN} - 1, INT64_MAX, INT64_MIN}) {
        all.push_back({term(n), [n](etf_writer& out) { out.integer(n); }});
    }
    const big_integer two_to_64{false, {0, 0, 0, 0, 0, 0, 0, 0, 1}};
    all.push_back(
        {term(two_to_64), [two_to_64](etf_writer& out) { ASSERT_TRUE(out.big(two_to_64)); }});
    for (const double x : {1.5, -0.0}) {
        all.push_back({term(x), [x](etf_writer& out) { ASSERT_TRUE(out.floating(x)); }});
    }
    for (const auto& name :
         {std::string(), std::string("ok"), std::string(255, 'a'), repeat("\xce\xbb", 255)}) {
        const atom made = atoms(name);
        all.push_back({term(made), [made](etf_writer& out) { out.atom(made); }});
    }
    for (const std::size_t length : {std::size_t{0}, std::size_t{3}, std::size_t{70'000}}) {
        std::vector<std::uint8_t> chars(length);
        std::vector<term> elements;
        for (std::size_t i = 0; i < length; ++i) {
            chars[i] = static_cast<std::uint8_t>(i * 7);
            elements.emplace_back(std::int64_t{chars[i]});
        }
        all.push_back(
            {term(list(std::move(elements))), [chars](etf_writer& out) { out.string(chars); }});
    }
    for (const std::size_t length : {std::size_t{3}, std::size_t{10'000}}) {
        const bytes data(length, std::byte{0x5a});
        all.push_back({term(binary(data)), [data](etf_writer& out) { out.binary(data); }});
    }
    const bytes bits = wire({0xff, 0xe0});
    all.push_back({term(bitstring{binary(bits), 3}),
                   [bits](etf_writer& out) { ASSERT_TRUE(out.bits(bits, 3)); }});
    for (const auto& node_name : {std::string("n@h"), repeat("\xce\xbb", 255)}) {
        const pid id{atoms(node_name), 85, 2, 0x5eed0001};
        all.push_back({term(id), [id](etf_writer& out) { out.pid(id); }});
    }
    for (const std::uint64_t id : {std::uint64_t{7}, std::uint64_t{1} << 40}) {
        const port p{atoms("n@h"), id, 3};
        all.push_back({term(p), [p](etf_writer& out) { out.port(p); }});
    }
    const reference ref{atoms("n@h"), 3, {1, 2, 3}};
    all.push_back({term(ref), [ref](etf_writer& out) { ASSERT_TRUE(out.reference(ref)); }});
    const export_fun fun{atoms("lists"), atoms("map"), 2};
    all.push_back({term(fun), [fun](etf_writer& out) { out.export_fun(fun); }});
    const term nested(tuple{atoms("a"), term(list{term(1), term(2.5)}), map{}});
    all.push_back({nested, [nested](etf_writer& out) { ASSERT_TRUE(out.term(nested)); }});
    return all;
}

[[nodiscard]] bytes without_version(bytes external) {
    external.erase(external.begin());
    return external;
}

TEST_F(EtfCodecTest, shouldWriteWhatEncodeWritesWhenEachPieceIsWrittenAlone) {
    for (const auto& [value, write] : pieces(atoms)) {
        bytes out;
        {
            etf_writer writer(out);
            write(writer);
        }
        EXPECT_EQ(out, without_version(encoded(value)));
    }
}

TEST_F(EtfCodecTest, shouldAppendEveryPieceAfterWhatTheVectorHeldWhenWritingInARow) {
    bytes expected = wire({1, 2, 3});
    bytes out = expected;
    etf_writer writer(out);
    for (int round = 0; round < 3; ++round) {  // the vector reallocates on the way
        for (const auto& [value, write] : pieces(atoms)) {
            write(writer);
            expected = concat(expected, without_version(encoded(value)));
        }
    }
    EXPECT_TRUE(std::ranges::equal(writer.written(), expected));
    writer.finish();
    EXPECT_EQ(out, expected);
}

TEST_F(EtfCodecTest, shouldTrimTheVectorToWhatWasWrittenWhenFinishedOrDestroyed) {
    bytes out = wire({7});
    {
        etf_writer writer(out);
        writer.version();
        writer.list_header(1);
        writer.integer(5);
        EXPECT_GE(out.size(), 8u) << "room to write into";
        writer.finish();
        EXPECT_EQ(out, wire({7, 131, 108, 0, 0, 0, 1, 97, 5}));
        writer.nil();  // writing goes on after finish()
    }
    EXPECT_EQ(out, wire({7, 131, 108, 0, 0, 0, 1, 97, 5, 106}));
}

TEST_F(EtfCodecTest, shouldKeepWhatWasWrittenBeforeWhenAPieceIsNotEncodable) {
    bytes out;
    {
        etf_writer writer(out);
        writer.integer(1);
        EXPECT_EQ(writer.floating(std::nan("")).error(), etf_errc::not_encodable);
        EXPECT_EQ(writer.term(term(tuple{term(1), term(std::nan(""))})).error(),
                  etf_errc::not_encodable);
        EXPECT_EQ(writer.reference(reference{a("n@h"), 1, {1, 2, 3, 4, 5, 6}}).error(),
                  etf_errc::not_encodable);
        EXPECT_EQ(writer.bits(wire({1}), 0).error(), etf_errc::not_encodable);
        writer.integer(2);
    }
    EXPECT_EQ(out, wire({97, 1, 97, 2}));
}

TEST_F(EtfCodecTest, shouldWriteWhatEncodeWritesWhenAListGrowsTheVectorManyTimes) {
    std::vector<term> elements;
    bytes out;
    {
        etf_writer writer(out);
        writer.version();
        writer.list_header(100'000);
        for (std::int64_t i = 0; i < 100'000; ++i) {
            const std::int64_t n = (i * 7919) % 1'000'003 - 500'000;  // both integer encodings
            writer.integer(n);
            elements.emplace_back(n);
        }
        writer.nil();
    }
    EXPECT_EQ(out, encoded(term(list(std::move(elements)))));
}

}  // namespace
}  // namespace vdist::dist

namespace vdist::dist {
namespace {

// --- term order
// -----------------------------------------------------------------------------------

TEST_F(EtfCodecTest, shouldOrderTermsAsErlangWhenComparingAcrossTypes) {
    // number < atom < reference < fun < port < pid < tuple < map < [] < list < bitstring
    const std::vector<term> ascending{
        term(-5),
        term(big_integer{false, {0, 0, 0, 0, 0, 0, 0, 0, 1}}),
        term(-1.0),
        term(a("a")),
        term(reference{a("n@h"), 1, {1, 2, 3}}),
        term(export_fun{a("m"), a("f"), 1}),
        term(port{a("n@h"), 1, 1}),
        term(pid{a("n@h"), 1, 0, 1}),
        term(tuple{1}),
        term(map{}),
        term(list{}),
        term(list{1}),
        term(binary(wire({1}))),
    };
    for (std::size_t i = 0; i + 1 < ascending.size(); ++i) {
        EXPECT_TRUE(std::is_lt(compare(ascending[i], ascending[i + 1]))) << "at " << i;
        EXPECT_TRUE(std::is_gt(compare(ascending[i + 1], ascending[i]))) << "at " << i;
        EXPECT_TRUE(std::is_eq(compare(ascending[i], ascending[i]))) << "at " << i;
    }
}

TEST_F(EtfCodecTest, shouldOrderWithinATypeAsErlangWhenComparing) {
    EXPECT_TRUE(std::is_lt(compare(term(2), term(1.0))))
        << "every integer before every float (map keys)";
    EXPECT_TRUE(std::is_lt(compare(term(tuple{9}), term(tuple{1, 1})))) << "tuples by size first";
    EXPECT_TRUE(std::is_lt(compare(term(list{1, 2}), term(list{1, 2, 0})))) << "a prefix first";
    EXPECT_TRUE(std::is_lt(compare(term(a("ab")), term(a("b")))));
    EXPECT_TRUE(std::is_lt(compare(term(binary(wire({1, 2}))), term(binary(wire({1, 3}))))));
    EXPECT_TRUE(
        std::is_lt(compare(term(bitstring{binary(wire({0x80})), 1}), term(binary(wire({0x80}))))))
        << "<<1:1>> is a prefix of <<128>>";
    EXPECT_TRUE(std::is_lt(compare(term(big_integer{true, {0, 0, 0, 0, 0, 0, 0, 0, 2}}),
                                   term(big_integer{true, {0, 0, 0, 0, 0, 0, 0, 0, 1}}))))
        << "-2^65 < -2^64";
}

TEST_F(EtfCodecTest, shouldWriteSmallMapsSortedByKeyAsOtpDoes) {
    const term unsorted(map({{term(a("b")), term(2)}, {term(1.0), term(3)}, {term(7), term(1)}}));
    // #{7 => 1, 1.0 => 3, b => 2}: integers, then floats, then atoms.
    EXPECT_EQ(encoded(unsorted), concat(concat(wire({131, 116, 0, 0, 0, 3, 97, 7, 97, 1, 70}),
                                               wire({0x3f, 0xf0, 0, 0, 0, 0, 0, 0})),
                                        wire({97, 3, 119, 1, 'b', 97, 2})));
}

}  // namespace
}  // namespace vdist::dist
