#include "vdist/dist/etf_decoder.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "term_hash.hpp"
#include "vdist/dist/etf.hpp"

namespace vdist::dist {
namespace {

// One decode call: a cursor over the input, the limits and what this input has cost so far.
// Every read goes through need(); on the first failure error_ is set and every function
// returns false up the stack.
class decoding {
  public:
    decoding(std::span<const std::byte> in, atom_table& atoms, const decode_limits& limits,
             std::span<const atom> cache, const std::shared_ptr<const void>& buffer)
        : in_(in), atoms_(atoms), limits_(limits), cache_(cache), buffer_(buffer) {}

    [[nodiscard]] bool read_term(term& out, std::size_t depth);

    [[nodiscard]] std::size_t position() const noexcept { return pos_; }
    [[nodiscard]] std::size_t remaining() const noexcept { return in_.size() - pos_; }
    [[nodiscard]] const decode_error& error() const noexcept { return error_; }

    [[nodiscard]] bool fail(etf_errc code, std::size_t offset) noexcept {
        error_ = {code, offset};
        return false;
    }

    [[nodiscard]] bool need(std::size_t n) noexcept {
        return n <= remaining() || fail(etf_errc::truncated, in_.size());
    }
    [[nodiscard]] std::uint8_t u8() noexcept { return std::to_integer<std::uint8_t>(in_[pos_++]); }
    [[nodiscard]] std::uint16_t u16() noexcept {
        std::uint16_t value;
        std::memcpy(&value, in_.data() + pos_, sizeof value);
        pos_ += sizeof value;
        return std::byteswap(value);
    }
    [[nodiscard]] std::uint32_t u32() noexcept {
        std::uint32_t value;
        std::memcpy(&value, in_.data() + pos_, sizeof value);
        pos_ += sizeof value;
        return std::byteswap(value);
    }
    [[nodiscard]] std::uint64_t u64() noexcept {
        std::uint64_t value;
        std::memcpy(&value, in_.data() + pos_, sizeof value);
        pos_ += sizeof value;
        return std::byteswap(value);
    }
    [[nodiscard]] std::span<const std::byte> bytes(std::size_t n) noexcept {
        const auto taken = in_.subspan(pos_, n);
        pos_ += n;
        return taken;
    }

  private:
    // Before allocating room for `n` elements: each takes at least one byte of input, and
    // they must fit under max_terms (read_term counts them as they are read).
    [[nodiscard]] bool admit(std::size_t n, std::size_t at) noexcept {
        if (n > remaining()) {
            return fail(etf_errc::truncated, at);
        }
        return n <= limits_.max_terms - std::min(terms_, limits_.max_terms) ||
               fail(etf_errc::too_many_terms, at);
    }

    [[nodiscard]] bool read_atom(atom& out);
    [[nodiscard]] bool read_atom_text(std::uint8_t tag, std::size_t at, atom& out);
    [[nodiscard]] bool read_big(std::size_t digits, std::size_t at, term& out);
    [[nodiscard]] bool read_old_float(std::size_t at, term& out);
    [[nodiscard]] bool enter(std::size_t depth);
    [[nodiscard]] bool read_elements(std::vector<term>& out, std::size_t n, std::size_t depth);
    [[nodiscard]] bool read_element(std::vector<term>& out, std::size_t depth);
    [[nodiscard]] bool read_list(std::size_t at, std::size_t depth, term& out);
    [[nodiscard]] bool read_binary(std::size_t length, binary& out);
    [[nodiscard]] bool read_bits(std::size_t at, term& out);
    [[nodiscard]] bool read_map(std::size_t at, std::size_t depth, term& out);
    [[nodiscard]] bool check_unique_keys(const map& m, std::size_t at);
    [[nodiscard]] bool read_pid(std::uint8_t tag, pid& out);
    [[nodiscard]] bool read_small_int(std::int64_t& out);
    [[nodiscard]] bool read_fun(std::size_t at, std::size_t depth, term& out);

    std::span<const std::byte> in_;
    std::size_t pos_ = 0;
    atom_table& atoms_;
    const decode_limits& limits_;
    std::span<const atom> cache_;
    const std::shared_ptr<const void>& buffer_;
    std::size_t terms_ = 0;
    std::size_t new_atoms_ = 0;
    decode_error error_{etf_errc::truncated, 0};
};

[[nodiscard]] bool is_atom_tag(std::uint8_t tag) noexcept {
    return tag == etf::ATOM_UTF8_EXT || tag == etf::SMALL_ATOM_UTF8_EXT || tag == etf::ATOM_EXT ||
           tag == etf::SMALL_ATOM_EXT || tag == etf::ATOM_CACHE_REF;
}

bool decoding::read_atom(atom& out) {
    const std::size_t at = pos_;
    if (!need(1)) {
        return false;
    }
    const std::uint8_t tag = u8();
    if (!is_atom_tag(tag)) {
        return fail(etf_errc::invalid_field, at);
    }
    return read_atom_text(tag, at, out);
}

bool decoding::read_atom_text(std::uint8_t tag, std::size_t at, atom& out) {
    if (tag == etf::ATOM_CACHE_REF) {
        if (!need(1)) {
            return false;
        }
        const std::uint8_t index = u8();
        if (index >= cache_.size()) {
            return fail(etf_errc::atom_cache_miss, at);
        }
        out = cache_[index];
        return true;
    }
    const bool small = tag == etf::SMALL_ATOM_UTF8_EXT || tag == etf::SMALL_ATOM_EXT;
    if (!need(small ? 1 : 2)) {
        return false;
    }
    const std::size_t length = small ? u8() : u16();
    if (!need(length)) {
        return false;
    }
    const auto raw = bytes(length);
    std::string latin1_as_utf8;
    std::string_view text(reinterpret_cast<const char*>(raw.data()), raw.size());
    if (tag == etf::ATOM_EXT || tag == etf::SMALL_ATOM_EXT) {
        if (length > etf::max_atom_characters) {
            return fail(etf_errc::invalid_atom, at);
        }
        latin1_as_utf8.reserve(length * 2);
        for (const char c : text) {
            const auto code = static_cast<unsigned char>(c);
            if (code < 0x80) {
                latin1_as_utf8.push_back(c);
            } else {
                latin1_as_utf8.push_back(static_cast<char>(0xc0 | (code >> 6)));
                latin1_as_utf8.push_back(static_cast<char>(0x80 | (code & 0x3f)));
            }
        }
        text = latin1_as_utf8;
    }
    if (auto known = atoms_.find(text)) {
        out = *known;
        return true;
    }
    if (++new_atoms_ > limits_.max_new_atoms) {
        return fail(etf_errc::too_many_new_atoms, at);
    }
    auto made = atoms_.intern(text);
    if (!made) {
        return fail(made.error(), at);
    }
    out = *made;
    return true;
}

bool decoding::read_big(std::size_t digits, std::size_t at, term& out) {
    if (digits > limits_.max_bignum_bytes) {
        return fail(etf_errc::bignum_too_large, at);
    }
    if (!need(1 + digits)) {
        return false;
    }
    const std::uint8_t sign = u8();
    if (sign > 1) {
        return fail(etf_errc::invalid_field, at);
    }
    const auto raw = bytes(digits);
    std::size_t used = digits;  // without leading (most significant) zero digits
    while (used > 0 && raw[used - 1] == std::byte{0}) {
        --used;
    }
    if (used <= 8) {
        std::uint64_t magnitude = 0;
        for (std::size_t i = used; i-- > 0;) {
            magnitude = (magnitude << 8) | std::to_integer<std::uint64_t>(raw[i]);
        }
        constexpr auto max_positive = static_cast<std::uint64_t>(INT64_MAX);
        if (sign == 0 && magnitude <= max_positive) {
            out.value() = static_cast<std::int64_t>(magnitude);
            return true;
        }
        if (sign == 1 && magnitude <= max_positive + 1) {
            out.value() =
                magnitude == max_positive + 1 ? INT64_MIN : -static_cast<std::int64_t>(magnitude);
            return true;
        }
    }
    big_integer big{.negative = sign == 1, .magnitude = {}};
    big.magnitude.resize(used);
    std::memcpy(big.magnitude.data(), raw.data(), used);
    out.value() = std::move(big);
    return true;
}

bool decoding::read_old_float(std::size_t at, term& out) {
    if (!need(etf::float_ext_text_length)) {
        return false;
    }
    const auto raw = bytes(etf::float_ext_text_length);
    // The field is "%.20e" padded with NULs: parse what is before the first NUL.
    std::string text(reinterpret_cast<const char*>(raw.data()), raw.size());
    text.resize(std::strlen(text.c_str()));
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
        return fail(etf_errc::invalid_float, at);
    }
    out.value() = value;
    return true;
}

bool decoding::read_elements(std::vector<term>& out, std::size_t n, std::size_t depth) {
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (!read_element(out, depth + 1)) {
            return false;
        }
    }
    return true;
}

// read_term() of one more element of `out`. Integers and atoms, most elements of most terms,
// are made in place; other terms are read into a default one. (Overwriting a default term
// costs std::variant's reset, an indirect call, per element.)
bool decoding::read_element(std::vector<term>& out, std::size_t depth) {
    const std::size_t at = pos_;
    const std::uint8_t tag = remaining() > 0 ? std::to_integer<std::uint8_t>(in_[pos_]) : 0;
    if (tag == etf::SMALL_INTEGER_EXT || tag == etf::INTEGER_EXT) {
        if (!enter(depth)) {
            return false;
        }
        ++pos_;
        const bool small = tag == etf::SMALL_INTEGER_EXT;
        if (!need(small ? 1 : 4)) {
            return false;
        }
        out.emplace_back(small ? std::int64_t{u8()}
                               : std::int64_t{static_cast<std::int32_t>(u32())});
        return true;
    }
    if (is_atom_tag(tag)) {
        if (!enter(depth)) {
            return false;
        }
        ++pos_;
        atom name;
        if (!read_atom_text(tag, at, name)) {
            return false;
        }
        out.emplace_back(name);
        return true;
    }
    return read_term(out.emplace_back(), depth);
}

bool decoding::read_list(std::size_t at, std::size_t depth, term& out) {
    if (!need(4)) {
        return false;
    }
    const std::size_t n = u32();
    if (!admit(n, at)) {
        return false;
    }
    list result;
    if (!read_elements(result.elements, n, depth)) {
        return false;
    }
    term tail;
    if (!read_term(tail, depth + 1)) {
        return false;
    }
    if (auto* rest = std::get_if<list>(&tail.value())) {
        // [a | [b]] is [a, b]: splice, so that equal lists have one representation.
        result.elements.insert(result.elements.end(),
                               std::make_move_iterator(rest->elements.begin()),
                               std::make_move_iterator(rest->elements.end()));
        result.tail = std::move(rest->tail);
    } else if (result.elements.empty()) {
        out = std::move(tail);  // a LIST_EXT of no elements is its tail
        return true;
    } else {
        result.tail = std::move(tail);
    }
    out.value() = std::move(result);
    return true;
}

bool decoding::read_binary(std::size_t length, binary& out) {
    if (!need(length)) {
        return false;
    }
    const auto raw = bytes(length);
    if (buffer_ && length >= zero_copy_threshold) {
        out = binary(buffer_, raw);
    } else {
        out = binary(raw);
    }
    return true;
}

bool decoding::read_bits(std::size_t at, term& out) {
    if (!need(5)) {
        return false;
    }
    const std::size_t length = u32();
    const std::uint8_t last_bits = u8();
    if ((length == 0 && last_bits != 0) || (length > 0 && (last_bits == 0 || last_bits > 8))) {
        return fail(etf_errc::invalid_length, at);
    }
    if (length == 0 || last_bits == 8) {
        binary whole;
        if (!read_binary(length, whole)) {
            return false;
        }
        out.value() = std::move(whole);
        return true;
    }
    if (!need(length)) {
        return false;
    }
    // Clear the unused low bits of the last byte, so that equal bitstrings compare equal.
    std::vector<std::byte> copy(length);
    std::memcpy(copy.data(), bytes(length).data(), length);
    copy.back() &= static_cast<std::byte>(0xffu << (8 - last_bits));
    out.value() = bitstring{.bytes = binary(copy), .last_bits = last_bits};
    return true;
}

bool decoding::check_unique_keys(const map& m, std::size_t at) {
    return !internal::has_duplicate_key(m) || fail(etf_errc::duplicate_map_key, at);
}

bool decoding::read_map(std::size_t at, std::size_t depth, term& out) {
    if (!need(4)) {
        return false;
    }
    const std::size_t n = u32();
    if (!admit(2 * n, at)) {
        return false;
    }
    map result;
    result.entries.resize(n);
    for (auto& [key, value] : result.entries) {
        if (!read_term(key, depth + 1) || !read_term(value, depth + 1)) {
            return false;
        }
    }
    if (!check_unique_keys(result, at)) {
        return false;
    }
    out.value() = std::move(result);
    return true;
}

bool decoding::read_pid(std::uint8_t tag, pid& out) {
    if (!read_atom(out.node)) {
        return false;
    }
    const bool old = tag == etf::PID_EXT;
    if (!need(old ? 9 : 12)) {
        return false;
    }
    out.id = u32();
    out.serial = u32();
    out.creation = old ? u8() : u32();
    return !old || out.creation <= etf::max_old_creation || fail(etf_errc::invalid_field, pos_ - 1);
}

bool decoding::read_small_int(std::int64_t& out) {
    const std::size_t at = pos_;
    if (!need(1)) {
        return false;
    }
    switch (u8()) {
        case etf::SMALL_INTEGER_EXT:
            if (!need(1)) {
                return false;
            }
            out = u8();
            return true;
        case etf::INTEGER_EXT:
            if (!need(4)) {
                return false;
            }
            out = static_cast<std::int32_t>(u32());
            return true;
        default:
            return fail(etf_errc::invalid_field, at);
    }
}

bool decoding::read_fun(std::size_t at, std::size_t depth, term& out) {
    // Size:4 Arity:1 Uniq:16 Index:4 NumFree:4
    if (!need(4 + 1 + etf::fun_uniq_length + 4 + 4)) {
        return false;
    }
    const std::size_t size = u32();
    local_fun fun;
    fun.arity = u8();
    std::memcpy(fun.uniq.data(), bytes(etf::fun_uniq_length).data(), etf::fun_uniq_length);
    fun.index = u32();
    const std::size_t free_count = u32();
    if (!read_atom(fun.module) || !read_small_int(fun.old_index) || !read_small_int(fun.old_uniq)) {
        return false;
    }
    const std::size_t pid_at = pos_;
    if (!need(1)) {
        return false;
    }
    const std::uint8_t pid_tag = u8();
    if (pid_tag != etf::NEW_PID_EXT && pid_tag != etf::PID_EXT) {
        return fail(etf_errc::invalid_field, pid_at);
    }
    if (!read_pid(pid_tag, fun.pid) || !admit(free_count, at) ||
        !read_elements(fun.free_vars, free_count, depth)) {
        return false;
    }
    if (pos_ - (at + 1) != size) {
        return fail(etf_errc::invalid_length, at);  // Size counts itself, not the tag
    }
    out = std::move(fun);
    return true;
}

// What every term is checked for before its tag is read.
bool decoding::enter(std::size_t depth) {
    if (depth > limits_.max_depth) {
        return fail(etf_errc::depth_exceeded, pos_);
    }
    if (++terms_ > limits_.max_terms) {
        return fail(etf_errc::too_many_terms, pos_);
    }
    return need(1);
}

// Values go to out.value(): `out = value` would make a temporary term and move-assign it,
// two more std::variant dispatches per term.
bool decoding::read_term(term& out, std::size_t depth) {
    const std::size_t at = pos_;
    if (!enter(depth)) {
        return false;
    }
    const std::uint8_t tag = u8();
    switch (tag) {
        case etf::SMALL_INTEGER_EXT:
            if (!need(1)) {
                return false;
            }
            out.value() = std::int64_t{u8()};
            return true;
        case etf::INTEGER_EXT:
            if (!need(4)) {
                return false;
            }
            out.value() = std::int64_t{static_cast<std::int32_t>(u32())};
            return true;
        case etf::SMALL_BIG_EXT:
            return need(1) && read_big(u8(), at, out);
        case etf::LARGE_BIG_EXT:
            return need(4) && read_big(u32(), at, out);
        case etf::NEW_FLOAT_EXT: {
            if (!need(8)) {
                return false;
            }
            const auto value = std::bit_cast<double>(u64());
            if (!std::isfinite(value)) {
                return fail(etf_errc::invalid_float, at);
            }
            out.value() = value;
            return true;
        }
        case etf::FLOAT_EXT:
            return read_old_float(at, out);
        case etf::ATOM_UTF8_EXT:
        case etf::SMALL_ATOM_UTF8_EXT:
        case etf::ATOM_EXT:
        case etf::SMALL_ATOM_EXT:
        case etf::ATOM_CACHE_REF: {
            atom name;
            if (!read_atom_text(tag, at, name)) {
                return false;
            }
            out.value() = name;
            return true;
        }
        case etf::SMALL_TUPLE_EXT:
        case etf::LARGE_TUPLE_EXT: {
            const bool small = tag == etf::SMALL_TUPLE_EXT;
            if (!need(small ? 1 : 4)) {
                return false;
            }
            const std::size_t n = small ? u8() : u32();
            tuple result;
            if (!admit(n, at) || !read_elements(result.elements, n, depth)) {
                return false;
            }
            out.value() = std::move(result);
            return true;
        }
        case etf::NIL_EXT:
            out.value() = list{};
            return true;
        case etf::STRING_EXT: {
            if (!need(2)) {
                return false;
            }
            const std::size_t n = u16();
            if (!need(n) || !admit(n, at)) {
                return false;
            }
            terms_ += n;
            list result;
            result.elements.reserve(n);
            for (const std::byte b : bytes(n)) {
                result.elements.emplace_back(std::to_integer<std::int64_t>(b));
            }
            out.value() = std::move(result);
            return true;
        }
        case etf::LIST_EXT:
            return read_list(at, depth, out);
        case etf::BINARY_EXT: {
            if (!need(4)) {
                return false;
            }
            binary result;
            if (!read_binary(u32(), result)) {
                return false;
            }
            out.value() = std::move(result);
            return true;
        }
        case etf::BIT_BINARY_EXT:
            return read_bits(at, out);
        case etf::MAP_EXT:
            return read_map(at, depth, out);
        case etf::NEW_PID_EXT:
        case etf::PID_EXT: {
            pid result;
            if (!read_pid(tag, result)) {
                return false;
            }
            out.value() = std::move(result);
            return true;
        }
        case etf::NEW_PORT_EXT:
        case etf::V4_PORT_EXT:
        case etf::PORT_EXT: {
            port result;
            if (!read_atom(result.node)) {
                return false;
            }
            const std::size_t id_bytes = tag == etf::V4_PORT_EXT ? 8 : 4;
            const std::size_t creation_bytes = tag == etf::PORT_EXT ? 1 : 4;
            if (!need(id_bytes + creation_bytes)) {
                return false;
            }
            result.id = id_bytes == 8 ? u64() : u32();
            result.creation = creation_bytes == 1 ? u8() : u32();
            if (creation_bytes == 1 && result.creation > etf::max_old_creation) {
                return fail(etf_errc::invalid_field, pos_ - 1);
            }
            out.value() = std::move(result);
            return true;
        }
        case etf::NEWER_REFERENCE_EXT:
        case etf::NEW_REFERENCE_EXT:
        case etf::REFERENCE_EXT: {
            reference result;
            std::size_t words = 1;
            if (tag != etf::REFERENCE_EXT) {
                if (!need(2)) {
                    return false;
                }
                words = u16();
                if (words > etf::max_reference_words) {
                    return fail(etf_errc::invalid_length, at);
                }
            }
            if (!read_atom(result.node)) {
                return false;
            }
            const std::size_t creation_bytes = tag == etf::NEWER_REFERENCE_EXT ? 4 : 1;
            if (!need(creation_bytes + 4 * words)) {
                return false;
            }
            if (tag == etf::REFERENCE_EXT) {
                result.words = {u32()};
                result.creation = u8();
            } else {
                result.creation = creation_bytes == 4 ? u32() : u8();
                result.words.resize(words);
                for (auto& word : result.words) {
                    word = u32();
                }
            }
            if (creation_bytes == 1 && result.creation > etf::max_old_creation) {
                return fail(etf_errc::invalid_field, at);
            }
            out.value() = std::move(result);
            return true;
        }
        case etf::EXPORT_EXT: {
            export_fun result;
            std::int64_t arity = 0;
            if (!read_atom(result.module) || !read_atom(result.function)) {
                return false;
            }
            const std::size_t arity_at = pos_;
            if (!need(1)) {
                return false;
            }
            if (u8() != etf::SMALL_INTEGER_EXT) {
                return fail(etf_errc::invalid_field, arity_at);
            }
            if (!need(1)) {
                return false;
            }
            arity = u8();
            result.arity = static_cast<std::uint8_t>(arity);
            out.value() = std::move(result);
            return true;
        }
        case etf::NEW_FUN_EXT:
            return read_fun(at, depth, out);
        default:
            // Includes COMPRESSED (80) below the top level and OTP 26's LOCAL_EXT (121),
            // which only the node that made it can read.
            return fail(etf_errc::unknown_tag, at);
    }
}

// Inflates a compressed term's payload (after 131 80) into exactly its declared size.
[[nodiscard]] std::expected<std::shared_ptr<std::vector<std::byte>>, decode_error> inflate_term(
    std::span<const std::byte> payload, std::size_t payload_offset, const decode_limits& limits) {
    if (payload.size() < 4) {
        return std::unexpected(decode_error{etf_errc::truncated, payload_offset + payload.size()});
    }
    std::uint32_t declared;
    std::memcpy(&declared, payload.data(), 4);
    declared = std::byteswap(declared);
    if (declared > limits.max_decompressed_bytes) {
        return std::unexpected(decode_error{etf_errc::compressed_too_large, payload_offset});
    }
    auto inflated = std::make_shared<std::vector<std::byte>>(declared);
    const auto compressed = payload.subspan(4);
    z_stream stream{};
    if (inflateInit(&stream) != Z_OK) {
        return std::unexpected(decode_error{etf_errc::decompression_failed, payload_offset});
    }
    // zlib takes non-const input; it does not write to it.
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(compressed.data()));
    stream.avail_in = static_cast<uInt>(
        std::min<std::size_t>(compressed.size(), std::numeric_limits<uInt>::max()));
    stream.next_out = reinterpret_cast<Bytef*>(inflated->data());
    stream.avail_out = static_cast<uInt>(declared);
    const int status = inflate(&stream, Z_FINISH);
    const bool complete =
        status == Z_STREAM_END && stream.total_out == declared && stream.avail_in == 0;
    inflateEnd(&stream);
    if (!complete) {
        return std::unexpected(decode_error{etf_errc::decompression_failed, payload_offset + 4});
    }
    return inflated;
}

}  // namespace

decode_result<std::vector<std::byte>> inflate_external(std::span<const std::byte> external,
                                                       const decode_limits& limits) {
    if (!external.empty() && std::to_integer<std::uint8_t>(external[0]) != etf::VERSION_MAGIC) {
        return std::unexpected(decode_error{etf_errc::bad_version, 0});
    }
    if (external.size() < 2) {
        return std::unexpected(decode_error{etf_errc::truncated, external.size()});
    }
    if (std::to_integer<std::uint8_t>(external[1]) != etf::COMPRESSED) {
        return std::unexpected(decode_error{etf_errc::unknown_tag, 1});
    }
    auto inflated = inflate_term(external.subspan(2), 2, limits);
    if (!inflated) {
        return std::unexpected(inflated.error());
    }
    return std::move(**inflated);
}

decode_result<term> etf_decoder::decode(std::span<const std::byte> external) const {
    return decode(external, {});
}

decode_result<term> etf_decoder::decode(std::span<const std::byte> external,
                                        const std::shared_ptr<const void>& buffer) const {
    if (external.empty()) {
        return std::unexpected(decode_error{etf_errc::truncated, 0});
    }
    if (std::to_integer<std::uint8_t>(external[0]) != etf::VERSION_MAGIC) {
        return std::unexpected(decode_error{etf_errc::bad_version, 0});
    }
    auto body = external.subspan(1);
    if (!body.empty() && std::to_integer<std::uint8_t>(body[0]) == etf::COMPRESSED) {
        // Offsets of errors inside a compressed term are offsets in the decompressed bytes.
        auto inflated = inflate_term(body.subspan(1), 2, limits_);
        if (!inflated) {
            return std::unexpected(inflated.error());
        }
        std::size_t consumed = 0;
        const std::shared_ptr<const void> owner = *inflated;
        auto result = decode_term(**inflated, consumed, {}, owner);
        if (result && consumed != (*inflated)->size()) {
            return std::unexpected(decode_error{etf_errc::trailing_bytes, consumed});
        }
        return result;
    }
    std::size_t consumed = 0;
    auto result = decode_term(body, consumed, {}, buffer);
    if (!result) {
        return std::unexpected(decode_error{result.error().code, result.error().offset + 1});
    }
    if (consumed != body.size()) {
        return std::unexpected(decode_error{etf_errc::trailing_bytes, consumed + 1});
    }
    return result;
}

decode_result<term> etf_decoder::decode_term(std::span<const std::byte> bytes,
                                             std::size_t& consumed,
                                             std::span<const atom> atom_cache,
                                             const std::shared_ptr<const void>& buffer) const {
    decoding run(bytes, *atoms_, limits_, atom_cache, buffer);
    decode_result<term> result(std::in_place);  // decoded in place: no move of the term
    if (!run.read_term(*result, 0)) {
        return std::unexpected(run.error());
    }
    consumed = run.position();
    return result;
}

}  // namespace vdist::dist
