#include "vdist/dist/etf_encoder.hpp"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "vdist/dist/etf.hpp"

namespace vdist::dist {
namespace {

// Where encoded bytes go: `counter` only adds up sizes (the size pass), `raw_output` writes
// into memory already sized by that pass. Both are cursors, copied into a local for a whole
// piece or run of elements and stored back after it: a cursor left in memory would be
// reloaded after every byte written, since a std::byte store may alias it.
struct counter {
    std::size_t size = 0;
    void u8(std::uint8_t) noexcept { size += 1; }
    void u16(std::uint16_t) noexcept { size += 2; }
    void u32(std::uint32_t) noexcept { size += 4; }
    void u64(std::uint64_t) noexcept { size += 8; }
    void bytes(std::span<const std::byte> b) noexcept { size += b.size(); }
};

struct raw_output {
    std::byte* at;
    void u8(std::uint8_t v) noexcept { *at++ = static_cast<std::byte>(v); }
    void u16(std::uint16_t v) noexcept { put(std::byteswap(v)); }
    void u32(std::uint32_t v) noexcept { put(std::byteswap(v)); }
    void u64(std::uint64_t v) noexcept { put(std::byteswap(v)); }
    void bytes(std::span<const std::byte> b) noexcept {
        if (!b.empty()) {
            std::memcpy(at, b.data(), b.size());
            at += b.size();
        }
    }
    template <class T>
    void put(T v) noexcept {
        std::memcpy(at, &v, sizeof v);
        at += sizeof v;
    }
};

using encode_result = std::expected<void, etf_errc>;

// Least room etf_writer grows by: a control message and a small payload in one step.
constexpr std::size_t min_growth = 256;

// The most keys of a map OTP stores (and encodes) sorted: a "flatmap" (MAP_SMALL_MAP_LIMIT).
constexpr std::size_t flatmap_max_keys = 32;

[[nodiscard]] std::unexpected<etf_errc> not_encodable() noexcept {
    return std::unexpected(etf_errc::not_encodable);
}

// The encoding rules, once, over any cursor. Pieces that hold no other term: written at `out`.

// An integer beyond 32 bits as SMALL_BIG_EXT (rare: kept out of put_integer's inlined path).
template <class Out>
void put_small_big(Out& out, std::int64_t value) {
    // |value| as little-endian digits; -INT64_MIN overflows int64 but not uint64.
    std::uint64_t magnitude =
        value < 0 ? 0 - static_cast<std::uint64_t>(value) : static_cast<std::uint64_t>(value);
    std::uint8_t digits[8];
    std::uint8_t n = 0;
    for (; magnitude != 0; magnitude >>= 8) {
        digits[n++] = static_cast<std::uint8_t>(magnitude & 0xff);
    }
    out.u8(etf::SMALL_BIG_EXT);
    out.u8(n);
    out.u8(value < 0 ? 1 : 0);
    out.bytes(std::as_bytes(std::span(digits, n)));
}

template <class Out>
inline void put_integer(Out& out, std::int64_t value) {
    if (value >= 0 && value <= 255) {
        out.u8(etf::SMALL_INTEGER_EXT);
        out.u8(static_cast<std::uint8_t>(value));
    } else if (value >= INT32_MIN && value <= INT32_MAX) {
        out.u8(etf::INTEGER_EXT);
        out.u32(static_cast<std::uint32_t>(static_cast<std::int32_t>(value)));
    } else {
        put_small_big(out, value);
    }
}

template <class Out>
encode_result put_big(Out& out, const big_integer& value) {
    // A big_integer is outside int64 by contract, but encode what it says minimally anyway.
    std::size_t used = value.magnitude.size();
    while (used > 0 && value.magnitude[used - 1] == 0) {
        --used;
    }
    if (used <= 8) {
        std::uint64_t magnitude = 0;
        for (std::size_t i = used; i-- > 0;) {
            magnitude = (magnitude << 8) | value.magnitude[i];
        }
        constexpr auto max_positive = static_cast<std::uint64_t>(INT64_MAX);
        if (!value.negative && magnitude <= max_positive) {
            put_integer(out, static_cast<std::int64_t>(magnitude));
            return {};
        }
        if (value.negative && magnitude <= max_positive + 1) {
            put_integer(out, magnitude == max_positive + 1 ? INT64_MIN
                                                           : -static_cast<std::int64_t>(magnitude));
            return {};
        }
    }
    if (used > std::numeric_limits<std::uint32_t>::max()) {
        return not_encodable();
    }
    if (used <= 255) {
        out.u8(etf::SMALL_BIG_EXT);
        out.u8(static_cast<std::uint8_t>(used));
    } else {
        out.u8(etf::LARGE_BIG_EXT);
        out.u32(static_cast<std::uint32_t>(used));
    }
    out.u8(value.negative ? 1 : 0);
    out.bytes(std::as_bytes(std::span(value.magnitude).first(used)));
    return {};
}

template <class Out>
encode_result put_floating(Out& out, double value) {
    if (!std::isfinite(value)) {
        return not_encodable();
    }
    out.u8(etf::NEW_FLOAT_EXT);
    out.u64(std::bit_cast<std::uint64_t>(value));
    return {};
}

template <class Out>
inline void put_atom(Out& out, atom name) {
    const auto text = std::as_bytes(std::span(name.text()));
    if (text.size() <= 255) {
        out.u8(etf::SMALL_ATOM_UTF8_EXT);
        out.u8(static_cast<std::uint8_t>(text.size()));
    } else {
        // At most 255 characters of at most 4 bytes: always fits 16 bits.
        out.u8(etf::ATOM_UTF8_EXT);
        out.u16(static_cast<std::uint16_t>(text.size()));
    }
    out.bytes(text);
}

template <class Out>
inline void put_tuple_header(Out& out, std::size_t arity) {
    if (arity <= 255) {
        out.u8(etf::SMALL_TUPLE_EXT);
        out.u8(static_cast<std::uint8_t>(arity));
    } else {
        out.u8(etf::LARGE_TUPLE_EXT);
        out.u32(static_cast<std::uint32_t>(arity));
    }
}

template <class Out>
inline void put_list_header(Out& out, std::size_t length) {
    out.u8(etf::LIST_EXT);
    out.u32(static_cast<std::uint32_t>(length));
}

template <class Out>
void put_string(Out& out, std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) {
        out.u8(etf::NIL_EXT);
    } else if (bytes.size() <= 65535) {
        out.u8(etf::STRING_EXT);
        out.u16(static_cast<std::uint16_t>(bytes.size()));
        out.bytes(std::as_bytes(bytes));
    } else {
        put_list_header(out, bytes.size());
        for (const auto b : bytes) {
            put_integer(out, b);
        }
        out.u8(etf::NIL_EXT);
    }
}

template <class Out>
inline void put_binary_header(Out& out, std::size_t length) {
    out.u8(etf::BINARY_EXT);
    out.u32(static_cast<std::uint32_t>(length));
}

template <class Out>
void put_binary(Out& out, std::span<const std::byte> bytes) {
    put_binary_header(out, bytes.size());
    out.bytes(bytes);
}

template <class Out>
encode_result put_bits(Out& out, std::span<const std::byte> bytes, std::uint8_t last_bits) {
    if (bytes.empty() || last_bits == 0 || last_bits > 8) {
        return not_encodable();
    }
    if (last_bits == 8) {
        put_binary(out, bytes);
        return {};
    }
    out.u8(etf::BIT_BINARY_EXT);
    out.u32(static_cast<std::uint32_t>(bytes.size()));
    out.u8(last_bits);
    out.bytes(bytes.first(bytes.size() - 1));
    // Unused low bits go out as zeros whatever the caller left in them.
    out.u8(std::to_integer<std::uint8_t>(bytes.back()) &
           static_cast<std::uint8_t>(0xffu << (8 - last_bits)));
    return {};
}

template <class Out>
inline void put_map_header(Out& out, std::size_t arity) {
    out.u8(etf::MAP_EXT);
    out.u32(static_cast<std::uint32_t>(arity));
}

template <class Out>
inline void put_pid(Out& out, const pid& id) {
    out.u8(etf::NEW_PID_EXT);
    put_atom(out, id.node);
    out.u32(id.id);
    out.u32(id.serial);
    out.u32(id.creation);
}

template <class Out>
void put_port(Out& out, const port& id) {
    if (id.id > etf::max_new_port_id) {
        out.u8(etf::V4_PORT_EXT);
        put_atom(out, id.node);
        out.u64(id.id);
    } else {
        out.u8(etf::NEW_PORT_EXT);
        put_atom(out, id.node);
        out.u32(static_cast<std::uint32_t>(id.id));
    }
    out.u32(id.creation);
}

template <class Out>
encode_result put_reference(Out& out, const reference& ref) {
    if (ref.words.size() > etf::max_reference_words) {
        return not_encodable();
    }
    out.u8(etf::NEWER_REFERENCE_EXT);
    out.u16(static_cast<std::uint16_t>(ref.words.size()));
    put_atom(out, ref.node);
    out.u32(ref.creation);
    for (const auto word : ref.words) {
        out.u32(word);
    }
    return {};
}

template <class Out>
void put_export_fun(Out& out, const export_fun& fun) {
    out.u8(etf::EXPORT_EXT);
    put_atom(out, fun.module);
    put_atom(out, fun.function);
    out.u8(etf::SMALL_INTEGER_EXT);
    out.u8(fun.arity);
}

[[nodiscard]] bool is_byte_list(const list& l) noexcept {
    for (const auto& element : l.elements) {
        const auto* value = element.get_if<std::int64_t>();
        if (value == nullptr || *value < 0 || *value > 255) {
            return false;
        }
    }
    return true;
}

// Whole terms, recursively. `out_` is the caller's cursor: each container keeps a copy in a
// local while it writes its header and leaf elements, and stores it back around the
// std::visit of a nested container (which continues from out_).
template <class Out>
class emitter {
  public:
    explicit emitter(Out& out) noexcept : out_(out) {}

    encode_result term(const dist::term& t) {
        Out out = out_;
        auto done = put(out, t);
        out_ = out;
        return done;
    }

    // NEW_FUN_EXT after Size.
    encode_result fun_body(const local_fun& fun) {
        Out out = out_;
        auto done = put_fun_body(out, fun);
        out_ = out;
        return done;
    }

  private:
    encode_result put(Out& out, const dist::term& t) {
        // Integers and atoms, most elements of most terms, without std::visit's indirect call.
        if (const auto* value = t.get_if<std::int64_t>()) {
            put_integer(out, *value);
            return {};
        }
        if (const auto* name = t.get_if<dist::atom>()) {
            put_atom(out, *name);
            return {};
        }
        out_ = out;
        auto done = std::visit(
            [this](const auto& value) {
                Out inner = out_;
                auto result = this->put_value(inner, value);
                out_ = inner;
                return result;
            },
            t.value());
        out = out_;
        return done;
    }

    encode_result put_value(Out& out, const list& l) {
        if (l.elements.empty()) {
            if (l.tail && !l.tail->is_nil()) {
                return put(out, *l.tail);  // a list of no elements is its tail
            }
            out.u8(etf::NIL_EXT);
            return {};
        }
        if (l.elements.size() <= 65535 && l.is_proper() && is_byte_list(l)) {
            out.u8(etf::STRING_EXT);
            out.u16(static_cast<std::uint16_t>(l.elements.size()));
            for (const auto& element : l.elements) {
                out.u8(static_cast<std::uint8_t>(*element.get_if<std::int64_t>()));
            }
            return {};
        }
        put_list_header(out, l.elements.size());
        for (const auto& element : l.elements) {
            if (auto done = put(out, element); !done) {
                return done;
            }
        }
        if (l.is_proper()) {
            out.u8(etf::NIL_EXT);
            return {};
        }
        return put(out, *l.tail);
    }
    encode_result put_value(Out& out, std::int64_t value) {
        put_integer(out, value);
        return {};
    }
    encode_result put_value(Out& out, const big_integer& value) { return put_big(out, value); }
    encode_result put_value(Out& out, double value) { return put_floating(out, value); }
    encode_result put_value(Out& out, const dist::atom& name) {
        put_atom(out, name);
        return {};
    }
    encode_result put_value(Out& out, const tuple& t) {
        put_tuple_header(out, t.elements.size());
        for (const auto& element : t.elements) {
            if (auto done = put(out, element); !done) {
                return done;
            }
        }
        return {};
    }
    encode_result put_value(Out& out, const dist::binary& b) {
        put_binary(out, b.bytes());
        return {};
    }
    encode_result put_value(Out& out, const bitstring& b) {
        return put_bits(out, b.bytes.bytes(), b.last_bits);
    }
    encode_result put_value(Out& out, const map& m) {
        put_map_header(out, m.entries.size());
        // OTP keeps maps of up to 32 keys sorted by key and writes them so; larger maps go
        // out in their own order (OTP's is its hash trie's, which vdist keeps when decoding).
        const auto key_less = [](const auto& x, const auto& y) {
            return compare(x.first, y.first) < 0;
        };
        if (m.entries.size() <= flatmap_max_keys && !std::ranges::is_sorted(m.entries, key_less)) {
            std::vector<const std::pair<dist::term, dist::term>*> sorted;
            sorted.reserve(m.entries.size());
            for (const auto& entry : m.entries) {
                sorted.push_back(&entry);
            }
            std::ranges::sort(sorted,
                              [&](const auto* x, const auto* y) { return key_less(*x, *y); });
            for (const auto* entry : sorted) {
                if (auto done = entry_pair(out, *entry); !done) {
                    return done;
                }
            }
            return {};
        }
        for (const auto& entry : m.entries) {
            if (auto done = entry_pair(out, entry); !done) {
                return done;
            }
        }
        return {};
    }
    encode_result entry_pair(Out& out, const std::pair<dist::term, dist::term>& entry) {
        if (auto done = put(out, entry.first); !done) {
            return done;
        }
        return put(out, entry.second);
    }
    encode_result put_value(Out& out, const dist::pid& id) {
        put_pid(out, id);
        return {};
    }
    encode_result put_value(Out& out, const dist::port& id) {
        put_port(out, id);
        return {};
    }
    encode_result put_value(Out& out, const dist::reference& ref) {
        return put_reference(out, ref);
    }
    encode_result put_value(Out& out, const dist::export_fun& fun) {
        put_export_fun(out, fun);
        return {};
    }
    encode_result put_value(Out& out, const box<local_fun>& fun) {
        // Size counts from the tag to the end: size the fun first.
        counter size;
        emitter<counter> sizer(size);
        if (auto sized = sizer.fun_body(*fun); !sized) {
            return sized;
        }
        // Size counts itself and the body, not the tag.
        if (size.size + 4 > std::numeric_limits<std::uint32_t>::max()) {
            return not_encodable();
        }
        out.u8(etf::NEW_FUN_EXT);
        out.u32(static_cast<std::uint32_t>(size.size + 4));
        return put_fun_body(out, *fun);
    }

    encode_result put_fun_body(Out& out, const local_fun& fun) {
        out.u8(fun.arity);
        out.bytes(std::as_bytes(std::span(fun.uniq)));
        out.u32(fun.index);
        out.u32(static_cast<std::uint32_t>(fun.free_vars.size()));
        put_atom(out, fun.module);
        put_integer(out, fun.old_index);
        put_integer(out, fun.old_uniq);
        put_pid(out, fun.pid);
        for (const auto& free : fun.free_vars) {
            if (auto done = put(out, free); !done) {
                return done;
            }
        }
        return {};
    }

    Out& out_;
};

// term_to_binary's compressed form: 131 80 Size:4 zlib(term without the version byte).
[[nodiscard]] std::expected<std::vector<std::byte>, etf_errc> compress(
    const std::vector<std::byte>& plain, int level) {
    const auto body = std::span(plain).subspan(1);
    uLongf bound = compressBound(static_cast<uLong>(body.size()));
    std::vector<std::byte> packed(6 + bound);
    packed[0] = std::byte{etf::VERSION_MAGIC};
    packed[1] = std::byte{etf::COMPRESSED};
    const auto size = std::byteswap(static_cast<std::uint32_t>(body.size()));
    std::memcpy(packed.data() + 2, &size, 4);
    if (compress2(reinterpret_cast<Bytef*>(packed.data() + 6), &bound,
                  reinterpret_cast<const Bytef*>(body.data()), static_cast<uLong>(body.size()),
                  level) != Z_OK) {
        return std::unexpected(etf_errc::not_encodable);
    }
    packed.resize(6 + bound);
    if (packed.size() >= plain.size()) {
        return plain;  // like OTP: compression that does not pay is not used
    }
    return packed;
}

}  // namespace

std::expected<std::size_t, etf_errc> encoded_size(const term& t) {
    counter size;
    size.u8(etf::VERSION_MAGIC);
    emitter<counter> sizer(size);
    if (auto sized = sizer.term(t); !sized) {
        return std::unexpected(sized.error());
    }
    return size.size;
}

std::expected<std::vector<std::byte>, etf_errc> encode(const term& t, encode_options options) {
    const auto size = encoded_size(t);
    if (!size) {
        return std::unexpected(size.error());
    }
    std::vector<std::byte> out(*size);
    raw_output raw{out.data()};
    raw.u8(etf::VERSION_MAGIC);
    emitter<raw_output> writer(raw);
    if (auto written = writer.term(t); !written) {
        return std::unexpected(written.error());
    }
    if (options.compression_level > 0 && *size > 1) {
        if (options.compression_level > 9) {
            return std::unexpected(etf_errc::not_encodable);
        }
        return compress(out, options.compression_level);
    }
    return out;
}

void etf_writer::grow(std::size_t n) {
    const std::size_t used = static_cast<std::size_t>(cursor_ - out_->data());
    // At least double what this writer wrote (amortised O(1) per byte), and never less than a
    // small message. Not 2 * used: appending a small message to a buffer of queued packets
    // would zero as many bytes as the queue holds, every time (the vector's capacity grows
    // geometrically by itself).
    out_->resize(used + std::max({n, used - start_, min_growth}));
    cursor_ = out_->data() + used;
    limit_ = out_->data() + out_->size();
}

void etf_writer::append(std::span<const std::byte> bytes) {
    if (static_cast<std::size_t>(limit_ - cursor_) >= bytes.size() || bytes.size() < min_growth) {
        if (!bytes.empty()) {
            std::memcpy(room(bytes.size()), bytes.data(), bytes.size());
            cursor_ += bytes.size();
        }
        return;
    }
    // Growing by resize() would zero the room before it is overwritten: for a large piece
    // that does not fit, trim to the cursor and let insert() copy it (the next piece grows).
    finish();
    out_->insert(out_->end(), bytes.begin(), bytes.end());
    cursor_ = out_->data() + out_->size();
    limit_ = cursor_;
}

void etf_writer::small_big(std::int64_t value) {
    raw_output out{room(11)};  // tag, N, sign, at most 8 digits
    put_small_big(out, value);
    cursor_ = out.at;
}

void etf_writer::long_atom(std::string_view text) {
    raw_output out{room(3 + text.size())};
    out.u8(etf::ATOM_UTF8_EXT);
    out.u16(static_cast<std::uint16_t>(text.size()));  // at most 255 characters of 4 bytes
    out.bytes(std::as_bytes(std::span(text)));
    cursor_ = out.at;
}

void etf_writer::long_pid(const dist::pid& id) {
    raw_output out{room(1 + 3 + id.node.text().size() + 12)};
    put_pid(out, id);
    cursor_ = out.at;
}

std::expected<void, etf_errc> etf_writer::big(const big_integer& value) {
    counter size;
    if (auto sized = put_big(size, value); !sized) {
        return sized;
    }
    raw_output out{room(size.size)};
    auto written = put_big(out, value);
    cursor_ = out.at;
    return written;
}

std::expected<void, etf_errc> etf_writer::floating(double value) {
    raw_output out{room(9)};
    auto written = put_floating(out, value);
    cursor_ = out.at;
    return written;
}

void etf_writer::string(std::span<const std::uint8_t> bytes) {
    counter size;
    put_string(size, bytes);
    raw_output out{room(size.size)};
    put_string(out, bytes);
    cursor_ = out.at;
}

std::expected<void, etf_errc> etf_writer::bits(std::span<const std::byte> bytes,
                                               std::uint8_t last_bits) {
    counter size;
    if (auto sized = put_bits(size, bytes, last_bits); !sized) {
        return sized;
    }
    raw_output out{room(size.size)};
    auto written = put_bits(out, bytes, last_bits);
    cursor_ = out.at;
    return written;
}

void etf_writer::port(const dist::port& id) {
    counter size;
    put_port(size, id);
    raw_output out{room(size.size)};
    put_port(out, id);
    cursor_ = out.at;
}

std::expected<void, etf_errc> etf_writer::reference(const dist::reference& ref) {
    counter size;
    if (auto sized = put_reference(size, ref); !sized) {
        return sized;
    }
    raw_output out{room(size.size)};
    auto written = put_reference(out, ref);
    cursor_ = out.at;
    return written;
}

void etf_writer::export_fun(const dist::export_fun& fun) {
    counter size;
    put_export_fun(size, fun);
    raw_output out{room(size.size)};
    put_export_fun(out, fun);
    cursor_ = out.at;
}

std::expected<void, etf_errc> etf_writer::term(const dist::term& t) {
    // A whole term: size it, then write it in place.
    const auto size = encoded_size(t);
    if (!size) {
        return std::unexpected(size.error());
    }
    raw_output out{room(*size - 1)};  // encoded_size counts the version byte
    if (auto written = emitter(out).term(t); !written) {
        return written;  // the cursor stays: the partial term is not kept
    }
    cursor_ = out.at;
    return {};
}

}  // namespace vdist::dist
