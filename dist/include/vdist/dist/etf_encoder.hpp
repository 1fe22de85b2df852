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
/// path, where control messages are built without making `term`s (etf_reader.hpp reads them
/// back the same way).

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <expected>
#include <span>
#include <string_view>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf.hpp"
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

/// Appends ETF to a byte vector, one piece at a time, for the hot path (control messages and
/// payloads built from plain values, no `term`s). The caller writes a container's header, then
/// exactly as many elements as it announced; the writer does not check the structure. Values
/// that ETF cannot carry are refused with etf_errc::not_encodable (the writer then stays
/// usable; what was appended before remains).
///
/// The writer keeps a cursor into `out`'s storage: `out` grows geometrically (resize), so a
/// piece is a bounds check and a few stores. Until finish() or the destructor, `out.size()`
/// counts room not yet written and `out` must not be used by anyone else; written() is what
/// has been written so far.
///
/// ```
/// std::vector<std::byte> buffer;                  // reused: clear() it between messages
/// {
///     etf_writer out(buffer);
///     out.version();
///     out.tuple_header(4);                        // {6, From, '', ToName}: REG_SEND
///     out.integer(6);
///     out.pid(from);
///     out.atom(atom{});
///     out.atom(to_name);
/// }                                               // destructor: finish(), buffer.size() exact
/// ```
///
/// Threads: one writer per vector, used by one thread.
class etf_writer {
  public:
    /// Appends to `out` (which keeps its current contents).
    explicit etf_writer(std::vector<std::byte>& out) noexcept
        : out_(&out), cursor_(out.data() + out.size()), limit_(cursor_), start_(out.size()) {}
    etf_writer(const etf_writer&) = delete;
    etf_writer& operator=(const etf_writer&) = delete;
    /// finish().
    ~etf_writer() { finish(); }

    /// Trims `out` to the bytes written. Writing may go on afterwards (it grows `out` again).
    void finish() noexcept {
        // Erasing the tail of a vector of bytes only moves its end: no allocation, cannot
        // throw, and inline (resize() would bring its growing path along).
        out_->erase(out_->begin() + (cursor_ - out_->data()), out_->end());
        limit_ = cursor_;
    }
    /// `out`'s bytes up to the cursor: what it held before, then what this writer wrote.
    [[nodiscard]] std::span<const std::byte> written() const noexcept {
        return {out_->data(), cursor_};
    }

    /// VERSION_MAGIC (131), before a top-level term.
    void version() {
        std::byte* at = room(1);
        at[0] = std::byte{etf::VERSION_MAGIC};
        cursor_ = at + 1;
    }
    /// SMALL_INTEGER_EXT for 0..255, INTEGER_EXT for 32 bits, SMALL_BIG_EXT beyond.
    void integer(std::int64_t value) {
        if (value >= 0 && value <= 255) {
            std::byte* at = room(2);
            at[0] = std::byte{etf::SMALL_INTEGER_EXT};
            at[1] = static_cast<std::byte>(value);
            cursor_ = at + 2;
        } else if (value >= INT32_MIN && value <= INT32_MAX) {
            std::byte* at = room(5);
            at[0] = std::byte{etf::INTEGER_EXT};
            store(at + 1, static_cast<std::uint32_t>(value));
            cursor_ = at + 5;
        } else {
            small_big(value);
        }
    }
    /// SMALL_BIG_EXT / LARGE_BIG_EXT (the smaller encoding if the value fits int64).
    [[nodiscard]] std::expected<void, etf_errc> big(const big_integer& value);
    /// NEW_FLOAT_EXT; a NaN or an infinity is not encodable.
    [[nodiscard]] std::expected<void, etf_errc> floating(double value);
    /// SMALL_ATOM_UTF8_EXT (ATOM_UTF8_EXT for names of more than 255 bytes).
    void atom(dist::atom name) {
        const std::string_view text = name.text();
        if (text.size() > 255) {
            long_atom(text);
            return;
        }
        std::byte* at = room(2 + text.size());
        at[0] = std::byte{etf::SMALL_ATOM_UTF8_EXT};
        at[1] = static_cast<std::byte>(text.size());
        std::memcpy(at + 2, text.data(), text.size());
        cursor_ = at + 2 + text.size();
    }
    /// SMALL_TUPLE_EXT up to 255 elements, LARGE_TUPLE_EXT beyond.
    void tuple_header(std::size_t arity) {
        if (arity <= 255) {
            std::byte* at = room(2);
            at[0] = std::byte{etf::SMALL_TUPLE_EXT};
            at[1] = static_cast<std::byte>(arity);
            cursor_ = at + 2;
        } else {
            tag_and_u32(etf::LARGE_TUPLE_EXT, arity);
        }
    }
    /// LIST_EXT header for `length` elements; the caller writes them, then the tail (nil()).
    void list_header(std::size_t length) { tag_and_u32(etf::LIST_EXT, length); }
    /// NIL_EXT: [] (the tail of a proper list).
    void nil() {
        std::byte* at = room(1);
        at[0] = std::byte{etf::NIL_EXT};
        cursor_ = at + 1;
    }
    /// STRING_EXT: `bytes` as a list of integers 0..255 (at most 65535 bytes, else a LIST_EXT).
    void string(std::span<const std::uint8_t> bytes);
    /// BINARY_EXT.
    void binary(std::span<const std::byte> bytes) {
        tag_and_u32(etf::BINARY_EXT, bytes.size());
        append(bytes);
    }
    /// BIT_BINARY_EXT (BINARY_EXT when `last_bits` is 8); `bytes` empty or `last_bits` not in
    /// 1..8 is not encodable. Unused low bits go out as zeros.
    [[nodiscard]] std::expected<void, etf_errc> bits(std::span<const std::byte> bytes,
                                                     std::uint8_t last_bits);
    /// MAP_EXT header for `arity` pairs; the caller writes key, value, key, value...
    void map_header(std::size_t arity) { tag_and_u32(etf::MAP_EXT, arity); }
    /// NEW_PID_EXT.
    void pid(const dist::pid& id) {
        const std::string_view node = id.node.text();
        if (node.size() > 255) {
            long_pid(id);
            return;
        }
        std::byte* at = room(1 + 2 + node.size() + 12);
        at[0] = std::byte{etf::NEW_PID_EXT};
        at[1] = std::byte{etf::SMALL_ATOM_UTF8_EXT};
        at[2] = static_cast<std::byte>(node.size());
        std::memcpy(at + 3, node.data(), node.size());
        at += 3 + node.size();
        store(at, id.id);
        store(at + 4, id.serial);
        store(at + 8, id.creation);
        cursor_ = at + 12;
    }
    /// NEW_PORT_EXT (V4_PORT_EXT for ids beyond 28 bits).
    void port(const dist::port& id);
    /// NEWER_REFERENCE_EXT; more than 5 words is not encodable.
    [[nodiscard]] std::expected<void, etf_errc> reference(const dist::reference& ref);
    /// EXPORT_EXT.
    void export_fun(const dist::export_fun& fun);
    /// A whole term, sized first and written in place.
    [[nodiscard]] std::expected<void, etf_errc> term(const dist::term& t);

  private:
    /// The cursor, with at least `n` bytes of room after it.
    [[nodiscard]] std::byte* room(std::size_t n) {
        if (static_cast<std::size_t>(limit_ - cursor_) < n) [[unlikely]] {
            grow(n);
        }
        return cursor_;
    }
    /// Makes room for `n` more bytes: resizes `out` geometrically in what this writer has
    /// written (what it grows into is zeroed by std::vector, so growth stays proportional to
    /// what is written, however much `out` held before: packets queued in one buffer).
    void grow(std::size_t n);
    /// Copies `bytes` after the cursor; large ones go through vector::insert (no zeroing).
    void append(std::span<const std::byte> bytes);
    static void store(std::byte* at, std::uint32_t value) noexcept {
        value = std::byteswap(value);
        std::memcpy(at, &value, sizeof value);
    }
    void tag_and_u32(std::uint8_t tag, std::size_t value) {
        std::byte* at = room(5);
        at[0] = std::byte{tag};
        store(at + 1, static_cast<std::uint32_t>(value));
        cursor_ = at + 5;
    }
    void small_big(std::int64_t value);
    void long_atom(std::string_view text);
    void long_pid(const dist::pid& id);

    std::vector<std::byte>* out_;
    std::byte* cursor_;  // next byte to write, in out_'s storage
    std::byte* limit_;   // out_->data() + out_->size()
    std::size_t start_;  // out_->size() when this writer began
};

}  // namespace vdist::dist
