// packet_reader: the byte stream of a connection after the handshake, split into packets
// (4-byte lengths; 0 is a tick), each packet's framing checked, the atom cache resolved,
// fragments reassembled, the terms decoded and handed to parse_control.
//
// ```
//  stream buffer   [consumed | begin .. end: received, not yet taken | free room ]
//                              ^ a packet's Len:32 when no large packet is pending
//  own buffer      [ packet bytes received | missing ]   one large packet, exactly its length
// ```
// While a large packet is pending the stream buffer is empty: whatever is committed into it
// goes first into the own buffer (pump()), the rest stays for the packets after it.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <bitset>
#include <cstring>
#include <string>
#include <unordered_map>

#include "vdist/dist/control.hpp"
#include "vdist/dist/etf.hpp"
#include "vdist/dist/etf_reader.hpp"

namespace vdist::dist {
namespace {

// A stream buffer that grew beyond this is released when it empties (one large fragment must
// not pin its size for the connection's life).
constexpr std::size_t max_idle_stream = std::size_t{1} << 20;
// Least the stream buffer grows to.
constexpr std::size_t min_stream = std::size_t{64} << 10;
// feed()'s step: the size of a socket read.
constexpr std::size_t feed_step = std::size_t{64} << 10;
// Large packets' buffers kept for reuse once no binary holds them (see own_buffer()): at most
// this many bytes of them per reader, none over max_spare_buffer.
constexpr std::size_t max_spare_bytes = std::size_t{4} << 20;
constexpr std::size_t max_spare_buffer = std::size_t{1} << 20;
// 131 70 SeqId:64 FragId:64: the fixed part of a fragment header.
constexpr std::size_t fragment_header_size = 2 + 8 + 8;

[[nodiscard]] std::uint8_t u8(const std::byte* at) noexcept {
    return std::to_integer<std::uint8_t>(*at);
}
template <class T>
[[nodiscard]] T big_endian(const std::byte* at) noexcept {
    T value;
    std::memcpy(&value, at, sizeof value);
    return std::byteswap(value);
}

[[nodiscard]] std::unexpected<packet_error> refuse(packet_errc code, std::string detail) {
    return std::unexpected(packet_error{code, std::move(detail)});
}

}  // namespace

struct packet_reader::impl {
    using step = std::expected<std::optional<control_message>, packet_error>;

    // A fragmented message being reassembled: the atom cache references of its first
    // fragment, the bytes so far (control term, then the payload's parts), the next FragId.
    struct sequence {
        std::vector<atom> refs;
        std::shared_ptr<std::byte[]> buffer;  // from own_buffer(): reused once released
        std::size_t size = 0;
        std::size_t capacity = 0;
        std::uint64_t next_fragment = 0;
    };

    impl(std::uint64_t negotiated, atom_table& table, packet_limits caps)
        : flags(negotiated), atoms(&table), limits(caps) {}

    std::uint64_t flags;
    atom_table* atoms;
    packet_limits limits;

    std::unique_ptr<std::byte[]> stream;
    std::size_t capacity = 0;
    std::size_t begin = 0;
    std::size_t end = 0;

    std::shared_ptr<std::byte[]> own;  // the large packet being received, if any
    std::size_t own_size = 0;          // its length (the buffer may be longer: a spare)
    std::size_t own_filled = 0;

    // Buffers of earlier large packets, each also referenced by `own` or by binaries while in
    // use; one that only this list holds is free for the next large packet.
    struct spare {
        std::shared_ptr<std::byte[]> buffer;
        std::size_t capacity;
    };
    std::vector<spare> spares;
    std::size_t spare_bytes = 0;

    bool prepared_own = false;  // the last prepare() handed out the own buffer
    std::size_t prepared = 0;   // its size

    // The peer's atom cache, made with its first entry: a peer that sends no cache references
    // (vdist's own nodes) never costs a new connection its 16 KiB.
    std::unique_ptr<std::array<atom, atom_cache_size>> cache;
    std::bitset<atom_cache_size> cached;
    std::array<atom, max_atom_cache_refs> refs{};  // of the packet being decoded

    std::array<atom, 2> recent_nodes{};  // of pids in control tuples (known_node)

    std::unordered_map<std::uint64_t, sequence> sequences;
    std::size_t fragment_bytes = 0;  // held by all of `sequences`

    std::optional<packet_error> failure;

    // -- receiving ------------------------------------------------------------------------------

    [[nodiscard]] std::size_t buffered() const noexcept { return end - begin; }
    [[nodiscard]] const std::byte* head() const noexcept { return stream.get() + begin; }

    void consume(std::size_t n) noexcept {
        begin += n;
        // Emptied: start again at the front, unless the caller holds a prepare()d span of the
        // stream (next() called between prepare() and commit()).
        if (begin == end && (prepared == 0 || prepared_own)) {
            begin = end = 0;
            if (capacity > max_idle_stream) {
                stream.reset();
                capacity = 0;
            }
        }
    }

    std::span<std::byte> prepare(std::size_t min_size) {
        if (own && own_size - own_filled >= std::max<std::size_t>(min_size, 1)) {
            prepared_own = true;
            prepared = own_size - own_filled;
            return {own.get() + own_filled, prepared};
        }
        prepared_own = false;
        if (capacity - end < min_size) {
            if (begin > 0) {
                std::memmove(stream.get(), head(), buffered());
                end -= begin;
                begin = 0;
            }
            if (capacity - end < min_size) {
                const std::size_t grown = std::max({2 * capacity, end + min_size, min_stream});
                auto bigger = std::make_unique_for_overwrite<std::byte[]>(grown);
                if (end > 0) {
                    std::memcpy(bigger.get(), stream.get(), end);
                }
                stream = std::move(bigger);
                capacity = grown;
            }
        }
        prepared = capacity - end;
        return {stream.get() + end, prepared};
    }

    void commit(std::size_t n) {
        n = std::min(n, prepared);
        prepared = 0;  // one commit per prepare()
        if (prepared_own) {
            own_filled += n;
        } else {
            end += n;
        }
        settle();
    }

    // Gives the packet at the head its own buffer if it is large, and moves what was received
    // for a pending large packet into it.
    void settle() {
        if (!own && !failure) {
            (void)adopt_head();
        }
        if (own) {
            const std::size_t n = std::min(buffered(), own_size - own_filled);
            if (n > 0) {
                std::memcpy(own.get() + own_filled, head(), n);
                own_filled += n;
                consume(n);
            }
        }
    }

    // If the packet at the head is large, within the limit, no fragment and framed right so
    // far: its own buffer, exactly its length, its length taken from the stream.
    [[nodiscard]] bool adopt_head() {
        if (buffered() < 4) {
            return false;
        }
        const std::size_t length = big_endian<std::uint32_t>(head());
        if (length < own_buffer_threshold || length > limits.max_packet_bytes ||
            !framing_known(length) || is_fragment() ||
            !check_framing({head() + 4, std::min(buffered() - 4, length)})) {
            return false;
        }
        own = own_buffer(length).buffer;
        own_size = length;
        own_filled = 0;
        consume(4);
        return true;
    }

    // A buffer of at least `length` bytes (at most twice that) for a large packet: a spare that
    // no binary holds any more, else a new one, kept as a spare if there is room. Why: glibc
    // gives a freed 64 KiB+ block at the top of the heap back to the kernel (free top over
    // 128 KiB) and the next one faults all its pages in again; for a stream of 64 KiB messages
    // that was half of the receiving side's time (malloc, page faults, brk), and a reused
    // buffer is also warm in the cache.
    [[nodiscard]] spare own_buffer(std::size_t length) {
        for (const auto& s : spares) {
            if (s.capacity >= length && s.capacity / 2 <= length && s.buffer.use_count() == 1) {
                // The last binary may have let go on another thread: its reads of the buffer
                // happen before our writes (shared_ptr's release decrement is acq_rel; this
                // fence pairs with it after the relaxed load inside use_count()).
                std::atomic_thread_fence(std::memory_order_acquire);
                return s;
            }
        }
        spare fresh{std::make_shared_for_overwrite<std::byte[]>(length), length};
        if (length <= max_spare_buffer && spare_bytes + length <= max_spare_bytes) {
            spares.push_back(fresh);
            spare_bytes += length;
        }
        return fresh;
    }

    // Whether the head packet's first bytes (after Len) say what it is: 1 for pass-through,
    // 2 for the distribution header.
    [[nodiscard]] bool framing_known(std::size_t length) const noexcept {
        const std::size_t needed = uses_dist_header(flags) ? 2 : 1;
        return length >= needed && buffered() - 4 >= needed;
    }
    [[nodiscard]] bool is_fragment() const noexcept {
        if (!uses_dist_header(flags)) {
            return false;
        }
        const std::uint8_t kind = u8(head() + 5);
        return kind == DIST_FRAG_HEADER || kind == DIST_FRAG_CONT;
    }

    // -- packets --------------------------------------------------------------------------------

    step next(std::uint64_t& ticks, std::uint64_t& packets) {
        if (failure) {
            return std::unexpected(*failure);
        }
        auto result = take(ticks, packets);
        if (!result) {
            failure = result.error();
            // What is buffered is of no use any more.
            own.reset();
            sequences.clear();
        }
        return result;
    }

    step take(std::uint64_t& ticks, std::uint64_t& packets) {
        for (;;) {
            if (own) {
                if (own_filled < own_size) {
                    return std::nullopt;
                }
                const std::shared_ptr<const void> owner = std::move(own);
                own.reset();
                ++packets;
                auto result = packet({static_cast<const std::byte*>(owner.get()), own_size}, owner);
                if (!result) {
                    return result;
                }
                settle();  // the next packet may be large too
                if (*result) {
                    return result;
                }
                continue;
            }
            if (buffered() < 4) {
                return std::nullopt;
            }
            const std::size_t length = big_endian<std::uint32_t>(head());
            if (length == 0) {
                ++ticks;
                consume(4);
                continue;
            }
            if (length > limits.max_packet_bytes) {
                return refuse(packet_errc::packet_too_large,
                              "packet of " + std::to_string(length) + " bytes, limit " +
                                  std::to_string(limits.max_packet_bytes));
            }
            const std::size_t visible = std::min(buffered() - 4, length);
            if (auto framed = check_framing({head() + 4, visible}); !framed) {
                return std::unexpected(framed.error());
            }
            if (adopt_head()) {
                settle();  // what has arrived of it moves into its buffer
                continue;
            }
            if (visible < length) {
                return std::nullopt;
            }
            ++packets;
            // Decoded without an owner (binaries copied): the stream buffer is reused.
            auto result = packet({head() + 4, length}, nullptr);
            consume(4 + length);
            if (!result || *result) {
                return result;
            }
        }
    }

    // The first bytes of a packet, as far as they have arrived.
    [[nodiscard]] std::expected<void, packet_error> check_framing(
        std::span<const std::byte> first) const {
        if (uses_dist_header(flags)) {
            if ((first.size() > 0 && u8(&first[0]) != etf::VERSION_MAGIC) ||
                (first.size() > 1 && u8(&first[1]) != DIST_HEADER &&
                 u8(&first[1]) != DIST_FRAG_HEADER && u8(&first[1]) != DIST_FRAG_CONT)) {
                return refuse(packet_errc::bad_framing,
                              "expected a distribution header (131 68, 69 or 70)");
            }
        } else if ((first.size() > 0 && u8(&first[0]) != PASS_THROUGH) ||
                   (first.size() > 1 && u8(&first[1]) != etf::VERSION_MAGIC)) {
            return refuse(packet_errc::bad_framing, "expected pass-through framing (112 131)");
        }
        return {};
    }

    // One whole packet (not a tick). `owner` keeps `bytes` alive for binaries that share them.
    step packet(std::span<const std::byte> bytes, const std::shared_ptr<const void>& owner) {
        if (bytes.size() < 2) {
            return refuse(packet_errc::bad_framing, "packet of " + std::to_string(bytes.size()) +
                                                        " byte, too short for its framing");
        }
        if (auto framed = check_framing(bytes); !framed) {
            return std::unexpected(framed.error());
        }
        if (!uses_dist_header(flags)) {
            return message(bytes.subspan(2), {}, owner, true);
        }
        switch (u8(&bytes[1])) {
            case DIST_HEADER: {
                auto count = atom_cache_header(bytes, 2);
                if (!count) {
                    return std::unexpected(count.error());
                }
                return message(bytes.subspan(count->second),
                               std::span<const atom>(refs).first(count->first), owner, false);
            }
            case DIST_FRAG_HEADER:
                return first_fragment(bytes, owner);
            default:
                return continuation(bytes);
        }
    }

    // The atom cache header at `at` (NumberOfAtomCacheRefs, flags, references): entries
    // stored, the references put into `refs`. Gives their number and where the header ends.
    std::expected<std::pair<std::size_t, std::size_t>, packet_error> atom_cache_header(
        std::span<const std::byte> bytes, std::size_t at) {
        const auto truncated = [] {
            return refuse(packet_errc::bad_atom_cache, "atom cache header truncated");
        };
        if (at >= bytes.size()) {
            return truncated();
        }
        const std::size_t count = u8(&bytes[at++]);
        if (count == 0) {
            return std::pair{std::size_t{0}, at};  // no flags, no references
        }
        // One nibble per reference, even index low, odd index high, then one more nibble
        // whose bit 0 is LongAtoms: count / 2 + 1 bytes.
        const std::size_t flag_bytes = count / 2 + 1;
        if (bytes.size() - at < flag_bytes) {
            return truncated();
        }
        const std::byte* flag_field = bytes.data() + at;
        const auto nibble = [flag_field](std::size_t i) {
            const std::uint8_t b = u8(flag_field + i / 2);
            return static_cast<std::uint8_t>(i % 2 == 0 ? b & 0x0f : b >> 4);
        };
        const bool long_atoms = (nibble(count) & 0x01) != 0;
        at += flag_bytes;
        const std::size_t atoms_before = atoms->size();
        for (std::size_t i = 0; i < count; ++i) {
            const std::uint8_t flags_of_ref = nibble(i);
            if (at >= bytes.size()) {
                return truncated();
            }
            const std::size_t index = (flags_of_ref & 0x07) * 256u + u8(&bytes[at++]);
            if ((flags_of_ref & 0x08) == 0) {  // a cached entry
                if (!cached.test(index)) {
                    return refuse(packet_errc::bad_atom_cache, "reference " + std::to_string(i) +
                                                                   " to empty cache entry " +
                                                                   std::to_string(index));
                }
                refs[i] = (*cache)[index];
                continue;
            }
            const std::size_t length_size = long_atoms ? 2 : 1;
            if (bytes.size() - at < length_size) {
                return truncated();
            }
            const std::size_t length =
                long_atoms ? big_endian<std::uint16_t>(&bytes[at]) : u8(&bytes[at]);
            at += length_size;
            if (bytes.size() - at < length) {
                return truncated();
            }
            auto name =
                atoms->intern(std::string_view(reinterpret_cast<const char*>(&bytes[at]), length));
            if (!name) {
                return refuse(packet_errc::bad_atom_cache,
                              "new cache entry " + std::to_string(index) + ": " +
                                  make_error_code(name.error()).message());
            }
            if (atoms->size() - atoms_before > limits.terms.max_new_atoms) {
                return refuse(packet_errc::bad_atom_cache, "more new atoms than the limit");
            }
            at += length;
            if (!cache) {
                cache = std::make_unique<std::array<atom, atom_cache_size>>();
            }
            (*cache)[index] = *name;
            cached.set(index);
            refs[i] = *name;
        }
        return std::pair{count, at};
    }

    // 131 69 SeqId FragId, an atom cache header, then the control term and the payload's
    // first part.
    step first_fragment(std::span<const std::byte> bytes,
                        const std::shared_ptr<const void>& owner) {
        if (bytes.size() < fragment_header_size) {
            return refuse(packet_errc::bad_fragment, "fragment header truncated");
        }
        const auto sequence_id = big_endian<std::uint64_t>(&bytes[2]);
        const auto fragment_id = big_endian<std::uint64_t>(&bytes[10]);
        if (fragment_id == 0) {
            return refuse(packet_errc::bad_fragment, "fragment id 0");
        }
        if (sequences.contains(sequence_id)) {
            return refuse(packet_errc::bad_fragment,
                          "sequence " + std::to_string(sequence_id) + " started twice");
        }
        // The atom cache is updated now: later packets may use these entries.
        auto header = atom_cache_header(bytes, fragment_header_size);
        if (!header) {
            return std::unexpected(header.error());
        }
        const auto cache_refs = std::span<const atom>(refs).first(header->first);
        const auto part = bytes.subspan(header->second);
        if (fragment_id == 1) {  // a whole message in one fragment
            return message(part, cache_refs, owner, false);
        }
        if (sequences.size() >= limits.max_open_sequences) {
            return refuse(packet_errc::too_many_fragments,
                          "more than " + std::to_string(limits.max_open_sequences) +
                              " fragmented messages in flight");
        }
        if (auto admitted = admit(0, part.size()); !admitted) {
            return std::unexpected(admitted.error());
        }
        sequence& s = sequences[sequence_id];
        s.refs.assign(cache_refs.begin(), cache_refs.end());
        // Room for the next fragment too (at most as long as this one: the sender's fragment
        // size), so that a message just over one fragment, as OTP sends a 64 KiB binary
        // (65536 + 43 bytes), is one buffer and one copy per fragment; at most twice what the
        // peer sent, as a growing vector would take. A reused buffer (own_buffer) spares the
        // page faults of fresh memory, which were most of the receiving side's time.
        auto room = own_buffer(std::max<std::size_t>(part.size() * 2, 1));
        s.buffer = std::move(room.buffer);
        s.capacity = room.capacity;
        s.size = part.size();
        if (!part.empty()) {
            std::memcpy(s.buffer.get(), part.data(), part.size());
        }
        s.next_fragment = fragment_id - 1;
        fragment_bytes += part.size();
        return std::nullopt;
    }

    // 131 70 SeqId FragId, then the next part.
    step continuation(std::span<const std::byte> bytes) {
        if (bytes.size() < fragment_header_size) {
            return refuse(packet_errc::bad_fragment, "fragment header truncated");
        }
        const auto sequence_id = big_endian<std::uint64_t>(&bytes[2]);
        const auto fragment_id = big_endian<std::uint64_t>(&bytes[10]);
        const auto found = sequences.find(sequence_id);
        if (found == sequences.end()) {
            return refuse(packet_errc::bad_fragment,
                          "continuation of no open sequence " + std::to_string(sequence_id));
        }
        sequence& s = found->second;
        if (fragment_id != s.next_fragment) {
            return refuse(packet_errc::bad_fragment,
                          "sequence " + std::to_string(sequence_id) + ": fragment " +
                              std::to_string(fragment_id) + " where " +
                              std::to_string(s.next_fragment) + " was due");
        }
        const auto part = bytes.subspan(fragment_header_size);
        if (auto admitted = admit(s.size, part.size()); !admitted) {
            return std::unexpected(admitted.error());
        }
        if (part.size() > s.capacity - s.size) {
            auto bigger = own_buffer(std::max(2 * s.capacity, s.size + part.size()));
            std::memcpy(bigger.buffer.get(), s.buffer.get(), s.size);
            s.buffer = std::move(bigger.buffer);
            s.capacity = bigger.capacity;
        }
        if (!part.empty()) {
            std::memcpy(s.buffer.get() + s.size, part.data(), part.size());
            s.size += part.size();
        }
        fragment_bytes += part.size();
        if (--s.next_fragment > 0) {
            return std::nullopt;
        }
        // Complete: the reassembled bytes become the owner binaries share.
        const std::shared_ptr<const void> whole = std::move(s.buffer);
        const std::span<const std::byte> bytes_whole(static_cast<const std::byte*>(whole.get()),
                                                     s.size);
        const std::vector<atom> cache_refs = std::move(s.refs);
        fragment_bytes -= s.size;
        sequences.erase(found);
        return message(bytes_whole, cache_refs, whole, false);
    }

    // Whether a sequence holding `held` bytes may take `more`.
    [[nodiscard]] std::expected<void, packet_error> admit(std::size_t held,
                                                          std::size_t more) const {
        if (more > limits.max_packet_bytes - std::min(held, limits.max_packet_bytes)) {
            return refuse(
                packet_errc::packet_too_large,
                "fragmented message over " + std::to_string(limits.max_packet_bytes) + " bytes");
        }
        if (more >
            limits.max_fragment_bytes - std::min(fragment_bytes, limits.max_fragment_bytes)) {
            return refuse(packet_errc::too_many_fragments,
                          "fragmented messages in flight over " +
                              std::to_string(limits.max_fragment_bytes) + " bytes");
        }
        return {};
    }

    // The control tuples that carry messages, SEND {2, Unused, To}, SEND_SENDER {22, From, To}
    // and REG_SEND {6, From, Unused, ToName}, read field by field: no `term` for the tuple (a
    // vector, a variant per element, then parse_control's copies), most of the time a
    // receiving node spent on a small message's control tuple. Only atoms already interned
    // are taken. Anything else (other opcodes, trace tokens, a field of another type, a new
    // atom, no message term after it) is nullopt, and message() takes the general way, which
    // decodes, counts new atoms and words the errors. `consumed`: where the message term starts.
    // What read_send() takes from the tuple: `to` for SEND and SEND_SENDER, `to_name` for
    // REG_SEND. (Not a control_message: an empty std::optional of one, 224 bytes, was zeroed
    // with `rep stos`, a third of read_send's time.)
    struct send_fields {
        bool has_from = false;
        bool has_to_name = false;
        pid from;
        pid to;
        atom to_name;
    };

    // The control tuples that carry messages, SEND {2, Unused, To}, SEND_SENDER {22, From, To}
    // and REG_SEND {6, From, Unused, ToName}, read field by field: no `term` for the tuple (a
    // vector, a variant per element, then parse_control's copies), most of the time a
    // receiving node spent on a small message's control tuple. Only atoms already interned
    // are taken. Anything else (other opcodes, trace tokens, a field of another type, a new
    // atom, no message term after it) is false, and message() takes the general way, which
    // decodes, counts new atoms and words the errors. `consumed`: where the message term starts.
    // The fields are written in place: returned in std::optionals, they were copied through
    // the stack in pieces whose wider reloads stalled on store forwarding.
    [[nodiscard]] bool read_send(std::span<const std::byte> bytes, std::span<const atom> cache_refs,
                                 std::size_t& consumed, send_fields& out) {
        etf_reader in(bytes, limits.terms, cache_refs);
        const auto arity = in.read_tuple_header();
        if (!arity) {
            return false;
        }
        const auto op = in.read_integer();
        if (!op) {
            return false;
        }
        bool complete = false;
        if (*op == static_cast<std::int64_t>(dop::SEND) && *arity == 3) {
            // Unused: the cookie before OTP 21, '' since; not checked.
            complete = in.skip_term() && read_known_pid(in, out.to);
        } else if (*op == static_cast<std::int64_t>(dop::SEND_SENDER) && *arity == 3) {
            out.has_from = true;
            complete = read_known_pid(in, out.from) && read_known_pid(in, out.to);
        } else if (*op == static_cast<std::int64_t>(dop::REG_SEND) && *arity == 4) {
            out.has_from = true;
            out.has_to_name = true;
            if (read_known_pid(in, out.from) && in.skip_term()) {
                const auto name = in.read_atom_text();
                const auto to_name = name ? atoms->find(*name) : std::nullopt;
                if (to_name) {
                    out.to_name = *to_name;
                    complete = true;
                }
            }
        }
        if (!complete || in.at_end()) {
            return false;
        }
        consumed = in.position();
        return true;
    }

    // A pid whose node is an atom already interned.
    [[nodiscard]] bool read_known_pid(etf_reader& in, pid& out) {
        const auto view = in.read_pid();
        if (!view) {
            return false;
        }
        const atom* node = known_node(view->node);
        if (node == nullptr) {
            return false;
        }
        out.node = *node;
        out.id = view->id;
        out.serial = view->serial;
        out.creation = view->creation;
        return true;
    }

    // The atom named `text` if it is interned. A pid's node is nearly always one of two (the
    // peer, or this node): those are compared first, which spares hashing the name in the
    // atom table for each pid of each message.
    [[nodiscard]] const atom* known_node(std::string_view text) {
        for (const atom& recent : recent_nodes) {
            if (recent.text() == text && !text.empty()) {  // '' (none yet) is looked up
                return &recent;
            }
        }
        const auto found = atoms->find(text);
        if (!found) {
            return nullptr;
        }
        recent_nodes[1] = recent_nodes[0];
        recent_nodes[0] = *found;
        return &recent_nodes[0];
    }

    // The control term and the optional message term: with version bytes (`versioned`,
    // pass-through; the 131 of the control term is already checked and skipped) or without.
    step message(std::span<const std::byte> bytes, std::span<const atom> cache_refs,
                 const std::shared_ptr<const void>& owner, bool versioned) {
        const etf_decoder decoder(*atoms, limits.terms);
        // The message term: all of `rest`, nothing after it.
        const auto message_term =
            [&](std::span<const std::byte> rest) -> std::expected<term, std::string> {
            std::size_t used = 0;
            auto decoded = versioned ? decoder.decode(rest, owner)
                                     : decoder.decode_term(rest, used, cache_refs, owner);
            if (!decoded) {
                return std::unexpected("message term: " + decoded.error().message());
            }
            if (!versioned && used != rest.size()) {
                return std::unexpected("message term: " + std::to_string(rest.size() - used) +
                                       " bytes after it");
            }
            return std::move(*decoded);
        };
        std::size_t consumed = 0;
        send_fields sent;
        if (read_send(bytes, cache_refs, consumed, sent)) {
            auto decoded = message_term(bytes.subspan(consumed));  // must follow
            if (!decoded) {
                return refuse(packet_errc::bad_term, decoded.error());
            }
            if (sent.has_to_name) {
                return step(std::in_place,
                            reg_send_message{sent.from, sent.to_name, std::move(*decoded)});
            }
            return step(std::in_place,
                        send_message{sent.has_from ? std::optional<pid>(sent.from) : std::nullopt,
                                     sent.to, std::move(*decoded)});
        }
        auto control = decoder.decode_term(bytes, consumed, cache_refs, owner);
        if (!control) {
            return refuse(packet_errc::bad_term, "control term: " + control.error().message());
        }
        std::optional<term> payload;
        const auto rest = bytes.subspan(consumed);
        if (!rest.empty()) {
            auto decoded = message_term(rest);
            if (!decoded) {
                return refuse(packet_errc::bad_term, decoded.error());
            }
            payload = std::move(*decoded);
        }
        auto parsed = parse_control(*control, std::move(payload));
        if (!parsed) {
            return std::unexpected(std::move(parsed.error()));
        }
        return std::optional<control_message>(std::move(*parsed));
    }
};

packet_reader::packet_reader(std::uint64_t flags, atom_table& atoms, packet_limits limits)
    : impl_(std::make_unique<impl>(flags, atoms, limits)) {}
packet_reader::packet_reader(packet_reader&&) noexcept = default;
packet_reader& packet_reader::operator=(packet_reader&&) noexcept = default;
packet_reader::~packet_reader() = default;

std::span<std::byte> packet_reader::prepare(std::size_t min_size) {
    return impl_->prepare(min_size);
}

void packet_reader::commit(std::size_t n) {
    impl_->commit(n);
}

void packet_reader::feed(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        const auto room = impl_->prepare(std::min(bytes.size(), feed_step));
        const std::size_t n = std::min(room.size(), bytes.size());
        std::memcpy(room.data(), bytes.data(), n);
        impl_->commit(n);
        bytes = bytes.subspan(n);
    }
}

std::expected<std::optional<control_message>, packet_error> packet_reader::next() {
    return impl_->next(ticks_, packets_);
}

}  // namespace vdist::dist
