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

// Where encoded bytes go. Two models: `counter` only adds up sizes (the size pass),
// `raw_output` writes into memory already sized by that pass, `vector_output` appends.
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

struct vector_output {
    std::vector<std::byte>* out;
    void u8(std::uint8_t v) { out->push_back(static_cast<std::byte>(v)); }
    void u16(std::uint16_t v) { put(std::byteswap(v)); }
    void u32(std::uint32_t v) { put(std::byteswap(v)); }
    void u64(std::uint64_t v) { put(std::byteswap(v)); }
    void bytes(std::span<const std::byte> b) { out->insert(out->end(), b.begin(), b.end()); }
    template <class T>
    void put(T v) {
        const auto* raw = reinterpret_cast<const std::byte*>(&v);
        out->insert(out->end(), raw, raw + sizeof v);
    }
};

using encode_result = std::expected<void, etf_errc>;

// The most keys of a map OTP stores (and encodes) sorted: a "flatmap" (MAP_SMALL_MAP_LIMIT).
constexpr std::size_t flatmap_max_keys = 32;

[[nodiscard]] std::unexpected<etf_errc> not_encodable() noexcept {
    return std::unexpected(etf_errc::not_encodable);
}

// The encoding rules, once, over any output model.
template <class Out>
class emitter {
  public:
    explicit emitter(Out& out) noexcept : out_(out) {}

    void integer(std::int64_t value) {
        if (value >= 0 && value <= 255) {
            out_.u8(etf::SMALL_INTEGER_EXT);
            out_.u8(static_cast<std::uint8_t>(value));
        } else if (value >= INT32_MIN && value <= INT32_MAX) {
            out_.u8(etf::INTEGER_EXT);
            out_.u32(static_cast<std::uint32_t>(static_cast<std::int32_t>(value)));
        } else {
            // |value| as little-endian digits; -INT64_MIN overflows int64 but not uint64.
            std::uint64_t magnitude = value < 0 ? 0 - static_cast<std::uint64_t>(value)
                                                : static_cast<std::uint64_t>(value);
            std::uint8_t digits[8];
            std::uint8_t n = 0;
            for (; magnitude != 0; magnitude >>= 8) {
                digits[n++] = static_cast<std::uint8_t>(magnitude & 0xff);
            }
            out_.u8(etf::SMALL_BIG_EXT);
            out_.u8(n);
            out_.u8(value < 0 ? 1 : 0);
            out_.bytes(std::as_bytes(std::span(digits, n)));
        }
    }

    encode_result big(const big_integer& value) {
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
                integer(static_cast<std::int64_t>(magnitude));
                return {};
            }
            if (value.negative && magnitude <= max_positive + 1) {
                integer(magnitude == max_positive + 1 ? INT64_MIN
                                                      : -static_cast<std::int64_t>(magnitude));
                return {};
            }
        }
        if (used > std::numeric_limits<std::uint32_t>::max()) {
            return not_encodable();
        }
        if (used <= 255) {
            out_.u8(etf::SMALL_BIG_EXT);
            out_.u8(static_cast<std::uint8_t>(used));
        } else {
            out_.u8(etf::LARGE_BIG_EXT);
            out_.u32(static_cast<std::uint32_t>(used));
        }
        out_.u8(value.negative ? 1 : 0);
        out_.bytes(std::as_bytes(std::span(value.magnitude).first(used)));
        return {};
    }

    encode_result floating(double value) {
        if (!std::isfinite(value)) {
            return not_encodable();
        }
        out_.u8(etf::NEW_FLOAT_EXT);
        out_.u64(std::bit_cast<std::uint64_t>(value));
        return {};
    }

    void atom(dist::atom name) {
        const auto text = std::as_bytes(std::span(name.text()));
        if (text.size() <= 255) {
            out_.u8(etf::SMALL_ATOM_UTF8_EXT);
            out_.u8(static_cast<std::uint8_t>(text.size()));
        } else {
            // At most 255 characters of at most 4 bytes: always fits 16 bits.
            out_.u8(etf::ATOM_UTF8_EXT);
            out_.u16(static_cast<std::uint16_t>(text.size()));
        }
        out_.bytes(text);
    }

    void tuple_header(std::size_t arity) {
        if (arity <= 255) {
            out_.u8(etf::SMALL_TUPLE_EXT);
            out_.u8(static_cast<std::uint8_t>(arity));
        } else {
            out_.u8(etf::LARGE_TUPLE_EXT);
            out_.u32(static_cast<std::uint32_t>(arity));
        }
    }

    void list_header(std::size_t length) {
        out_.u8(etf::LIST_EXT);
        out_.u32(static_cast<std::uint32_t>(length));
    }

    void string(std::span<const std::uint8_t> bytes) {
        if (bytes.empty()) {
            out_.u8(etf::NIL_EXT);
        } else if (bytes.size() <= 65535) {
            out_.u8(etf::STRING_EXT);
            out_.u16(static_cast<std::uint16_t>(bytes.size()));
            out_.bytes(std::as_bytes(bytes));
        } else {
            list_header(bytes.size());
            for (const auto b : bytes) {
                integer(b);
            }
            out_.u8(etf::NIL_EXT);
        }
    }

    void binary(std::span<const std::byte> bytes) {
        out_.u8(etf::BINARY_EXT);
        out_.u32(static_cast<std::uint32_t>(bytes.size()));
        out_.bytes(bytes);
    }

    encode_result bits(std::span<const std::byte> bytes, std::uint8_t last_bits) {
        if (bytes.empty() || last_bits == 0 || last_bits > 8) {
            return not_encodable();
        }
        if (last_bits == 8) {
            binary(bytes);
            return {};
        }
        out_.u8(etf::BIT_BINARY_EXT);
        out_.u32(static_cast<std::uint32_t>(bytes.size()));
        out_.u8(last_bits);
        out_.bytes(bytes.first(bytes.size() - 1));
        // Unused low bits go out as zeros whatever the caller left in them.
        out_.u8(std::to_integer<std::uint8_t>(bytes.back()) &
                static_cast<std::uint8_t>(0xffu << (8 - last_bits)));
        return {};
    }

    void map_header(std::size_t arity) {
        out_.u8(etf::MAP_EXT);
        out_.u32(static_cast<std::uint32_t>(arity));
    }

    void pid(const dist::pid& id) {
        out_.u8(etf::NEW_PID_EXT);
        atom(id.node);
        out_.u32(id.id);
        out_.u32(id.serial);
        out_.u32(id.creation);
    }

    void port(const dist::port& id) {
        if (id.id > etf::max_new_port_id) {
            out_.u8(etf::V4_PORT_EXT);
            atom(id.node);
            out_.u64(id.id);
        } else {
            out_.u8(etf::NEW_PORT_EXT);
            atom(id.node);
            out_.u32(static_cast<std::uint32_t>(id.id));
        }
        out_.u32(id.creation);
    }

    encode_result reference(const dist::reference& ref) {
        if (ref.words.size() > etf::max_reference_words) {
            return not_encodable();
        }
        out_.u8(etf::NEWER_REFERENCE_EXT);
        out_.u16(static_cast<std::uint16_t>(ref.words.size()));
        atom(ref.node);
        out_.u32(ref.creation);
        for (const auto word : ref.words) {
            out_.u32(word);
        }
        return {};
    }

    void export_fun(const dist::export_fun& fun) {
        out_.u8(etf::EXPORT_EXT);
        atom(fun.module);
        atom(fun.function);
        out_.u8(etf::SMALL_INTEGER_EXT);
        out_.u8(fun.arity);
    }

    encode_result term(const dist::term& t) {
        // Integers and atoms, most elements of most terms, without std::visit's indirect call.
        if (const auto* value = t.get_if<std::int64_t>()) {
            integer(*value);
            return {};
        }
        if (const auto* name = t.get_if<dist::atom>()) {
            atom(*name);
            return {};
        }
        return std::visit([this](const auto& value) { return alternative(value); }, t.value());
    }

  private:
    encode_result alternative(const list& l) {
        if (l.elements.empty()) {
            if (l.tail && !l.tail->is_nil()) {
                return term(*l.tail);  // a list of no elements is its tail
            }
            out_.u8(etf::NIL_EXT);
            return {};
        }
        if (l.elements.size() <= 65535 && l.is_proper() && is_byte_list(l)) {
            out_.u8(etf::STRING_EXT);
            out_.u16(static_cast<std::uint16_t>(l.elements.size()));
            for (const auto& element : l.elements) {
                out_.u8(static_cast<std::uint8_t>(*element.get_if<std::int64_t>()));
            }
            return {};
        }
        list_header(l.elements.size());
        for (const auto& element : l.elements) {
            if (auto done = term(element); !done) {
                return done;
            }
        }
        if (l.is_proper()) {
            out_.u8(etf::NIL_EXT);
            return {};
        }
        return term(*l.tail);
    }
    encode_result alternative(std::int64_t value) {
        integer(value);
        return {};
    }
    encode_result alternative(const big_integer& value) { return big(value); }
    encode_result alternative(double value) { return floating(value); }
    encode_result alternative(const dist::atom& name) {
        atom(name);
        return {};
    }
    encode_result alternative(const tuple& t) {
        tuple_header(t.elements.size());
        for (const auto& element : t.elements) {
            if (auto done = term(element); !done) {
                return done;
            }
        }
        return {};
    }
    encode_result alternative(const dist::binary& b) {
        binary(b.bytes());
        return {};
    }
    encode_result alternative(const bitstring& b) { return bits(b.bytes.bytes(), b.last_bits); }
    encode_result alternative(const map& m) {
        map_header(m.entries.size());
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
                if (auto done = entry_pair(*entry); !done) {
                    return done;
                }
            }
            return {};
        }
        for (const auto& entry : m.entries) {
            if (auto done = entry_pair(entry); !done) {
                return done;
            }
        }
        return {};
    }
    encode_result entry_pair(const std::pair<dist::term, dist::term>& entry) {
        if (auto done = term(entry.first); !done) {
            return done;
        }
        return term(entry.second);
    }
    encode_result alternative(const dist::pid& id) {
        pid(id);
        return {};
    }
    encode_result alternative(const dist::port& id) {
        port(id);
        return {};
    }
    encode_result alternative(const dist::reference& ref) { return reference(ref); }
    encode_result alternative(const dist::export_fun& fun) {
        export_fun(fun);
        return {};
    }
    encode_result alternative(const box<local_fun>& fun) {
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
        out_.u8(etf::NEW_FUN_EXT);
        out_.u32(static_cast<std::uint32_t>(size.size + 4));
        return fun_body(*fun);
    }

    // NEW_FUN_EXT after Size.
    encode_result fun_body(const local_fun& fun) {
        out_.u8(fun.arity);
        out_.bytes(std::as_bytes(std::span(fun.uniq)));
        out_.u32(fun.index);
        out_.u32(static_cast<std::uint32_t>(fun.free_vars.size()));
        atom(fun.module);
        integer(fun.old_index);
        integer(fun.old_uniq);
        pid(fun.pid);
        for (const auto& free : fun.free_vars) {
            if (auto done = term(free); !done) {
                return done;
            }
        }
        return {};
    }

    [[nodiscard]] static bool is_byte_list(const list& l) noexcept {
        for (const auto& element : l.elements) {
            const auto* value = element.get_if<std::int64_t>();
            if (value == nullptr || *value < 0 || *value > 255) {
                return false;
            }
        }
        return true;
    }

    template <class>
    friend class emitter;
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

void etf_writer::integer(std::int64_t value) {
    vector_output out{out_};
    emitter(out).integer(value);
}
std::expected<void, etf_errc> etf_writer::big(const big_integer& value) {
    vector_output out{out_};
    return emitter(out).big(value);
}
std::expected<void, etf_errc> etf_writer::floating(double value) {
    vector_output out{out_};
    return emitter(out).floating(value);
}
void etf_writer::atom(dist::atom name) {
    vector_output out{out_};
    emitter(out).atom(name);
}
void etf_writer::tuple_header(std::size_t arity) {
    vector_output out{out_};
    emitter(out).tuple_header(arity);
}
void etf_writer::list_header(std::size_t length) {
    vector_output out{out_};
    emitter(out).list_header(length);
}
void etf_writer::string(std::span<const std::uint8_t> bytes) {
    vector_output out{out_};
    emitter(out).string(bytes);
}
void etf_writer::binary(std::span<const std::byte> bytes) {
    vector_output out{out_};
    emitter(out).binary(bytes);
}
std::expected<void, etf_errc> etf_writer::bits(std::span<const std::byte> bytes,
                                               std::uint8_t last_bits) {
    vector_output out{out_};
    return emitter(out).bits(bytes, last_bits);
}
void etf_writer::map_header(std::size_t arity) {
    vector_output out{out_};
    emitter(out).map_header(arity);
}
void etf_writer::pid(const dist::pid& id) {
    vector_output out{out_};
    emitter(out).pid(id);
}
void etf_writer::port(const dist::port& id) {
    vector_output out{out_};
    emitter(out).port(id);
}
std::expected<void, etf_errc> etf_writer::reference(const dist::reference& ref) {
    vector_output out{out_};
    return emitter(out).reference(ref);
}
void etf_writer::export_fun(const dist::export_fun& fun) {
    vector_output out{out_};
    emitter(out).export_fun(fun);
}
std::expected<void, etf_errc> etf_writer::term(const dist::term& t) {
    // A whole term: size it, then write it in place (one growth of the vector).
    const auto size = encoded_size(t);
    if (!size) {
        return std::unexpected(size.error());
    }
    const std::size_t start = out_->size();
    out_->resize(start + *size - 1);  // encoded_size counts the version byte
    raw_output raw{out_->data() + start};
    if (auto written = emitter(raw).term(t); !written) {
        out_->resize(start);
        return written;
    }
    return {};
}

}  // namespace vdist::dist
