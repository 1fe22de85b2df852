#include "vdist/dist/etf_reader.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace vdist::dist {
namespace {

// Tags that start a term (a read of the wrong type is invalid_field; any other byte is
// unknown_tag, as in the decoder). COMPRESSED and LOCAL_EXT are not among them.
[[nodiscard]] bool is_term_tag(std::uint8_t tag) noexcept {
    switch (tag) {
        case etf::NEW_FLOAT_EXT:
        case etf::BIT_BINARY_EXT:
        case etf::ATOM_CACHE_REF:
        case etf::NEW_PID_EXT:
        case etf::NEW_PORT_EXT:
        case etf::NEWER_REFERENCE_EXT:
        case etf::SMALL_INTEGER_EXT:
        case etf::INTEGER_EXT:
        case etf::FLOAT_EXT:
        case etf::ATOM_EXT:
        case etf::REFERENCE_EXT:
        case etf::PORT_EXT:
        case etf::PID_EXT:
        case etf::SMALL_TUPLE_EXT:
        case etf::LARGE_TUPLE_EXT:
        case etf::NIL_EXT:
        case etf::STRING_EXT:
        case etf::LIST_EXT:
        case etf::BINARY_EXT:
        case etf::SMALL_BIG_EXT:
        case etf::LARGE_BIG_EXT:
        case etf::NEW_FUN_EXT:
        case etf::EXPORT_EXT:
        case etf::NEW_REFERENCE_EXT:
        case etf::SMALL_ATOM_EXT:
        case etf::MAP_EXT:
        case etf::ATOM_UTF8_EXT:
        case etf::SMALL_ATOM_UTF8_EXT:
        case etf::V4_PORT_EXT:
            return true;
        default:
            return false;
    }
}

// FLOAT_EXT's field: "%.20e" padded with NULs; what is before the first NUL must parse whole.
[[nodiscard]] std::expected<double, etf_errc> old_float(const std::byte* field) {
    char text[etf::float_ext_text_length + 1];
    std::memcpy(text, field, etf::float_ext_text_length);
    text[etf::float_ext_text_length] = '\0';
    const std::size_t length = std::strlen(text);
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    if (length == 0 || end != text + length || !std::isfinite(value)) {
        return std::unexpected(etf_errc::invalid_float);
    }
    return value;
}

// The value of a bignum's digits (little-endian) and sign, if it fits int64.
[[nodiscard]] std::optional<std::int64_t> small_big_value(std::span<const std::byte> digits,
                                                          bool negative) noexcept {
    std::size_t used = digits.size();  // without leading (most significant) zero digits
    while (used > 0 && digits[used - 1] == std::byte{0}) {
        --used;
    }
    if (used > 8) {
        return std::nullopt;
    }
    std::uint64_t magnitude = 0;
    for (std::size_t i = used; i-- > 0;) {
        magnitude = (magnitude << 8) | std::to_integer<std::uint64_t>(digits[i]);
    }
    constexpr auto max_positive = static_cast<std::uint64_t>(INT64_MAX);
    if (!negative && magnitude <= max_positive) {
        return static_cast<std::int64_t>(magnitude);
    }
    if (negative && magnitude <= max_positive + 1) {
        return magnitude == max_positive + 1 ? INT64_MIN : -static_cast<std::int64_t>(magnitude);
    }
    return std::nullopt;
}

// NEW_FUN_EXT up to its module: Tag Size:4 Arity:1 Uniq:16 Index:4 NumFree:4.
constexpr std::size_t fun_header = 1 + 4 + 1 + etf::fun_uniq_length + 4 + 4;

}  // namespace

decode_error etf_reader::mismatch(std::size_t at) const noexcept {
    if (at >= size()) {
        return {etf_errc::truncated, size()};
    }
    return {is_term_tag(byte_at(at)) ? etf_errc::invalid_field : etf_errc::unknown_tag, at};
}

// ---- headers

decode_result<std::size_t> etf_reader::read_tuple_header_slow() {
    const std::size_t at = position();
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::uint8_t tag = byte_at(at);
    if (tag != etf::SMALL_TUPLE_EXT && tag != etf::LARGE_TUPLE_EXT) {
        return std::unexpected(mismatch(at));
    }
    const std::size_t header = tag == etf::SMALL_TUPLE_EXT ? 2 : 5;
    if (size() - at < header) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t arity = header == 2 ? byte_at(at + 1) : u32_at_offset(at + 1);
    if (arity > size() - at - header) {
        return fail(etf_errc::truncated, at);  // each element takes a byte at least
    }
    seek(at + header);
    return arity;
}

decode_result<std::size_t> etf_reader::read_list_header_slow() {
    const std::size_t at = position();
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::uint8_t tag = byte_at(at);
    if (tag == etf::NIL_EXT) {
        seek(at + 1);
        return 0;
    }
    if (tag != etf::LIST_EXT) {
        return std::unexpected(mismatch(at));
    }
    if (size() - at < 5) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t length = u32_at_offset(at + 1);
    if (length > size() - at - 5) {
        return fail(etf_errc::truncated, at);
    }
    seek(at + 5);
    return length;
}

decode_result<std::span<const std::uint8_t>> etf_reader::read_string() {
    const std::size_t at = position();
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::uint8_t tag = byte_at(at);
    if (tag == etf::NIL_EXT) {
        seek(at + 1);
        return std::span<const std::uint8_t>{};
    }
    if (tag != etf::STRING_EXT) {
        return std::unexpected(mismatch(at));
    }
    if (size() - at < 3) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t length = u16_at_offset(at + 1);
    if (length > size() - at - 3) {
        return fail(etf_errc::truncated, size());
    }
    seek(at + 3 + length);
    return std::span(reinterpret_cast<const std::uint8_t*>(data_ + at + 3), length);
}

decode_result<std::size_t> etf_reader::read_map_header_slow() {
    const std::size_t at = position();
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    if (byte_at(at) != etf::MAP_EXT) {
        return std::unexpected(mismatch(at));
    }
    if (size() - at < 5) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t arity = u32_at_offset(at + 1);
    if (arity > (size() - at - 5) / 2) {
        return fail(etf_errc::truncated, at);
    }
    seek(at + 5);
    return arity;
}

// ---- numbers

decode_result<std::int64_t> etf_reader::read_integer_slow() {
    const std::size_t at = position();
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    switch (byte_at(at)) {
        case etf::SMALL_INTEGER_EXT:
        case etf::INTEGER_EXT:
            // The fast path took every complete one.
            return fail(etf_errc::truncated, size());
        case etf::SMALL_BIG_EXT:
        case etf::LARGE_BIG_EXT: {
            std::size_t after = at;
            const auto big = bignum_at(after);
            if (!big) {
                return std::unexpected(big.error());
            }
            const auto value = small_big_value(big->digits, big->sign);
            if (!value) {
                return fail(etf_errc::integer_out_of_range, at);
            }
            seek(after);
            return *value;
        }
        default:
            return std::unexpected(mismatch(at));
    }
}

decode_result<etf_reader::bignum_view> etf_reader::bignum_at(std::size_t& pos) const {
    const std::size_t at = pos;
    const std::size_t left = size() - at;
    const std::size_t header = byte_at(at) == etf::SMALL_BIG_EXT ? 2 : 5;
    if (left < header) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t digits = header == 2 ? byte_at(at + 1) : u32_at_offset(at + 1);
    if (digits > limits_.max_bignum_bytes) {
        return fail(etf_errc::bignum_too_large, at);
    }
    if (left - header < 1 + digits) {
        return fail(etf_errc::truncated, size());
    }
    const std::uint8_t sign = byte_at(at + header);
    if (sign > 1) {
        return fail(etf_errc::invalid_field, at);
    }
    pos = at + header + 1 + digits;
    return bignum_view{sign, std::span(data_ + at + header + 1, digits)};
}

decode_result<double> etf_reader::double_at(std::size_t& pos) const {
    const std::size_t at = pos;
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t left = size() - at;
    switch (byte_at(at)) {
        case etf::NEW_FLOAT_EXT: {
            if (left < 9) {
                return fail(etf_errc::truncated, size());
            }
            const auto value = std::bit_cast<double>(u64_at_offset(at + 1));
            if (!std::isfinite(value)) {
                return fail(etf_errc::invalid_float, at);
            }
            pos = at + 9;
            return value;
        }
        case etf::FLOAT_EXT: {
            if (left < 1 + etf::float_ext_text_length) {
                return fail(etf_errc::truncated, size());
            }
            const auto value = old_float(data_ + at + 1);
            if (!value) {
                return fail(value.error(), at);
            }
            pos = at + 1 + etf::float_ext_text_length;
            return *value;
        }
        default:
            return std::unexpected(mismatch(at));
    }
}

decode_result<double> etf_reader::read_double_slow() {
    return commit(&etf_reader::double_at);
}

// ---- atoms

decode_result<std::string_view> etf_reader::atom_text_at(std::size_t& pos, bool as_field) {
    const std::size_t at = pos;
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t left = size() - at;
    const std::uint8_t tag = byte_at(at);
    switch (tag) {
        case etf::ATOM_CACHE_REF: {
            if (left < 2) {
                return fail(etf_errc::truncated, size());
            }
            const std::size_t index = byte_at(at + 1);
            if (index >= cache_.size()) {
                return fail(etf_errc::atom_cache_miss, at);
            }
            pos = at + 2;
            return cache_[index].text();
        }
        case etf::SMALL_ATOM_UTF8_EXT:
        case etf::ATOM_UTF8_EXT:
        case etf::SMALL_ATOM_EXT:
        case etf::ATOM_EXT: {
            const bool small = tag == etf::SMALL_ATOM_UTF8_EXT || tag == etf::SMALL_ATOM_EXT;
            const std::size_t header = small ? 2 : 3;
            if (left < header) {
                return fail(etf_errc::truncated, size());
            }
            const std::size_t length = small ? byte_at(at + 1) : u16_at_offset(at + 1);
            if (left - header < length) {
                return fail(etf_errc::truncated, size());
            }
            const auto* raw = data_ + at + header;
            std::string_view text(reinterpret_cast<const char*>(raw), length);
            if (tag == etf::SMALL_ATOM_UTF8_EXT || tag == etf::ATOM_UTF8_EXT) {
                const bool valid = is_ascii(raw, length) ? length <= etf::max_atom_characters
                                                         : is_valid_atom_text(text);
                if (!valid) {
                    return fail(etf_errc::invalid_atom, at);
                }
            } else {
                if (length > etf::max_atom_characters) {
                    return fail(etf_errc::invalid_atom, at);
                }
                std::size_t out = 0;
                for (const char c : text) {
                    const auto code = static_cast<unsigned char>(c);
                    if (code < 0x80) {
                        latin1_[out++] = c;
                    } else {
                        latin1_[out++] = static_cast<char>(0xc0 | (code >> 6));
                        latin1_[out++] = static_cast<char>(0x80 | (code & 0x3f));
                    }
                }
                text = std::string_view(latin1_.data(), out);
            }
            pos = at + header + length;
            return text;
        }
        default:
            if (as_field) {
                return fail(etf_errc::invalid_field, at);  // as the decoder: "no atom there"
            }
            return std::unexpected(mismatch(at));
    }
}

decode_result<std::string_view> etf_reader::read_atom_text_slow() {
    std::size_t pos = position();
    auto text = atom_text_at(pos, false);
    if (text) {
        seek(pos);
    }
    return text;
}

decode_result<atom> etf_reader::atom_at(std::size_t& pos, atom_table& atoms, bool as_field) {
    const std::size_t at = pos;
    if (at < size() && byte_at(at) == etf::ATOM_CACHE_REF && at + 1 < size() &&
        byte_at(at + 1) < cache_.size()) {
        pos = at + 2;
        return cache_[byte_at(at + 1)];
    }
    std::size_t after = pos;
    const auto text = atom_text_at(after, as_field);
    if (!text) {
        return std::unexpected(text.error());
    }
    if (auto known = atoms.find(*text)) {
        pos = after;
        return *known;
    }
    if (new_atoms_ >= limits_.max_new_atoms) {
        return fail(etf_errc::too_many_new_atoms, at);
    }
    auto made = atoms.intern(*text);
    if (!made) {
        return fail(made.error(), at);
    }
    ++new_atoms_;
    pos = after;
    return *made;
}

decode_result<atom> etf_reader::read_atom(atom_table& atoms) {
    std::size_t pos = position();
    auto name = atom_at(pos, atoms, false);
    if (name) {
        seek(pos);
    }
    return name;
}

// ---- binaries

decode_result<bits_view> etf_reader::bitstring_at(std::size_t& pos) const {
    const std::size_t at = pos;
    if (at == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t left = size() - at;
    const std::uint8_t tag = byte_at(at);
    if (tag == etf::BINARY_EXT) {
        if (left < 5) {
            return fail(etf_errc::truncated, size());
        }
        const std::size_t length = u32_at_offset(at + 1);
        if (length > left - 5) {
            return fail(etf_errc::truncated, size());
        }
        pos = at + 5 + length;
        return bits_view{std::span(data_ + at + 5, length), 8};
    }
    if (tag != etf::BIT_BINARY_EXT) {
        return std::unexpected(mismatch(at));
    }
    if (left < 6) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t length = u32_at_offset(at + 1);
    const std::uint8_t last_bits = byte_at(at + 5);
    if ((length == 0 && last_bits != 0) || (length > 0 && (last_bits == 0 || last_bits > 8))) {
        return fail(etf_errc::invalid_length, at);
    }
    if (length > left - 6) {
        return fail(etf_errc::truncated, size());
    }
    pos = at + 6 + length;
    // An empty BIT_BINARY_EXT (0 bits) and one of whole bytes are binaries.
    return bits_view{std::span(data_ + at + 6, length), length == 0 ? std::uint8_t{8} : last_bits};
}

decode_result<bits_view> etf_reader::read_bitstring() {
    return commit(&etf_reader::bitstring_at);
}

decode_result<std::span<const std::byte>> etf_reader::read_binary_slow() {
    std::size_t pos = position();
    const auto bits = bitstring_at(pos);
    if (!bits) {
        return std::unexpected(bits.error());
    }
    if (bits->last_bits != 8) {
        return fail(etf_errc::invalid_field, position());  // a bitstring is no binary
    }
    seek(pos);
    return bits->bytes;
}

// ---- pids, ports, references

decode_result<void> etf_reader::pid_numbers_at(std::size_t& pos, bool old, std::uint32_t& id,
                                               std::uint32_t& serial,
                                               std::uint32_t& creation) const {
    if (size() - pos < (old ? 9u : 12u)) {
        return fail(etf_errc::truncated, size());
    }
    id = u32_at_offset(pos);
    serial = u32_at_offset(pos + 4);
    creation = old ? byte_at(pos + 8) : u32_at_offset(pos + 8);
    pos += old ? 9 : 12;
    if (old && creation > etf::max_old_creation) {
        return fail(etf_errc::invalid_field, pos - 1);
    }
    return {};
}

decode_result<std::uint8_t> etf_reader::tag_at(std::size_t& pos, std::uint8_t first,
                                               std::uint8_t second, std::uint8_t third) const {
    if (pos == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::uint8_t tag = byte_at(pos);
    if (tag != first && tag != second && tag != third) {
        return std::unexpected(mismatch(pos));
    }
    ++pos;
    return tag;
}

decode_result<pid> etf_reader::read_pid(atom_table& atoms) {
    std::size_t pos = position();
    const auto tag = tag_at(pos, etf::NEW_PID_EXT, etf::PID_EXT, etf::PID_EXT);
    if (!tag) {
        return std::unexpected(tag.error());
    }
    auto node = atom_at(pos, atoms, true);
    if (!node) {
        return std::unexpected(node.error());
    }
    pid out{.node = *node};
    if (auto numbers = pid_numbers_at(pos, *tag == etf::PID_EXT, out.id, out.serial, out.creation);
        !numbers) {
        return std::unexpected(numbers.error());
    }
    seek(pos);
    return out;
}

decode_result<pid_view> etf_reader::read_pid_slow() {
    std::size_t pos = position();
    const auto tag = tag_at(pos, etf::NEW_PID_EXT, etf::PID_EXT, etf::PID_EXT);
    if (!tag) {
        return std::unexpected(tag.error());
    }
    auto node = atom_text_at(pos, true);
    if (!node) {
        return std::unexpected(node.error());
    }
    pid_view out{.node = *node};
    if (auto numbers = pid_numbers_at(pos, *tag == etf::PID_EXT, out.id, out.serial, out.creation);
        !numbers) {
        return std::unexpected(numbers.error());
    }
    seek(pos);
    return out;
}

decode_result<port> etf_reader::read_port(atom_table& atoms) {
    std::size_t pos = position();
    const auto tag = tag_at(pos, etf::NEW_PORT_EXT, etf::V4_PORT_EXT, etf::PORT_EXT);
    if (!tag) {
        return std::unexpected(tag.error());
    }
    auto node = atom_at(pos, atoms, true);
    if (!node) {
        return std::unexpected(node.error());
    }
    const std::size_t id_bytes = *tag == etf::V4_PORT_EXT ? 8 : 4;
    const std::size_t creation_bytes = *tag == etf::PORT_EXT ? 1 : 4;
    if (size() - pos < id_bytes + creation_bytes) {
        return fail(etf_errc::truncated, size());
    }
    port out{.node = *node};
    out.id = id_bytes == 8 ? u64_at_offset(pos) : u32_at_offset(pos);
    pos += id_bytes;
    out.creation = creation_bytes == 1 ? byte_at(pos) : u32_at_offset(pos);
    pos += creation_bytes;
    if (creation_bytes == 1 && out.creation > etf::max_old_creation) {
        return fail(etf_errc::invalid_field, pos - 1);
    }
    seek(pos);
    return out;
}

decode_result<reference_id> etf_reader::read_reference(atom_table& atoms) {
    const std::size_t at = position();
    std::size_t pos = at;
    const auto tag =
        tag_at(pos, etf::NEWER_REFERENCE_EXT, etf::NEW_REFERENCE_EXT, etf::REFERENCE_EXT);
    if (!tag) {
        return std::unexpected(tag.error());
    }
    reference_id out;
    out.word_count = 1;
    if (*tag != etf::REFERENCE_EXT) {
        if (size() - pos < 2) {
            return fail(etf_errc::truncated, size());
        }
        out.word_count = u16_at_offset(pos);
        pos += 2;
        if (out.word_count > etf::max_reference_words) {
            return fail(etf_errc::invalid_length, at);
        }
    }
    auto node = atom_at(pos, atoms, true);
    if (!node) {
        return std::unexpected(node.error());
    }
    out.node = *node;
    const std::size_t creation_bytes = *tag == etf::NEWER_REFERENCE_EXT ? 4 : 1;
    if (size() - pos < creation_bytes + 4 * out.word_count) {
        return fail(etf_errc::truncated, size());
    }
    if (*tag == etf::REFERENCE_EXT) {
        out.word_storage[0] = u32_at_offset(pos);
        out.creation = byte_at(pos + 4);
        pos += 5;
    } else {
        out.creation = creation_bytes == 4 ? u32_at_offset(pos) : byte_at(pos);
        pos += creation_bytes;
        for (std::size_t i = 0; i < out.word_count; ++i, pos += 4) {
            out.word_storage[i] = u32_at_offset(pos);
        }
    }
    if (creation_bytes == 1 && out.creation > etf::max_old_creation) {
        return fail(etf_errc::invalid_field, at);
    }
    seek(pos);
    return out;
}

// ---- whole terms

decode_result<void> etf_reader::skip_term() {
    std::size_t pos = position();
    std::size_t terms = 0;
    if (auto skipped = skip_at(pos, 1, 0, terms); !skipped) {
        return skipped;
    }
    seek(pos);
    return {};
}

// `count` terms from `pos`, in one loop: `pending` is how many terms are still to be stepped
// over (a container adds its elements), so nesting costs no stack. Checks and error offsets
// follow the decoder's read_term.
decode_result<void> etf_reader::skip_at(std::size_t& pos, std::size_t count, std::size_t fun_depth,
                                        std::size_t& terms) {
    // Before stepping into `n` elements: each takes a byte, and they must fit under max_terms.
    const auto admit = [&](std::size_t n, std::size_t at,
                           std::size_t after_header) -> decode_result<void> {
        if (n > size() - after_header) {
            return fail(etf_errc::truncated, at);
        }
        if (n > limits_.max_terms - std::min(terms, limits_.max_terms)) {
            return fail(etf_errc::too_many_terms, at);
        }
        return {};
    };
    for (std::size_t pending = count; pending > 0; --pending) {
        const std::size_t at = pos;
        if (++terms > limits_.max_terms) {
            return fail(etf_errc::too_many_terms, at);
        }
        if (at == size()) {
            return fail(etf_errc::truncated, size());
        }
        const std::size_t left = size() - at;
        const std::uint8_t tag = byte_at(at);
        switch (tag) {
            case etf::SMALL_INTEGER_EXT:
            case etf::INTEGER_EXT: {
                const std::size_t length = tag == etf::SMALL_INTEGER_EXT ? 2 : 5;
                if (left < length) {
                    return fail(etf_errc::truncated, size());
                }
                pos = at + length;
                break;
            }
            case etf::SMALL_BIG_EXT:
            case etf::LARGE_BIG_EXT:
                if (auto big = bignum_at(pos); !big) {
                    return std::unexpected(big.error());
                }
                break;
            case etf::NEW_FLOAT_EXT:
            case etf::FLOAT_EXT:
                if (auto value = double_at(pos); !value) {
                    return std::unexpected(value.error());
                }
                break;
            case etf::ATOM_CACHE_REF:
            case etf::SMALL_ATOM_UTF8_EXT:
            case etf::ATOM_UTF8_EXT:
            case etf::SMALL_ATOM_EXT:
            case etf::ATOM_EXT:
                if (auto text = atom_text_at(pos, false); !text) {
                    return std::unexpected(text.error());
                }
                break;
            case etf::SMALL_TUPLE_EXT:
            case etf::LARGE_TUPLE_EXT: {
                const std::size_t header = tag == etf::SMALL_TUPLE_EXT ? 2 : 5;
                if (left < header) {
                    return fail(etf_errc::truncated, size());
                }
                const std::size_t arity = header == 2 ? byte_at(at + 1) : u32_at_offset(at + 1);
                if (auto admitted = admit(arity, at, at + header); !admitted) {
                    return admitted;
                }
                pos = at + header;
                pending += arity;
                break;
            }
            case etf::NIL_EXT:
                pos = at + 1;
                break;
            case etf::STRING_EXT: {
                if (left < 3) {
                    return fail(etf_errc::truncated, size());
                }
                const std::size_t length = u16_at_offset(at + 1);
                if (length > left - 3) {
                    return fail(etf_errc::truncated, size());
                }
                if (auto admitted = admit(length, at, at + 3); !admitted) {
                    return admitted;
                }
                terms += length;
                pos = at + 3 + length;
                break;
            }
            case etf::LIST_EXT: {
                if (left < 5) {
                    return fail(etf_errc::truncated, size());
                }
                const std::size_t length = u32_at_offset(at + 1);
                if (auto admitted = admit(length, at, at + 5); !admitted) {
                    return admitted;
                }
                pos = at + 5;
                pending += length + 1;  // and the tail
                break;
            }
            case etf::BINARY_EXT:
            case etf::BIT_BINARY_EXT:
                if (auto bits = bitstring_at(pos); !bits) {
                    return std::unexpected(bits.error());
                }
                break;
            case etf::MAP_EXT: {
                if (left < 5) {
                    return fail(etf_errc::truncated, size());
                }
                const std::size_t arity = u32_at_offset(at + 1);
                if (auto admitted = admit(2 * arity, at, at + 5); !admitted) {
                    return admitted;
                }
                pos = at + 5;
                pending += 2 * arity;
                break;
            }
            case etf::NEW_PID_EXT:
            case etf::PID_EXT: {
                pos = at + 1;
                pid_view ignored;
                if (auto node = atom_text_at(pos, true); !node) {
                    return std::unexpected(node.error());
                }
                if (auto numbers = pid_numbers_at(pos, tag == etf::PID_EXT, ignored.id,
                                                  ignored.serial, ignored.creation);
                    !numbers) {
                    return numbers;
                }
                break;
            }
            case etf::NEW_PORT_EXT:
            case etf::V4_PORT_EXT:
            case etf::PORT_EXT: {
                pos = at + 1;
                if (auto node = atom_text_at(pos, true); !node) {
                    return std::unexpected(node.error());
                }
                const std::size_t id_bytes = tag == etf::V4_PORT_EXT ? 8 : 4;
                const std::size_t creation_bytes = tag == etf::PORT_EXT ? 1 : 4;
                if (size() - pos < id_bytes + creation_bytes) {
                    return fail(etf_errc::truncated, size());
                }
                pos += id_bytes + creation_bytes;
                if (creation_bytes == 1 && byte_at(pos - 1) > etf::max_old_creation) {
                    return fail(etf_errc::invalid_field, pos - 1);
                }
                break;
            }
            case etf::NEWER_REFERENCE_EXT:
            case etf::NEW_REFERENCE_EXT:
            case etf::REFERENCE_EXT: {
                std::size_t words = 1;
                pos = at + 1;
                if (tag != etf::REFERENCE_EXT) {
                    if (left < 3) {
                        return fail(etf_errc::truncated, size());
                    }
                    words = u16_at_offset(at + 1);
                    pos += 2;
                    if (words > etf::max_reference_words) {
                        return fail(etf_errc::invalid_length, at);
                    }
                }
                if (auto node = atom_text_at(pos, true); !node) {
                    return std::unexpected(node.error());
                }
                const std::size_t creation_bytes = tag == etf::NEWER_REFERENCE_EXT ? 4 : 1;
                if (size() - pos < creation_bytes + 4 * words) {
                    return fail(etf_errc::truncated, size());
                }
                const std::size_t creation_at = tag == etf::REFERENCE_EXT ? pos + 4 : pos;
                pos += creation_bytes + 4 * words;
                if (creation_bytes == 1 && byte_at(creation_at) > etf::max_old_creation) {
                    return fail(etf_errc::invalid_field, at);
                }
                break;
            }
            case etf::EXPORT_EXT: {
                pos = at + 1;
                for (int i = 0; i < 2; ++i) {
                    if (auto name = atom_text_at(pos, true); !name) {
                        return std::unexpected(name.error());
                    }
                }
                if (pos == size()) {
                    return fail(etf_errc::truncated, size());
                }
                if (byte_at(pos) != etf::SMALL_INTEGER_EXT) {
                    return fail(etf_errc::invalid_field, pos);
                }
                if (size() - pos < 2) {
                    return fail(etf_errc::truncated, size());
                }
                pos += 2;
                break;
            }
            case etf::NEW_FUN_EXT:
                if (auto skipped = skip_fun_at(pos, fun_depth, terms); !skipped) {
                    return skipped;
                }
                break;
            default:
                // Includes COMPRESSED below the top level and LOCAL_EXT.
                return fail(etf_errc::unknown_tag, at);
        }
    }
    return {};
}

// NEW_FUN_EXT at `pos`: its fields, its free variables (a nested walk, one level per closure
// inside a closure), and Size checked against where it ended.
decode_result<void> etf_reader::skip_fun_at(std::size_t& pos, std::size_t fun_depth,
                                            std::size_t& terms) {
    const std::size_t at = pos;
    if (size() - at < fun_header) {
        return fail(etf_errc::truncated, size());
    }
    const std::size_t size_field = u32_at_offset(at + 1);
    const std::size_t free_count = u32_at_offset(at + fun_header - 4);
    pos = at + fun_header;
    if (auto module = atom_text_at(pos, true); !module) {
        return std::unexpected(module.error());
    }
    for (int i = 0; i < 2; ++i) {  // OldIndex, OldUniq
        if (pos == size()) {
            return fail(etf_errc::truncated, size());
        }
        const std::uint8_t tag = byte_at(pos);
        if (tag != etf::SMALL_INTEGER_EXT && tag != etf::INTEGER_EXT) {
            return fail(etf_errc::invalid_field, pos);
        }
        const std::size_t length = tag == etf::SMALL_INTEGER_EXT ? 2 : 5;
        if (size() - pos < length) {
            return fail(etf_errc::truncated, size());
        }
        pos += length;
    }
    if (pos == size()) {
        return fail(etf_errc::truncated, size());
    }
    const std::uint8_t pid_tag = byte_at(pos);
    if (pid_tag != etf::NEW_PID_EXT && pid_tag != etf::PID_EXT) {
        return fail(etf_errc::invalid_field, pos);
    }
    ++pos;
    pid_view creator;
    if (auto node = atom_text_at(pos, true); !node) {
        return std::unexpected(node.error());
    }
    if (auto numbers = pid_numbers_at(pos, pid_tag == etf::PID_EXT, creator.id, creator.serial,
                                      creator.creation);
        !numbers) {
        return numbers;
    }
    if (free_count > size() - pos) {
        return fail(etf_errc::truncated, at);
    }
    if (free_count > limits_.max_terms - std::min(terms, limits_.max_terms)) {
        return fail(etf_errc::too_many_terms, at);
    }
    if (free_count > 0) {
        if (fun_depth >= limits_.max_depth) {
            return fail(etf_errc::depth_exceeded, pos);
        }
        if (auto skipped = skip_at(pos, free_count, fun_depth + 1, terms); !skipped) {
            return skipped;
        }
    }
    if (pos - (at + 1) != size_field) {
        return fail(etf_errc::invalid_length, at);  // Size counts itself, not the tag
    }
    return {};
}

decode_result<term> etf_reader::read_term(atom_table& atoms,
                                          const std::shared_ptr<const void>& buffer) {
    decode_limits limits = limits_;
    limits.max_new_atoms -= std::min(new_atoms_, limits_.max_new_atoms);
    const std::size_t atoms_before = atoms.size();
    std::size_t consumed = 0;
    auto result = etf_decoder(atoms, limits)
                      .decode_term(std::span(data_ + position(), size() - position()), consumed,
                                   cache_, buffer);
    new_atoms_ += atoms.size() - atoms_before;
    if (!result) {
        return fail(result.error().code, result.error().offset + position());
    }
    cursor_ += consumed;
    return result;
}

}  // namespace vdist::dist
