#pragma once
/// \file
/// Reading External Term Format piece by piece, for the hot path: a cursor over the bytes of a
/// control message or a payload, the counterpart of erl_interface's ei_decode_* (and of
/// etf_writer). Nothing is allocated: integers, floats and headers come back as values, atom
/// names and binaries as views into the input, pids, ports and references with their node
/// interned (or, for a pid, as text). Where a sub-term is wanted whole, read_term() hands it
/// to the owned decoder (etf_decoder.hpp).
///
/// Input is untrusted, as for the decoder: every read is bounds-checked and fails with a
/// decode_error naming the problem and the offset, with the decoder's codes (a header claiming
/// more elements than bytes left is `truncated` at the header, an atom that is not UTF-8 is
/// `invalid_atom`, a pid whose node is no atom is `invalid_field`, ...). A read of the wrong
/// type fails with `invalid_field` at the tag (`unknown_tag` if the byte is no tag at all).
/// A failed read leaves the position where it was. The reader does not check a container's
/// structure (that the caller reads as many elements as the header announced) nor map keys for
/// duplicates (a caller keeping the entries must, as the decoder does).
///
/// Offsets and position() count from the start of the span given to the constructor: give it
/// the whole external term (version byte included) and offsets agree with etf_decoder::decode.
///
/// ```
/// // {6, FromPid, Cookie, ToName}: a REG_SEND control message (erl_dist_protocol), after the
/// // distribution header. Cookie is '' since OTP 21 and ignored.
/// etf_reader in(control);                           // the term's bytes, after its 131
/// auto arity = in.read_tuple_header();
/// if (!arity) return std::unexpected(arity.error());
/// if (*arity != 4) return bad_control(in.position());
/// auto op = in.read_integer();                      // 6
/// if (!op) return std::unexpected(op.error());
/// auto from = in.read_pid(atoms);                   // node interned, new atoms counted
/// if (!from) return std::unexpected(from.error());
/// if (auto cookie = in.skip_term(); !cookie) return std::unexpected(cookie.error());
/// auto to_name = in.read_atom(atoms);
/// if (!to_name) return std::unexpected(to_name.error());
/// // in.position(): where the message term starts (read_term(), or more reads)
/// ```
///
/// Threads: a reader is a value used by one thread; the input must outlive the views it
/// returns.

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <expected>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf.hpp"
#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_errc.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::dist {

/// A pid read without an atom table: its node's name as text.
struct pid_view {
    /// UTF-8; in the input, or in the reader's buffer for a Latin-1 atom (then valid until
    /// the reader's next read of a Latin-1 atom).
    std::string_view node;
    std::uint32_t id = 0;
    std::uint32_t serial = 0;
    std::uint32_t creation = 0;
};

/// A reference read without allocating: its words held in place.
struct reference_id {
    atom node;
    std::uint32_t creation = 0;
    std::array<std::uint32_t, etf::max_reference_words> word_storage{};
    std::size_t word_count = 0;

    /// The id words, in wire order.
    [[nodiscard]] std::span<const std::uint32_t> words() const noexcept {
        return std::span(word_storage).first(word_count);
    }
    /// As an owned `reference` (allocates its words).
    [[nodiscard]] reference to_reference() const {
        return reference{
            node,
            creation,
            {word_storage.begin(), word_storage.begin() + static_cast<std::ptrdiff_t>(word_count)}};
    }
};

/// A bitstring as a view: `bytes`, of whose last byte the `last_bits` high bits are used (8 for
/// a binary). The unused low bits are as the sender left them.
struct bits_view {
    std::span<const std::byte> bytes;
    std::uint8_t last_bits = 8;
};

/// A cursor over ETF bytes. Cheap to make (three words and the limits); holds no reference to
/// an atom table (reads that intern take one).
///
/// The common encodings (what OTP writes) are read inline and forced to be: out of line, the
/// std::expected a read returns goes through memory and costs more than the read itself. The
/// rest (other encodings, every error) is in etf_reader.cpp.
class etf_reader {
  public:
    /// Reads `bytes`. `atom_cache` resolves ATOM_CACHE_REF indices (a distribution header's
    /// cache; empty: such a reference fails with atom_cache_miss). Limits used: max_terms and
    /// max_depth (skip_term, read_term), max_bignum_bytes, max_new_atoms (counted over all of
    /// this reader's reads).
    explicit etf_reader(std::span<const std::byte> bytes, decode_limits limits = {},
                        std::span<const atom> atom_cache = {}) noexcept
        : data_(bytes.data()),
          cursor_(bytes.data()),
          end_(bytes.data() + bytes.size()),
          limits_(limits),
          cache_(atom_cache) {}

    /// Offset of the next byte to read.
    [[nodiscard]] std::size_t position() const noexcept {
        return static_cast<std::size_t>(cursor_ - data_);
    }
    /// Bytes left.
    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - cursor_);
    }
    /// Whether every byte has been read.
    [[nodiscard]] bool at_end() const noexcept { return cursor_ == end_; }
    /// Atoms this reader has added to atom tables so far (against max_new_atoms).
    [[nodiscard]] std::size_t new_atoms() const noexcept { return new_atoms_; }

    /// The tag of the next term (etf.hpp), not consumed. Fails with truncated at the end.
    [[nodiscard, gnu::always_inline]] decode_result<std::uint8_t> peek_tag() const noexcept {
        if (cursor_ == end_) [[unlikely]] {
            return fail(etf_errc::truncated, size());
        }
        return tag();
    }

    /// The version byte 131 that starts an external term (bad_version otherwise). A compressed
    /// term (131 80) reads as far as its version: inflate_external() it, then read that.
    [[nodiscard, gnu::always_inline]] decode_result<void> read_version() noexcept {
        if (cursor_ == end_) [[unlikely]] {
            return fail(etf_errc::truncated, size());
        }
        if (tag() != etf::VERSION_MAGIC) [[unlikely]] {
            return fail(etf_errc::bad_version, position());
        }
        ++cursor_;
        return {};
    }

    /// SMALL_TUPLE_EXT / LARGE_TUPLE_EXT: the arity; the elements follow.
    [[nodiscard, gnu::always_inline]] decode_result<std::size_t> read_tuple_header() {
        const std::size_t left = remaining();
        if (left >= 2 && tag() == etf::SMALL_TUPLE_EXT) [[likely]] {
            const std::size_t arity = u8_at(1);
            if (arity <= left - 2) [[likely]] {
                cursor_ += 2;
                return arity;
            }
        }
        return read_tuple_header_slow();
    }

    /// LIST_EXT: the number of elements, which follow, then the tail (for a proper list,
    /// NIL_EXT: read it with read_list_header(), which gives 0). NIL_EXT: 0. A STRING_EXT is
    /// refused (invalid_field): check peek_tag() and use read_string() where one may come
    /// (OTP writes a list of integers 0..255 as one).
    [[nodiscard, gnu::always_inline]] decode_result<std::size_t> read_list_header() {
        const std::size_t left = remaining();
        if (left >= 1 && tag() == etf::NIL_EXT) {
            cursor_ += 1;
            return 0;
        }
        if (left >= 5 && tag() == etf::LIST_EXT) [[likely]] {
            const std::size_t length = u32_at(1);
            if (length <= left - 5) [[likely]] {
                cursor_ += 5;
                return length;
            }
        }
        return read_list_header_slow();
    }

    /// STRING_EXT: its bytes, each an element of the list (a proper list). NIL_EXT: empty.
    [[nodiscard]] decode_result<std::span<const std::uint8_t>> read_string();

    /// MAP_EXT: the number of pairs; keys and values follow, key first.
    [[nodiscard, gnu::always_inline]] decode_result<std::size_t> read_map_header() {
        const std::size_t left = remaining();
        if (left >= 5 && tag() == etf::MAP_EXT) [[likely]] {
            const std::size_t arity = u32_at(1);
            if (arity <= (left - 5) / 2) [[likely]] {
                cursor_ += 5;
                return arity;
            }
        }
        return read_map_header_slow();
    }

    /// SMALL_INTEGER_EXT, INTEGER_EXT, or SMALL_BIG_EXT / LARGE_BIG_EXT whose value fits
    /// int64; a larger one fails with integer_out_of_range.
    [[nodiscard, gnu::always_inline]] decode_result<std::int64_t> read_integer() {
        const std::size_t left = remaining();
        if (left >= 2 && tag() == etf::SMALL_INTEGER_EXT) {
            const std::int64_t value = u8_at(1);
            cursor_ += 2;
            return value;
        }
        if (left >= 5 && tag() == etf::INTEGER_EXT) {
            const std::int64_t value = static_cast<std::int32_t>(u32_at(1));
            cursor_ += 5;
            return value;
        }
        return read_integer_slow();
    }

    /// NEW_FLOAT_EXT or FLOAT_EXT; a NaN or an infinity fails with invalid_float.
    [[nodiscard, gnu::always_inline]] decode_result<double> read_double() {
        if (remaining() >= 9 && tag() == etf::NEW_FLOAT_EXT) {
            const auto value = std::bit_cast<double>(u64_at(1));
            if (std::isfinite(value)) [[likely]] {
                cursor_ += 9;
                return value;
            }
        }
        return read_double_slow();
    }

    /// An atom's name, UTF-8, checked as the decoder checks it (invalid_atom), not interned.
    /// The view is into the input; for a Latin-1 atom (ATOM_EXT, SMALL_ATOM_EXT) into this
    /// reader's buffer, valid until its next read of a Latin-1 atom; for ATOM_CACHE_REF, the
    /// cached atom's text.
    [[nodiscard, gnu::always_inline]] decode_result<std::string_view> read_atom_text() {
        const std::size_t left = remaining();
        if (left >= 2 && tag() == etf::SMALL_ATOM_UTF8_EXT) [[likely]] {
            const std::size_t length = u8_at(1);
            const std::byte* name = cursor_ + 2;
            if (length <= left - 2 && is_ascii(name, length)) [[likely]] {
                cursor_ = name + length;
                return std::string_view(reinterpret_cast<const char*>(name), length);
            }
        }
        return read_atom_text_slow();
    }

    /// An atom, interned in `atoms`: a name not yet there counts against max_new_atoms
    /// (too_many_new_atoms), and fails with atom_table_full at the table's capacity.
    [[nodiscard]] decode_result<atom> read_atom(atom_table& atoms);

    /// BINARY_EXT (or a BIT_BINARY_EXT of whole bytes): a view of its bytes in the input.
    [[nodiscard, gnu::always_inline]] decode_result<std::span<const std::byte>> read_binary() {
        const std::size_t left = remaining();
        if (left >= 5 && tag() == etf::BINARY_EXT) [[likely]] {
            const std::size_t length = u32_at(1);
            const std::byte* bytes = cursor_ + 5;
            if (length <= left - 5) [[likely]] {
                cursor_ = bytes + length;
                return std::span(bytes, length);
            }
        }
        return read_binary_slow();
    }

    /// BIT_BINARY_EXT or BINARY_EXT: a view of its bytes and the bits used in the last.
    [[nodiscard]] decode_result<bits_view> read_bitstring();

    /// NEW_PID_EXT or PID_EXT, its node as text (no atom table, no allocation).
    [[nodiscard, gnu::always_inline]] decode_result<pid_view> read_pid() {
        const std::size_t left = remaining();
        // NEW_PID_EXT with an ASCII SMALL_ATOM_UTF8_EXT node: what OTP writes.
        if (left >= 3 && tag() == etf::NEW_PID_EXT && u8_at(1) == etf::SMALL_ATOM_UTF8_EXT)
            [[likely]] {
            const std::size_t length = u8_at(2);
            const std::byte* node = cursor_ + 3;
            if (length + 12 <= left - 3 && is_ascii(node, length)) [[likely]] {
                const std::byte* numbers = node + length;
                cursor_ = numbers + 12;
                return pid_view{std::string_view(reinterpret_cast<const char*>(node), length),
                                big_endian<std::uint32_t>(numbers),
                                big_endian<std::uint32_t>(numbers + 4),
                                big_endian<std::uint32_t>(numbers + 8)};
            }
        }
        return read_pid_slow();
    }
    /// NEW_PID_EXT or PID_EXT, its node interned as read_atom() does.
    [[nodiscard]] decode_result<pid> read_pid(atom_table& atoms);
    /// NEW_PORT_EXT, V4_PORT_EXT or PORT_EXT, its node interned.
    [[nodiscard]] decode_result<port> read_port(atom_table& atoms);
    /// NEWER_REFERENCE_EXT, NEW_REFERENCE_EXT or REFERENCE_EXT, its node interned.
    [[nodiscard]] decode_result<reference_id> read_reference(atom_table& atoms);

    /// Steps over one term of any type, checking it as the decoder would except for what needs
    /// the term itself: map keys are not compared, atoms not interned (nor counted), and nesting
    /// is not limited (the walk keeps a count, not a stack) except of closures inside closures
    /// (max_depth). Terms are counted against max_terms.
    [[nodiscard]] decode_result<void> skip_term();

    /// One term, decoded whole by etf_decoder with this reader's limits, atom cache and
    /// remaining new-atom allowance: for a payload, or a part of a message the hot path does
    /// not read piece by piece. `buffer`: as for etf_decoder::decode_term (binaries of 64 bytes
    /// or more share it instead of being copied).
    [[nodiscard]] decode_result<term> read_term(atom_table& atoms,
                                                const std::shared_ptr<const void>& buffer = {});

  private:
    [[nodiscard]] static std::unexpected<decode_error> fail(etf_errc code,
                                                            std::size_t offset) noexcept {
        return std::unexpected(decode_error{code, offset});
    }
    [[nodiscard]] std::size_t size() const noexcept {
        return static_cast<std::size_t>(end_ - data_);
    }
    void seek(std::size_t at) noexcept { cursor_ = data_ + at; }
    // At the cursor (fast paths) and at an offset (etf_reader.cpp).
    [[nodiscard]] std::uint8_t tag() const noexcept {
        return std::to_integer<std::uint8_t>(*cursor_);
    }
    [[nodiscard]] std::uint8_t u8_at(std::size_t ahead) const noexcept {
        return std::to_integer<std::uint8_t>(cursor_[ahead]);
    }
    [[nodiscard]] std::uint32_t u32_at(std::size_t ahead) const noexcept {
        return big_endian<std::uint32_t>(cursor_ + ahead);
    }
    [[nodiscard]] std::uint64_t u64_at(std::size_t ahead) const noexcept {
        return big_endian<std::uint64_t>(cursor_ + ahead);
    }
    [[nodiscard]] std::uint8_t byte_at(std::size_t at) const noexcept {
        return std::to_integer<std::uint8_t>(data_[at]);
    }
    [[nodiscard]] std::uint16_t u16_at_offset(std::size_t at) const noexcept {
        return big_endian<std::uint16_t>(data_ + at);
    }
    [[nodiscard]] std::uint32_t u32_at_offset(std::size_t at) const noexcept {
        return big_endian<std::uint32_t>(data_ + at);
    }
    [[nodiscard]] std::uint64_t u64_at_offset(std::size_t at) const noexcept {
        return big_endian<std::uint64_t>(data_ + at);
    }
    template <class T>
    [[nodiscard]] static T big_endian(const std::byte* at) noexcept {
        return std::byteswap(load<T>(at));
    }
    /// Whether `length` bytes at `at` are all below 0x80 (an ASCII name is valid UTF-8): a few
    /// overlapping loads, no loop for names of up to 16 bytes.
    [[nodiscard, gnu::always_inline]] static bool is_ascii(const std::byte* at,
                                                           std::size_t length) noexcept {
        constexpr std::uint64_t high_bits = 0x8080808080808080u;
        std::uint64_t seen = 0;
        if (length >= 8) {
            for (std::size_t i = 0; i + 8 < length; i += 8) {
                seen |= load<std::uint64_t>(at + i);
            }
            seen |= load<std::uint64_t>(at + length - 8);
        } else if (length >= 4) {
            seen = load<std::uint32_t>(at) | load<std::uint32_t>(at + length - 4);
        } else if (length > 0) {
            seen = std::to_integer<std::uint64_t>(at[0] | at[length / 2] | at[length - 1]);
        }
        return (seen & high_bits) == 0;
    }
    template <class T>
    [[nodiscard]] static T load(const std::byte* at) noexcept {
        T value;
        std::memcpy(&value, at, sizeof value);
        return value;
    }

    // The complete reads, for what the inline fast paths leave: other encodings and errors.
    [[nodiscard]] decode_result<std::size_t> read_tuple_header_slow();
    [[nodiscard]] decode_result<std::size_t> read_list_header_slow();
    [[nodiscard]] decode_result<std::size_t> read_map_header_slow();
    [[nodiscard]] decode_result<std::int64_t> read_integer_slow();
    [[nodiscard]] decode_result<double> read_double_slow();
    [[nodiscard]] decode_result<std::string_view> read_atom_text_slow();
    [[nodiscard]] decode_result<std::span<const std::byte>> read_binary_slow();
    [[nodiscard]] decode_result<pid_view> read_pid_slow();

    // Reads at a position `pos` of the caller's, which they advance only on success.
    [[nodiscard]] decode_error mismatch(std::size_t at) const noexcept;
    [[nodiscard]] decode_result<std::uint8_t> tag_at(std::size_t& pos, std::uint8_t first,
                                                     std::uint8_t second, std::uint8_t third) const;
    [[nodiscard]] decode_result<double> double_at(std::size_t& pos) const;
    // A SMALL_BIG_EXT / LARGE_BIG_EXT: its sign (0 or 1) and little-endian digits, checked.
    struct bignum_view {
        std::uint8_t sign;
        std::span<const std::byte> digits;
    };
    [[nodiscard]] decode_result<bignum_view> bignum_at(std::size_t& pos) const;
    [[nodiscard]] decode_result<bits_view> bitstring_at(std::size_t& pos) const;
    [[nodiscard]] decode_result<std::string_view> atom_text_at(std::size_t& pos, bool as_field);
    [[nodiscard]] decode_result<atom> atom_at(std::size_t& pos, atom_table& atoms, bool as_field);
    [[nodiscard]] decode_result<void> pid_numbers_at(std::size_t& pos, bool old, std::uint32_t& id,
                                                     std::uint32_t& serial,
                                                     std::uint32_t& creation) const;
    [[nodiscard]] decode_result<void> skip_at(std::size_t& pos, std::size_t count,
                                              std::size_t fun_depth, std::size_t& terms);
    [[nodiscard]] decode_result<void> skip_fun_at(std::size_t& pos, std::size_t fun_depth,
                                                  std::size_t& terms);
    /// (this->*read)(pos) from the current position, which moves only if it succeeds.
    template <class T>
    [[nodiscard]] decode_result<T> commit(decode_result<T> (etf_reader::*read)(std::size_t&)
                                              const) {
        std::size_t pos = position();
        auto result = (this->*read)(pos);
        if (result) {
            seek(pos);
        }
        return result;
    }

    // Pointers rather than offsets: a store of an integer the caller decodes (say into a
    // std::vector<long>) cannot alias them, so they need not be reloaded after it.
    const std::byte* data_;
    const std::byte* cursor_;
    const std::byte* end_;
    decode_limits limits_;
    std::span<const atom> cache_;
    std::size_t new_atoms_ = 0;
    // Latin-1 atoms converted to UTF-8 (at most 2 bytes a character). Not initialised: only
    // read after it is written.
    std::array<char, 2 * etf::max_atom_characters> latin1_;
};

}  // namespace vdist::dist
