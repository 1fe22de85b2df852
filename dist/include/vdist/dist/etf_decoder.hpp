#pragma once
/// \file
/// Decoding External Term Format from an untrusted peer into `term`s.
///
/// Every read is bounds-checked, and nothing is allocated before the bytes that justify it
/// have been seen: a list or tuple claiming N elements must have at least N more bytes of
/// input (each element takes one), a compressed term's declared size must be within the limit
/// before inflating. Depth, the number of terms, bignum sizes and the atoms one input may
/// create are capped (decode_limits). Every failure is a decode_error naming the problem and
/// the byte offset; the decoder never crashes, hangs or allocates without bound.
///
/// The decoder accepts every encoding OTP 25 and 26 produce, including non-minimal ones
/// (an INTEGER_EXT holding 5, a LIST_EXT of bytes, Latin-1 atoms, old pids/ports/refs, a
/// compressed term) and normalises them: integers that fit int64 become std::int64_t, a list
/// whose tail is a list is spliced, BIT_BINARY_EXT with 8 bits becomes a binary, unused bits of
/// a bitstring are cleared, PID_EXT/PORT_EXT/NEW_REFERENCE_EXT creations widen to 32 bits.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf_errc.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::dist {

/// Caps on what one decoded input may cost.
struct decode_limits {
    /// Nesting of tuples, lists, maps and funs.
    std::size_t max_depth = 1000;
    /// Terms in one input, counting every element (term_count()).
    std::size_t max_terms = std::size_t{1} << 24;
    /// Digits (bytes) of one bignum. Erlang's own limit is about 2^24 bytes.
    std::size_t max_bignum_bytes = 65536;
    /// Atoms one input may add to the atom table.
    std::size_t max_new_atoms = 1024;
    /// Uncompressed size a compressed term may declare.
    std::size_t max_decompressed_bytes = std::size_t{64} << 20;
};

/// Result of decoding.
template <class T>
using decode_result = std::expected<T, decode_error>;

/// Decodes terms into one node's atom table. Cheap to construct; holds no input between calls.
class etf_decoder {
  public:
    explicit etf_decoder(atom_table& atoms, decode_limits limits = {}) noexcept
        : atoms_(&atoms), limits_(limits) {}

    /// Decodes `external`: the version byte 131 and exactly one term (possibly compressed).
    /// Binaries in the result are copies.
    [[nodiscard]] decode_result<term> decode(std::span<const std::byte> external) const;

    /// Like decode(), but binaries of 64 bytes or more share `buffer` (which holds `external`)
    /// instead of being copied: receive buffers are handed to the application without a copy.
    [[nodiscard]] decode_result<term> decode(std::span<const std::byte> external,
                                             const std::shared_ptr<const void>& buffer) const;

    /// Decodes one term (no version byte) at the start of `bytes`, for the terms that follow
    /// a distribution header; `consumed` is set to its length. `atom_cache` resolves
    /// ATOM_CACHE_REF indices (empty: no cache, such a reference fails).
    [[nodiscard]] decode_result<term> decode_term(
        std::span<const std::byte> bytes, std::size_t& consumed,
        std::span<const atom> atom_cache = {},
        const std::shared_ptr<const void>& buffer = {}) const;

    [[nodiscard]] const decode_limits& limits() const noexcept { return limits_; }
    [[nodiscard]] atom_table& atoms() const noexcept { return *atoms_; }

  private:
    atom_table* atoms_;
    decode_limits limits_;
};

/// The term inside a compressed external term (131 80 UncompressedSize:4 ZlibData), inflated:
/// the bytes of one term without a version byte, for an etf_reader (which reads no compressed
/// term). Fails as decode() does (compressed_too_large before inflating, decompression_failed);
/// unknown_tag at 1 if `external` is not compressed, bad_version at 0 if it is no external term.
[[nodiscard]] decode_result<std::vector<std::byte>> inflate_external(
    std::span<const std::byte> external, const decode_limits& limits = {});

/// Binaries shorter than this are always copied (sharing costs a reference count).
inline constexpr std::size_t zero_copy_threshold = 64;

}  // namespace vdist::dist
