#include "term_hash.hpp"

#include <algorithm>
#include <bit>
#include <string_view>
#include <utility>
#include <vector>

namespace vdist::dist::internal {
namespace {

constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325ull;
constexpr std::uint64_t fnv_prime = 0x100000001b3ull;

[[nodiscard]] std::uint64_t mix(std::uint64_t h, std::uint64_t value) noexcept {
    for (int i = 0; i < 8; ++i) {
        h = (h ^ ((value >> (8 * i)) & 0xffu)) * fnv_prime;
    }
    return h;
}

[[nodiscard]] std::uint64_t mix(std::uint64_t h, std::span<const std::byte> bytes) noexcept {
    for (const std::byte b : bytes) {
        h = (h ^ static_cast<std::uint64_t>(b)) * fnv_prime;
    }
    return h;
}

[[nodiscard]] std::uint64_t mix(std::uint64_t h, std::string_view text) noexcept {
    return mix(h, std::as_bytes(std::span(text)));
}

struct hasher {
    std::uint64_t operator()(std::int64_t v) const noexcept {
        return mix(fnv_offset + 1, static_cast<std::uint64_t>(v));
    }
    std::uint64_t operator()(const big_integer& v) const noexcept {
        return mix(mix(fnv_offset + 2, v.negative ? 1u : 0u),
                   std::as_bytes(std::span(v.magnitude)));
    }
    std::uint64_t operator()(double v) const noexcept {
        return mix(fnv_offset + 3, std::bit_cast<std::uint64_t>(v));
    }
    std::uint64_t operator()(const atom& a) const noexcept { return mix(fnv_offset + 4, a.text()); }
    std::uint64_t operator()(const list& l) const noexcept {
        std::uint64_t h = fnv_offset + 5;
        for (const auto& element : l.elements) {
            h = mix(h, hash(element));
        }
        return l.is_proper() ? h : mix(h, hash(*l.tail));
    }
    std::uint64_t operator()(const tuple& t) const noexcept {
        std::uint64_t h = mix(fnv_offset + 6, t.elements.size());
        for (const auto& element : t.elements) {
            h = mix(h, hash(element));
        }
        return h;
    }
    std::uint64_t operator()(const binary& b) const noexcept {
        return mix(fnv_offset + 7, b.bytes());
    }
    std::uint64_t operator()(const bitstring& b) const noexcept {
        return mix(mix(fnv_offset + 8, b.bytes.bytes()), b.last_bits);
    }
    std::uint64_t operator()(const map& m) const noexcept {
        std::uint64_t sum = 0;  // order-independent
        for (const auto& [key, value] : m.entries) {
            sum += mix(hash(key), hash(value));
        }
        return mix(fnv_offset + 9, sum);
    }
    std::uint64_t operator()(const pid& p) const noexcept {
        return mix(mix(mix(mix(fnv_offset + 10, p.node.text()), p.id), p.serial), p.creation);
    }
    std::uint64_t operator()(const port& p) const noexcept {
        return mix(mix(mix(fnv_offset + 11, p.node.text()), p.id), p.creation);
    }
    std::uint64_t operator()(const reference& r) const noexcept {
        std::uint64_t h = mix(mix(fnv_offset + 12, r.node.text()), r.creation);
        for (const auto word : r.words) {
            h = mix(h, word);
        }
        return h;
    }
    std::uint64_t operator()(const export_fun& f) const noexcept {
        return mix(mix(mix(fnv_offset + 13, f.module.text()), f.function.text()), f.arity);
    }
    std::uint64_t operator()(const box<local_fun>& f) const noexcept {
        std::uint64_t h = mix(mix(fnv_offset + 14, f->module.text()), f->index);
        for (const auto& free : f->free_vars) {
            h = mix(h, hash(free));
        }
        return h;
    }
};

}  // namespace

std::uint64_t hash(const term& t) noexcept {
    return std::visit(hasher{}, t.value());
}

bool has_duplicate_key(const map& m) {
    const auto& entries = m.entries;
    if (entries.size() <= small_map_entries) {
        for (std::size_t i = 1; i < entries.size(); ++i) {
            for (std::size_t k = 0; k < i; ++k) {
                if (entries[i].first == entries[k].first) {
                    return true;
                }
            }
        }
        return false;
    }
    std::vector<std::pair<std::uint64_t, std::size_t>> keyed;
    keyed.reserve(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        keyed.emplace_back(hash(entries[i].first), i);
    }
    std::ranges::sort(keyed);
    for (std::size_t i = 0; i < keyed.size(); ++i) {
        for (std::size_t k = i + 1; k < keyed.size() && keyed[k].first == keyed[i].first; ++k) {
            if (entries[keyed[i].second].first == entries[keyed[k].second].first) {
                return true;
            }
        }
    }
    return false;
}

}  // namespace vdist::dist::internal
