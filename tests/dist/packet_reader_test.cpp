// Unit tests of packet_reader: ticks, both framings and their errors, the atom cache (headers
// built by hand, byte by byte), fragments (reassembly, interleaving, every way a sequence can
// be wrong, the limits), feeding one byte at a time, the limit on a packet's length checked
// before anything that large is allocated, and zero copy (a large binary stays in the buffer
// the socket was read into). Captured OTP frames come from research/dist-anchors.md §2.5-2.8.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "control_cases.hpp"
#include "vdist/dist/control.hpp"
#include "vdist/dist/protocol.hpp"

// The largest single allocation since the last reset: the reader must refuse a length over
// its limit without allocating anything that large.
namespace {
std::atomic<std::size_t> largest_allocation{0};

void* allocate(std::size_t size) {
    std::size_t seen = largest_allocation.load(std::memory_order_relaxed);
    while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t size) {
    return allocate(size);
}
void* operator new[](std::size_t size) {
    return allocate(size);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}

namespace vdist::dist {
namespace {

using namespace test_cases;

constexpr std::uint64_t header_flags = DFLAG_DIST_HDR_ATOM_CACHE | DFLAG_FRAGMENTS;

/// One reference of an atom cache header: cached (no text) or new.
struct cache_ref {
    int segment;
    int index;
    std::optional<std::string> text;  // a new entry
};

/// NumberOfAtomCacheRefs, the flag nibbles and the references, as erl_ext_dist describes them.
[[nodiscard]] bytes cache_header(const std::vector<cache_ref>& refs, bool long_atoms = false) {
    const std::size_t n = refs.size();
    bytes out = wire({static_cast<int>(n)});
    if (n == 0) {
        return out;
    }
    bytes flag_bytes(n / 2 + 1);
    const auto set_nibble = [&](std::size_t i, int value) {
        const int shift = i % 2 == 0 ? 0 : 4;
        flag_bytes[i / 2] |= static_cast<std::byte>(value << shift);
    };
    for (std::size_t i = 0; i < n; ++i) {
        set_nibble(i, (refs[i].text ? 8 : 0) | refs[i].segment);
    }
    set_nibble(n, long_atoms ? 1 : 0);
    out = concat(out, flag_bytes);
    for (const auto& ref : refs) {
        out.push_back(static_cast<std::byte>(ref.index));
        if (ref.text) {
            out = concat(out, be(ref.text->size(), long_atoms ? 2 : 1));
            out = concat(out, text(*ref.text));
        }
    }
    return out;
}

/// ATOM_CACHE_REF to reference `i` of the header.
[[nodiscard]] bytes cached_atom(int i) {
    return wire({82, i});
}

/// A NEW_PID_EXT whose node is an ATOM_CACHE_REF, as OTP writes them.
[[nodiscard]] bytes cached_pid(int ref, std::uint32_t id) {
    return cat({wire({88}), cached_atom(ref), be(id, 4), be(0, 4), be(1, 4)});
}

/// A header packet 131 68 + `after` (the atom cache header, then the terms).
[[nodiscard]] bytes d_packet(const bytes& after) {
    return framed(cat({wire({131, 68}), after}));
}

/// The fragments of one message: 131 69 Seq N + body's first part, then 131 70 Seq N-1 ...
/// `body` is what follows 131 68 in an unfragmented packet (atom cache header, terms).
[[nodiscard]] std::vector<bytes> fragments(std::uint64_t sequence, const bytes& body,
                                           std::size_t count) {
    std::vector<bytes> out;
    const std::size_t part = (body.size() + count - 1) / count;
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t from = std::min(body.size(), i * part);
        const std::size_t to = std::min(body.size(), from + part);
        const bytes piece(body.begin() + static_cast<std::ptrdiff_t>(from),
                          body.begin() + static_cast<std::ptrdiff_t>(to));
        out.push_back(
            framed(cat({wire({131, i == 0 ? 69 : 70}), be(sequence, 8), be(count - i, 8), piece})));
    }
    return out;
}

class PacketReaderTest : public ::testing::Test {
  protected:
    /// The next message, expecting one.
    [[nodiscard]] control_message expect_message(packet_reader& reader) {
        auto next = reader.next();
        if (!next) {
            ADD_FAILURE() << "refused: " << next.error().detail;
            return link_message{};
        }
        if (!next->has_value()) {
            ADD_FAILURE() << "no message";
            return link_message{};
        }
        return std::move(**next);
    }
    /// Expects no complete message yet.
    void expect_nothing(packet_reader& reader) {
        auto next = reader.next();
        ASSERT_TRUE(next) << next.error().detail;
        EXPECT_FALSE(next->has_value());
    }
    /// Expects a refusal with `code` whose detail contains `detail`.
    void expect_refused(packet_reader& reader, packet_errc code, const std::string& detail = {}) {
        auto next = reader.next();
        ASSERT_FALSE(next) << "accepted";
        EXPECT_EQ(next.error().code, code) << next.error().detail;
        EXPECT_NE(next.error().detail.find(detail), std::string::npos) << next.error().detail;
    }
    /// The bytes `message` is written as under `flags` (to compare messages).
    [[nodiscard]] bytes as_packet(const control_message& message,
                                  std::uint64_t flags = header_flags) {
        bytes out;
        EXPECT_TRUE(packet_writer(flags).write(out, message));
        return out;
    }
    [[nodiscard]] packet_reader reader(std::uint64_t flags = header_flags,
                                       packet_limits limits = {}) {
        return packet_reader(flags, atoms, limits);
    }

    atom_table atoms;
    values v{atoms};
};

// -- ticks and framing --------------------------------------------------------------------------

TEST_F(PacketReaderTest, shouldCountTicksAndGoOnWhenLengthsAreZero) {
    auto r = reader();
    r.feed(wire({0, 0, 0, 0, 0, 0, 0, 0}));
    expect_nothing(r);
    EXPECT_EQ(r.ticks_received(), 2u);
    const control_message link = link_message{v.local, v.remote};
    r.feed(cat({wire({0, 0, 0, 0}), as_packet(link), wire({0, 0, 0, 0})}));
    EXPECT_EQ(as_packet(expect_message(r)), as_packet(link));
    expect_nothing(r);
    EXPECT_EQ(r.ticks_received(), 4u);
    EXPECT_EQ(r.packets_received(), 1u);
}

TEST_F(PacketReaderTest, shouldWaitWhenAPacketIsIncomplete) {
    auto r = reader();
    const bytes packet = as_packet(link_message{v.local, v.remote});
    r.feed(bytes(packet.begin(), packet.end() - 1));
    expect_nothing(r);
    expect_nothing(r);
    r.feed(bytes(packet.end() - 1, packet.end()));
    EXPECT_TRUE(std::holds_alternative<link_message>(expect_message(r)));
}

TEST_F(PacketReaderTest, shouldReadACapturedOtpMonitorWhenNoAtomCacheRefsAreGiven) {
    // OTP 25 -> C++, research note §2.5: 83 44 00 68 04 61 13 58 ...: MONITOR_P
    // {19, FromPid, net_kernel, Ref}, the pid as captured in §2.6.
    const bytes captured_pid =
        cat({wire({0x58, 0x77, 0x0c}), text("e1@127.0.0.1"), wire({0, 0, 0, 9, 0, 0, 0, 0}),
             wire({0x6b, 0x09, 0x0c, 0xf3})});
    const bytes frame = cat({wire({0x83, 0x44, 0x00, 0x68, 0x04, 0x61, 0x13}), captured_pid,
                             atom_ext("net_kernel"), ref_ext(v.ref)});
    auto r = reader();
    r.feed(framed(frame));
    const auto message = expect_message(r);
    ASSERT_TRUE(std::holds_alternative<monitor_message>(message));
    const auto& monitor = std::get<monitor_message>(message);
    EXPECT_EQ(monitor.from, (pid{atoms("e1@127.0.0.1"), 9, 0, 0x6b090cf3}));
    EXPECT_EQ(std::get<atom>(monitor.to), v.net_kernel);
    EXPECT_EQ(monitor.ref, v.ref);
    EXPECT_FALSE(monitor.demonitor);
}

TEST_F(PacketReaderTest, shouldReadACapturedPingWhenFramedAsPassThrough) {
    // §2.8: REG_SEND {6, Caller, '', net_kernel} +
    // {'$gen_call', {Caller, [alias|Ref]}, {is_auth, 'e1@127.0.0.1'}}.
    const bytes caller = pid_ext(v.remote);
    const bytes tag = cat({wire({0x6c, 0, 0, 0, 1}), atom_ext("alias"), ref_ext(v.ref)});
    const bytes message = cat({tuple_of(3), atom_ext("$gen_call"), tuple_of(2), caller, tag,
                               tuple_of(2), atom_ext("is_auth"), atom_ext("e1@127.0.0.1")});
    auto r = reader(0);
    r.feed(pass_through_packet(
        cat({tuple_of(4), small(6), caller, atom_ext(""), atom_ext("net_kernel")}), message));
    const auto got = expect_message(r);
    ASSERT_TRUE(std::holds_alternative<reg_send_message>(got));
    const auto& reg = std::get<reg_send_message>(got);
    EXPECT_EQ(reg.from, v.remote);
    EXPECT_EQ(reg.to_name, v.net_kernel);
    const term expected_tag(list({term(atoms("alias"))}, box<term>(term(v.ref))));
    EXPECT_EQ(reg.message, term(tuple{atoms("$gen_call"), tuple{v.remote, expected_tag},
                                      tuple{atoms("is_auth"), atoms("e1@127.0.0.1")}}));
}

TEST_F(PacketReaderTest, shouldRefuseWithBadFramingWhenTheFirstBytesDoNotMatchTheFlags) {
    const bytes control = cat({tuple_of(3), small(1), pid_ext(v.local), pid_ext(v.remote)});
    struct framing_case {
        const char* name;
        std::uint64_t flags;
        bytes packet;
    };
    const std::vector<framing_case> cases = {
        {"header on a pass-through connection", 0, header_packet(control)},
        {"pass-through on a header connection", DFLAG_DIST_HDR_ATOM_CACHE,
         pass_through_packet(control)},
        {"pass-through on a fragments connection", DFLAG_FRAGMENTS, pass_through_packet(control)},
        {"112 without 131", 0, framed(cat({wire({112}), control}))},
        {"131 then an unknown kind", header_flags, framed(cat({wire({131, 71, 0}), control}))},
        {"one byte", 0, framed(wire({112}))},
        {"one byte with a header", header_flags, framed(wire({131}))},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = reader(c.flags);
        r.feed(c.packet);
        expect_refused(r, packet_errc::bad_framing);
    }
}

TEST_F(PacketReaderTest, shouldRefuseWithBadFramingWhenTheFirstBytesOfALongPacketAreWrong) {
    // Not after waiting for a megabyte.
    auto r = reader(header_flags);
    r.feed(cat({be(std::size_t{1} << 20, 4), wire({112, 131})}));
    expect_refused(r, packet_errc::bad_framing);
}

TEST_F(PacketReaderTest, shouldStayFailedWhenAnErrorHappened) {
    auto r = reader(0);
    r.feed(header_packet(cat({tuple_of(3), small(1), pid_ext(v.local), pid_ext(v.remote)})));
    expect_refused(r, packet_errc::bad_framing);
    r.feed(as_packet(link_message{v.local, v.remote}, 0));
    r.feed(wire({0, 0, 0, 0}));
    expect_refused(r, packet_errc::bad_framing);
    expect_refused(r, packet_errc::bad_framing);
    EXPECT_EQ(r.ticks_received(), 0u);
}

TEST_F(PacketReaderTest, shouldRefuseWithBadTermWhenATermDoesNotDecode) {
    const bytes control = cat({tuple_of(3), small(2), atom_ext(""), pid_ext(v.remote)});
    struct term_case {
        const char* name;
        std::uint64_t flags;
        bytes packet;
        const char* detail;
    };
    const std::vector<term_case> cases = {
        {"control truncated", header_flags, framed(cat({wire({131, 68, 0}), tuple_of(3)})),
         "control term: truncated"},
        {"control unknown tag", 0, framed(wire({112, 131, 200})), "control term: unknown"},
        {"message truncated", header_flags, header_packet(control, wire({109, 0, 0, 0, 9, 1})),
         "message term: truncated"},
        {"bytes after the message", header_flags, header_packet(control, wire({106, 106})),
         "message term: 1 bytes after it"},
        {"bytes after the message, pass-through", 0, pass_through_packet(control, wire({106, 106})),
         "message term: bytes left"},
        {"message without its 131", 0, framed(cat({wire({112, 131}), control, wire({106})})),
         "message term: not an external term"},
        {"atom cache ref with no cache", header_flags,
         header_packet(cat({tuple_of(3), small(2), cached_atom(0), pid_ext(v.remote)}),
                       wire({106})),
         "control term: atom cache reference"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = reader(c.flags);
        r.feed(c.packet);
        expect_refused(r, packet_errc::bad_term, c.detail);
    }
}

TEST_F(PacketReaderTest, shouldPassParseControlErrorsOnWhenTheControlMessageIsInvalid) {
    auto r = reader(header_flags);
    r.feed(header_packet(cat({tuple_of(3), small(1), pid_ext(v.local), atom_ext("x")})));
    expect_refused(r, packet_errc::bad_control, "LINK: To is not a pid");
    auto missing = reader(0);
    missing.feed(
        pass_through_packet(cat({tuple_of(3), small(2), atom_ext(""), pid_ext(v.remote)})));
    expect_refused(missing, packet_errc::missing_payload, "SEND");
    auto unexpected = reader(header_flags);
    unexpected.feed(header_packet(cat({tuple_of(3), small(1), pid_ext(v.local), pid_ext(v.remote)}),
                                  wire({106})));
    expect_refused(unexpected, packet_errc::unexpected_payload, "LINK");
}

// SEND, SEND_SENDER and REG_SEND tuples are read field by field when their atoms are known;
// new atoms, wrong fields and trace tokens must come out as the general decoder makes them.
TEST_F(PacketReaderTest, shouldReadSendsAsTheDecoderDoesWhenTheirAtomsAreNewOrFieldsWrong) {
    atom_table elsewhere;
    const pid fresh{elsewhere("fresh@10.0.0.1"), 4, 0, 2};
    const auto message_of = [&](const control_message& m) {
        auto r = reader();
        r.feed(as_packet(m));
        return expect_message(r);
    };
    for (const control_message& m : std::vector<control_message>{
             send_message{fresh, v.local, v.message()},
             send_message{v.remote, fresh, v.message()},
             reg_send_message{fresh, atoms("known_name"), v.message()},
             reg_send_message{v.remote, elsewhere("new_name"), v.message()},
         }) {
        const auto got = message_of(m);
        EXPECT_EQ(as_packet(got), as_packet(m));
    }
    EXPECT_TRUE(atoms.find("fresh@10.0.0.1"));  // interned as the decoder does
    EXPECT_TRUE(atoms.find("new_name"));

    auto limited = packet_limits{};
    limited.terms.max_new_atoms = 1;
    const pid other{elsewhere("other@10.0.0.1"), 5, 0, 2};
    const pid third{elsewhere("third@10.0.0.1"), 6, 0, 2};
    auto r = reader(header_flags, limited);
    r.feed(header_packet(cat({tuple_of(3), small(22), pid_ext(other), pid_ext(third)}),
                         v.message_ext()));
    expect_refused(r, packet_errc::bad_term, "control term: term creates more new atoms");

    auto not_pid = reader();
    not_pid.feed(header_packet(cat({tuple_of(3), small(22), pid_ext(v.remote), atom_ext("x")}),
                               v.message_ext()));
    expect_refused(not_pid, packet_errc::bad_control, "SEND_SENDER: To is not a pid");
    auto traced = reader();
    traced.feed(header_packet(
        cat({tuple_of(4), small(12), atom_ext(""), pid_ext(v.local), atom_ext("token")}),
        v.message_ext()));
    const auto sent = expect_message(traced);
    ASSERT_TRUE(std::holds_alternative<send_message>(sent));
    EXPECT_EQ(std::get<send_message>(sent).to, v.local);
}

// -- the length limit -----------------------------------------------------------------------------

TEST_F(PacketReaderTest, shouldRefuseWithPacketTooLargeBeforeAllocatingWhenALengthIsOverTheLimit) {
    packet_limits limits;
    limits.max_packet_bytes = std::size_t{1} << 20;
    auto r = reader(header_flags, limits);
    largest_allocation = 0;
    r.feed(wire({0x7f, 0xff, 0xff, 0xff, 131, 68}));  // 2 GiB claimed, two bytes given
    expect_refused(r, packet_errc::packet_too_large, "2147483647");
    EXPECT_LT(largest_allocation.load(), std::size_t{1} << 20);

    auto at_limit = reader(header_flags, limits);
    at_limit.feed(cat({be(limits.max_packet_bytes, 4), wire({131, 68})}));
    expect_nothing(at_limit);  // allowed: waits for the rest, in a buffer of its own
    EXPECT_GE(largest_allocation.load(), limits.max_packet_bytes) << "the tracker sees it";

    auto just_over = reader(0, limits);
    just_over.feed(be(limits.max_packet_bytes + 1, 4));
    expect_refused(just_over, packet_errc::packet_too_large);
}

// -- the atom cache -------------------------------------------------------------------------------

TEST_F(PacketReaderTest, shouldResolveNewAndThenCachedEntriesWhenLaterPacketsReferToThem) {
    auto r = reader();
    // REG_SEND {6, From, '', net_kernel} + hello: From's node is reference 0 (a new entry at
    // segment 0, index 5), net_kernel reference 1 (new, segment 3, index 200).
    const bytes first =
        cat({cache_header({{0, 5, "e1@127.0.0.1"}, {3, 200, "net_kernel"}}), tuple_of(4), small(6),
             cached_pid(0, 9), atom_ext(""), cached_atom(1), cached_atom(1)});
    // The same with both cached, in the other order.
    const bytes second = cat({cache_header({{3, 200, {}}, {0, 5, {}}}), tuple_of(4), small(6),
                              cached_pid(1, 10), atom_ext(""), cached_atom(0), atom_ext("hi")});
    r.feed(cat({d_packet(first), d_packet(second)}));
    const pid from{atoms("e1@127.0.0.1"), 9, 0, 1};
    const auto one = expect_message(r);
    ASSERT_TRUE(std::holds_alternative<reg_send_message>(one));
    EXPECT_EQ(std::get<reg_send_message>(one).from, from);
    EXPECT_EQ(std::get<reg_send_message>(one).to_name, v.net_kernel);
    EXPECT_EQ(std::get<reg_send_message>(one).message, term(v.net_kernel));
    const auto two = expect_message(r);
    ASSERT_TRUE(std::holds_alternative<reg_send_message>(two));
    EXPECT_EQ(std::get<reg_send_message>(two).from, (pid{from.node, 10, 0, 1}));
    EXPECT_EQ(std::get<reg_send_message>(two).to_name, v.net_kernel);
    EXPECT_EQ(std::get<reg_send_message>(two).message, term(atoms("hi")));
}

TEST_F(PacketReaderTest, shouldPlaceEvenIndexesInLowNibblesWhenReadingTheFlags) {
    // Written out by hand: three new entries, segments 1, 2 and 7, index 4 in each.
    // Nibbles: ref 0 = 8|1 (low of byte 0), ref 1 = 8|2 (high of byte 0), ref 2 = 8|7 (low of
    // byte 1), then the LongAtoms nibble 0 (high of byte 1): bytes A9 0F.
    const bytes header = cat({wire({3, 0xA9, 0x0F}), wire({4, 1}), text("a"), wire({4, 1}),
                              text("b"), wire({4, 1}), text("c")});
    ASSERT_EQ(header, cache_header({{1, 4, "a"}, {2, 4, "b"}, {7, 4, "c"}}));
    auto r = reader();
    // {1, From, To}: From's node is reference 2 ('c'), To's reference 0 ('a').
    r.feed(d_packet(cat({header, tuple_of(3), small(1), cached_pid(2, 1), cached_pid(0, 2)})));
    auto link = std::get<link_message>(expect_message(r));
    EXPECT_EQ(link.from.node, atoms("c"));
    EXPECT_EQ(link.to.node, atoms("a"));
    // Index 4 of each segment holds its own atom: cached, segments 7, 2, 1 (nibbles 7, 2, 1,
    // then 0: bytes 27 01).
    r.feed(d_packet(cat({wire({3, 0x27, 0x01, 4, 4, 4}), tuple_of(3), small(1), cached_pid(0, 1),
                         cached_pid(1, 2)})));
    auto second = std::get<link_message>(expect_message(r));
    EXPECT_EQ(second.from.node, atoms("c"));
    EXPECT_EQ(second.to.node, atoms("b"));
    // Segment 1 index 4 was 'a'; segment 0 index 4 is empty.
    r.feed(d_packet(cat(
        {wire({2, 0x01, 0x00, 4, 4}), tuple_of(3), small(1), cached_pid(0, 1), cached_pid(1, 2)})));
    expect_refused(r, packet_errc::bad_atom_cache, "empty cache entry 4");
}

TEST_F(PacketReaderTest, shouldReadTwoByteLengthsWhenTheLongAtomsFlagIsSet) {
    // One new entry: nibble 0 = 8 (low of byte 0), LongAtoms nibble = 1 (high of byte 0): 18.
    const std::string node = "n@" + std::string(200, 'h');
    const bytes header = cat({wire({1, 0x18, 9}), be(node.size(), 2), text(node)});
    ASSERT_EQ(header, cache_header({{0, 9, node}}, true));
    auto r = reader();
    r.feed(d_packet(cat({header, tuple_of(3), small(1), cached_pid(0, 1), cached_pid(0, 2)})));
    EXPECT_EQ(std::get<link_message>(expect_message(r)).from.node, atoms(node));
    // Two entries with long atoms: nibbles 8, 8, then 1 in the low nibble of byte 1.
    const bytes two =
        cat({wire({2, 0x88, 0x01, 1}), be(1, 2), text("p"), wire({2}), be(1, 2), text("q")});
    ASSERT_EQ(two, cache_header({{0, 1, "p"}, {0, 2, "q"}}, true));
    r.feed(d_packet(cat({two, tuple_of(3), small(1), cached_pid(0, 1), cached_pid(1, 2)})));
    const auto link = std::get<link_message>(expect_message(r));
    EXPECT_EQ(link.from.node, atoms("p"));
    EXPECT_EQ(link.to.node, atoms("q"));
}

TEST_F(PacketReaderTest, shouldReadTheMostReferencesWhenAHeaderHas255) {
    std::vector<cache_ref> refs;
    for (int i = 0; i < 255; ++i) {
        refs.push_back({i % 8, i, "atom" + std::to_string(i)});
    }
    auto r = reader();
    r.feed(d_packet(
        cat({cache_header(refs), tuple_of(3), small(1), cached_pid(254, 1), cached_pid(7, 2)})));
    const auto link = std::get<link_message>(expect_message(r));
    EXPECT_EQ(link.from.node, atoms("atom254"));
    EXPECT_EQ(link.to.node, atoms("atom7"));
}

TEST_F(PacketReaderTest, shouldRefuseWithBadAtomCacheWhenTheHeaderIsMalformed) {
    const bytes link = cat({tuple_of(3), small(1), cached_pid(0, 1), cached_pid(0, 2)});
    struct header_case {
        const char* name;
        bytes after_68;
        const char* detail;
    };
    const std::vector<header_case> cases = {
        {"no count", {}, "truncated"},
        {"flags cut", wire({3, 0x88}), "truncated"},
        {"index cut", wire({1, 0x08}), "truncated"},
        {"length cut", wire({1, 0x08, 5}), "truncated"},
        {"long length cut", wire({1, 0x18, 5, 0}), "truncated"},
        {"text cut", cat({wire({1, 0x08, 5, 10}), text("abc")}), "truncated"},
        {"cached entry never set", cat({wire({1, 0x00, 5}), link}), "empty cache entry 5"},
        {"cached entry of another segment", cat({wire({1, 0x06, 5}), link}),
         "empty cache entry 1541"},
        {"invalid UTF-8", cat({wire({1, 0x08, 5, 2, 0xc3, 0x28}), link}), "invalid atom"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto r = reader();
        r.feed(framed(cat({wire({131, 68}), c.after_68})));
        expect_refused(r, packet_errc::bad_atom_cache, c.detail);
    }
}

TEST_F(PacketReaderTest, shouldRefuseWithBadTermWhenATermRefersBeyondTheHeaderReferences) {
    auto r = reader();
    r.feed(d_packet(cat({cache_header({{0, 1, "n@h"}}), tuple_of(3), small(1), cached_pid(0, 1),
                         cached_pid(1, 2)})));
    expect_refused(r, packet_errc::bad_term, "atom cache reference");
}

TEST_F(PacketReaderTest, shouldRefuseWithBadAtomCacheWhenAHeaderCreatesTooManyAtoms) {
    packet_limits limits;
    limits.terms.max_new_atoms = 2;
    auto r = reader(header_flags, limits);
    r.feed(d_packet(cat({cache_header({{0, 1, "fresh1"}, {0, 2, "fresh2"}, {0, 3, "fresh3"}}),
                         tuple_of(3), small(1), cached_pid(0, 1), cached_pid(1, 2)})));
    expect_refused(r, packet_errc::bad_atom_cache, "new atoms");
}

// -- fragments ------------------------------------------------------------------------------------

class FragmentTest : public PacketReaderTest {
  protected:
    /// A send of `payload` to v.remote, as the body after 131 68 (no cache references, or the
    /// given header).
    [[nodiscard]] bytes send_body(const bytes& payload, const bytes& header = wire({0})) {
        return cat({header, tuple_of(3), small(2), atom_ext(""), pid_ext(v.remote), payload});
    }
    /// The binary term of `size` bytes of `fill`.
    [[nodiscard]] static bytes binary_ext(std::size_t size, int fill) {
        return cat({wire({109}), be(size, 4), bytes(size, static_cast<std::byte>(fill))});
    }
    void expect_send_of_binary(packet_reader& r, std::size_t size, int fill) {
        const auto message = expect_message(r);
        ASSERT_TRUE(std::holds_alternative<send_message>(message));
        const auto* bin = std::get<send_message>(message).message.get_if<binary>();
        ASSERT_NE(bin, nullptr);
        EXPECT_EQ(bin->size(), size);
        EXPECT_TRUE(std::all_of(bin->bytes().begin(), bin->bytes().end(),
                                [fill](std::byte b) { return b == static_cast<std::byte>(fill); }));
    }
};

TEST_F(FragmentTest, shouldReassembleTheMessageWhenGivenTwoFragments) {
    auto r = reader();
    const auto parts = fragments(42, send_body(binary_ext(1000, 0xab)), 2);
    r.feed(parts[0]);
    expect_nothing(r);
    r.feed(parts[1]);
    expect_send_of_binary(r, 1000, 0xab);
    EXPECT_EQ(r.packets_received(), 2u);
}

TEST_F(FragmentTest, shouldReassembleTheMessageWhenGivenManyFragmentsOfOtpSize) {
    auto r = reader();
    const std::size_t size = std::size_t{3} << 20;
    const auto parts = fragments(7, send_body(binary_ext(size, 0x11)), 49);
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        r.feed(parts[i]);
        expect_nothing(r);
    }
    r.feed(parts.back());
    expect_send_of_binary(r, size, 0x11);
}

TEST_F(FragmentTest, shouldKeepSequencesApartWhenTheyInterleave) {
    auto r = reader();
    const auto a = fragments(1, send_body(binary_ext(300, 0xaa)), 3);
    const auto b = fragments(2, send_body(binary_ext(200, 0xbb)), 2);
    const bytes link = as_packet(link_message{v.local, v.remote});
    r.feed(cat({a[0], b[0], link, a[1]}));
    EXPECT_TRUE(std::holds_alternative<link_message>(expect_message(r)));
    expect_nothing(r);
    r.feed(b[1]);
    expect_send_of_binary(r, 200, 0xbb);
    r.feed(a[2]);
    expect_send_of_binary(r, 300, 0xaa);
    // Both sequences are closed: their ids may start again.
    r.feed(fragments(1, send_body(binary_ext(10, 1)), 1)[0]);
    expect_send_of_binary(r, 10, 1);
}

TEST_F(FragmentTest, shouldDeliverAtOnceWhenTheFirstFragmentHasId1) {
    auto r = reader();
    const auto only = fragments(9, send_body(binary_ext(100, 3)), 1);
    ASSERT_EQ(only.size(), 1u);
    r.feed(only[0]);
    expect_send_of_binary(r, 100, 3);
}

TEST_F(FragmentTest, shouldApplyTheFirstFragmentsAtomCacheAtOnceWhenLaterPacketsUseIt) {
    auto r = reader();
    const bytes header = cache_header({{2, 7, "late@node"}});
    const bytes body =
        cat({header, tuple_of(3), small(2), atom_ext(""), cached_pid(0, 5), binary_ext(500, 9)});
    const auto parts = fragments(5, body, 3);
    r.feed(parts[0]);
    expect_nothing(r);
    // Another sender's packet uses the entry before the sequence is complete.
    r.feed(d_packet(
        cat({wire({1, 0x02, 7}), tuple_of(3), small(1), cached_pid(0, 1), pid_ext(v.local)})));
    EXPECT_EQ(std::get<link_message>(expect_message(r)).from.node, atoms("late@node"));
    r.feed(cat({parts[1], parts[2]}));
    const auto message = expect_message(r);
    EXPECT_EQ(std::get<send_message>(message).to.node, atoms("late@node"));
}

TEST_F(FragmentTest, shouldRefuseWithBadFragmentWhenAContinuationHasNoSequence) {
    auto r = reader();
    const auto parts = fragments(3, send_body(binary_ext(100, 1)), 2);
    r.feed(parts[1]);
    expect_refused(r, packet_errc::bad_fragment, "no open sequence 3");
}

TEST_F(FragmentTest, shouldRefuseWithBadFragmentWhenFragmentsComeOutOfOrder) {
    const auto parts = fragments(3, send_body(binary_ext(100, 1)), 4);
    auto skipped = reader();
    skipped.feed(cat({parts[0], parts[2]}));
    expect_refused(skipped, packet_errc::bad_fragment, "fragment 2 where 3 was due");
    auto repeated = reader();
    repeated.feed(cat({parts[0], parts[1], parts[1]}));
    expect_refused(repeated, packet_errc::bad_fragment, "fragment 3 where 2 was due");
    auto restarted = reader();
    restarted.feed(cat({parts[0], parts[0]}));
    expect_refused(restarted, packet_errc::bad_fragment, "started twice");
    auto zero = reader();
    zero.feed(framed(cat({wire({131, 69}), be(3, 8), be(0, 8), send_body(wire({106}))})));
    expect_refused(zero, packet_errc::bad_fragment, "fragment id 0");
    auto cut = reader();
    cut.feed(framed(cat({wire({131, 70}), be(3, 8), wire({0, 0})})));
    expect_refused(cut, packet_errc::bad_fragment, "truncated");
}

TEST_F(FragmentTest, shouldRefuseWithTooManyFragmentsWhenMoreSequencesThanTheLimitAreOpen) {
    packet_limits limits;
    limits.max_open_sequences = 2;
    auto r = reader(header_flags, limits);
    for (std::uint64_t seq = 1; seq <= 2; ++seq) {
        r.feed(fragments(seq, send_body(binary_ext(50, 1)), 2)[0]);
        expect_nothing(r);
    }
    // A whole message in one fragment opens no sequence.
    r.feed(fragments(10, send_body(binary_ext(50, 2)), 1)[0]);
    expect_send_of_binary(r, 50, 2);
    r.feed(fragments(3, send_body(binary_ext(50, 1)), 2)[0]);
    expect_refused(r, packet_errc::too_many_fragments, "more than 2");
}

TEST_F(FragmentTest, shouldRefuseWithTooManyFragmentsWhenTheirBytesExceedTheLimit) {
    packet_limits limits;
    limits.max_fragment_bytes = 1000;
    auto r = reader(header_flags, limits);
    const auto a = fragments(1, send_body(binary_ext(900, 1)), 3);
    const auto b = fragments(2, send_body(binary_ext(900, 1)), 3);
    r.feed(cat({a[0], a[1], b[0]}));  // about 620 + 320 bytes held
    expect_nothing(r);
    r.feed(b[1]);
    expect_refused(r, packet_errc::too_many_fragments, "over 1000 bytes");
}

TEST_F(FragmentTest, shouldRefuseWithPacketTooLargeWhenTheReassembledMessageExceedsTheLimit) {
    packet_limits limits;
    limits.max_packet_bytes = 4096;
    auto r = reader(header_flags, limits);
    const auto parts = fragments(1, send_body(binary_ext(5000, 1)), 3);  // each under 4096
    r.feed(cat({parts[0], parts[1]}));
    expect_nothing(r);
    r.feed(parts[2]);
    expect_refused(r, packet_errc::packet_too_large, "fragmented message");
}

// -- feeding and buffers --------------------------------------------------------------------------

TEST_F(PacketReaderTest, shouldReadEveryMessageWhenFedOneByteAtATime) {
    for (const std::uint64_t flags : {std::uint64_t{0}, header_flags}) {
        SCOPED_TRACE(flags);
        // Each message with the flags it was written under.
        std::vector<std::pair<control_message, std::uint64_t>> sent;
        bytes stream = wire({0, 0, 0, 0});
        for (const auto& c : all_cases(atoms)) {
            if (c.control) {
                sent.emplace_back(c.message, c.flags | flags);
                stream = concat(stream, as_packet(c.message, c.flags | flags));
            }
        }
        // A large message (its own buffer), then a tick and a small one.
        const control_message large =
            send_message{std::nullopt, v.remote, binary(bytes(100000, std::byte{0x42}))};
        const control_message small_one = link_message{v.local, v.remote};
        sent.emplace_back(large, flags);
        sent.emplace_back(small_one, flags);
        stream =
            cat({stream, as_packet(large, flags), wire({0, 0, 0, 0}), as_packet(small_one, flags)});
        if (flags != 0) {  // and a fragmented one
            const control_message fragmented =
                send_message{std::nullopt, v.remote, binary(bytes(3000, std::byte{0x17}))};
            sent.emplace_back(fragmented, flags);
            const bytes whole = as_packet(fragmented, flags);
            for (const auto& part : fragments(77, bytes(whole.begin() + 6, whole.end()), 4)) {
                stream = concat(stream, part);
            }
        }

        auto r = reader(flags);
        std::vector<control_message> received;
        for (const std::byte b : stream) {
            r.feed(std::span(&b, 1));
            auto next = r.next();
            ASSERT_TRUE(next) << next.error().detail;
            if (next->has_value()) {
                received.push_back(std::move(**next));
            }
        }
        ASSERT_EQ(received.size(), sent.size());
        for (std::size_t i = 0; i < sent.size(); ++i) {
            const auto& [message, written_under] = sent[i];
            EXPECT_EQ(as_packet(received[i], written_under), as_packet(message, written_under))
                << "message " << i;
        }
        EXPECT_EQ(r.ticks_received(), 2u);
    }
}

TEST_F(PacketReaderTest, shouldAlwaysPrepareAtLeastTheAskedRoomWhenReceiving) {
    auto r = reader();
    const control_message large =
        send_message{std::nullopt, v.remote, binary(bytes(200000, std::byte{1}))};
    bytes stream = cat({as_packet(large), as_packet(link_message{v.local, v.remote})});
    std::size_t at = 0;
    std::size_t messages = 0;
    while (at < stream.size()) {
        for (const std::size_t asked : {std::size_t{1}, std::size_t{4096}, std::size_t{65536}}) {
            const auto room = r.prepare(asked);
            ASSERT_GE(room.size(), asked);
            const std::size_t n = std::min({room.size(), asked, stream.size() - at});
            std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(at), n, room.begin());
            r.commit(n);
            at += n;
            auto next = r.next();
            ASSERT_TRUE(next) << next.error().detail;
            messages += next->has_value() ? 1u : 0u;
            while (next && next->has_value()) {
                next = r.next();
                ASSERT_TRUE(next);
                messages += next->has_value() ? 1u : 0u;
            }
        }
    }
    EXPECT_EQ(messages, 2u);
}

TEST_F(PacketReaderTest, shouldShareTheReceiveBufferWhenALargeBinaryArrives) {
    for (const std::uint64_t flags : {std::uint64_t{0}, header_flags}) {
        SCOPED_TRACE(flags);
        const std::size_t size = std::size_t{1} << 20;
        bytes payload(size);
        for (std::size_t i = 0; i < size; ++i) {
            payload[i] = static_cast<std::byte>(i * 7);
        }
        const control_message message = send_message{std::nullopt, v.remote, binary(payload)};
        const bytes stream =
            cat({as_packet(message, flags), as_packet(link_message{v.local, v.remote}, flags)});

        // As a socket loop would: read(2) up to 64 KiB straight into what prepare() gives.
        auto r = reader(flags);
        std::vector<std::span<std::byte>> received_into;
        std::vector<control_message> messages;
        for (std::size_t at = 0; at < stream.size();) {
            const auto room = r.prepare();
            const std::size_t n = std::min({room.size(), std::size_t{65536}, stream.size() - at});
            std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(at), n, room.begin());
            r.commit(n);
            received_into.push_back(room.first(n));
            at += n;
            for (auto next = r.next(); next && next->has_value(); next = r.next()) {
                messages.push_back(std::move(**next));
            }
        }
        ASSERT_EQ(messages.size(), 2u);
        const auto* bin = std::get<send_message>(messages[0]).message.get_if<binary>();
        ASSERT_NE(bin, nullptr);
        ASSERT_TRUE(
            std::equal(bin->bytes().begin(), bin->bytes().end(), payload.begin(), payload.end()));
        // The binary's middle is where the "socket" wrote it: no copy was made after the read.
        // (The first read, in the stream buffer before the length was known, and the last,
        // shorter than the 64 KiB asked for, are copied once into the packet's buffer.)
        const std::byte* middle = bin->bytes().data() + size / 2;
        const bool in_receive_buffer =
            std::any_of(received_into.begin(), received_into.end(), [middle](auto span) {
                return middle >= span.data() && middle < span.data() + span.size();
            });
        EXPECT_TRUE(in_receive_buffer);
        EXPECT_TRUE(std::holds_alternative<link_message>(messages[1]));
    }
}

TEST_F(PacketReaderTest, shouldDecodeALargePacketWhenItArrivesWholeInOneFeed) {
    auto r = reader(0);
    const control_message large =
        reg_send_message{v.local, v.net_kernel, binary(bytes(300000, std::byte{5}))};
    r.feed(cat({as_packet(large, 0), wire({0, 0, 0, 0}), as_packet(large, 0)}));
    EXPECT_EQ(as_packet(expect_message(r), 0), as_packet(large, 0));
    EXPECT_EQ(as_packet(expect_message(r), 0), as_packet(large, 0));
    expect_nothing(r);
    EXPECT_EQ(r.ticks_received(), 1u);
}

TEST_F(FragmentTest, shouldFailOrReadButNeverCrashWhenAnyByteIsCorrupted) {
    // A stream with an atom cache header, cached references, a tick, a fragmented message
    // and every control message; each byte in turn replaced by three values.
    bytes stream = cat(
        {d_packet(cat({cache_header({{0, 5, "e1@127.0.0.1"}, {3, 200, "net_kernel"}}), tuple_of(4),
                       small(6), cached_pid(0, 9), atom_ext(""), cached_atom(1), cached_atom(1)})),
         wire({0, 0, 0, 0}),
         d_packet(cat({cache_header({{3, 200, {}}, {0, 5, {}}}), tuple_of(3), small(1),
                       cached_pid(1, 1), cached_pid(1, 2)}))});
    for (const auto& part : fragments(3, send_body(binary_ext(200, 1)), 3)) {
        stream = concat(stream, part);
    }
    for (const auto& c : all_cases(atoms)) {
        if (c.control) {
            stream = concat(stream, as_packet(c.message, c.flags | header_flags));
        }
    }
    std::size_t refused = 0;
    for (std::size_t at = 0; at < stream.size(); ++at) {
        for (const int value : {0x00, 0xff, 0x80}) {
            bytes corrupt = stream;
            corrupt[at] = static_cast<std::byte>(value);
            packet_limits limits;
            limits.max_packet_bytes = std::size_t{1} << 20;  // a corrupted length may claim 4 GiB
            auto r = reader(header_flags, limits);
            r.feed(corrupt);
            for (int n = 0; n < 1000; ++n) {
                auto next = r.next();
                if (!next) {
                    ++refused;
                    break;
                }
                if (!next->has_value()) {
                    break;
                }
            }
        }
    }
    EXPECT_GT(refused, stream.size());  // most corruptions are noticed
}

TEST_F(PacketReaderTest, shouldKeepThePreparedRoomWhenNextIsCalledBeforeCommit) {
    const bytes link = as_packet(link_message{v.local, v.remote});
    for (const std::size_t asked : {std::size_t{16}, std::size_t{4} << 20}) {
        SCOPED_TRACE(asked);
        auto r = reader();
        r.feed(link);
        const auto room = r.prepare(asked);  // then the buffered packet is taken
        EXPECT_TRUE(std::holds_alternative<link_message>(expect_message(r)));
        std::copy(link.begin(), link.end(), room.begin());
        r.commit(link.size());
        EXPECT_TRUE(std::holds_alternative<link_message>(expect_message(r)));
        expect_nothing(r);
    }
}

TEST_F(PacketReaderTest, shouldKeepItsStateWhenMoved) {
    auto r = reader();
    const bytes packet = as_packet(link_message{v.local, v.remote});
    r.feed(bytes(packet.begin(), packet.begin() + 10));
    packet_reader moved = std::move(r);
    moved.feed(bytes(packet.begin() + 10, packet.end()));
    EXPECT_TRUE(std::holds_alternative<link_message>(expect_message(moved)));
}

// -- reused buffers -------------------------------------------------------------------------------

/// Large packets' buffers are reused once no binary holds them (no fresh pages per message),
/// and never while one does.
class BufferReuseTest : public FragmentTest {
  protected:
    /// The binary of the next message (a send of a binary), or nothing.
    [[nodiscard]] binary next_binary(packet_reader& r) {
        const auto message = expect_message(r);
        const auto* send = std::get_if<send_message>(&message);
        const auto* bin = send != nullptr ? send->message.get_if<binary>() : nullptr;
        EXPECT_NE(bin, nullptr);
        return bin != nullptr ? *bin : binary();
    }
    [[nodiscard]] static bool all_of(const binary& bin, int fill) {
        return std::all_of(bin.bytes().begin(), bin.bytes().end(),
                           [fill](std::byte b) { return b == static_cast<std::byte>(fill); });
    }
    /// What OTP sends for a 64 KiB binary: a first fragment of 65536 bytes, then the rest.
    [[nodiscard]] std::vector<bytes> otp_fragments(std::uint64_t sequence, int fill) {
        const bytes body = send_body(binary_ext(size, fill));
        const std::size_t first = 65536;
        return {framed(cat({wire({131, 69}), be(sequence, 8), be(2, 8),
                            bytes(body.begin(), body.begin() + first)})),
                framed(cat({wire({131, 70}), be(sequence, 8), be(1, 8),
                            bytes(body.begin() + first, body.end())}))};
    }

    static constexpr std::size_t size = std::size_t{64} << 10;
};

TEST_F(BufferReuseTest, shouldReuseALargePacketsBufferWhenNoBinaryHoldsItAnyMore) {
    auto r = reader();
    const std::byte* first_place = nullptr;
    {
        r.feed(as_packet(send_message{std::nullopt, v.remote, binary(bytes(size, std::byte{1}))}));
        const binary first = next_binary(r);
        EXPECT_TRUE(all_of(first, 1));
        first_place = first.bytes().data();
    }
    r.feed(as_packet(send_message{std::nullopt, v.remote, binary(bytes(size, std::byte{2}))}));
    const binary second = next_binary(r);
    EXPECT_TRUE(all_of(second, 2));
    EXPECT_EQ(second.bytes().data(), first_place);
}

TEST_F(BufferReuseTest, shouldLeaveABinaryIntactWhenLaterLargePacketsArriveWhileItIsHeld) {
    auto r = reader();
    r.feed(as_packet(send_message{std::nullopt, v.remote, binary(bytes(size, std::byte{1}))}));
    const binary held = next_binary(r);
    for (int fill = 2; fill < 6; ++fill) {
        r.feed(as_packet(send_message{std::nullopt, v.remote,
                                      binary(bytes(size, static_cast<std::byte>(fill)))}));
        const binary later = next_binary(r);
        EXPECT_TRUE(all_of(later, fill));
        EXPECT_NE(later.bytes().data(), held.bytes().data());
    }
    EXPECT_TRUE(all_of(held, 1));
}

TEST_F(BufferReuseTest, shouldReuseTheReassemblyBufferWhenNoBinaryHoldsTheMessageAnyMore) {
    auto r = reader();
    const std::byte* first_place = nullptr;
    {
        for (const auto& fragment : otp_fragments(1, 7)) {
            r.feed(fragment);
        }
        const binary first = next_binary(r);
        EXPECT_EQ(first.size(), size);
        EXPECT_TRUE(all_of(first, 7));
        first_place = first.bytes().data();
    }
    for (const auto& fragment : otp_fragments(2, 8)) {
        r.feed(fragment);
    }
    const binary second = next_binary(r);
    EXPECT_TRUE(all_of(second, 8));
    EXPECT_EQ(second.bytes().data(), first_place);
    // Held, the buffer is not reused: the next message goes elsewhere and this one stays.
    for (const auto& fragment : otp_fragments(3, 9)) {
        r.feed(fragment);
    }
    const binary third = next_binary(r);
    EXPECT_TRUE(all_of(third, 9));
    EXPECT_NE(third.bytes().data(), second.bytes().data());
    EXPECT_TRUE(all_of(second, 8));
}

}  // namespace
}  // namespace vdist::dist
