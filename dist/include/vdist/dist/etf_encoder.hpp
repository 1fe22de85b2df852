#pragma once
/// \file
/// Encoding terms into External Term Format, in the minimal form OTP produces
/// (term_to_binary(T, [{minor_version, 2}]), OTP 26's default): SMALL_INTEGER_EXT for 0..255,
/// INTEGER_EXT for other 32-bit values, SMALL_BIG_EXT / LARGE_BIG_EXT beyond; NEW_FLOAT_EXT;
/// SMALL_ATOM_UTF8_EXT / ATOM_UTF8_EXT; SMALL_TUPLE_EXT up to 255 elements; NIL_EXT;
/// STRING_EXT for proper lists of up to 65535 integers 0..255; BINARY_EXT / BIT_BINARY_EXT;
/// MAP_EXT with up to 32 keys sorted in term order (as OTP stores them), larger maps in their own
/// entry order (OTP's hash-trie order cannot be reproduced, but a decoded map keeps it);
/// NEW_PID_EXT; NEW_PORT_EXT (V4_PORT_EXT for ids beyond 32 bits); NEWER_REFERENCE_EXT; EXPORT_EXT;
/// NEW_FUN_EXT.
///
/// Two ways in: encode(term) sizes the term first (encoded_size) and writes it into one
/// allocation; etf_writer writes a term piece by piece (headers, then elements) for the hot
/// path, where control messages are built without making `term`s.

#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <string_view>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf_errc.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::dist {

/// How to encode.
struct encode_options {
    /// Compress with zlib at this level (1..9), as term_to_binary(T, [{compressed, Level}]);
    /// 0: never. Like OTP, the compressed form is kept only when it is smaller.
    int compression_level = 0;
};

/// Bytes encode() would produce for `t` without compression, the version byte included.
/// Fails with etf_errc::not_encodable for a value ETF cannot carry (a non-finite float, a
/// bitstring whose last_bits is not 1..7, a reference of more than 5 words).
[[nodiscard]] std::expected<std::size_t, etf_errc> encoded_size(const term& t);

/// `t` as an external term: 131, then the term.
[[nodiscard]] std::expected<std::vector<std::byte>, etf_errc> encode(const term& t,
                                                                     encode_options options = {});

/// Appends ETF to a byte vector, one piece at a time. The caller writes a container's header,
/// then exactly as many elements as it announced; the writer does not check the structure.
/// Values that ETF cannot carry are refused with etf_errc::not_encodable (the writer then
/// stays usable; what was appended before remains).
class etf_writer {
  public:
    /// Appends to `out` (which keeps its current contents).
    explicit etf_writer(std::vector<std::byte>& out) noexcept : out_(&out) {}

    void version() { out_->push_back(std::byte{131}); }
    void integer(std::int64_t value);
    [[nodiscard]] std::expected<void, etf_errc> big(const big_integer& value);
    [[nodiscard]] std::expected<void, etf_errc> floating(double value);
    void atom(dist::atom name);
    void tuple_header(std::size_t arity);
    /// LIST_EXT header for `length` elements; the caller writes them, then the tail (nil()).
    void list_header(std::size_t length);
    void nil() { out_->push_back(std::byte{106}); }
    /// STRING_EXT: `bytes` as a list of integers 0..255 (at most 65535 bytes, else a LIST_EXT).
    void string(std::span<const std::uint8_t> bytes);
    void binary(std::span<const std::byte> bytes);
    [[nodiscard]] std::expected<void, etf_errc> bits(std::span<const std::byte> bytes,
                                                     std::uint8_t last_bits);
    void map_header(std::size_t arity);
    void pid(const dist::pid& id);
    void port(const dist::port& id);
    [[nodiscard]] std::expected<void, etf_errc> reference(const dist::reference& ref);
    void export_fun(const dist::export_fun& fun);
    /// A whole term.
    [[nodiscard]] std::expected<void, etf_errc> term(const dist::term& t);

  private:
    std::vector<std::byte>* out_;
};

}  // namespace vdist::dist
