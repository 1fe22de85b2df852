#include "vdist/dist/term.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "term_hash.hpp"

namespace vdist::dist {
namespace {

[[nodiscard]] std::shared_ptr<const std::byte[]> copy_of(std::span<const std::byte> bytes) {
    auto copy = std::make_shared_for_overwrite<std::byte[]>(bytes.size());
    if (!bytes.empty()) {
        std::memcpy(copy.get(), bytes.data(), bytes.size());
    }
    return copy;
}

// Maps up to this size are compared pairwise; larger ones through hashes.
constexpr std::size_t small_map_entries = 32;

// term_count of each alternative.
struct term_counter {
    std::size_t operator()(const list& l) const noexcept {
        std::size_t n = 1;
        for (const auto& element : l.elements) {
            n += term_count(element);
        }
        return n + (l.tail ? term_count(*l.tail) : 0);
    }
    std::size_t operator()(const tuple& t) const noexcept {
        std::size_t n = 1;
        for (const auto& element : t.elements) {
            n += term_count(element);
        }
        return n;
    }
    std::size_t operator()(const map& m) const noexcept {
        std::size_t n = 1;
        for (const auto& [key, value] : m.entries) {
            n += term_count(key) + term_count(value);
        }
        return n;
    }
    std::size_t operator()(const box<local_fun>& fun) const noexcept {
        std::size_t n = 1;
        for (const auto& free : fun->free_vars) {
            n += term_count(free);
        }
        return n;
    }
    std::size_t operator()(const auto&) const noexcept { return 1; }
};

}  // namespace

binary::binary(std::span<const std::byte> bytes) {
    if (bytes.empty()) {
        return;
    }
    auto copy = copy_of(bytes);
    bytes_ = {copy.get(), bytes.size()};
    owner_ = std::move(copy);
}

binary::binary(std::string_view text) : binary(std::as_bytes(std::span(text))) {}

bool operator==(const binary& a, const binary& b) noexcept {
    return a.size() == b.size() &&
           (a.size() == 0 || std::memcmp(a.bytes().data(), b.bytes().data(), a.size()) == 0);
}

bool operator==(const list& a, const list& b) noexcept {
    if (a.elements != b.elements) {
        return false;
    }
    const bool a_nil = !a.tail || a.tail->is_nil();
    const bool b_nil = !b.tail || b.tail->is_nil();
    if (a_nil || b_nil) {
        return a_nil == b_nil;
    }
    return *a.tail == *b.tail;
}

bool operator==(const tuple& a, const tuple& b) noexcept {
    return a.elements == b.elements;
}

const term* map::find(const term& key) const noexcept {
    for (const auto& [k, v] : entries) {
        if (k == key) {
            return &v;
        }
    }
    return nullptr;
}

bool operator==(const map& a, const map& b) noexcept {
    if (a.entries.size() != b.entries.size()) {
        return false;
    }
    if (a.entries.size() <= small_map_entries) {
        return std::ranges::all_of(a.entries, [&b](const auto& entry) {
            const term* value = b.find(entry.first);
            return value != nullptr && *value == entry.second;
        });
    }
    // Keys are unique in each map: equal maps have the same (key hash, key, value) multiset.
    auto by_hash = [](const map& m) {
        std::vector<std::pair<std::uint64_t, const std::pair<term, term>*>> keyed;
        keyed.reserve(m.entries.size());
        for (const auto& entry : m.entries) {
            keyed.emplace_back(internal::hash(entry.first), &entry);
        }
        std::ranges::sort(keyed, {}, &decltype(keyed)::value_type::first);
        return keyed;
    };
    const auto left = by_hash(a);
    const auto right = by_hash(b);
    for (std::size_t i = 0; i < left.size();) {
        // Entries with equal key hashes form a run in both; compare the runs as sets.
        std::size_t end = i;
        while (end < left.size() && left[end].first == left[i].first) {
            ++end;
        }
        for (std::size_t k = i; k < end; ++k) {
            if (right[k].first != left[i].first) {
                return false;
            }
            const bool found =
                std::any_of(right.begin() + static_cast<std::ptrdiff_t>(i),
                            right.begin() + static_cast<std::ptrdiff_t>(end),
                            [&](const auto& other) { return *other.second == *left[k].second; });
            if (!found) {
                return false;
            }
        }
        i = end;
    }
    return true;
}

bool operator==(const term& a, const term& b) noexcept {
    if (a.value().index() != b.value().index()) {
        return false;
    }
    if (const auto* x = a.get_if<double>()) {
        // Exact equality of floats: bit for bit (so 0.0 and -0.0 differ, as in OTP 27).
        return std::bit_cast<std::uint64_t>(*x) ==
               std::bit_cast<std::uint64_t>(*b.get_if<double>());
    }
    return a.value() == b.value();
}

std::size_t term_count(const term& t) noexcept {
    return std::visit(term_counter{}, t.value());
}

}  // namespace vdist::dist
