#pragma once
/// \file
/// Atoms and the per-node atom table. An atom is a handle to text interned in a table: copying
/// and comparing atoms of one table costs a pointer. As in Erlang, atoms are never freed, so
/// the table has a capacity (Erlang's default is 1048576) and the decoder caps how many new
/// atoms one term may create.
///
/// Threads: a table belongs to one node, which runs on one thread. Atoms may be read from any
/// thread once made (the text never moves).

#include <cstddef>
#include <deque>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vdist/dist/etf_errc.hpp"

namespace vdist::dist {

/// An interned atom. Default-constructed: the empty atom ''.
class atom {
  public:
    atom() noexcept : text_(&empty_text) {}

    /// The atom's name, UTF-8. Valid as long as its table lives.
    [[nodiscard]] std::string_view text() const noexcept { return *text_; }

    /// Same name. Atoms of one table compare by pointer; atoms of different tables (or '')
    /// fall back to comparing text.
    friend bool operator==(const atom& a, const atom& b) noexcept {
        return a.text_ == b.text_ || *a.text_ == *b.text_;
    }
    /// Orders by name (Erlang orders atoms by their text).
    friend auto operator<=>(const atom& a, const atom& b) noexcept { return a.text() <=> b.text(); }

  private:
    friend class atom_table;
    explicit atom(const std::string* text) noexcept : text_(text) {}

    static const std::string empty_text;
    const std::string* text_;
};

/// Whether `utf8` is a valid atom name: well-formed UTF-8 (no overlong forms, no surrogates)
/// of at most 255 characters.
[[nodiscard]] bool is_valid_atom_text(std::string_view utf8) noexcept;

/// The atoms of one node.
class atom_table {
  public:
    /// Erlang's default atom limit.
    static constexpr std::size_t default_capacity = 1'048'576;

    explicit atom_table(std::size_t capacity = default_capacity) : capacity_(capacity) {}
    atom_table(const atom_table&) = delete;
    atom_table& operator=(const atom_table&) = delete;

    /// The atom named `utf8`, interning it if new. Fails with etf_errc::invalid_atom for a
    /// name that is not valid (is_valid_atom_text), etf_errc::atom_table_full at capacity.
    [[nodiscard]] std::expected<atom, etf_errc> intern(std::string_view utf8);

    /// The atom named `utf8` if it is already interned.
    [[nodiscard]] std::optional<atom> find(std::string_view utf8) const;

    /// intern() for names known to be valid (literals in code); aborts on an invalid name or a
    /// full table, which are programming errors there.
    [[nodiscard]] atom operator()(std::string_view utf8);

    /// Number of atoms interned.
    [[nodiscard]] std::size_t size() const noexcept { return texts_.size(); }
    /// Most atoms this table takes.
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  private:
    std::size_t capacity_;
    std::deque<std::string> texts_;  // a deque never moves its elements
    std::unordered_map<std::string_view, const std::string*> index_;
};

/// A process-wide table for tools and tests that have no node. Not thread-safe.
[[nodiscard]] atom_table& default_atom_table();

}  // namespace vdist::dist
