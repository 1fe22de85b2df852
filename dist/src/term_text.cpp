#include "vdist/dist/term_text.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "term_hash.hpp"

namespace vdist::dist {
namespace {

// --- shared: characters, atoms, bignum digits --------------------------------------------------

// Words that erl_scan makes keywords: an atom spelled like one must be quoted. `maybe` and `else`
// are keywords only with the maybe_expr feature (on by default since OTP 27); they are quoted
// when printing, and still read unquoted, as OTP 25 reads them.
constexpr std::array<std::string_view, 29> reserved_words{
    "after", "and",    "andalso", "band", "begin", "bnot", "bor", "bsl",   "bsr", "bxor",
    "case",  "catch",  "cond",    "div",  "end",   "fun",  "if",  "let",   "not", "of",
    "or",    "orelse", "receive", "rem",  "try",   "when", "xor", "maybe", "else"};

[[nodiscard]] bool is_reserved_word(std::string_view word) noexcept {
    return std::ranges::find(reserved_words, word) != reserved_words.end();
}

[[nodiscard]] bool is_always_reserved(std::string_view word) noexcept {
    return word != "maybe" && word != "else" && is_reserved_word(word);
}

[[nodiscard]] constexpr bool is_ascii_lower(char32_t c) noexcept {
    return c >= 'a' && c <= 'z';
}
[[nodiscard]] constexpr bool is_ascii_upper(char32_t c) noexcept {
    return c >= 'A' && c <= 'Z';
}
[[nodiscard]] constexpr bool is_digit(char32_t c) noexcept {
    return c >= '0' && c <= '9';
}

// erl_scan's classes for unquoted names, which include the Latin-1 letters.
[[nodiscard]] constexpr bool is_latin1_lower(char32_t c) noexcept {
    return c >= 0xDF && c <= 0xFF && c != 0xF7;
}
[[nodiscard]] constexpr bool is_latin1_upper(char32_t c) noexcept {
    return c >= 0xC0 && c <= 0xDE && c != 0xD7;
}
[[nodiscard]] constexpr bool is_name_start(char32_t c) noexcept {
    return is_ascii_lower(c) || is_latin1_lower(c);
}
[[nodiscard]] constexpr bool is_name_char(char32_t c) noexcept {
    return is_ascii_lower(c) || is_ascii_upper(c) || is_digit(c) || c == '_' || c == '@' ||
           is_latin1_lower(c) || is_latin1_upper(c);
}
[[nodiscard]] constexpr bool is_variable_start(char32_t c) noexcept {
    return is_ascii_upper(c) || c == '_' || is_latin1_upper(c);
}

/// Decodes the UTF-8 character at `text[pos]`; 0 bytes consumed if it is not well-formed.
struct decoded_char {
    char32_t value = 0;
    std::size_t length = 0;
};

[[nodiscard]] decoded_char decode_utf8(std::string_view text, std::size_t pos) noexcept {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[pos + i]); };
    const unsigned char first = byte(0);
    if (first < 0x80) {
        return {first, 1};
    }
    std::size_t length = 0;
    char32_t value = 0;
    char32_t minimum = 0;
    if ((first & 0xE0) == 0xC0) {
        length = 2;
        value = first & 0x1Fu;
        minimum = 0x80;
    } else if ((first & 0xF0) == 0xE0) {
        length = 3;
        value = first & 0x0Fu;
        minimum = 0x800;
    } else if ((first & 0xF8) == 0xF0) {
        length = 4;
        value = first & 0x07u;
        minimum = 0x10000;
    } else {
        return {};
    }
    if (text.size() - pos < length) {
        return {};
    }
    for (std::size_t i = 1; i < length; ++i) {
        if ((byte(i) & 0xC0) != 0x80) {
            return {};
        }
        value = (value << 6) | (byte(i) & 0x3Fu);
    }
    if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
        return {};
    }
    return {value, length};
}

void append_utf8(std::string& out, char32_t c) {
    const auto put = [&](std::uint32_t bits) { out.push_back(static_cast<char>(bits)); };
    const auto v = static_cast<std::uint32_t>(c);
    if (v < 0x80) {
        put(v);
    } else if (v < 0x800) {
        put(0xC0 | (v >> 6));
        put(0x80 | (v & 0x3F));
    } else if (v < 0x10000) {
        put(0xE0 | (v >> 12));
        put(0x80 | ((v >> 6) & 0x3F));
        put(0x80 | (v & 0x3F));
    } else {
        put(0xF0 | (v >> 18));
        put(0x80 | ((v >> 12) & 0x3F));
        put(0x80 | ((v >> 6) & 0x3F));
        put(0x80 | (v & 0x3F));
    }
}

/// A magnitude in base 2^32, least significant limb first: the working form of bignum digits.
using limbs = std::vector<std::uint32_t>;

[[nodiscard]] limbs limbs_of(std::span<const std::uint8_t> base256) {
    limbs out((base256.size() + 3) / 4, 0);
    for (std::size_t i = 0; i < base256.size(); ++i) {
        out[i / 4] |= std::uint32_t{base256[i]} << (8 * (i % 4));
    }
    while (!out.empty() && out.back() == 0) {
        out.pop_back();
    }
    return out;
}

[[nodiscard]] std::vector<std::uint8_t> base256_of(const limbs& magnitude) {
    std::vector<std::uint8_t> out;
    out.reserve(magnitude.size() * 4);
    for (const auto limb : magnitude) {
        for (int shift = 0; shift < 32; shift += 8) {
            out.push_back(static_cast<std::uint8_t>(limb >> shift));
        }
    }
    while (!out.empty() && out.back() == 0) {
        out.pop_back();
    }
    return out;
}

/// magnitude = magnitude * factor + addend.
void multiply_add(limbs& magnitude, std::uint32_t factor, std::uint32_t addend) {
    std::uint64_t carry = addend;
    for (auto& limb : magnitude) {
        const std::uint64_t product = std::uint64_t{limb} * factor + carry;
        limb = static_cast<std::uint32_t>(product);
        carry = product >> 32;
    }
    if (carry != 0) {
        magnitude.push_back(static_cast<std::uint32_t>(carry));
    }
}

/// magnitude = magnitude / divisor; returns the remainder. (A constant divisor compiles to
/// multiplications.)
template <std::uint32_t divisor>
[[nodiscard]] std::uint32_t divide(limbs& magnitude) {
    std::uint64_t remainder = 0;
    for (auto limb = magnitude.rbegin(); limb != magnitude.rend(); ++limb) {
        const std::uint64_t current = (remainder << 32) | *limb;
        *limb = static_cast<std::uint32_t>(current / divisor);
        remainder = current % divisor;
    }
    while (!magnitude.empty() && magnitude.back() == 0) {
        magnitude.pop_back();
    }
    return static_cast<std::uint32_t>(remainder);
}

// --- printing ----------------------------------------------------------------------------------

constexpr char hex_digits[] = "0123456789abcdef";

void append_hex_escape(std::string& out, char32_t c) {
    out += "\\x{";
    char buffer[8];
    const auto end =
        std::to_chars(buffer, buffer + sizeof buffer, static_cast<std::uint32_t>(c), 16).ptr;
    for (char* p = buffer; p != end; ++p) {
        out.push_back(static_cast<char>(*p >= 'a' ? *p - 'a' + 'A' : *p));
    }
    out += '}';
}

/// Appends the characters of `utf8` (valid UTF-8) for inside `quote`s: the quote and backslash
/// escaped, control characters (C0, DEL, C1) as escapes, everything else as it is.
void append_quoted_body(std::string& out, std::string_view utf8, char quote) {
    for (std::size_t pos = 0; pos < utf8.size();) {
        auto [c, length] = decode_utf8(utf8, pos);
        if (length == 0) {  // not UTF-8 (atoms always are): show the byte
            c = static_cast<unsigned char>(utf8[pos]);
            length = 1;
            append_hex_escape(out, c);
            pos += length;
            continue;
        }
        if (c == static_cast<char32_t>(quote) || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) {
            append_hex_escape(out, c);
        } else {
            out.append(utf8.substr(pos, length));
        }
        pos += length;
    }
}

[[nodiscard]] bool atom_needs_quotes(std::string_view name) noexcept {
    if (name.empty() || !is_ascii_lower(static_cast<unsigned char>(name.front()))) {
        return true;
    }
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (!(is_ascii_lower(u) || is_ascii_upper(u) || is_digit(u) || u == '_' || u == '@')) {
            return true;
        }
    }
    return is_reserved_word(name);
}

void append_quoted_atom(std::string& out, std::string_view name) {
    out += '\'';
    append_quoted_body(out, name, '\'');
    out += '\'';
}

void append_atom(std::string& out, std::string_view name) {
    if (atom_needs_quotes(name)) {
        append_quoted_atom(out, name);
    } else {
        out += name;
    }
}

template <class Integer>
void append_integer(std::string& out, Integer value) {
    char buffer[24];
    const auto end = std::to_chars(buffer, buffer + sizeof buffer, value).ptr;
    out.append(buffer, end);
}

void append_big_integer(std::string& out, const big_integer& value) {
    // Repeated division by 10^9 gives nine decimal digits at a time, least significant first.
    constexpr std::uint32_t chunk = 1'000'000'000;
    limbs magnitude = limbs_of(value.magnitude);
    std::vector<std::uint32_t> chunks;
    while (!magnitude.empty()) {
        chunks.push_back(divide<chunk>(magnitude));
    }
    if (chunks.empty()) {
        out += '0';
        return;
    }
    if (value.negative) {
        out += '-';
    }
    append_integer(out, chunks.back());
    for (auto it = chunks.rbegin() + 1; it != chunks.rend(); ++it) {
        char buffer[10];
        const auto end = std::to_chars(buffer, buffer + sizeof buffer, *it).ptr;
        out.append(9 - static_cast<std::size_t>(end - buffer), '0');
        out.append(buffer, end);
    }
}

void append_float(std::string& out, double value) {
    if (!std::isfinite(value)) {
        // A term never holds one (ETF cannot carry it); printed for diagnosis, not parseable.
        out += std::isnan(value) ? "nan" : (value < 0 ? "-inf" : "inf");
        return;
    }
    // The shortest digits that read back exactly (Ryu, as in OTP), from d.ddde±x.
    char buffer[32];
    const auto end =
        std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific).ptr;
    const std::string_view scientific(buffer, static_cast<std::size_t>(end - buffer));
    const bool negative = scientific.front() == '-';
    const auto e = scientific.find('e');
    std::string digits;
    for (const char c : scientific.substr(negative ? 1 : 0, e - (negative ? 1 : 0))) {
        if (c != '.') {
            digits += c;
        }
    }
    int exponent = 0;  // of the first digit
    const auto exponent_text = scientific.substr(e + 1);
    std::from_chars(exponent_text.data() + (exponent_text.front() == '+' ? 1 : 0),
                    exponent_text.data() + exponent_text.size(), exponent);
    if (negative) {
        out += '-';
    }

    // OTP's choice between the forms (float_to_list(F, [short]), erts/emulator/ryu/to_chars.h):
    // value = mantissa * 10^shift; fixed notation for shifts in a window that depends on the
    // number of digits, except for integers of 2^53 and more, whose fixed form would look exact.
    const auto length = static_cast<int>(digits.size());
    const int shift = exponent - length + 1;
    std::uint64_t mantissa = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), mantissa);
    const int lower = length == 1 ? -4 : -(length + 2);
    const int upper = length == 1 || exponent >= 10 ? 2 : 1;
    const bool beyond_exact_integers = (shift == 0 && mantissa >= (std::uint64_t{1} << 53)) ||
                                       (shift == 1 && mantissa > (std::uint64_t{1} << 52) / 5) ||
                                       (shift == 2 && mantissa > (std::uint64_t{1} << 51) / 25);
    if (shift < lower || shift > upper || beyond_exact_integers) {
        out += digits.front();
        out += '.';
        out += length > 1 ? std::string_view(digits).substr(1) : std::string_view("0");
        out += 'e';
        out += std::to_string(exponent);
        return;
    }
    const int whole_digits = length + shift;
    if (shift >= 0) {
        out += digits;
        out.append(static_cast<std::size_t>(shift), '0');
        out += ".0";
    } else if (whole_digits > 0) {
        out += std::string_view(digits).substr(0, static_cast<std::size_t>(whole_digits));
        out += '.';
        out += std::string_view(digits).substr(static_cast<std::size_t>(whole_digits));
    } else {
        out += "0.";
        out.append(static_cast<std::size_t>(-whole_digits), '0');
        out += digits;
    }
}

class printer {
  public:
    explicit printer(std::string& out) noexcept : out_(&out) {}

    void print(const term& t) {
        std::visit([this](const auto& value) { (*this)(value); }, t.value());
    }

    void operator()(std::int64_t value) { append_integer(*out_, value); }
    void operator()(const big_integer& value) { append_big_integer(*out_, value); }
    void operator()(double value) { append_float(*out_, value); }
    void operator()(const atom& value) { append_atom(*out_, value.text()); }

    void operator()(const list& value) {
        if (is_printable_string(value)) {
            *out_ += '"';
            for (const auto& element : value.elements) {
                const auto c = static_cast<char>(*element.get_if<std::int64_t>());
                if (c == '"' || c == '\\') {
                    *out_ += '\\';
                }
                *out_ += c;
            }
            *out_ += '"';
            return;
        }
        *out_ += '[';
        sequence(value.elements);
        if (!value.is_proper()) {
            *out_ += '|';
            print(*value.tail);
        }
        *out_ += ']';
    }

    void operator()(const tuple& value) {
        *out_ += '{';
        sequence(value.elements);
        *out_ += '}';
    }

    void operator()(const map& value) {
        *out_ += "#{";
        bool first = true;
        for (const auto& [key, entry] : value.entries) {
            if (!first) {
                *out_ += ',';
            }
            first = false;
            print(key);
            *out_ += " => ";
            print(entry);
        }
        *out_ += '}';
    }

    void operator()(const binary& value) {
        const auto bytes = value.bytes();
        const bool text = !bytes.empty() && std::ranges::all_of(bytes, [](std::byte b) {
            return b >= std::byte{32} && b <= std::byte{126};
        });
        *out_ += "<<";
        if (text) {
            *out_ += '"';
            for (const auto b : bytes) {
                const auto c = static_cast<char>(b);
                if (c == '"' || c == '\\') {
                    *out_ += '\\';
                }
                *out_ += c;
            }
            *out_ += '"';
        } else {
            byte_list(bytes);
        }
        *out_ += ">>";
    }

    void operator()(const bitstring& value) {
        const auto bytes = value.bytes.bytes();
        *out_ += "<<";
        if (!bytes.empty()) {
            byte_list(bytes.first(bytes.size() - 1));
            if (bytes.size() > 1) {
                *out_ += ',';
            }
            const unsigned bits = std::clamp<unsigned>(value.last_bits, 1, 8);
            append_integer(*out_, std::to_integer<unsigned>(bytes.back()) >> (8 - bits));
            *out_ += ':';
            append_integer(*out_, bits);
        }
        *out_ += ">>";
    }

    void operator()(const pid& value) {
        *out_ += "#Pid<";
        append_quoted_atom(*out_, value.node.text());
        dotted(value.id);
        dotted(value.serial);
        dotted(value.creation);
        *out_ += '>';
    }

    void operator()(const port& value) {
        *out_ += "#Port<";
        append_quoted_atom(*out_, value.node.text());
        dotted(value.id);
        dotted(value.creation);
        *out_ += '>';
    }

    void operator()(const reference& value) {
        *out_ += "#Ref<";
        append_quoted_atom(*out_, value.node.text());
        dotted(value.creation);
        for (const auto word : value.words) {
            dotted(word);
        }
        *out_ += '>';
    }

    void operator()(const export_fun& value) {
        *out_ += "fun ";
        append_atom(*out_, value.module.text());
        *out_ += ':';
        append_atom(*out_, value.function.text());
        *out_ += '/';
        append_integer(*out_, unsigned{value.arity});
    }

    void operator()(const box<local_fun>& boxed) {
        static const local_fun empty;
        const local_fun& fun = boxed ? *boxed : empty;
        *out_ += "#Fun<";
        append_integer(*out_, unsigned{fun.arity});
        *out_ += '.';
        for (const auto b : fun.uniq) {
            *out_ += hex_digits[b >> 4];
            *out_ += hex_digits[b & 0xF];
        }
        dotted(fun.index);
        *out_ += '.';
        append_quoted_atom(*out_, fun.module.text());
        dotted(fun.old_index);
        dotted(fun.old_uniq);
        *out_ += '.';
        (*this)(fun.pid);
        *out_ += ".[";
        sequence(fun.free_vars);
        *out_ += "]>";
    }

  private:
    [[nodiscard]] static bool is_printable_string(const list& value) noexcept {
        return !value.elements.empty() && value.is_proper() &&
               std::ranges::all_of(value.elements, [](const term& element) {
                   const auto* c = element.get_if<std::int64_t>();
                   return c != nullptr && *c >= 32 && *c <= 126;
               });
    }

    void sequence(const std::vector<term>& elements) {
        bool first = true;
        for (const auto& element : elements) {
            if (!first) {
                *out_ += ',';
            }
            first = false;
            print(element);
        }
    }

    void byte_list(std::span<const std::byte> bytes) {
        bool first = true;
        for (const auto b : bytes) {
            if (!first) {
                *out_ += ',';
            }
            first = false;
            append_integer(*out_, std::to_integer<unsigned>(b));
        }
    }

    template <class Integer>
    void dotted(Integer value) {
        *out_ += '.';
        append_integer(*out_, value);
    }

    std::string* out_;
};

// --- parsing -----------------------------------------------------------------------------------

/// Bits appended one segment at a time, most significant first (Erlang's bit syntax default).
class bit_builder {
  public:
    /// Appends the low `size` bits of `value` in two's complement: bits beyond the 64th are
    /// copies of the sign bit.
    void append(std::int64_t value, std::size_t size) {
        const std::size_t extension = size > 64 ? size - 64 : 0;
        append_repeated(value < 0, extension);
        const auto bits = static_cast<std::uint64_t>(value);
        for (std::size_t i = size - extension; i-- > 0;) {
            if (bit_count_ % 8 == 0 && i % 8 == 7) {  // a whole byte, aligned
                bytes_.push_back(static_cast<std::byte>(bits >> (i - 7)));
                bit_count_ += 8;
                i -= 7;
            } else {
                append_bit(((bits >> i) & 1) != 0);
            }
        }
    }

    /// Bits appended so far.
    [[nodiscard]] std::size_t size() const noexcept { return bit_count_; }

    [[nodiscard]] term finish() const {
        if (bit_count_ % 8 == 0) {
            return binary(std::span<const std::byte>(bytes_));
        }
        return bitstring{.bytes = binary(std::span<const std::byte>(bytes_)),
                         .last_bits = static_cast<std::uint8_t>(bit_count_ % 8)};
    }

  private:
    void append_bit(bool bit) {
        if (bit_count_ % 8 == 0) {
            bytes_.push_back(std::byte{0});
        }
        if (bit) {
            bytes_.back() |= std::byte{0x80} >> (bit_count_ % 8);
        }
        ++bit_count_;
    }

    void append_repeated(bool bit, std::size_t count) {
        for (; count > 0 && bit_count_ % 8 != 0; --count) {
            append_bit(bit);
        }
        bytes_.insert(bytes_.end(), count / 8, bit ? std::byte{0xFF} : std::byte{0});
        bit_count_ += count / 8 * 8;
        for (count %= 8; count > 0; --count) {
            append_bit(bit);
        }
    }

    std::vector<std::byte> bytes_;
    std::size_t bit_count_ = 0;
};

class parser {
  public:
    parser(std::string_view text, atom_table& atoms, const text_limits& limits) noexcept
        : text_(text), atoms_(&atoms), limits_(limits) {}

    [[nodiscard]] std::expected<term, text_error> parse_all() {
        term result;
        if (!parse_term(result, 0)) {
            return std::unexpected(std::move(*error_));
        }
        skip_whitespace();
        if (peek() == '.') {
            ++pos_;
            skip_whitespace();
        }
        if (pos_ != text_.size()) {
            fail("unexpected text after the term", pos_);
            return std::unexpected(std::move(*error_));
        }
        return result;
    }

  private:
    // --- low level

    [[nodiscard]] bool at_end() const noexcept { return pos_ >= text_.size(); }
    [[nodiscard]] char peek(std::size_t ahead = 0) const noexcept {
        return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
    }
    [[nodiscard]] bool starts_with(std::string_view prefix) const noexcept {
        return text_.substr(pos_).starts_with(prefix);
    }

    bool fail(std::string message, std::size_t at) {
        if (!error_) {
            error_ = text_error{std::move(message), at};
        }
        return false;
    }

    /// "expected X, found <what is at pos>".
    bool expected(std::string_view what) {
        std::string message = "expected ";
        message += what;
        message += ", found ";
        message += describe_here();
        return fail(std::move(message), pos_);
    }

    [[nodiscard]] std::string describe_here() const {
        if (at_end()) {
            return "the end of the input";
        }
        const auto [c, length] = decode_utf8(text_, pos_);
        if (length == 0) {
            return "a byte that is not UTF-8";
        }
        std::string shown = "'";
        if (c < 0x20 || c == 0x7F) {
            append_hex_escape(shown, c);
        } else {
            shown.append(text_.substr(pos_, length));
        }
        shown += "'";
        return shown;
    }

    void skip_whitespace() noexcept {
        while (!at_end()) {
            const char c = peek();
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
                ++pos_;
            } else if (c == '%') {  // a comment, to the end of the line
                while (!at_end() && peek() != '\n') {
                    ++pos_;
                }
            } else {
                return;
            }
        }
    }

    /// Skips whitespace, then consumes `token` if it is next.
    [[nodiscard]] bool accept(std::string_view token) {
        skip_whitespace();
        if (starts_with(token)) {
            pos_ += token.size();
            return true;
        }
        return false;
    }

    [[nodiscard]] bool expect(std::string_view token) {
        if (accept(token)) {
            return true;
        }
        std::string what = "'";
        what += token;
        what += "'";
        return expected(what);
    }

    /// The UTF-8 character at pos_, consumed.
    [[nodiscard]] bool next_char(char32_t& out) {
        if (at_end()) {
            return fail("unexpected end of the input", pos_);
        }
        const auto [c, length] = decode_utf8(text_, pos_);
        if (length == 0) {
            return fail("invalid UTF-8", pos_);
        }
        out = c;
        pos_ += length;
        return true;
    }

    // --- terms

    [[nodiscard]] bool parse_term(term& out, std::size_t depth) {
        skip_whitespace();
        const std::size_t at = pos_;
        if (depth > limits_.max_depth) {
            return fail("term nested deeper than the limit", at);
        }
        if (at_end()) {
            return expected("a term");
        }
        const char c = peek();
        if (is_digit(static_cast<unsigned char>(c)) || c == '$' || c == '-' || c == '+') {
            return parse_number(out);
        }
        if (c == '\'') {
            atom name;
            if (!parse_quoted_atom(name)) {
                return false;
            }
            out = name;
            return true;
        }
        if (c == '"') {
            return parse_string(out);
        }
        if (c == '[') {
            ++pos_;
            return parse_list(out, depth);
        }
        if (c == '{') {
            ++pos_;
            return parse_tuple(out, depth);
        }
        if (starts_with("<<")) {
            pos_ += 2;
            return parse_binary(out);
        }
        if (starts_with("#{")) {
            pos_ += 2;
            return parse_map(out, at, depth);
        }
        if (starts_with("#Pid<")) {
            pid result;
            if (!parse_pid(result)) {
                return false;
            }
            out = std::move(result);
            return true;
        }
        if (starts_with("#Port<")) {
            return parse_port(out);
        }
        if (starts_with("#Ref<")) {
            return parse_reference(out);
        }
        if (starts_with("#Fun<")) {
            return parse_local_fun(out, depth);
        }
        return parse_word(out);
    }

    /// An unquoted atom, or `fun M:F/A`.
    [[nodiscard]] bool parse_word(term& out) {
        const std::size_t at = pos_;
        std::string name;
        const auto [first, first_length] = decode_utf8(text_, pos_);
        if (first_length == 0) {
            return fail("invalid UTF-8", pos_);
        }
        if (is_variable_start(first)) {
            return fail("a variable is not a term", pos_);
        }
        if (!is_name_start(first)) {
            return expected("a term");
        }
        if (!read_name(name)) {
            return false;
        }
        if (name == "fun") {
            return parse_export_fun(out);
        }
        if (is_always_reserved(name)) {
            return fail("'" + name + "' is a reserved word: quote it to make an atom", at);
        }
        atom result;
        if (!make_atom(name, at, result)) {
            return false;
        }
        out = result;
        return true;
    }

    /// The characters of an unquoted name at pos_ (which starts one), as UTF-8.
    [[nodiscard]] bool read_name(std::string& name) {
        while (!at_end()) {
            const auto [c, length] = decode_utf8(text_, pos_);
            if (length == 0 || !is_name_char(c)) {
                break;
            }
            append_utf8(name, c);
            pos_ += length;
        }
        return true;
    }

    [[nodiscard]] bool make_atom(std::string_view name, std::size_t at, atom& out) {
        if (auto known = atoms_->find(name)) {
            out = *known;
            return true;
        }
        if (++new_atoms_ > limits_.max_new_atoms) {
            return fail("text creates more new atoms than the limit", at);
        }
        auto interned = atoms_->intern(name);
        if (!interned) {
            return fail(make_error_code(interned.error()).message(), at);
        }
        out = *interned;
        return true;
    }

    /// An atom, quoted or not (not a reserved word).
    [[nodiscard]] bool parse_atom(atom& out) {
        skip_whitespace();
        if (peek() == '\'') {
            return parse_quoted_atom(out);
        }
        const std::size_t at = pos_;
        const auto [first, length] = decode_utf8(text_, pos_);
        if (length == 0 || !is_name_start(first)) {
            return expected("an atom");
        }
        std::string name;
        if (!read_name(name)) {
            return false;
        }
        if (is_always_reserved(name)) {
            return fail("'" + name + "' is a reserved word: quote it to make an atom", at);
        }
        return make_atom(name, at, out);
    }

    [[nodiscard]] bool parse_quoted_atom(atom& out) {
        const std::size_t at = pos_;
        std::vector<char32_t> chars;
        if (!read_quoted('\'', chars)) {
            return false;
        }
        std::string name;
        for (const char32_t c : chars) {
            if (c >= 0xD800 && c <= 0xDFFF) {
                return fail("invalid atom: a surrogate is no character", at);
            }
            append_utf8(name, c);
        }
        return make_atom(name, at, out);
    }

    /// The characters between `quote`s at pos_, escapes resolved.
    [[nodiscard]] bool read_quoted(char quote, std::vector<char32_t>& out) {
        const std::size_t at = pos_;
        ++pos_;  // the opening quote
        for (;;) {
            if (at_end()) {
                return fail(quote == '"' ? "unterminated string" : "unterminated quoted atom", at);
            }
            if (peek() == quote) {
                ++pos_;
                return true;
            }
            char32_t c = 0;
            if (peek() == '\\') {
                if (!read_escape(c)) {
                    return false;
                }
            } else if (!next_char(c)) {
                return false;
            }
            out.push_back(c);
        }
    }

    /// An escape sequence at pos_ (which is at the backslash), as erl_scan reads it.
    [[nodiscard]] bool read_escape(char32_t& out) {
        const std::size_t at = pos_;
        ++pos_;
        if (at_end()) {
            return fail("unterminated escape sequence", at);
        }
        const char c = peek();
        if (c >= '0' && c <= '7') {  // \N, \NN, \NNN: octal
            char32_t value = 0;
            for (int i = 0; i < 3 && peek() >= '0' && peek() <= '7'; ++i) {
                value = value * 8 + static_cast<char32_t>(peek() - '0');
                ++pos_;
            }
            out = value;
            return true;
        }
        if (c == 'x') {
            ++pos_;
            return read_hex_escape(at, out);
        }
        if (c == '^') {  // \^A: control character
            ++pos_;
            char32_t control = 0;
            if (!next_char(control)) {
                return false;
            }
            out = control & 31u;
            return true;
        }
        static constexpr std::array<std::pair<char, char32_t>, 9> named{{{'b', 8},
                                                                         {'d', 127},
                                                                         {'e', 27},
                                                                         {'f', 12},
                                                                         {'n', 10},
                                                                         {'r', 13},
                                                                         {'s', 32},
                                                                         {'t', 9},
                                                                         {'v', 11}}};
        for (const auto& [letter, value] : named) {
            if (c == letter) {
                ++pos_;
                out = value;
                return true;
            }
        }
        return next_char(out);  // any other character stands for itself: \' \" \\ ...
    }

    /// After `\x`: two hex digits, or {hex digits}.
    [[nodiscard]] bool read_hex_escape(std::size_t at, char32_t& out) {
        const auto hex_value = [](char h) -> int {
            if (h >= '0' && h <= '9') {
                return h - '0';
            }
            if (h >= 'a' && h <= 'f') {
                return h - 'a' + 10;
            }
            if (h >= 'A' && h <= 'F') {
                return h - 'A' + 10;
            }
            return -1;
        };
        std::uint32_t value = 0;
        if (peek() == '{') {
            ++pos_;
            std::size_t digits = 0;
            while (hex_value(peek()) >= 0) {
                value = value * 16 + static_cast<std::uint32_t>(hex_value(peek()));
                if (value > 0x10FFFF) {
                    return fail("character code beyond U+10FFFF", at);
                }
                ++pos_;
                ++digits;
            }
            if (digits == 0 || peek() != '}') {
                return fail("bad \\x{...} escape", at);
            }
            ++pos_;
        } else {
            for (int i = 0; i < 2; ++i) {
                if (hex_value(peek()) < 0) {
                    return fail("bad \\xHH escape: two hex digits expected", at);
                }
                value = value * 16 + static_cast<std::uint32_t>(hex_value(peek()));
                ++pos_;
            }
        }
        out = value;
        return true;
    }

    /// One or more adjacent "..." literals (Erlang joins them) as their characters.
    [[nodiscard]] bool read_strings(std::vector<char32_t>& chars) {
        do {
            if (!read_quoted('"', chars)) {
                return false;
            }
            skip_whitespace();
        } while (peek() == '"');
        return true;
    }

    [[nodiscard]] bool parse_string(term& out) {
        std::vector<char32_t> chars;
        if (!read_strings(chars)) {
            return false;
        }
        std::vector<term> elements;
        elements.reserve(chars.size());
        for (const char32_t c : chars) {
            elements.emplace_back(static_cast<std::int64_t>(c));
        }
        out = list(std::move(elements));
        return true;
    }

    // --- numbers

    /// [+-] then an integer, a float, Base#Digits or $c.
    [[nodiscard]] bool parse_number(term& out) {
        const std::size_t at = pos_;
        bool negative = false;
        if (peek() == '-' || peek() == '+') {
            negative = peek() == '-';
            ++pos_;
            skip_whitespace();
            if (!is_digit(static_cast<unsigned char>(peek())) && peek() != '$') {
                return expected("a number after the sign");
            }
        }
        if (peek() == '$') {
            ++pos_;
            char32_t c = 0;
            if (peek() == '\\' ? !read_escape(c) : !next_char(c)) {
                return false;
            }
            out = negative ? -std::int64_t{c} : std::int64_t{c};
            return true;
        }
        const std::size_t digits_at = pos_;
        std::string digits;
        if (!read_digits(10, digits)) {
            return false;
        }
        if (peek() == '#') {
            return parse_based(out, negative, digits, digits_at);
        }
        if (peek() == '.' && is_digit(static_cast<unsigned char>(peek(1)))) {
            return parse_float(out, negative, std::move(digits), at);
        }
        return make_integer(out, negative, digits, 10, digits_at);
    }

    /// Digits of `base` at pos_ (at least one), with single `_`s between them dropped.
    [[nodiscard]] bool read_digits(unsigned base, std::string& digits) {
        const auto digit_value = [](char c) -> unsigned {
            if (c >= '0' && c <= '9') {
                return static_cast<unsigned>(c - '0');
            }
            if (c >= 'a' && c <= 'z') {
                return static_cast<unsigned>(c - 'a' + 10);
            }
            if (c >= 'A' && c <= 'Z') {
                return static_cast<unsigned>(c - 'A' + 10);
            }
            return 99;
        };
        for (;;) {
            if (digit_value(peek()) < base) {
                digits += peek();
                ++pos_;
            } else if (peek() == '_' && !digits.empty() && digit_value(peek(1)) < base) {
                ++pos_;
            } else {
                break;
            }
        }
        if (digits.empty()) {
            return expected(base == 10 ? "a digit" : "a digit of the base");
        }
        return true;
    }

    [[nodiscard]] bool parse_based(term& out, bool negative, const std::string& base_digits,
                                   std::size_t at) {
        unsigned base = 0;
        const auto [end, error] =
            std::from_chars(base_digits.data(), base_digits.data() + base_digits.size(), base);
        if (error != std::errc{} || end != base_digits.data() + base_digits.size() || base < 2 ||
            base > 36) {
            return fail("the base of an integer must be 2 to 36", at);
        }
        ++pos_;  // '#'
        const std::size_t digits_at = pos_;
        std::string digits;
        if (!read_digits(base, digits)) {
            return false;
        }
        return make_integer(out, negative, digits, base, digits_at);
    }

    /// `digits` in `base` as a term: std::int64_t when it fits, else a big_integer.
    [[nodiscard]] bool make_integer(term& out, bool negative, std::string_view digits,
                                    unsigned base, std::size_t at) {
        // Chunks of k digits, base^k < 2^32, multiplied in one limb pass each.
        std::uint32_t chunk_factor = base;
        std::size_t chunk_digits = 1;
        while (std::uint64_t{chunk_factor} * base <= std::numeric_limits<std::uint32_t>::max()) {
            chunk_factor *= base;
            ++chunk_digits;
        }
        const auto digit_value = [](char c) {
            return static_cast<std::uint32_t>(c <= '9'   ? c - '0'
                                              : c >= 'a' ? c - 'a' + 10
                                                         : c - 'A' + 10);
        };
        const std::size_t max_limbs = limits_.max_bignum_bytes / 4 + 1;
        limbs magnitude;
        std::size_t pos = 0;
        const std::size_t first_chunk = digits.size() % chunk_digits;
        while (pos < digits.size()) {
            const std::size_t n = pos == 0 && first_chunk != 0 ? first_chunk : chunk_digits;
            std::uint32_t factor = 1;
            std::uint32_t value = 0;
            for (std::size_t i = 0; i < n; ++i) {
                factor *= base;
                value = value * base + digit_value(digits[pos + i]);
            }
            multiply_add(magnitude, factor, value);
            pos += n;
            if (magnitude.size() > max_limbs) {
                return fail("integer larger than the limit", at);
            }
        }
        while (!magnitude.empty() && magnitude.back() == 0) {
            magnitude.pop_back();
        }
        if (magnitude.size() <= 2) {
            const std::uint64_t value =
                (magnitude.size() > 1 ? std::uint64_t{magnitude[1]} << 32 : 0) |
                (magnitude.empty() ? 0 : magnitude[0]);
            constexpr auto max =
                static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
            if (value <= max) {
                const auto signed_value = static_cast<std::int64_t>(value);
                out = negative ? -signed_value : signed_value;
                return true;
            }
            if (negative && value == max + 1) {
                out = std::numeric_limits<std::int64_t>::min();
                return true;
            }
        }
        big_integer result{.negative = negative, .magnitude = base256_of(magnitude)};
        if (result.magnitude.size() > limits_.max_bignum_bytes) {
            return fail("integer larger than the limit", at);
        }
        out = std::move(result);
        return true;
    }

    /// After the integer digits, at the '.': fraction and optional exponent.
    [[nodiscard]] bool parse_float(term& out, bool negative, std::string digits, std::size_t at) {
        const std::size_t integer_digits = digits.size();
        digits += '.';
        ++pos_;
        if (!read_digits(10, digits)) {
            return false;
        }
        std::string exponent;
        if (peek() == 'e' || peek() == 'E') {
            ++pos_;
            if (peek() == '-' || peek() == '+') {
                exponent += peek();
                ++pos_;
            }
            if (!read_digits(10, exponent)) {
                return false;
            }
        }
        std::string number = digits;
        if (!exponent.empty()) {
            number += 'e';
            number += exponent;
        }
        double value = 0;
        const auto [end, error] = std::from_chars(number.data(), number.data() + number.size(),
                                                  value, std::chars_format::general);
        if (error == std::errc::result_out_of_range) {
            // Too small reads as zero (as in Erlang); too large is an error (as in Erlang).
            if (decimal_exponent(digits, integer_digits, exponent) >= 0) {
                return fail("float out of range", at);
            }
            value = 0.0;
        } else if (error != std::errc{} || end != number.data() + number.size()) {
            return fail("unreadable float", at);
        }
        out = negative ? -value : value;
        return true;
    }

    /// Roughly the power of ten of a number that from_chars found out of range: positive for
    /// a huge one, negative for a tiny one (they are hundreds of decades apart).
    [[nodiscard]] static long decimal_exponent(std::string_view digits, std::size_t integer_digits,
                                               std::string_view exponent) {
        long value = 0;
        if (!exponent.empty()) {
            const bool minus = exponent.front() == '-';
            const auto text = exponent.substr(exponent.front() == '-' || exponent.front() == '+');
            // Saturate: a thousand-digit exponent is as huge (or tiny) as a five-digit one.
            for (const char c : text.substr(0, std::min<std::size_t>(text.size(), 12))) {
                value = value * 10 + (c - '0');
            }
            if (minus) {
                value = -value;
            }
        }
        const auto first_nonzero = digits.find_first_not_of("0.");
        if (first_nonzero == std::string_view::npos) {
            return -1;
        }
        const auto position = static_cast<long>(first_nonzero);
        const auto point = static_cast<long>(integer_digits);
        // digit at index i < point has weight 10^(point-1-i); after the point (index i > point),
        // 10^(point-i).
        return value + (position < point ? point - 1 - position : point - position);
    }

    // --- containers

    [[nodiscard]] bool parse_list(term& out, std::size_t depth) {
        list result;
        if (accept("]")) {
            out = std::move(result);
            return true;
        }
        for (;;) {
            term element;
            if (!parse_term(element, depth + 1)) {
                return false;
            }
            result.elements.push_back(std::move(element));
            if (accept(",")) {
                continue;
            }
            if (accept("|")) {
                term tail;
                if (!parse_term(tail, depth + 1)) {
                    return false;
                }
                if (auto* rest = tail.get_if<list>()) {
                    // [a | [b, c]] is [a, b, c]: splice, as the decoder normalises.
                    std::ranges::move(rest->elements, std::back_inserter(result.elements));
                    result.tail = std::move(rest->tail);
                } else {
                    result.tail = std::move(tail);
                }
                if (!expect("]")) {
                    return false;
                }
                break;
            }
            if (!expect("]")) {
                return false;
            }
            break;
        }
        if (result.tail && result.tail->is_nil()) {
            result.tail = {};
        }
        out = std::move(result);
        return true;
    }

    [[nodiscard]] bool parse_tuple(term& out, std::size_t depth) {
        std::vector<term> elements;
        if (!parse_sequence("}", depth, elements)) {
            return false;
        }
        out = tuple(std::move(elements));
        return true;
    }

    /// Terms separated by commas up to `close` (the opening bracket already read).
    [[nodiscard]] bool parse_sequence(std::string_view close, std::size_t depth,
                                      std::vector<term>& elements) {
        if (accept(close)) {
            return true;
        }
        for (;;) {
            term element;
            if (!parse_term(element, depth + 1)) {
                return false;
            }
            elements.push_back(std::move(element));
            if (accept(",")) {
                continue;
            }
            return expect(close);
        }
    }

    [[nodiscard]] bool parse_map(term& out, std::size_t at, std::size_t depth) {
        map result;
        if (!accept("}")) {
            for (;;) {
                term key;
                term value;
                if (!parse_term(key, depth + 1) || !expect("=>") || !parse_term(value, depth + 1)) {
                    return false;
                }
                result.entries.emplace_back(std::move(key), std::move(value));
                if (accept(",")) {
                    continue;
                }
                if (!expect("}")) {
                    return false;
                }
                break;
            }
        }
        if (internal::has_duplicate_key(result)) {
            return fail("map with a duplicate key", at);
        }
        out = std::move(result);
        return true;
    }

    /// After `<<`: segments `Value[:Size]` separated by commas, then `>>`. A value is an
    /// integer (with sign, base or $c) or strings; an integer's size defaults to 8 bits, and a
    /// string's size applies to each of its characters.
    [[nodiscard]] bool parse_binary(term& out) {
        bit_builder bits;
        if (accept(">>")) {
            out = bits.finish();
            return true;
        }
        for (;;) {
            skip_whitespace();
            const std::size_t at = pos_;
            std::vector<std::int64_t> values;
            if (peek() == '"') {
                std::vector<char32_t> chars;
                if (!read_strings(chars)) {
                    return false;
                }
                values.assign(chars.begin(), chars.end());
            } else {
                const char c = peek();
                if (!is_digit(static_cast<unsigned char>(c)) && c != '$' && c != '-' && c != '+') {
                    return expected("an integer or a string in a binary");
                }
                term value;
                if (!parse_number(value)) {
                    return false;
                }
                const auto* integer = value.get_if<std::int64_t>();
                if (integer == nullptr) {
                    return fail(value.is<double>() ? "a binary segment holds no float here"
                                                   : "binary segment value out of range",
                                at);
                }
                values.push_back(*integer);
            }
            std::size_t size = 8;
            if (accept(":")) {
                std::uint64_t requested = 0;
                if (!read_unsigned(requested, std::numeric_limits<std::uint32_t>::max(),
                                   "segment size")) {
                    return false;
                }
                size = static_cast<std::size_t>(requested);
            }
            // Sized segments make much from little text (<<0:4000000000>>): bound the total.
            const std::size_t remaining = limits_.max_binary_bytes - binary_bytes_;
            const std::size_t budget =
                std::min(remaining, std::numeric_limits<std::size_t>::max() / 8) * 8 - bits.size();
            if (size != 0 && values.size() > budget / size) {
                return fail("binaries larger than the limit", at);
            }
            for (const auto value : values) {
                bits.append(value, size);
            }
            if (accept(",")) {
                continue;
            }
            if (!expect(">>")) {
                return false;
            }
            break;
        }
        binary_bytes_ += (bits.size() + 7) / 8;
        out = bits.finish();
        return true;
    }

    // --- vdist's notation for pids, ports, references, local funs

    /// Decimal digits at pos_ as an unsigned number no larger than `max`.
    [[nodiscard]] bool read_unsigned(std::uint64_t& out, std::uint64_t max, std::string_view what) {
        skip_whitespace();
        const std::size_t at = pos_;
        const auto* begin = text_.data() + pos_;
        const auto [end, error] = std::from_chars(begin, text_.data() + text_.size(), out);
        if (end == begin) {
            return expected(std::string(what) + " (decimal digits)");
        }
        pos_ += static_cast<std::size_t>(end - begin);
        if (error != std::errc{} || out > max) {
            return fail(std::string(what) + " out of range", at);
        }
        return true;
    }

    [[nodiscard]] bool read_u32(std::uint32_t& out, std::string_view what) {
        std::uint64_t value = 0;
        if (!read_unsigned(value, std::numeric_limits<std::uint32_t>::max(), what)) {
            return false;
        }
        out = static_cast<std::uint32_t>(value);
        return true;
    }

    [[nodiscard]] bool read_i64(std::int64_t& out, std::string_view what) {
        skip_whitespace();
        const bool negative = peek() == '-';
        if (negative) {
            ++pos_;
        }
        std::uint64_t magnitude = 0;
        constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        if (!read_unsigned(magnitude, max + (negative ? 1 : 0), what)) {
            return false;
        }
        out = negative ? static_cast<std::int64_t>(0 - magnitude)
                       : static_cast<std::int64_t>(magnitude);
        return true;
    }

    [[nodiscard]] bool parse_pid(pid& out) {
        pos_ += std::string_view("#Pid<").size();
        return parse_atom(out.node) && expect(".") && read_u32(out.id, "pid id") && expect(".") &&
               read_u32(out.serial, "pid serial") && expect(".") &&
               read_u32(out.creation, "pid creation") && expect(">");
    }

    [[nodiscard]] bool parse_port(term& out) {
        pos_ += std::string_view("#Port<").size();
        port result;
        if (!parse_atom(result.node) || !expect(".") ||
            !read_unsigned(result.id, std::numeric_limits<std::uint64_t>::max(), "port id") ||
            !expect(".") || !read_u32(result.creation, "port creation") || !expect(">")) {
            return false;
        }
        out = std::move(result);
        return true;
    }

    [[nodiscard]] bool parse_reference(term& out) {
        constexpr std::size_t max_words = 5;  // NEWER_REFERENCE_EXT's limit
        pos_ += std::string_view("#Ref<").size();
        reference result;
        if (!parse_atom(result.node) || !expect(".") ||
            !read_u32(result.creation, "reference creation")) {
            return false;
        }
        while (accept(".")) {
            if (result.words.size() == max_words) {
                return fail("a reference has at most 5 words", pos_ - 1);
            }
            std::uint32_t word = 0;
            if (!read_u32(word, "reference word")) {
                return false;
            }
            result.words.push_back(word);
        }
        if (!expect(">")) {
            return false;
        }
        out = std::move(result);
        return true;
    }

    [[nodiscard]] bool parse_local_fun(term& out, std::size_t depth) {
        pos_ += std::string_view("#Fun<").size();
        local_fun fun;
        std::uint64_t arity = 0;
        if (!read_unsigned(arity, 255, "fun arity") || !expect(".") || !read_uniq(fun.uniq) ||
            !expect(".") || !read_u32(fun.index, "fun index") || !expect(".") ||
            !parse_atom(fun.module) || !expect(".") || !read_i64(fun.old_index, "fun old index") ||
            !expect(".") || !read_i64(fun.old_uniq, "fun old uniq") || !expect(".")) {
            return false;
        }
        fun.arity = static_cast<std::uint8_t>(arity);
        skip_whitespace();
        if (!starts_with("#Pid<")) {
            return expected("the fun's creator pid #Pid<...>");
        }
        if (!parse_pid(fun.pid) || !expect(".") || !expect("[") ||
            !parse_sequence("]", depth, fun.free_vars) || !expect(">")) {
            return false;
        }
        out = std::move(fun);
        return true;
    }

    [[nodiscard]] bool read_uniq(std::array<std::uint8_t, 16>& out) {
        skip_whitespace();
        const std::size_t at = pos_;
        for (auto& b : out) {
            std::uint8_t value = 0;
            const auto [end, error] = std::from_chars(
                text_.data() + pos_, text_.data() + std::min(pos_ + 2, text_.size()), value, 16);
            if (error != std::errc{} || end != text_.data() + pos_ + 2) {
                return fail("a fun's uniq must be 32 hex digits", at);
            }
            b = value;
            pos_ += 2;
        }
        const char after = peek();
        if (std::isxdigit(static_cast<unsigned char>(after)) != 0) {
            return fail("a fun's uniq must be 32 hex digits", at);
        }
        return true;
    }

    [[nodiscard]] bool parse_export_fun(term& out) {
        export_fun result;
        std::uint64_t arity = 0;
        if (!parse_atom(result.module) || !expect(":") || !parse_atom(result.function) ||
            !expect("/") || !read_unsigned(arity, 255, "fun arity")) {
            return false;
        }
        result.arity = static_cast<std::uint8_t>(arity);
        out = std::move(result);
        return true;
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    atom_table* atoms_;
    text_limits limits_;
    std::size_t new_atoms_ = 0;
    std::size_t binary_bytes_ = 0;  // in the binaries parsed so far
    std::optional<text_error> error_;
};

}  // namespace

std::string to_erlang_text(const term& t) {
    std::string out;
    printer(out).print(t);
    return out;
}

std::string text_error::describe() const {
    return message + " at byte " + std::to_string(offset);
}

std::expected<term, text_error> parse_erlang_text(std::string_view text, atom_table& atoms,
                                                  text_limits limits) {
    return parser(text, atoms, limits).parse_all();
}

}  // namespace vdist::dist
