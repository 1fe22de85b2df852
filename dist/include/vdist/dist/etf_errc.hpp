#pragma once
/// \file
/// Errors of the External Term Format codec. Every way a hostile or broken input can fail has
/// its own name; a decode error also carries the byte offset where the decoder gave up.

#include <cstddef>
#include <string>
#include <system_error>
#include <type_traits>

namespace vdist::dist {

/// What went wrong while decoding (or, for not_encodable, encoding) a term.
enum class etf_errc {
    truncated = 1,         ///< the input ends inside a term
    bad_version,           ///< the input does not start with the version byte 131
    unknown_tag,           ///< a tag byte that is no term (or not allowed there)
    trailing_bytes,        ///< bytes left after the one term the input should hold
    depth_exceeded,        ///< nesting deeper than decode_limits::max_depth
    too_many_terms,        ///< more terms in one input than decode_limits::max_terms
    bignum_too_large,      ///< a bignum longer than decode_limits::max_bignum_bytes
    too_many_new_atoms,    ///< more new atoms than decode_limits::max_new_atoms
    atom_table_full,       ///< the node's atom table is at its capacity
    invalid_atom,          ///< not UTF-8, or longer than 255 characters
    invalid_float,         ///< NaN or infinity, or an unreadable FLOAT_EXT string
    invalid_length,        ///< a length or count that no valid term has
    invalid_field,         ///< a field of the wrong type (e.g. a pid whose node is no atom)
    duplicate_map_key,     ///< a map with the same key twice
    atom_cache_miss,       ///< ATOM_CACHE_REF with no atom cache, or to an empty slot
    compressed_too_large,  ///< a compressed term declares more than the limit allows
    decompression_failed,  ///< zlib failed, or the size does not match the declared one
    not_encodable,         ///< a value ETF cannot carry (e.g. a NaN, a 256-byte-long atom)
    integer_out_of_range,  ///< a valid integer outside what the read asks for (etf_reader: int64)
};

/// The category of etf_errc ("vdist.etf").
[[nodiscard]] const std::error_category& etf_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(etf_errc e) noexcept {
    return {static_cast<int>(e), etf_category()};
}

/// A failed decode: what, and the offset (in the input given to the decoder) of the byte that
/// made it fail.
struct decode_error {
    etf_errc code;
    std::size_t offset;

    /// "<description> at byte <offset>".
    [[nodiscard]] std::string message() const;
    friend bool operator==(const decode_error&, const decode_error&) = default;
};

}  // namespace vdist::dist

template <>
struct std::is_error_code_enum<vdist::dist::etf_errc> : std::true_type {};
