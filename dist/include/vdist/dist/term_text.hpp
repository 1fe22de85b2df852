#pragma once
/// \file
/// Terms as Erlang text, both ways: to_erlang_text() prints a `term`, parse_erlang_text() reads
/// it back (for `vdist term`, logs and tests).
///
/// Wherever Erlang has literal syntax the text is Erlang's, so that
/// `erl_parse:parse_term(element(2, erl_scan:string(Text ++ ".")))` gives a term `=:=` to the
/// printed one:
///
/// ```
///  term            printed as                       notes
///  integer         -12, 18446744073709551616        bignums in decimal
///  float           1.5, -0.0, 1.0e300, 5.0e-324     the shortest digits that read back bit for
///                                                   bit, laid out as float_to_list(F, [short])
///                                                   and ~w do (fixed or scientific by OTP's rule)
///  atom            ok, 'Hello', 'end', 'λ'          quoted unless [a-z][A-Za-z0-9_@]* and not a
///                                                   reserved word; UTF-8 kept; ' \ and control
///                                                   characters escaped
///  list            [1,2|c], [], "abc"               a proper non-empty list of integers 32..126
///                                                   prints as a string; other lists as lists
///  tuple           {a,1}
///  map             #{a => 1}                        entries in the map's own order
///  binary          <<>>, <<"text">>, <<1,2,255>>    a string when every byte is 32..126
///  bitstring       <<1,2:3>>                        the last segment carries its bit count
///  export fun      fun lists:map/2
/// ```
///
/// Pids, ports, references and local funs have no literal syntax in Erlang, and Erlang's own
/// printing (`<0.85.0>`, `#Ref<0.1.2.3>`, `#Fun<m.0.123>`) loses the node, the creation and most
/// of a fun. vdist prints them in its own notation, which only parse_erlang_text() reads (Erlang
/// cannot): every field, in the order of the ETF tag that carries it, separated by dots.
///
/// ```
///  pid        #Pid<'node@host'.Id.Serial.Creation>                   NEW_PID_EXT
///  port       #Port<'node@host'.Id.Creation>                         NEW_PORT_EXT / V4_PORT_EXT
///  reference  #Ref<'node@host'.Creation.Word1.Word2.Word3>           0 to 5 words
///  local fun  #Fun<Arity.Uniq.Index.'module'.OldIndex.OldUniq.Pid.[FreeVar,...]>   NEW_FUN_EXT
/// ```
///
/// Numbers there are decimal (OldIndex and OldUniq may be negative), except Uniq: the fun's 16
/// byte MD5 as exactly 32 hex digits. The node and module are always quoted (the parser also
/// takes them unquoted). For example
/// `#Fun<2.0f3e...9a.0.'m'.0.44755415.#Pid<'a@b'.9.0.1>.[1,x]>`. Erlang's own `<0.85.0>`,
/// `#Port<0.5>`, `#Ref<0.1.2.3>` and `#Fun<m.0.123>` do not fit this grammar (a number where
/// the node is, too few fields), so pasting them fails with an error rather than reading as a
/// wrong term.
///
/// The parser reads exactly that grammar plus what a person would type at an Erlang shell:
/// whitespace (including `%` comments), an optional trailing `.`, `$c` character literals,
/// `Base#Digits` integers (bases 2 to 36), `_` between digits, `+`/`-` signs, `E` exponents,
/// strings with all of Erlang's escapes (`\n`, `\x{3BB}`, `\^A`, `\101`...), Latin-1 letters in
/// unquoted atoms, and binaries of integer, character and string segments with literal sizes
/// (`<<"abc",1:4>>`). It refuses anything else with the byte offset where it stopped, and bounds
/// what one input may cost (text_limits). Text is UTF-8.

#include <cstddef>
#include <expected>
#include <string>
#include <string_view>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/term.hpp"

namespace vdist::dist {

/// `t` as Erlang text (see the table above), without a trailing `.` or newline, on one line.
/// Recursive: the depth of `t` is the depth of the stack (decoded terms are depth-limited by
/// the decoder). Any thread.
[[nodiscard]] std::string to_erlang_text(const term& t);

/// Why text could not be parsed, and the byte offset where the parser gave up.
struct text_error {
    std::string message;
    std::size_t offset = 0;

    /// "<message> at byte <offset>".
    [[nodiscard]] std::string describe() const;
    friend bool operator==(const text_error&, const text_error&) = default;
};

/// Caps on what one parsed text may cost, as decode_limits caps an ETF input.
struct text_limits {
    /// Nesting of tuples, lists, maps and funs (counted as the decoder counts it).
    std::size_t max_depth = 1000;
    /// Bytes of one bignum's magnitude (about 2.4 decimal digits per byte).
    std::size_t max_bignum_bytes = 65536;
    /// Bytes of all binaries and bitstrings together (`<<0:Size>>` is short text for many).
    std::size_t max_binary_bytes = std::size_t{64} << 20;
    /// Atoms one text may add to the atom table.
    std::size_t max_new_atoms = 1024;
};

/// The one term in `text` (UTF-8), with atoms interned in `atoms`. Integers that fit
/// std::int64_t become std::int64_t (as the decoder normalises them); a map with the same key
/// twice is refused (Erlang would keep the last one). Whitespace around the term and one
/// trailing `.` are allowed; anything else after the term is an error. Runs on the thread that
/// owns `atoms` (atom.hpp).
[[nodiscard]] std::expected<term, text_error> parse_erlang_text(std::string_view text,
                                                                atom_table& atoms,
                                                                text_limits limits = {});

}  // namespace vdist::dist
