/// \file
/// Micro-benchmarks of the ETF codec against erl_interface's `ei` (OTP's C library), on the
/// same bytes, in one process, one after the other, with the ratios printed at the end.
///
/// Shapes: `control` (a REG_SEND header {6, From, '', net_kernel}), `binary_1k` (a 1 KiB
/// binary), `int_list_1000` (1000 integers spread over 0..100000: a LIST_EXT of
/// SMALL_INTEGER_EXT / INTEGER_EXT), `map_100` (#{k1 => ..., k100 => ...}), `nested_100`
/// (100 levels of {level, N, [Child]}). Per shape:
///
///  - encode/vdist:        encode(term), a new vector per call (the owned-term API);
///  - encode_into/vdist:   etf_writer::term(term) into one reused vector (clear() per call);
///  - encode_stream/vdist: etf_writer piece by piece from plain C++ values (pre-interned atoms)
///                         into one reused vector, as the hot path builds control messages;
///  - encode/ei:           ei_encode_* from the same plain values into a preallocated buffer
///                         (ei's fastest form), encode_x/ei: ei_x_encode_* into a reused
///                         ei_x_buff (index reset per call; informative);
///  - decode/vdist:        etf_decoder::decode into an owned `term` (binaries copied);
///  - decode/ei:           the walk an ei user writes (ei_decode_tuple_header, _long, _atom,
///                         _pid, _binary, _map_header, ...) into equivalent C++ values: a struct
///                         for the control message, std::vector<long>, a vector of
///                         (std::string, long), a tree of {std::string, long, children};
///                         skip/ei: ei_skip_term over the same bytes (informative floor);
///  - decode_stream/vdist: etf_reader (read_tuple_header, read_integer, read_pid,
///                         read_atom_text, read_binary, ...) walking the same bytes into the
///                         very structs decode/ei fills (same copies, same allocations);
///  - decode_shared (binary_1k only): decode(bytes, owner), whose binary shares the receive
///                         buffer, and etf_reader::read_binary (vdist_stream: a view), against
///                         ei_decode_bitstring, a pointer into the buffer.
///
/// At start-up every encoder must produce exactly the bytes ei produces and every decoder must
/// read back the source values, or the program stops. The ratio table uses the CPU time per
/// iteration, median over --benchmark_repetitions: ei ns / vdist ns (> 1: vdist is faster),
/// target 1.5. Built without ei (not found at configure time), it runs the vdist side only.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vdist/bench/median.hpp"
#include "vdist/dist/atom.hpp"
#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_encoder.hpp"
#include "vdist/dist/etf_reader.hpp"
#include "vdist/dist/term.hpp"

#if VDIST_BENCH_WITH_EI
#include <ei.h>  // has its own extern "C"
#endif

namespace {

namespace dist = vdist::dist;

constexpr double target_ratio = 1.5;

[[noreturn]] void stop(const char* shape, const char* what) {
    std::fprintf(stderr, "etf_bench: %s: %s\n", shape, what);
    std::exit(1);
}

[[nodiscard]] std::string_view text_of(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

#if VDIST_BENCH_WITH_EI

/// ei_encode_* into a caller's buffer, ei's fastest form; a null buffer only counts (ei's own
/// sizing idiom).
class ei_buffer_sink {
  public:
    explicit ei_buffer_sink(char* buffer) noexcept : buffer_(buffer) {}

    void version() { check(ei_encode_version(buffer_, &index_)); }
    void tuple_header(int arity) { check(ei_encode_tuple_header(buffer_, &index_, arity)); }
    void list_header(int length) { check(ei_encode_list_header(buffer_, &index_, length)); }
    void empty_list() { check(ei_encode_empty_list(buffer_, &index_)); }
    void map_header(int arity) { check(ei_encode_map_header(buffer_, &index_, arity)); }
    void integer(long value) { check(ei_encode_long(buffer_, &index_, value)); }
    void atom(std::string_view name) {
        check(ei_encode_atom_len(buffer_, &index_, name.data(), static_cast<int>(name.size())));
    }
    void pid(const erlang_pid& id) { check(ei_encode_pid(buffer_, &index_, &id)); }
    void binary(std::span<const std::byte> bytes) {
        check(ei_encode_binary(buffer_, &index_, bytes.data(), static_cast<long>(bytes.size())));
    }

    [[nodiscard]] int index() const noexcept { return index_; }
    [[nodiscard]] bool failed() const noexcept { return failed_; }

  private:
    void check(int status) noexcept { failed_ = failed_ || status < 0; }

    char* buffer_;
    int index_ = 0;
    bool failed_ = false;
};

/// ei_x_encode_* into an ei_x_buff (which grows as needed).
class ei_x_sink {
  public:
    explicit ei_x_sink(ei_x_buff& x) noexcept : x_(&x) {}

    void version() { check(ei_x_encode_version(x_)); }
    void tuple_header(int arity) { check(ei_x_encode_tuple_header(x_, arity)); }
    void list_header(int length) { check(ei_x_encode_list_header(x_, length)); }
    void empty_list() { check(ei_x_encode_empty_list(x_)); }
    void map_header(int arity) { check(ei_x_encode_map_header(x_, arity)); }
    void integer(long value) { check(ei_x_encode_long(x_, value)); }
    void atom(std::string_view name) {
        check(ei_x_encode_atom_len(x_, name.data(), static_cast<int>(name.size())));
    }
    void pid(const erlang_pid& id) { check(ei_x_encode_pid(x_, &id)); }
    void binary(std::span<const std::byte> bytes) {
        check(ei_x_encode_binary(x_, bytes.data(), static_cast<int>(bytes.size())));
    }

    [[nodiscard]] bool failed() const noexcept { return failed_; }

  private:
    void check(int status) noexcept { failed_ = failed_ || status < 0; }

    ei_x_buff* x_;
    bool failed_ = false;
};

[[nodiscard]] bool decode_version(const char* buffer, int& index) {
    int version = 0;
    return ei_decode_version(buffer, &index, &version) == 0 && version == 131;
}

/// The tail of a non-empty list an ei user checks: [] (ei_decode_list_header gives 0).
[[nodiscard]] bool decode_nil(const char* buffer, int& index) {
    int length = -1;
    return ei_decode_list_header(buffer, &index, &length) == 0 && length == 0;
}

/// An atom's text into a C string of `capacity` bytes, as ei_decode_atom fills one. Out of
/// line, where the capacity is unknown: inlined, g++ expands the bounded memcpy into
/// `rep movsq`, whose start-up costs more than copying a short name.
[[nodiscard, gnu::noinline]] bool copy_text(std::string_view text, char* out,
                                            std::size_t capacity) {
    if (text.size() >= capacity) {
        return false;
    }
    std::memcpy(out, text.data(), text.size());
    out[text.size()] = '\0';
    return true;
}
template <std::size_t N>
[[nodiscard]] bool copy_text(const dist::decode_result<std::string_view>& text, char (&out)[N]) {
    return text && copy_text(*text, out, N);
}

#endif

// ---- Shapes. Each holds its source values in plain C++ (what encode_stream and ei encode
// from, and what ei decodes into), the same value as a `term`, and the code for both sides.

/// {6, From, '', net_kernel}: a distribution REG_SEND control message.
struct control_shape {
    static constexpr const char* name = "control";
    static constexpr long op = 6;  // REG_SEND
    static constexpr std::string_view node_text = "bench@localhost";
    static constexpr std::string_view to_name_text = "net_kernel";
    static constexpr std::uint32_t pid_id = 81;
    static constexpr std::uint32_t pid_serial = 3;
    static constexpr std::uint32_t pid_creation = 1'700'000'003;

    dist::pid from;
    dist::atom unused;
    dist::atom to_name;
    dist::term value;

    explicit control_shape(dist::atom_table& atoms)
        : from{atoms(node_text), pid_id, pid_serial, pid_creation},
          unused(atoms("")),
          to_name(atoms(to_name_text)),
          value(dist::tuple{dist::term(op), dist::term(from), dist::term(unused),
                            dist::term(to_name)}) {}

    void stream(dist::etf_writer& writer) const {
        writer.version();
        writer.tuple_header(4);
        writer.integer(op);
        writer.pid(from);
        writer.atom(unused);
        writer.atom(to_name);
    }

#if VDIST_BENCH_WITH_EI
    /// What ei's own receive code decodes a control message into (cf. erlang_msg).
    struct ei_value {
        long op;
        erlang_pid from;
        char unused[MAXATOMLEN];
        char to_name[MAXATOMLEN];
    };

    erlang_pid ei_from = make_ei_pid();

    [[nodiscard]] static erlang_pid make_ei_pid() {
        erlang_pid id{};
        node_text.copy(id.node, node_text.size());
        id.num = pid_id;
        id.serial = pid_serial;
        id.creation = pid_creation;
        return id;
    }

    template <class Sink>
    void ei_encode(Sink& out) const {
        out.version();
        out.tuple_header(4);
        out.integer(op);
        out.pid(ei_from);
        out.atom("");
        out.atom(to_name_text);
    }

    [[nodiscard]] static bool ei_decode(const char* buffer, int& index, ei_value& out) {
        int arity = 0;
        return decode_version(buffer, index) &&
               ei_decode_tuple_header(buffer, &index, &arity) == 0 && arity == 4 &&
               ei_decode_long(buffer, &index, &out.op) == 0 &&
               ei_decode_pid(buffer, &index, &out.from) == 0 &&
               ei_decode_atom(buffer, &index, out.unused) == 0 &&
               ei_decode_atom(buffer, &index, out.to_name) == 0;
    }

    /// The same walk through etf_reader, into the same struct.
    [[nodiscard]] static bool stream_decode(dist::etf_reader& in, ei_value& out) {
        if (!in.read_version()) {
            return false;
        }
        const auto arity = in.read_tuple_header();
        const auto number = in.read_integer();
        if (!arity || *arity != 4 || !number) {
            return false;
        }
        out.op = *number;
        const auto from = in.read_pid();
        if (!from || !copy_text(from->node, out.from.node, sizeof out.from.node)) {
            return false;
        }
        out.from.num = from->id;
        out.from.serial = from->serial;
        out.from.creation = from->creation;
        return copy_text(in.read_atom_text(), out.unused) &&
               copy_text(in.read_atom_text(), out.to_name);
    }

    [[nodiscard]] bool same(const ei_value& decoded) const {
        return decoded.op == op && std::string_view(decoded.from.node) == node_text &&
               decoded.from.num == pid_id && decoded.from.serial == pid_serial &&
               decoded.from.creation == pid_creation && std::string_view(decoded.unused).empty() &&
               std::string_view(decoded.to_name) == to_name_text;
    }
#endif
};

/// A 1 KiB binary.
struct binary_shape {
    static constexpr const char* name = "binary_1k";

    std::vector<std::byte> payload = make_payload();
    dist::term value{dist::binary(payload)};

    explicit binary_shape(dist::atom_table&) {}

    [[nodiscard]] static std::vector<std::byte> make_payload() {
        std::vector<std::byte> bytes(1024);
        for (std::size_t i = 0; i < bytes.size(); ++i) {
            bytes[i] = static_cast<std::byte>((i * 31 + 7) & 0xff);
        }
        return bytes;
    }

    void stream(dist::etf_writer& writer) const {
        writer.version();
        writer.binary(payload);
    }

#if VDIST_BENCH_WITH_EI
    struct ei_value {
        std::unique_ptr<std::byte[]> bytes;
        long size;
    };

    template <class Sink>
    void ei_encode(Sink& out) const {
        out.version();
        out.binary(payload);
    }

    [[nodiscard]] static bool ei_decode(const char* buffer, int& index, ei_value& out) {
        int type = 0;
        int size = 0;
        if (!decode_version(buffer, index) || ei_get_type(buffer, &index, &type, &size) != 0 ||
            type != ERL_BINARY_EXT || size < 0) {
            return false;
        }
        out.bytes = std::make_unique_for_overwrite<std::byte[]>(static_cast<std::size_t>(size));
        return ei_decode_binary(buffer, &index, out.bytes.get(), &out.size) == 0;
    }

    [[nodiscard]] static bool stream_decode(dist::etf_reader& in, ei_value& out) {
        if (!in.read_version()) {
            return false;
        }
        const auto bytes = in.read_binary();
        if (!bytes) {
            return false;
        }
        out.bytes = std::make_unique_for_overwrite<std::byte[]>(bytes->size());
        std::memcpy(out.bytes.get(), bytes->data(), bytes->size());
        out.size = static_cast<long>(bytes->size());
        return true;
    }

    [[nodiscard]] bool same(const ei_value& decoded) const {
        return decoded.size == static_cast<long>(payload.size()) &&
               std::equal(payload.begin(), payload.end(), decoded.bytes.get());
    }

    /// Without a copy: ei_decode_bitstring points into the buffer.
    struct ei_view {
        const char* bytes;
        std::size_t bits;
    };
    [[nodiscard]] static bool ei_decode_view(const char* buffer, int& index, ei_view& out) {
        unsigned int bit_offset = 0;
        return decode_version(buffer, index) &&
               ei_decode_bitstring(buffer, &index, &out.bytes, &bit_offset, &out.bits) == 0 &&
               bit_offset == 0;
    }
    /// Without a copy: etf_reader::read_binary is a view of the buffer.
    [[nodiscard]] static bool stream_decode_view(dist::etf_reader& in, ei_view& out) {
        if (!in.read_version()) {
            return false;
        }
        const auto bytes = in.read_binary();
        if (!bytes) {
            return false;
        }
        out.bytes = reinterpret_cast<const char*>(bytes->data());
        out.bits = 8 * bytes->size();
        return true;
    }
    [[nodiscard]] bool same(const ei_view& decoded) const {
        return decoded.bits == 8 * payload.size() &&
               text_of(payload) == std::string_view(decoded.bytes, payload.size());
    }
#endif
};

/// 1000 integers spread over 0..100000 (a few SMALL_INTEGER_EXT, the rest INTEGER_EXT).
struct int_list_shape {
    static constexpr const char* name = "int_list_1000";

    std::vector<long> numbers = make_numbers();
    dist::term value = make_term(numbers);

    explicit int_list_shape(dist::atom_table&) {}

    [[nodiscard]] static std::vector<long> make_numbers() {
        std::vector<long> numbers(1000);
        for (std::size_t i = 0; i < numbers.size(); ++i) {
            numbers[i] = static_cast<long>((i * 100) + (i * 7919) % 100);
        }
        return numbers;
    }
    [[nodiscard]] static dist::term make_term(const std::vector<long>& numbers) {
        std::vector<dist::term> elements;
        elements.reserve(numbers.size());
        for (const long n : numbers) {
            elements.emplace_back(std::int64_t{n});
        }
        return dist::list(std::move(elements));
    }

    void stream(dist::etf_writer& writer) const {
        writer.version();
        writer.list_header(numbers.size());
        for (const long n : numbers) {
            writer.integer(n);
        }
        writer.nil();
    }

#if VDIST_BENCH_WITH_EI
    using ei_value = std::vector<long>;

    template <class Sink>
    void ei_encode(Sink& out) const {
        out.version();
        out.list_header(static_cast<int>(numbers.size()));
        for (const long n : numbers) {
            out.integer(n);
        }
        out.empty_list();
    }

    [[nodiscard]] static bool ei_decode(const char* buffer, int& index, ei_value& out) {
        int length = 0;
        if (!decode_version(buffer, index) || ei_decode_list_header(buffer, &index, &length) != 0 ||
            length < 0) {
            return false;
        }
        out.reserve(static_cast<std::size_t>(length));
        for (int i = 0; i < length; ++i) {
            long n = 0;
            if (ei_decode_long(buffer, &index, &n) != 0) {
                return false;
            }
            out.push_back(n);
        }
        return length == 0 || decode_nil(buffer, index);
    }

    [[nodiscard]] static bool stream_decode(dist::etf_reader& in, ei_value& out) {
        if (!in.read_version()) {
            return false;
        }
        const auto length = in.read_list_header();
        if (!length) {
            return false;
        }
        out.reserve(*length);
        for (std::size_t i = 0; i < *length; ++i) {
            const auto n = in.read_integer();
            if (!n) {
                return false;
            }
            out.push_back(*n);
        }
        if (*length == 0) {
            return true;
        }
        const auto tail = in.read_list_header();
        return tail && *tail == 0;
    }

    [[nodiscard]] bool same(const ei_value& decoded) const {
        return decoded == numbers;
    }
#endif
};

/// #{k1 => 1000, ..., k100 => 100000}.
struct map_shape {
    static constexpr const char* name = "map_100";

    std::vector<std::pair<std::string, long>> entries = make_entries();
    std::vector<dist::atom> keys;  // entries[i].first interned
    dist::term value;

    explicit map_shape(dist::atom_table& atoms) {
        std::vector<std::pair<dist::term, dist::term>> pairs;
        for (const auto& [key, number] : entries) {
            keys.push_back(atoms(key));
            pairs.emplace_back(keys.back(), std::int64_t{number});
        }
        value = dist::map(std::move(pairs));
    }

    [[nodiscard]] static std::vector<std::pair<std::string, long>> make_entries() {
        std::vector<std::pair<std::string, long>> made;
        for (long i = 1; i <= 100; ++i) {
            made.emplace_back("k" + std::to_string(i), i * 1000);
        }
        return made;
    }

    void stream(dist::etf_writer& writer) const {
        writer.version();
        writer.map_header(entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i) {
            writer.atom(keys[i]);
            writer.integer(entries[i].second);
        }
    }

#if VDIST_BENCH_WITH_EI
    using ei_value = std::vector<std::pair<std::string, long>>;

    template <class Sink>
    void ei_encode(Sink& out) const {
        out.version();
        out.map_header(static_cast<int>(entries.size()));
        for (const auto& [key, number] : entries) {
            out.atom(key);
            out.integer(number);
        }
    }

    [[nodiscard]] static bool ei_decode(const char* buffer, int& index, ei_value& out) {
        int arity = 0;
        if (!decode_version(buffer, index) || ei_decode_map_header(buffer, &index, &arity) != 0 ||
            arity < 0) {
            return false;
        }
        out.reserve(static_cast<std::size_t>(arity));
        for (int i = 0; i < arity; ++i) {
            char key[MAXATOMLEN];
            long number = 0;
            if (ei_decode_atom(buffer, &index, key) != 0 ||
                ei_decode_long(buffer, &index, &number) != 0) {
                return false;
            }
            out.emplace_back(key, number);
        }
        return true;
    }

    [[nodiscard]] static bool stream_decode(dist::etf_reader& in, ei_value& out) {
        if (!in.read_version()) {
            return false;
        }
        const auto arity = in.read_map_header();
        if (!arity) {
            return false;
        }
        out.reserve(*arity);
        for (std::size_t i = 0; i < *arity; ++i) {
            const auto key = in.read_atom_text();
            const auto number = in.read_integer();
            if (!key || !number) {
                return false;
            }
            out.emplace_back(*key, *number);
        }
        return true;
    }

    [[nodiscard]] bool same(const ei_value& decoded) const {
        return decoded == entries;
    }
#endif
};

/// {level, 1, [{level, 2, [... {level, 100, []} ...]}]}: 100 nested tuples in lists.
struct nested_shape {
    static constexpr const char* name = "nested_100";
    static constexpr std::string_view tag_text = "level";

    struct node {
        long n = 0;
        std::vector<node> children;
    };

    node root = make_tree(100);
    dist::atom tag;
    dist::term value;

    explicit nested_shape(dist::atom_table& atoms) : tag(atoms(tag_text)) {
        value = make_term(root);
    }

    [[nodiscard]] static node make_tree(long depth) {
        node made{depth, {}};
        for (long n = depth - 1; n >= 1; --n) {
            node parent{n, {}};
            parent.children.push_back(std::move(made));
            made = std::move(parent);
        }
        return made;
    }
    [[nodiscard]] dist::term make_term(const node& from) const {
        std::vector<dist::term> children;
        for (const auto& child : from.children) {
            children.push_back(make_term(child));
        }
        return dist::tuple{dist::term(tag), dist::term(std::int64_t{from.n}),
                           dist::term(dist::list(std::move(children)))};
    }

    void stream(dist::etf_writer& writer) const {
        writer.version();
        stream_node(writer, root);
    }
    void stream_node(dist::etf_writer& writer, const node& from) const {
        writer.tuple_header(3);
        writer.atom(tag);
        writer.integer(from.n);
        if (!from.children.empty()) {
            writer.list_header(from.children.size());
            for (const auto& child : from.children) {
                stream_node(writer, child);
            }
        }
        writer.nil();
    }

#if VDIST_BENCH_WITH_EI
    struct ei_node {
        std::string tag;
        long n = 0;
        std::vector<ei_node> children;
    };
    using ei_value = ei_node;

    template <class Sink>
    void ei_encode(Sink& out) const {
        out.version();
        ei_encode_node(out, root);
    }
    template <class Sink>
    static void ei_encode_node(Sink& out, const node& from) {
        out.tuple_header(3);
        out.atom(tag_text);
        out.integer(from.n);
        if (!from.children.empty()) {
            out.list_header(static_cast<int>(from.children.size()));
            for (const auto& child : from.children) {
                ei_encode_node(out, child);
            }
        }
        out.empty_list();
    }

    [[nodiscard]] static bool ei_decode(const char* buffer, int& index, ei_value& out) {
        return decode_version(buffer, index) && ei_decode_node(buffer, index, out);
    }
    [[nodiscard]] static bool ei_decode_node(const char* buffer, int& index, ei_node& out) {
        int arity = 0;
        int length = 0;
        char tag_buffer[MAXATOMLEN];
        if (ei_decode_tuple_header(buffer, &index, &arity) != 0 || arity != 3 ||
            ei_decode_atom(buffer, &index, tag_buffer) != 0 ||
            ei_decode_long(buffer, &index, &out.n) != 0 ||
            ei_decode_list_header(buffer, &index, &length) != 0 || length < 0) {
            return false;
        }
        out.tag = tag_buffer;
        out.children.resize(static_cast<std::size_t>(length));
        for (auto& child : out.children) {
            if (!ei_decode_node(buffer, index, child)) {
                return false;
            }
        }
        return length == 0 || decode_nil(buffer, index);
    }

    [[nodiscard]] static bool stream_decode(dist::etf_reader& in, ei_value& out) {
        return in.read_version() && stream_decode_node(in, out);
    }
    [[nodiscard]] static bool stream_decode_node(dist::etf_reader& in, ei_node& out) {
        const auto arity = in.read_tuple_header();
        if (!arity || *arity != 3) {
            return false;
        }
        const auto tag = in.read_atom_text();
        const auto n = in.read_integer();
        const auto length = in.read_list_header();
        if (!tag || !n || !length) {
            return false;
        }
        out.tag = *tag;
        out.n = *n;
        out.children.resize(*length);
        for (auto& child : out.children) {
            if (!stream_decode_node(in, child)) {
                return false;
            }
        }
        if (*length == 0) {
            return true;
        }
        const auto tail = in.read_list_header();
        return tail && *tail == 0;
    }

    [[nodiscard]] bool same(const ei_value& decoded) const {
        return same_node(decoded, root);
    }
    [[nodiscard]] static bool same_node(const ei_node& decoded, const node& expected) {
        if (decoded.tag != tag_text || decoded.n != expected.n ||
            decoded.children.size() != expected.children.size()) {
            return false;
        }
        for (std::size_t i = 0; i < expected.children.size(); ++i) {
            if (!same_node(decoded.children[i], expected.children[i])) {
                return false;
            }
        }
        return true;
    }
#endif
};

// ---- Checks before timing anything.

template <class Shape>
[[nodiscard]] std::vector<std::byte> checked_bytes(const Shape& shape, dist::atom_table& atoms) {
    auto encoded = dist::encode(shape.value);
    if (!encoded) {
        stop(Shape::name, "encode() failed");
    }
    std::vector<std::byte> into;
    dist::etf_writer into_writer(into);
    into_writer.version();
    if (!into_writer.term(shape.value)) {
        stop(Shape::name, "etf_writer::term() failed");
    }
    into_writer.finish();
    std::vector<std::byte> streamed;
    dist::etf_writer stream_writer(streamed);
    shape.stream(stream_writer);
    stream_writer.finish();
    if (into != *encoded || streamed != *encoded) {
        stop(Shape::name, "encode(), etf_writer::term() and the streamed pieces differ");
    }
    auto decoded = dist::etf_decoder(atoms).decode(*encoded);
    if (!decoded || !(*decoded == shape.value)) {
        stop(Shape::name, "etf_decoder does not read back the term");
    }
#if VDIST_BENCH_WITH_EI
    ei_buffer_sink sizer(nullptr);
    shape.ei_encode(sizer);
    std::string by_ei(static_cast<std::size_t>(sizer.index()), '\0');
    ei_buffer_sink writer(by_ei.data());
    shape.ei_encode(writer);
    ei_x_buff x;
    if (ei_x_new(&x) != 0) {
        stop(Shape::name, "ei_x_new failed");
    }
    ei_x_sink x_writer(x);
    shape.ei_encode(x_writer);
    const std::string by_ei_x(x.buff, static_cast<std::size_t>(x.index));
    ei_x_free(&x);
    if (sizer.failed() || writer.failed() || x_writer.failed()) {
        stop(Shape::name, "ei failed to encode");
    }
    if (by_ei != by_ei_x || text_of(*encoded) != by_ei) {
        std::size_t at = 0;
        const auto ours = text_of(*encoded);
        while (at < ours.size() && at < by_ei.size() && ours[at] == by_ei[at]) {
            ++at;
        }
        std::fprintf(stderr,
                     "etf_bench: %s: vdist %zu bytes, ei %zu bytes, first difference at %zu\n",
                     Shape::name, ours.size(), by_ei.size(), at);
        stop(Shape::name, "vdist and ei encode different bytes");
    }
    typename Shape::ei_value read_back{};
    int index = 0;
    if (!Shape::ei_decode(by_ei.data(), index, read_back) ||
        index != static_cast<int>(by_ei.size()) || !shape.same(read_back)) {
        stop(Shape::name, "ei does not read back the source values");
    }
    typename Shape::ei_value streamed_back{};
    dist::etf_reader reader(*encoded);
    if (!Shape::stream_decode(reader, streamed_back) || !reader.at_end() ||
        !shape.same(streamed_back)) {
        stop(Shape::name, "etf_reader does not read back the source values");
    }
#endif
    return std::move(*encoded);
}

// ---- Benchmarks.

using bytes_vector = std::vector<std::byte>;

template <class Shape>
void register_shape(const Shape& shape, const bytes_vector& bytes, dist::atom_table& atoms) {
    const std::string prefix = std::string(Shape::name) + "/";
    const auto add = [&](const std::string& name, auto body) {
        benchmark::RegisterBenchmark(name.c_str(), body)->Unit(benchmark::kNanosecond);
    };
    const auto bytes_processed = [&bytes](benchmark::State& state) {
        state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
    };

#if VDIST_BENCH_WITH_EI
    add(prefix + "encode/ei", [&shape, &bytes, bytes_processed](benchmark::State& state) {
        std::vector<char> buffer(bytes.size());
        for (auto _ : state) {
            ei_buffer_sink out(buffer.data());
            shape.ei_encode(out);
            if (out.failed()) {
                state.SkipWithError("ei_encode failed");
                break;
            }
            benchmark::DoNotOptimize(buffer.data());
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
    add(prefix + "encode_x/ei", [&shape, bytes_processed](benchmark::State& state) {
        ei_x_buff x;
        if (ei_x_new(&x) != 0) {
            state.SkipWithError("ei_x_new failed");
            return;
        }
        for (auto _ : state) {
            x.index = 0;
            ei_x_sink out(x);
            shape.ei_encode(out);
            if (out.failed()) {
                state.SkipWithError("ei_x_encode failed");
                break;
            }
            benchmark::DoNotOptimize(x.buff);
            benchmark::ClobberMemory();
        }
        ei_x_free(&x);
        bytes_processed(state);
    });
#endif
    add(prefix + "encode/vdist", [&shape, bytes_processed](benchmark::State& state) {
        for (auto _ : state) {
            auto encoded = dist::encode(shape.value);
            if (!encoded) {
                state.SkipWithError("encode failed");
                break;
            }
            benchmark::DoNotOptimize(encoded->data());
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
    add(prefix + "encode_into/vdist", [&shape, bytes_processed](benchmark::State& state) {
        bytes_vector out;
        for (auto _ : state) {
            out.clear();
            dist::etf_writer writer(out);
            writer.version();
            if (!writer.term(shape.value)) {
                state.SkipWithError("etf_writer::term failed");
                break;
            }
            writer.finish();
            benchmark::DoNotOptimize(out.data());
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
    add(prefix + "encode_stream/vdist", [&shape, bytes_processed](benchmark::State& state) {
        bytes_vector out;
        for (auto _ : state) {
            out.clear();
            dist::etf_writer writer(out);
            shape.stream(writer);
            writer.finish();
            benchmark::DoNotOptimize(out.data());
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
#if VDIST_BENCH_WITH_EI
    add(prefix + "decode/ei", [&bytes, bytes_processed](benchmark::State& state) {
        const auto* buffer = reinterpret_cast<const char*>(bytes.data());
        for (auto _ : state) {
            typename Shape::ei_value value;
            int index = 0;
            if (!Shape::ei_decode(buffer, index, value)) {
                state.SkipWithError("ei decode failed");
                break;
            }
            benchmark::DoNotOptimize(value);
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
    add(prefix + "skip/ei", [&bytes, bytes_processed](benchmark::State& state) {
        const auto* buffer = reinterpret_cast<const char*>(bytes.data());
        for (auto _ : state) {
            int index = 0;
            if (!decode_version(buffer, index) || ei_skip_term(buffer, &index) != 0) {
                state.SkipWithError("ei_skip_term failed");
                break;
            }
            benchmark::DoNotOptimize(index);
        }
        bytes_processed(state);
    });
    add(prefix + "decode_stream/vdist", [&bytes, bytes_processed](benchmark::State& state) {
        for (auto _ : state) {
            typename Shape::ei_value value;
            dist::etf_reader in(bytes);
            if (!Shape::stream_decode(in, value)) {
                state.SkipWithError("etf_reader walk failed");
                break;
            }
            benchmark::DoNotOptimize(value);
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
#endif
    add(prefix + "decode/vdist", [&bytes, &atoms, bytes_processed](benchmark::State& state) {
        const dist::etf_decoder decoder(atoms);
        for (auto _ : state) {
            auto decoded = decoder.decode(bytes);
            if (!decoded) {
                state.SkipWithError("decode failed");
                break;
            }
            benchmark::DoNotOptimize(decoded);
            benchmark::ClobberMemory();
        }
        bytes_processed(state);
    });
}

/// Decoding without copying the binary: vdist's decode() with the receive buffer as owner
/// (binaries of 64 bytes or more share it) against ei_decode_bitstring (a pointer into the
/// buffer). Checked like the others before it is timed.
void register_shared_decode(const binary_shape& shape, const bytes_vector& bytes,
                            dist::atom_table& atoms) {
    const auto owner = std::make_shared<const bytes_vector>(bytes);
    auto shared = dist::etf_decoder(atoms).decode(*owner, owner);
    const auto* shared_binary = shared ? shared->get_if<dist::binary>() : nullptr;
    if (shared_binary == nullptr || !(*shared == shape.value) || !shared_binary->shares(owner)) {
        stop(binary_shape::name, "decode with an owner does not share the buffer");
    }
    const std::string prefix = std::string(binary_shape::name) + "/decode_shared/";
#if VDIST_BENCH_WITH_EI
    binary_shape::ei_view view{};
    int index = 0;
    if (!binary_shape::ei_decode_view(reinterpret_cast<const char*>(owner->data()), index, view) ||
        !shape.same(view)) {
        stop(binary_shape::name, "ei_decode_bitstring does not read the payload back");
    }
    benchmark::RegisterBenchmark((prefix + "ei").c_str(), [owner](benchmark::State& state) {
        const auto* buffer = reinterpret_cast<const char*>(owner->data());
        for (auto _ : state) {
            binary_shape::ei_view value;
            int at = 0;
            if (!binary_shape::ei_decode_view(buffer, at, value)) {
                state.SkipWithError("ei_decode_bitstring failed");
                break;
            }
            benchmark::DoNotOptimize(value);
        }
    })->Unit(benchmark::kNanosecond);
    {
        binary_shape::ei_view streamed{};
        dist::etf_reader in(*owner);
        if (!binary_shape::stream_decode_view(in, streamed) || !shape.same(streamed)) {
            stop(binary_shape::name, "etf_reader::read_binary does not view the payload");
        }
    }
    benchmark::RegisterBenchmark((prefix + "vdist_stream").c_str(), [owner](
                                                                        benchmark::State& state) {
        for (auto _ : state) {
            binary_shape::ei_view value;
            dist::etf_reader in(*owner);
            if (!binary_shape::stream_decode_view(in, value)) {
                state.SkipWithError("etf_reader::read_binary failed");
                break;
            }
            benchmark::DoNotOptimize(value);
        }
    })->Unit(benchmark::kNanosecond);
#endif
    benchmark::RegisterBenchmark((prefix + "vdist").c_str(), [owner,
                                                              &atoms](benchmark::State& state) {
        const dist::etf_decoder decoder(atoms);
        const std::shared_ptr<const void> buffer = owner;
        for (auto _ : state) {
            auto decoded = decoder.decode(*owner, buffer);
            if (!decoded) {
                state.SkipWithError("decode failed");
                break;
            }
            benchmark::DoNotOptimize(decoded);
            benchmark::ClobberMemory();
        }
    })->Unit(benchmark::kNanosecond);
}

/// The console output, plus the CPU time per iteration of every run kept by benchmark name.
class ratio_reporter : public benchmark::ConsoleReporter {
  public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& run : runs) {
            if (run.error_occurred) {
                continue;
            }
            if (run.run_type == Run::RT_Iteration) {
                times_[run.run_name.function_name].push_back(run.GetAdjustedCPUTime());
            } else if (run.aggregate_name == "median") {
                // With --benchmark_display_aggregates_only only the aggregates come here.
                medians_[run.run_name.function_name] = run.GetAdjustedCPUTime();
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }

    /// Median CPU ns per iteration of `name` over its repetitions, or < 0 if it did not run.
    [[nodiscard]] double median(const std::string& name) const {
        const auto found = times_.find(name);
        if (found == times_.end() || found->second.empty()) {
            const auto aggregate = medians_.find(name);
            return aggregate == medians_.end() ? -1 : aggregate->second;
        }
        return vdist::bench::median(found->second);
    }

  private:
    std::map<std::string, std::vector<double>> times_;
    std::map<std::string, double> medians_;
};

void print_ratios(const ratio_reporter& reporter, const std::vector<std::string>& shapes) {
#if VDIST_BENCH_WITH_EI
    struct pairing {
        const char* op;
        const char* vdist;
        const char* ei;
    };
    static constexpr pairing pairings[] = {
        {"encode", "encode/vdist", "encode/ei"},
        {"encode_into", "encode_into/vdist", "encode/ei"},
        {"encode_stream", "encode_stream/vdist", "encode/ei"},
        {"decode", "decode/vdist", "decode/ei"},
        {"decode_stream", "decode_stream/vdist", "decode/ei"},
        {"decode_shared", "decode_shared/vdist", "decode_shared/ei"},
        {"decode_shared_stream", "decode_shared/vdist_stream", "decode_shared/ei"},
    };
    std::printf(
        "\nratio = ei ns / vdist ns (CPU time per iteration, median over repetitions; "
        "> 1: vdist faster), target %.1f\n",
        target_ratio);
    std::printf("%-14s %-20s %10s %10s %7s  %s\n", "shape", "op", "vdist ns", "ei ns", "ratio",
                "target");
    for (const auto& shape : shapes) {
        for (const auto& pair : pairings) {
            const double ours = reporter.median(shape + "/" + pair.vdist);
            const double theirs = reporter.median(shape + "/" + pair.ei);
            if (ours <= 0 && theirs <= 0) {
                continue;  // not in this shape, or filtered out
            }
            if (ours <= 0 || theirs <= 0) {
                std::printf("%-14s %-20s %10s %10s %7s  %s\n", shape.c_str(), pair.op, "-", "-",
                            "-", "n/a");
                continue;
            }
            const double ratio = theirs / ours;
            std::printf("%-14s %-20s %10.1f %10.1f %7.2f  %s\n", shape.c_str(), pair.op, ours,
                        theirs, ratio, ratio >= target_ratio ? "PASS" : "MISS");
        }
    }
#else
    (void)reporter;
    (void)shapes;
    std::printf(
        "\nno ratios: built without erl_interface (ei.h / libei not found at configure "
        "time)\n");
#endif
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
#if VDIST_BENCH_WITH_EI
    if (ei_init() != 0) {
        std::fprintf(stderr, "etf_bench: ei_init failed\n");
        return 1;
    }
#endif

    dist::atom_table atoms;
    const control_shape control(atoms);
    const binary_shape binary(atoms);
    const int_list_shape int_list(atoms);
    const map_shape map(atoms);
    const nested_shape nested(atoms);
    const bytes_vector control_bytes = checked_bytes(control, atoms);
    const bytes_vector binary_bytes = checked_bytes(binary, atoms);
    const bytes_vector int_list_bytes = checked_bytes(int_list, atoms);
    const bytes_vector map_bytes = checked_bytes(map, atoms);
    const bytes_vector nested_bytes = checked_bytes(nested, atoms);

#if VDIST_BENCH_WITH_EI
    std::printf("etf_bench: vdist ETF codec vs erl_interface ei (%s)\n", VDIST_EI_DIR);
    std::printf(
        "checked: vdist's three encoders and ei produce the same bytes; both decoders "
        "read the source values back\n");
#else
    std::printf(
        "etf_bench: vdist only -- built without erl_interface (ei.h / libei not found "
        "at configure time), no ei side and no ratios\n");
#endif
#ifdef __OPTIMIZE__
    std::printf("build: optimized\n");
#else
    std::printf("build: NOT optimized (use -DCMAKE_BUILD_TYPE=RelWithDebInfo)\n");
#endif
    std::printf("shapes (bytes with the version byte): %s %zu, %s %zu, %s %zu, %s %zu, %s %zu\n",
                control_shape::name, control_bytes.size(), binary_shape::name, binary_bytes.size(),
                int_list_shape::name, int_list_bytes.size(), map_shape::name, map_bytes.size(),
                nested_shape::name, nested_bytes.size());
    std::fflush(stdout);

    register_shape(control, control_bytes, atoms);
    register_shape(binary, binary_bytes, atoms);
    register_shared_decode(binary, binary_bytes, atoms);
    register_shape(int_list, int_list_bytes, atoms);
    register_shape(map, map_bytes, atoms);
    register_shape(nested, nested_bytes, atoms);

    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    print_ratios(reporter, {control_shape::name, binary_shape::name, int_list_shape::name,
                            map_shape::name, nested_shape::name});
    benchmark::Shutdown();
    return 0;
}
