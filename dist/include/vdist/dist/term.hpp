#pragma once
/// \file
/// `term`: an owned Erlang term, the value type of the API (the hot path can also read and write
/// ETF directly, see etf_decoder.hpp and etf_encoder.hpp).
///
/// ```
///  Erlang              term holds                     notes
///  integer             std::int64_t | big_integer     big_integer only outside int64's range
///  float               double                         finite
///  atom                atom                           interned per node (atom.hpp)
///  [] and lists        list                           elements + tail; [] is list{}; strings
///                                                     are lists of integers
///  tuple               tuple
///  binary              binary                         ref-counted; may share the receive buffer
///  bitstring           bitstring                      bytes + number of bits used in the last
///  map                 map                            entries in wire order, compared as a set
///  pid, port, ref      pid, port, reference           node atom + ids + creation
///  fun M:F/A           export_fun
///  fun (closure)       local_fun                      kept whole so that it re-encodes
/// ```
///
/// Equality is Erlang's exact equality (=:=): 1 and 1.0 differ, floats compare bit for bit,
/// maps compare as sets of entries.

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "vdist/dist/atom.hpp"

namespace vdist::dist {

class term;

/// A heap-allocated value with value semantics (deep copy), for recursive members. Destruction
/// goes through a function captured where the box was filled, so that destroying a box whose
/// type is incomplete at that point (a term inside a term) is fine with every compiler.
template <class T>
class box {
  public:
    box() = default;
    box(T value) : value_(new T(std::move(value)), &destroy) {}  // NOLINT: implicit by design
    box(const box& other) : value_(other.value_ ? new T(*other.value_) : nullptr, &destroy) {}
    box(box&&) noexcept = default;
    box& operator=(const box& other) {
        if (this != &other) {
            box copy(other);
            *this = std::move(copy);
        }
        return *this;
    }
    box& operator=(box&&) noexcept = default;
    ~box() = default;

    [[nodiscard]] explicit operator bool() const noexcept { return value_ != nullptr; }
    [[nodiscard]] T& operator*() const noexcept { return *value_; }
    [[nodiscard]] T* operator->() const noexcept { return value_.get(); }
    [[nodiscard]] T* get() const noexcept { return value_.get(); }

    /// Compares the values (two empty boxes are equal).
    friend bool operator==(const box& a, const box& b) noexcept {
        return a && b ? *a == *b : !a && !b;
    }

  private:
    static void destroy(T* value) noexcept { delete value; }

    std::unique_ptr<T, void (*)(T*) noexcept> value_{nullptr, &destroy};
};

/// An integer outside std::int64_t's range: sign and magnitude, little-endian base-256 digits
/// without leading (most significant) zeros, as SMALL_BIG_EXT / LARGE_BIG_EXT carry them.
struct big_integer {
    bool negative = false;
    std::vector<std::uint8_t> magnitude;

    friend bool operator==(const big_integer&, const big_integer&) = default;
};

/// Bytes of a binary. Either owns a copy or shares a buffer kept alive by an owner (zero-copy
/// decoding); immutable either way, so copies are cheap and safe.
class binary {
  public:
    binary() = default;
    /// Copies `bytes`.
    explicit binary(std::span<const std::byte> bytes);
    /// Copies the characters of `text`.
    explicit binary(std::string_view text);
    /// Shares `bytes`, which `owner` keeps alive (no copy).
    binary(std::shared_ptr<const void> owner, std::span<const std::byte> bytes) noexcept
        : owner_(std::move(owner)), bytes_(bytes) {}

    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return bytes_; }
    [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }
    /// Whether this binary shares memory with `owner` (a decoded binary referencing its input).
    [[nodiscard]] bool shares(const std::shared_ptr<const void>& owner) const noexcept {
        return owner_ == owner;
    }

    friend bool operator==(const binary& a, const binary& b) noexcept;

  private:
    std::shared_ptr<const void> owner_;
    std::span<const std::byte> bytes_;
};

/// A bitstring whose size is not a whole number of bytes: all bits of `bytes` except the
/// 8 - `last_bits` low bits of the last byte, which are zero. 1 <= last_bits <= 7 and `bytes`
/// is not empty (a whole number of bytes is a `binary`).
struct bitstring {
    binary bytes;
    std::uint8_t last_bits = 8;

    friend bool operator==(const bitstring&, const bitstring&) = default;
};

/// A process identifier (NEW_PID_EXT).
struct pid {
    atom node;
    std::uint32_t id = 0;
    std::uint32_t serial = 0;
    std::uint32_t creation = 0;

    friend bool operator==(const pid&, const pid&) = default;
};

/// A port identifier (NEW_PORT_EXT, or V4_PORT_EXT when the id needs more than 28 bits).
struct port {
    atom node;
    std::uint64_t id = 0;
    std::uint32_t creation = 0;

    friend bool operator==(const port&, const port&) = default;
};

/// A reference (NEWER_REFERENCE_EXT): 0 to 5 words of id (OTP makes 3; OTP 25 accepts 0..5).
struct reference {
    atom node;
    std::uint32_t creation = 0;
    std::vector<std::uint32_t> words;

    friend bool operator==(const reference&, const reference&) = default;
};

/// `fun Module:Function/Arity` (EXPORT_EXT).
struct export_fun {
    atom module;
    atom function;
    std::uint8_t arity = 0;

    friend bool operator==(const export_fun&, const export_fun&) = default;
};

/// A list: `elements` followed by `tail`, which is [] for a proper list (an empty box means
/// []). An improper list [a | b] has one element and the tail b.
struct list {
    std::vector<term> elements;
    box<term> tail;

    list() = default;
    list(std::initializer_list<term> items);
    explicit list(std::vector<term> items, box<term> rest = {});

    /// Whether the tail is [].
    [[nodiscard]] bool is_proper() const noexcept;
    friend bool operator==(const list& a, const list& b) noexcept;
};

/// A tuple.
struct tuple {
    std::vector<term> elements;

    tuple() = default;
    tuple(std::initializer_list<term> items);
    explicit tuple(std::vector<term> items);

    friend bool operator==(const tuple& a, const tuple& b) noexcept;
};

/// A map: entries in the order they were decoded or added; keys are unique (the decoder refuses
/// duplicates). Compared as a set.
struct map {
    std::vector<std::pair<term, term>> entries;

    map() = default;
    explicit map(std::vector<std::pair<term, term>> items);

    /// The value of `key`, or null.
    [[nodiscard]] const term* find(const term& key) const noexcept;
    friend bool operator==(const map& a, const map& b) noexcept;
};

/// A closure (NEW_FUN_EXT), kept field by field so that it re-encodes to what it was.
struct local_fun {
    std::uint8_t arity = 0;
    std::array<std::uint8_t, 16> uniq{};
    std::uint32_t index = 0;
    atom module;
    std::int64_t old_index = 0;
    std::int64_t old_uniq = 0;
    dist::pid pid;
    std::vector<term> free_vars;

    friend bool operator==(const local_fun&, const local_fun&) = default;
};

/// An Erlang term. Default-constructed: [] (the empty list).
class term {
  public:
    using value_type =
        std::variant<list, std::int64_t, big_integer, double, atom, tuple, binary, bitstring, map,
                     pid, port, reference, export_fun, box<local_fun>>;

    term() = default;
    term(std::int64_t integer) noexcept : value_(integer) {}  // NOLINT: implicit by design
    term(int integer) noexcept : value_(std::int64_t{integer}) {}
    term(double number) noexcept : value_(number) {}
    term(atom name) noexcept : value_(name) {}
    term(big_integer integer) : value_(std::move(integer)) {}
    term(list elements) : value_(std::move(elements)) {}
    term(tuple elements) : value_(std::move(elements)) {}
    term(binary bytes) : value_(std::move(bytes)) {}
    term(bitstring bits) : value_(std::move(bits)) {}
    term(map entries) : value_(std::move(entries)) {}
    term(pid id) : value_(std::move(id)) {}
    term(port id) : value_(std::move(id)) {}
    term(reference ref) : value_(std::move(ref)) {}
    term(export_fun fun) : value_(std::move(fun)) {}
    term(local_fun fun);

    /// The value, for std::visit.
    [[nodiscard]] const value_type& value() const noexcept { return value_; }
    [[nodiscard]] value_type& value() noexcept { return value_; }

    /// The alternative T, or null.
    template <class T>
    [[nodiscard]] const T* get_if() const noexcept {
        return std::get_if<T>(&value_);
    }
    template <class T>
    [[nodiscard]] bool is() const noexcept {
        return std::holds_alternative<T>(value_);
    }
    /// Whether this is [] (a list with no elements and the empty tail).
    [[nodiscard]] bool is_nil() const noexcept {
        const auto* l = std::get_if<list>(&value_);
        return l != nullptr && l->elements.empty() && !l->tail;
    }

    friend bool operator==(const term& a, const term& b) noexcept;

  private:
    value_type value_;
};

inline list::list(std::initializer_list<term> items) : elements(items) {}
inline list::list(std::vector<term> items, box<term> rest)
    : elements(std::move(items)), tail(std::move(rest)) {}
inline bool list::is_proper() const noexcept {
    return !tail || tail->is_nil();
}
inline tuple::tuple(std::initializer_list<term> items) : elements(items) {}
inline tuple::tuple(std::vector<term> items) : elements(std::move(items)) {}
inline map::map(std::vector<std::pair<term, term>> items) : entries(std::move(items)) {}
inline term::term(local_fun fun) : value_(box<local_fun>(std::move(fun))) {}

/// Erlang's term order in its exact form (the order of map keys): number < atom < reference <
/// fun < port < pid < tuple < map < [] < list < bitstring; integers by value and before every
/// float; atoms by text; tuples by size, then elements; maps by size, then sorted keys, then
/// values; lists element by element; bitstrings bit by bit, then by length; references by
/// node, creation, then words from the most significant; ports by node, creation, id; pids by
/// serial, id, node, creation; local funs before exports (checked against OTP 25).
[[nodiscard]] std::strong_ordering compare(const term& a, const term& b) noexcept;

/// The number of terms in `t` counting `t` itself and every element, entry and free variable
/// (what decode_limits::max_terms counts).
[[nodiscard]] std::size_t term_count(const term& t) noexcept;

}  // namespace vdist::dist
