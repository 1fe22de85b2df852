#include "vdist/dist/term.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <tuple>
#include <type_traits>

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

using internal::small_map_entries;

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

// --- term order ----------------------------------------------------------------------------------

namespace {

// The rank of each alternative in Erlang's order of types.
[[nodiscard]] int type_rank(const term& t) noexcept {
    struct ranker {
        int operator()(std::int64_t) const noexcept { return 0; }
        int operator()(const big_integer&) const noexcept { return 0; }
        int operator()(double) const noexcept { return 0; }
        int operator()(const atom&) const noexcept { return 1; }
        int operator()(const reference&) const noexcept { return 2; }
        int operator()(const box<local_fun>&) const noexcept { return 3; }
        int operator()(const export_fun&) const noexcept { return 3; }
        int operator()(const port&) const noexcept { return 4; }
        int operator()(const pid&) const noexcept { return 5; }
        int operator()(const tuple&) const noexcept { return 6; }
        int operator()(const map&) const noexcept { return 7; }
        int operator()(const list& l) const noexcept { return l.elements.empty() ? 8 : 9; }
        int operator()(const binary&) const noexcept { return 10; }
        int operator()(const bitstring&) const noexcept { return 10; }
    };
    return std::visit(ranker{}, t.value());
}

[[nodiscard]] std::strong_ordering compare_magnitudes(std::span<const std::uint8_t> a,
                                                      std::span<const std::uint8_t> b) noexcept {
    if (a.size() != b.size()) {
        return a.size() <=> b.size();
    }
    for (std::size_t i = a.size(); i-- > 0;) {
        if (a[i] != b[i]) {
            return a[i] <=> b[i];
        }
    }
    return std::strong_ordering::equal;
}

// Integers (int64 or big) by value. A big_integer is outside int64's range by contract.
[[nodiscard]] std::strong_ordering compare_integers(const term& a, const term& b) noexcept {
    const auto* small_a = a.get_if<std::int64_t>();
    const auto* small_b = b.get_if<std::int64_t>();
    if (small_a && small_b) {
        return *small_a <=> *small_b;
    }
    if (small_a) {
        return b.get_if<big_integer>()->negative ? std::strong_ordering::greater
                                                 : std::strong_ordering::less;
    }
    if (small_b) {
        return a.get_if<big_integer>()->negative ? std::strong_ordering::less
                                                 : std::strong_ordering::greater;
    }
    const auto& big_a = *a.get_if<big_integer>();
    const auto& big_b = *b.get_if<big_integer>();
    if (big_a.negative != big_b.negative) {
        return big_a.negative ? std::strong_ordering::less : std::strong_ordering::greater;
    }
    const auto by_magnitude = compare_magnitudes(big_a.magnitude, big_b.magnitude);
    return big_a.negative ? 0 <=> by_magnitude : by_magnitude;
}

[[nodiscard]] std::strong_ordering compare_sequences(std::span<const term> a,
                                                     std::span<const term> b) noexcept {
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        if (const auto order = compare(a[i], b[i]); order != 0) {
            return order;
        }
    }
    return a.size() <=> b.size();
}

[[nodiscard]] std::strong_ordering compare_bytes(std::span<const std::byte> a,
                                                 std::span<const std::byte> b) noexcept {
    const auto n = std::min(a.size(), b.size());
    if (n > 0) {
        if (const int c = std::memcmp(a.data(), b.data(), n); c != 0) {
            return c <=> 0;
        }
    }
    return a.size() <=> b.size();
}

// Entries of a map sorted by key.
[[nodiscard]] std::vector<const std::pair<term, term>*> sorted_entries(const map& m) {
    std::vector<const std::pair<term, term>*> sorted;
    sorted.reserve(m.entries.size());
    for (const auto& entry : m.entries) {
        sorted.push_back(&entry);
    }
    std::ranges::sort(sorted,
                      [](const auto* x, const auto* y) { return compare(x->first, y->first) < 0; });
    return sorted;
}

struct same_type_order {
    std::strong_ordering operator()(const atom& a, const atom& b) const noexcept {
        return a.text() <=> b.text();
    }
    // Identifiers in BEAM's order (checked against OTP 25): a reference by node, creation, then
    // its words from the most significant (the last), the shorter one padded with zeros; a port
    // by node, creation, id; a pid by serial, id, node, creation.
    std::strong_ordering operator()(const reference& a, const reference& b) const noexcept {
        if (const auto order = std::tie(a.node, a.creation) <=> std::tie(b.node, b.creation);
            order != 0) {
            return order;
        }
        const std::size_t n = std::max(a.words.size(), b.words.size());
        for (std::size_t i = n; i-- > 0;) {
            const std::uint32_t word_a = i < a.words.size() ? a.words[i] : 0;
            const std::uint32_t word_b = i < b.words.size() ? b.words[i] : 0;
            if (word_a != word_b) {
                return word_a <=> word_b;
            }
        }
        return a.words.size() <=> b.words.size();
    }
    std::strong_ordering operator()(const port& a, const port& b) const noexcept {
        return std::tie(a.node, a.creation, a.id) <=> std::tie(b.node, b.creation, b.id);
    }
    std::strong_ordering operator()(const pid& a, const pid& b) const noexcept {
        return std::tie(a.serial, a.id, a.node, a.creation) <=>
               std::tie(b.serial, b.id, b.node, b.creation);
    }
    std::strong_ordering operator()(const tuple& a, const tuple& b) const noexcept {
        if (a.elements.size() != b.elements.size()) {
            return a.elements.size() <=> b.elements.size();
        }
        return compare_sequences(a.elements, b.elements);
    }
    std::strong_ordering operator()(const map& a, const map& b) const noexcept {
        if (a.entries.size() != b.entries.size()) {
            return a.entries.size() <=> b.entries.size();
        }
        const auto sorted_a = sorted_entries(a);
        const auto sorted_b = sorted_entries(b);
        for (std::size_t i = 0; i < sorted_a.size(); ++i) {
            if (const auto order = compare(sorted_a[i]->first, sorted_b[i]->first); order != 0) {
                return order;
            }
        }
        for (std::size_t i = 0; i < sorted_a.size(); ++i) {
            if (const auto order = compare(sorted_a[i]->second, sorted_b[i]->second); order != 0) {
                return order;
            }
        }
        return std::strong_ordering::equal;
    }
    std::strong_ordering operator()(const list& a, const list& b) const noexcept {
        const std::size_t n = std::min(a.elements.size(), b.elements.size());
        for (std::size_t i = 0; i < n; ++i) {
            if (const auto order = compare(a.elements[i], b.elements[i]); order != 0) {
                return order;
            }
        }
        // One ran out: compare what follows on each side, the rest of the list or the tail.
        return compare(rest_of(a, n), rest_of(b, n));
    }
    // The list from element `from` on (its tail when `from` is past the elements).
    [[nodiscard]] static term rest_of(const list& l, std::size_t from) {
        if (from >= l.elements.size()) {
            return l.tail ? *l.tail : term{};
        }
        return list(std::vector<term>(l.elements.begin() + static_cast<std::ptrdiff_t>(from),
                                      l.elements.end()),
                    l.tail);
    }
    std::strong_ordering operator()(const export_fun& a, const export_fun& b) const noexcept {
        return std::tie(a.module, a.function, a.arity) <=> std::tie(b.module, b.function, b.arity);
    }
    std::strong_ordering operator()(const box<local_fun>& a,
                                    const box<local_fun>& b) const noexcept {
        if (const auto order =
                std::tie(a->module, a->index, a->uniq) <=> std::tie(b->module, b->index, b->uniq);
            order != 0) {
            return order;
        }
        return compare_sequences(a->free_vars, b->free_vars);
    }
};

// The bytes and bit length of a binary or bitstring.
[[nodiscard]] std::pair<std::span<const std::byte>, std::size_t> bits_of(const term& t) noexcept {
    if (const auto* b = t.get_if<binary>()) {
        return {b->bytes(), b->size() * 8};
    }
    const auto& s = *t.get_if<bitstring>();
    return {s.bytes.bytes(), (s.bytes.size() - 1) * 8 + s.last_bits};
}

}  // namespace

std::strong_ordering compare(const term& a, const term& b) noexcept {
    const int rank_a = type_rank(a);
    const int rank_b = type_rank(b);
    if (rank_a != rank_b) {
        return rank_a <=> rank_b;
    }
    switch (rank_a) {
        case 0: {  // numbers: integers by value and before every float
            const auto* float_a = a.get_if<double>();
            const auto* float_b = b.get_if<double>();
            if (float_a && float_b) {
                if (*float_a != *float_b) {
                    return *float_a < *float_b ? std::strong_ordering::less
                                               : std::strong_ordering::greater;
                }
                // Equal values differ only as -0.0 and 0.0 (== is bit for bit): -0.0 first.
                return std::signbit(*float_b) <=> std::signbit(*float_a);
            }
            if (float_a || float_b) {
                return float_a ? std::strong_ordering::greater : std::strong_ordering::less;
            }
            return compare_integers(a, b);
        }
        case 3:  // funs: local funs before exports
            if (a.value().index() != b.value().index()) {
                return a.is<box<local_fun>>() ? std::strong_ordering::less
                                              : std::strong_ordering::greater;
            }
            break;
        case 8:  // []
            return std::strong_ordering::equal;
        case 10: {  // bitstrings: bit by bit over the common length, then by length
            const auto [bytes_a, length_a] = bits_of(a);
            const auto [bytes_b, length_b] = bits_of(b);
            const std::size_t common = std::min(length_a, length_b);
            const std::size_t whole = common / 8;
            if (const auto order = compare_bytes(bytes_a.first(whole), bytes_b.first(whole));
                order != 0) {
                return order;
            }
            if (const std::size_t bits = common % 8; bits != 0) {
                const auto mask = static_cast<std::uint8_t>(0xffu << (8 - bits));
                const auto last_a = std::to_integer<std::uint8_t>(bytes_a[whole]) & mask;
                const auto last_b = std::to_integer<std::uint8_t>(bytes_b[whole]) & mask;
                if (last_a != last_b) {
                    return last_a <=> last_b;
                }
            }
            return length_a <=> length_b;
        }
        default:
            break;
    }
    return std::visit(
        [&b](const auto& x) -> std::strong_ordering {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, double> ||
                          std::is_same_v<T, big_integer> || std::is_same_v<T, binary> ||
                          std::is_same_v<T, bitstring>) {
                return std::strong_ordering::equal;  // handled above
            } else {
                return same_type_order{}(x, *b.get_if<T>());
            }
        },
        a.value());
}

}  // namespace vdist::dist
