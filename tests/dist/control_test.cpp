// Unit tests of control.hpp's messages: packet_writer byte for byte for every opcode, in both
// framings and under each flag that changes the tuple (SEND_SENDER, EXIT_PAYLOAD, UNLINK_ID);
// the round trip writer -> reader for every message; parse_control on every field of every
// opcode, the trace-token variants and each error; the ticker. The reader's framing, atom
// cache, fragments and buffers are in packet_reader_test.cpp; agreement with a real erl in
// control_erlang_test.cpp.

#include "vdist/dist/control.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "control_cases.hpp"
#include "vdist/dist/etf_encoder.hpp"
#include "vdist/dist/protocol.hpp"

namespace vdist::dist {
namespace {

using namespace test_cases;

// -- the writer, byte for byte
// ----------------------------------------------------------------------

// The framings: pass-through, and the distribution header whichever flag brought it.
enum class framing { pass_through, atom_cache_header, fragments_header };

[[nodiscard]] std::uint64_t framing_flags(framing f) {
    switch (f) {
        case framing::pass_through:
            return 0;
        case framing::atom_cache_header:
            return DFLAG_DIST_HDR_ATOM_CACHE;
        case framing::fragments_header:
            return DFLAG_FRAGMENTS;
    }
    return 0;
}

class ControlCaseTest : public ::testing::TestWithParam<std::tuple<std::size_t, framing>> {
  protected:
    void SetUp() override {
        const auto [index, f] = GetParam();
        const auto cases = all_cases(atoms);
        ASSERT_LT(index, cases.size());
        c = cases[index];
        flags = c.flags | framing_flags(f);
        header = f != framing::pass_through;
    }

    /// What the case must put on the wire.
    [[nodiscard]] bytes expected() const {
        if (!c.control) {
            return {};
        }
        return header ? header_packet(*c.control, c.payload)
                      : pass_through_packet(*c.control, c.payload);
    }

    [[nodiscard]] bytes written(const control_message& m) {
        bytes out;
        packet_writer writer(flags);
        auto result = writer.write(out, m);
        EXPECT_TRUE(result) << (result ? "" : result.error().detail);
        return out;
    }

    atom_table atoms;
    control_case c;
    std::uint64_t flags = 0;
    bool header = false;
};

TEST_P(ControlCaseTest, shouldWriteExactlyTheExpectedPacketWhenGivenTheMessage) {
    EXPECT_EQ(written(c.message), expected()) << c.name;
}

TEST_P(ControlCaseTest, shouldAppendAfterWhatTheBufferHoldsWhenWriting) {
    bytes out = wire({1, 2, 3});
    packet_writer writer(flags);
    ASSERT_TRUE(writer.write(out, c.message));
    ASSERT_TRUE(writer.write(out, c.message));
    EXPECT_EQ(out, cat({wire({1, 2, 3}), expected(), expected()}));
}

TEST_P(ControlCaseTest, shouldReadBackTheSameMessageWhenTheWriterPacketIsFed) {
    const bytes packet = written(c.message);
    if (!c.control) {
        EXPECT_TRUE(packet.empty());  // an ack under the old link protocol: nothing to read
        return;
    }
    packet_reader reader(flags, atoms);
    reader.feed(packet);
    auto next = reader.next();
    ASSERT_TRUE(next) << next.error().detail;
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->index(), c.message.index());
    // Written again, it is the same packet: every field survived.
    EXPECT_EQ(written(**next), packet);
    auto after = reader.next();
    ASSERT_TRUE(after);
    EXPECT_FALSE(after->has_value());
    EXPECT_EQ(reader.packets_received(), 1u);
}

[[nodiscard]] std::vector<std::size_t> case_indexes() {
    atom_table atoms;
    std::vector<std::size_t> indexes(all_cases(atoms).size());
    for (std::size_t i = 0; i < indexes.size(); ++i) {
        indexes[i] = i;
    }
    return indexes;
}

INSTANTIATE_TEST_SUITE_P(Opcodes, ControlCaseTest,
                         ::testing::Combine(::testing::ValuesIn(case_indexes()),
                                            ::testing::Values(framing::pass_through,
                                                              framing::atom_cache_header,
                                                              framing::fragments_header)),
                         [](const auto& test_info) {
                             atom_table atoms;
                             const auto name = all_cases(atoms)[std::get<0>(test_info.param)].name;
                             switch (std::get<1>(test_info.param)) {
                                 case framing::pass_through:
                                     return name + "_pass_through";
                                 case framing::atom_cache_header:
                                     return name + "_atom_cache_header";
                                 case framing::fragments_header:
                                     return name + "_fragments_header";
                             }
                             return name;
                         });

class PacketWriterTest : public ::testing::Test {
  protected:
    atom_table atoms;
    values v{atoms};
};

TEST_F(PacketWriterTest, shouldWriteFourZeroBytesWhenWritingATick) {
    bytes out = wire({9});
    packet_writer::write_tick(out);
    EXPECT_EQ(out, wire({9, 0, 0, 0, 0}));
}

TEST_F(PacketWriterTest, shouldFailAndLeaveTheBufferUnchangedWhenAPayloadIsNotEncodable) {
    for (const std::uint64_t flags : {std::uint64_t{0}, DFLAG_DIST_HDR_ATOM_CACHE}) {
        bytes out = wire({1, 2, 3});
        packet_writer writer(flags);
        const double nan = std::numeric_limits<double>::quiet_NaN();
        auto result = writer.write(out, send_message{std::nullopt, v.remote, tuple{v.hello, nan}});
        ASSERT_FALSE(result);
        EXPECT_EQ(result.error().code, packet_errc::not_encodable);
        EXPECT_EQ(out, wire({1, 2, 3}));
    }
}

TEST_F(PacketWriterTest, shouldFailAndLeaveTheBufferUnchangedWhenAReferenceHasTooManyWords) {
    bytes out = wire({7});
    packet_writer writer(DFLAG_DIST_HDR_ATOM_CACHE);
    reference huge = v.ref;
    huge.words.assign(6, 1);
    auto result = writer.write(out, monitor_message{v.local, v.remote, huge, false});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, packet_errc::not_encodable);
    EXPECT_EQ(out, wire({7}));
}

TEST_F(PacketWriterTest, shouldCarryALargeBinaryWhole) {
    const bytes big(std::size_t{1} << 20, std::byte{0x5a});
    bytes out;
    packet_writer writer(DFLAG_FRAGMENTS);
    ASSERT_TRUE(writer.write(out, send_message{std::nullopt, v.remote, binary(big)}));
    const bytes control = cat({tuple_of(3), small(2), atom_ext(""), pid_ext(v.remote)});
    EXPECT_EQ(out, header_packet(control, cat({wire({109}), be(big.size(), 4), big})));
}

// -- parse_control ------------------------------------------------------------------------------

class ParseControlTest : public ::testing::Test {
  protected:
    [[nodiscard]] static term op(int code) { return term(code); }

    /// parse_control, expecting it to fail with `code` and a detail containing `detail`.
    void expect_refused(const term& control, std::optional<term> payload, packet_errc code,
                        const std::string& detail) {
        auto result = parse_control(control, std::move(payload));
        ASSERT_FALSE(result) << "accepted " << detail;
        EXPECT_EQ(result.error().code, code) << result.error().detail;
        EXPECT_NE(result.error().detail.find(detail), std::string::npos)
            << "detail \"" << result.error().detail << "\" lacks \"" << detail << "\"";
    }

    template <class T>
    [[nodiscard]] T parsed(const term& control, std::optional<term> payload = {}) {
        auto result = parse_control(control, std::move(payload));
        EXPECT_TRUE(result) << (result ? "" : result.error().detail);
        if (!result || !std::holds_alternative<T>(*result)) {
            ADD_FAILURE() << "not the expected message type";
            return T{};
        }
        return std::get<T>(*result);
    }

    atom_table atoms;
    values v{atoms};
    term token = tuple{atoms("seq_trace_token"), 1, 2};
    atom empty{};
};

TEST_F(ParseControlTest, shouldParseEveryFieldWhenGivenEachMessage) {
    const auto link = parsed<link_message>(tuple{op(1), v.local, v.remote});
    EXPECT_EQ(link.from, v.local);
    EXPECT_EQ(link.to, v.remote);

    const auto send = parsed<send_message>(tuple{op(2), empty, v.remote}, v.message());
    EXPECT_FALSE(send.from);
    EXPECT_EQ(send.to, v.remote);
    EXPECT_EQ(send.message, v.message());

    const auto sender = parsed<send_message>(tuple{op(22), v.local, v.remote}, v.message());
    EXPECT_EQ(sender.from, v.local);

    const auto reg = parsed<reg_send_message>(tuple{op(6), v.local, empty, v.net_kernel}, 5);
    EXPECT_EQ(reg.from, v.local);
    EXPECT_EQ(reg.to_name, v.net_kernel);
    EXPECT_EQ(reg.message, term(5));

    const auto exit = parsed<exit_message>(tuple{op(3), v.local, v.remote, v.normal});
    EXPECT_EQ(exit.reason, term(v.normal));
    EXPECT_FALSE(exit.exit2);
    EXPECT_TRUE(parsed<exit_message>(tuple{op(8), v.local, v.remote, v.normal}).exit2);
    const auto payload_exit = parsed<exit_message>(tuple{op(24), v.local, v.remote}, v.noproc);
    EXPECT_EQ(payload_exit.reason, term(v.noproc));
    EXPECT_FALSE(payload_exit.exit2);
    EXPECT_TRUE(parsed<exit_message>(tuple{op(26), v.local, v.remote}, v.noproc).exit2);

    const auto unlink = parsed<unlink_message>(tuple{op(35), 12, v.local, v.remote});
    EXPECT_EQ(unlink.id, 12u);
    EXPECT_FALSE(unlink.ack);
    EXPECT_TRUE(parsed<unlink_message>(tuple{op(36), 12, v.local, v.remote}).ack);
    const auto old_unlink = parsed<unlink_message>(tuple{op(4), v.local, v.remote});
    EXPECT_EQ(old_unlink.id, 0u);
    EXPECT_EQ(old_unlink.to, v.remote);

    const auto monitor = parsed<monitor_message>(tuple{op(19), v.local, v.net_kernel, v.ref});
    EXPECT_EQ(std::get<atom>(monitor.to), v.net_kernel);
    EXPECT_EQ(monitor.ref, v.ref);
    EXPECT_FALSE(monitor.demonitor);
    EXPECT_TRUE(parsed<monitor_message>(tuple{op(20), v.local, v.remote, v.ref}).demonitor);

    const auto down =
        parsed<monitor_exit_message>(tuple{op(21), v.net_kernel, v.remote, v.ref, v.noproc});
    EXPECT_EQ(std::get<atom>(down.from), v.net_kernel);
    EXPECT_EQ(down.reason, term(v.noproc));
    const auto payload_down =
        parsed<monitor_exit_message>(tuple{op(28), v.local, v.remote, v.ref}, v.normal);
    EXPECT_EQ(std::get<pid>(payload_down.from), v.local);
    EXPECT_EQ(payload_down.reason, term(v.normal));

    const auto leader = parsed<group_leader_message>(tuple{op(7), v.local, v.remote});
    EXPECT_EQ(leader.to, v.remote);

    const atom lists = atoms("lists");
    const atom seq = atoms("seq");
    const auto spawn = parsed<spawn_request_message>(
        tuple{op(29), v.ref, v.local, v.remote, tuple{lists, seq, 2}, list{atoms("link")}},
        list{1, 3});
    EXPECT_EQ(spawn.request, v.ref);
    EXPECT_EQ(spawn.group_leader, v.remote);
    EXPECT_EQ(spawn.module, lists);
    EXPECT_EQ(spawn.function, seq);
    EXPECT_EQ(spawn.arity, 2u);
    EXPECT_EQ(spawn.options, term(list{atoms("link")}));
    EXPECT_EQ(spawn.arguments, term(list{1, 3}));

    const auto reply = parsed<spawn_reply_message>(tuple{op(31), v.ref, v.remote, 3, v.spawned});
    EXPECT_EQ(reply.flags, 3u);
    EXPECT_EQ(reply.result, term(v.spawned));

    const auto alias = parsed<alias_send_message>(tuple{op(33), v.local, v.ref}, v.message());
    EXPECT_EQ(alias.alias, v.ref);
    EXPECT_EQ(alias.message, v.message());
}

TEST_F(ParseControlTest, shouldDropTheTokenWhenGivenTraceTokenVariants) {
    const auto send = parsed<send_message>(tuple{op(12), empty, v.remote, token}, 1);
    EXPECT_FALSE(send.from);
    EXPECT_EQ(send.to, v.remote);
    EXPECT_EQ(send.message, term(1));

    const auto exit = parsed<exit_message>(tuple{op(13), v.local, v.remote, token, v.normal});
    EXPECT_EQ(exit.reason, term(v.normal));  // the token comes before the reason
    EXPECT_FALSE(exit.exit2);

    const auto reg =
        parsed<reg_send_message>(tuple{op(16), v.local, empty, v.net_kernel, token}, 2);
    EXPECT_EQ(reg.to_name, v.net_kernel);

    const auto exit2 = parsed<exit_message>(tuple{op(18), v.local, v.remote, token, v.noproc});
    EXPECT_EQ(exit2.reason, term(v.noproc));
    EXPECT_TRUE(exit2.exit2);

    EXPECT_EQ(parsed<send_message>(tuple{op(23), v.local, v.remote, token}, 3).from, v.local);

    const auto payload_exit = parsed<exit_message>(tuple{op(25), v.local, v.remote, token}, 4);
    EXPECT_EQ(payload_exit.reason, term(4));
    EXPECT_FALSE(payload_exit.exit2);
    EXPECT_TRUE(parsed<exit_message>(tuple{op(27), v.local, v.remote, token}, 4).exit2);

    const auto spawn = parsed<spawn_request_message>(
        tuple{op(30), v.ref, v.local, v.remote, tuple{atoms("m"), atoms("f"), 0}, list{}, token},
        list{});
    EXPECT_EQ(spawn.arity, 0u);

    const auto reply =
        parsed<spawn_reply_message>(tuple{op(32), v.ref, v.remote, 0, atoms("badarg"), token});
    EXPECT_EQ(reply.result, term(atoms("badarg")));

    EXPECT_EQ(parsed<alias_send_message>(tuple{op(34), v.local, v.ref, token}, 5).message, term(5));
}

TEST_F(ParseControlTest, shouldAcceptAnUnlinkIdWhenItIsAtTheEndsOfItsRange) {
    EXPECT_EQ(parsed<unlink_message>(tuple{op(35), 1, v.local, v.remote}).id, 1u);
    const term largest = big_integer{false, {255, 255, 255, 255, 255, 255, 255, 255}};
    EXPECT_EQ(parsed<unlink_message>(tuple{op(35), largest, v.local, v.remote}).id, UINT64_MAX);
}

TEST_F(ParseControlTest, shouldRefuseWithBadControlWhenTheTermIsNoControlTuple) {
    expect_refused(v.normal, {}, packet_errc::bad_control, "not a tuple");
    expect_refused(tuple{}, {}, packet_errc::bad_control, "not a tuple");
    expect_refused(tuple{v.normal, v.local}, {}, packet_errc::bad_control, "opcode");
    expect_refused(tuple{op(99), v.local, v.remote}, {}, packet_errc::bad_control, "opcode 99");
    expect_refused(tuple{op(5), v.local, v.remote}, {}, packet_errc::bad_control, "opcode 5");
    expect_refused(tuple{op(0)}, {}, packet_errc::bad_control, "opcode 0");
    expect_refused(tuple{op(-1)}, {}, packet_errc::bad_control, "opcode -1");
    expect_refused(tuple{term(std::int64_t{258}), v.local, v.remote}, {}, packet_errc::bad_control,
                   "opcode 258");  // 258 & 0xff is LINK
    expect_refused(tuple{op(1), v.local}, {}, packet_errc::bad_control,
                   "LINK: a tuple of 2 elements, not 3");
    expect_refused(tuple{op(2), empty, v.remote, v.remote}, 1, packet_errc::bad_control,
                   "SEND: a tuple of 4");
}

TEST_F(ParseControlTest, shouldRefuseWithMissingOrUnexpectedPayloadWhenTheMessageTermDisagrees) {
    struct shape {
        term control;
        bool takes_payload;
        const char* name;
    };
    const term mfa = tuple{atoms("m"), atoms("f"), 0};
    const std::vector<shape> shapes = {
        {tuple{op(1), v.local, v.remote}, false, "LINK"},
        {tuple{op(2), empty, v.remote}, true, "SEND"},
        {tuple{op(3), v.local, v.remote, v.normal}, false, "EXIT"},
        {tuple{op(4), v.local, v.remote}, false, "UNLINK"},
        {tuple{op(6), v.local, empty, v.net_kernel}, true, "REG_SEND"},
        {tuple{op(7), v.local, v.remote}, false, "GROUP_LEADER"},
        {tuple{op(8), v.local, v.remote, v.normal}, false, "EXIT2"},
        {tuple{op(12), empty, v.remote, token}, true, "SEND_TT"},
        {tuple{op(13), v.local, v.remote, token, v.normal}, false, "EXIT_TT"},
        {tuple{op(16), v.local, empty, v.net_kernel, token}, true, "REG_SEND_TT"},
        {tuple{op(18), v.local, v.remote, token, v.normal}, false, "EXIT2_TT"},
        {tuple{op(19), v.local, v.remote, v.ref}, false, "MONITOR_P"},
        {tuple{op(20), v.local, v.remote, v.ref}, false, "DEMONITOR_P"},
        {tuple{op(21), v.local, v.remote, v.ref, v.normal}, false, "MONITOR_P_EXIT"},
        {tuple{op(22), v.local, v.remote}, true, "SEND_SENDER"},
        {tuple{op(23), v.local, v.remote, token}, true, "SEND_SENDER_TT"},
        {tuple{op(24), v.local, v.remote}, true, "PAYLOAD_EXIT"},
        {tuple{op(25), v.local, v.remote, token}, true, "PAYLOAD_EXIT_TT"},
        {tuple{op(26), v.local, v.remote}, true, "PAYLOAD_EXIT2"},
        {tuple{op(27), v.local, v.remote, token}, true, "PAYLOAD_EXIT2_TT"},
        {tuple{op(28), v.local, v.remote, v.ref}, true, "PAYLOAD_MONITOR_P_EXIT"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, list{}}, true, "SPAWN_REQUEST"},
        {tuple{op(30), v.ref, v.local, v.remote, mfa, list{}, token}, true, "SPAWN_REQUEST_TT"},
        {tuple{op(31), v.ref, v.remote, 0, v.spawned}, false, "SPAWN_REPLY"},
        {tuple{op(32), v.ref, v.remote, 0, v.spawned, token}, false, "SPAWN_REPLY_TT"},
        {tuple{op(33), v.local, v.ref}, true, "ALIAS_SEND"},
        {tuple{op(34), v.local, v.ref, token}, true, "ALIAS_SEND_TT"},
        {tuple{op(35), 1, v.local, v.remote}, false, "UNLINK_ID"},
        {tuple{op(36), 1, v.local, v.remote}, false, "UNLINK_ID_ACK"},
    };
    for (const auto& s : shapes) {
        SCOPED_TRACE(s.name);
        if (s.takes_payload) {
            expect_refused(s.control, std::nullopt, packet_errc::missing_payload, s.name);
            EXPECT_TRUE(parse_control(s.control, term(list{})));
        } else {
            expect_refused(s.control, term(1), packet_errc::unexpected_payload, s.name);
            EXPECT_TRUE(parse_control(s.control, std::nullopt));
        }
    }
}

TEST_F(ParseControlTest, shouldRefuseWithBadControlNamingTheFieldWhenAFieldHasTheWrongType) {
    struct wrong_field {
        term control;
        std::optional<term> payload;
        const char* detail;
    };
    const term not_pid = atoms("nopid");
    const term not_ref = 17;
    const term mfa = tuple{atoms("m"), atoms("f"), 1};
    const term args = list{1};
    const term improper = list({term(1)}, box<term>(term(2)));
    const std::vector<wrong_field> cases = {
        {tuple{op(1), not_pid, v.remote}, {}, "LINK: From is not a pid"},
        {tuple{op(1), v.local, v.ref}, {}, "LINK: To is not a pid"},
        {tuple{op(2), empty, v.net_kernel}, 1, "SEND: To is not a pid"},
        {tuple{op(12), empty, 5, token}, 1, "SEND_TT: To is not a pid"},
        {tuple{op(22), not_pid, v.remote}, 1, "SEND_SENDER: From is not a pid"},
        {tuple{op(23), v.local, not_pid, token}, 1, "SEND_SENDER_TT: To is not a pid"},
        {tuple{op(6), not_pid, empty, v.net_kernel}, 1, "REG_SEND: From is not a pid"},
        {tuple{op(6), v.local, empty, v.remote}, 1, "REG_SEND: ToName is not an atom"},
        {tuple{op(16), v.local, empty, 5, token}, 1, "REG_SEND_TT: ToName is not an atom"},
        {tuple{op(3), not_pid, v.remote, v.normal}, {}, "EXIT: From is not a pid"},
        {tuple{op(8), v.local, not_pid, v.normal}, {}, "EXIT2: To is not a pid"},
        {tuple{op(13), not_pid, v.remote, token, v.normal}, {}, "EXIT_TT: From is not a pid"},
        {tuple{op(18), v.local, not_pid, token, v.normal}, {}, "EXIT2_TT: To is not a pid"},
        {tuple{op(24), not_pid, v.remote}, 1, "PAYLOAD_EXIT: From is not a pid"},
        {tuple{op(26), v.local, not_pid}, 1, "PAYLOAD_EXIT2: To is not a pid"},
        {tuple{op(4), v.local, not_pid}, {}, "UNLINK: To is not a pid"},
        {tuple{op(7), not_pid, v.remote}, {}, "GROUP_LEADER: From is not a pid"},
        {tuple{op(35), 0, v.local, v.remote}, {}, "UNLINK_ID: Id is not an integer in 1..2^64-1"},
        {tuple{op(35), -3, v.local, v.remote}, {}, "UNLINK_ID: Id is not"},
        {tuple{op(35), term(big_integer{false, {0, 0, 0, 0, 0, 0, 0, 0, 1}}), v.local, v.remote},
         {},
         "UNLINK_ID: Id is not"},  // 2^64
        {tuple{op(35), term(big_integer{true, {0, 0, 0, 0, 0, 0, 0, 0x80}}), v.local, v.remote},
         {},
         "UNLINK_ID: Id is not"},  // -2^63
        {tuple{op(35), 1.5, v.local, v.remote}, {}, "UNLINK_ID: Id is not"},
        {tuple{op(36), 1, not_pid, v.remote}, {}, "UNLINK_ID_ACK: From is not a pid"},
        {tuple{op(36), 1, v.local, not_pid}, {}, "UNLINK_ID_ACK: To is not a pid"},
        {tuple{op(19), not_pid, v.remote, v.ref}, {}, "MONITOR_P: From is not a pid"},
        {tuple{op(19), v.local, v.ref, v.ref}, {}, "MONITOR_P: To is not a pid or an atom"},
        {tuple{op(20), v.local, v.remote, not_ref}, {}, "DEMONITOR_P: Ref is not a reference"},
        {tuple{op(21), 5, v.remote, v.ref, v.normal},
         {},
         "MONITOR_P_EXIT: From is not a pid or an atom"},
        {tuple{op(21), v.local, v.net_kernel, v.ref, v.normal},
         {},
         "MONITOR_P_EXIT: To is not a pid"},
        {tuple{op(28), v.local, v.remote, not_ref}, 1,
         "PAYLOAD_MONITOR_P_EXIT: Ref is not a reference"},
        {tuple{op(29), not_ref, v.local, v.remote, mfa, list{}}, args,
         "SPAWN_REQUEST: ReqId is not a reference"},
        {tuple{op(29), v.ref, not_pid, v.remote, mfa, list{}}, args,
         "SPAWN_REQUEST: From is not a pid"},
        {tuple{op(29), v.ref, v.local, not_pid, mfa, list{}}, args,
         "SPAWN_REQUEST: GroupLeader is not a pid"},
        {tuple{op(29), v.ref, v.local, v.remote, list{}, list{}}, args,
         "SPAWN_REQUEST: {Module, Function, Arity} is not a 3-tuple"},
        {tuple{op(29), v.ref, v.local, v.remote, tuple{atoms("m"), atoms("f")}, list{}}, args,
         "SPAWN_REQUEST: {Module, Function, Arity} is not a 3-tuple"},
        {tuple{op(29), v.ref, v.local, v.remote, tuple{1, atoms("f"), 1}, list{}}, args,
         "SPAWN_REQUEST: Module is not an atom"},
        {tuple{op(29), v.ref, v.local, v.remote, tuple{atoms("m"), v.local, 1}, list{}}, args,
         "SPAWN_REQUEST: Function is not an atom"},
        {tuple{op(29), v.ref, v.local, v.remote, tuple{atoms("m"), atoms("f"), atoms("one")},
               list{}},
         args, "SPAWN_REQUEST: Arity is not an integer"},
        {tuple{op(29), v.ref, v.local, v.remote, tuple{atoms("m"), atoms("f"), -1}, list{}}, list{},
         "SPAWN_REQUEST: Arity is not an integer"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, atoms("link")}, args,
         "SPAWN_REQUEST: OptList is not a proper list"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, improper}, args,
         "SPAWN_REQUEST: OptList is not a proper list"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, list{}}, list{1, 2},
         "SPAWN_REQUEST: ArgList is not a proper list of Arity elements"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, list{}}, list{},
         "SPAWN_REQUEST: ArgList is not a proper list of Arity elements"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, list{}}, improper,
         "SPAWN_REQUEST: ArgList is not a proper list"},
        {tuple{op(29), v.ref, v.local, v.remote, mfa, list{}}, term(tuple{1}),
         "SPAWN_REQUEST: ArgList is not a proper list"},
        {tuple{op(30), v.ref, v.local, v.remote, 5, list{}, token}, args,
         "SPAWN_REQUEST_TT: {Module, Function, Arity} is not a 3-tuple"},
        {tuple{op(31), not_ref, v.remote, 0, v.spawned},
         {},
         "SPAWN_REPLY: ReqId is not a reference"},
        {tuple{op(31), v.ref, not_pid, 0, v.spawned}, {}, "SPAWN_REPLY: To is not a pid"},
        {tuple{op(31), v.ref, v.remote, -1, v.spawned},
         {},
         "SPAWN_REPLY: Flags is not an integer in 0..2^64-1"},
        {tuple{op(31), v.ref, v.remote, v.normal, v.spawned}, {}, "SPAWN_REPLY: Flags is not"},
        {tuple{op(31), v.ref, v.remote, 0, 5}, {}, "SPAWN_REPLY: Result is not a pid or an atom"},
        {tuple{op(32), v.ref, v.remote, 0, v.ref, token},
         {},
         "SPAWN_REPLY_TT: Result is not a pid or an atom"},
        {tuple{op(33), not_pid, v.ref}, 1, "ALIAS_SEND: From is not a pid"},
        {tuple{op(33), v.local, v.local}, 1, "ALIAS_SEND: Alias is not a reference"},
        {tuple{op(34), v.local, not_ref, token}, 1, "ALIAS_SEND_TT: Alias is not a reference"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.detail);
        expect_refused(c.control, c.payload, packet_errc::bad_control, c.detail);
    }
}

// -- errors ---------------------------------------------------------------------------------------

TEST(PacketErrcTest, shouldNameEveryErrorWhenMadeIntoAnErrorCode) {
    for (int e = static_cast<int>(packet_errc::packet_too_large);
         e <= static_cast<int>(packet_errc::not_encodable); ++e) {
        const std::error_code code = make_error_code(static_cast<packet_errc>(e));
        EXPECT_STREQ(code.category().name(), "vdist.packet");
        EXPECT_EQ(code.message().find("unknown"), std::string::npos) << e;
    }
    const std::error_code code = packet_errc::bad_fragment;  // is_error_code_enum
    EXPECT_EQ(code, make_error_code(packet_errc::bad_fragment));
}

// -- ticker ---------------------------------------------------------------------------------------

TEST(TickerTest, shouldPollAtTicktimeOverIntensityWhenMade) {
    using namespace std::chrono_literals;
    EXPECT_EQ(ticker().period(), 15s);
    EXPECT_EQ(ticker(20s, 5).period(), 4s);
    EXPECT_EQ(ticker(10s, 0).period(), 10s);  // an intensity of 0 is taken as 1
}

TEST(TickerTest, shouldSendATickWhenNothingWasWrittenSinceTheLastPoll) {
    ticker t;
    t.on_read();
    t.on_write();
    EXPECT_EQ(t.poll(), ticker::action::none);
    t.on_read();
    EXPECT_EQ(t.poll(), ticker::action::send_tick);
    t.on_read();
    t.on_write();
    EXPECT_EQ(t.poll(), ticker::action::none);
}

TEST(TickerTest, shouldTimeOutWhenNothingWasReadForIntensityPollsInARow) {
    ticker t(std::chrono::seconds(60), 4);
    for (int i = 0; i < 3; ++i) {
        t.on_write();
        EXPECT_EQ(t.poll(), ticker::action::none) << "silent poll " << i + 1;
    }
    t.on_write();
    EXPECT_EQ(t.poll(), ticker::action::timed_out);
}

TEST(TickerTest, shouldStartCountingAgainWhenSomethingIsRead) {
    ticker t(std::chrono::seconds(60), 4);
    for (int round = 0; round < 5; ++round) {
        for (int i = 0; i < 3; ++i) {
            EXPECT_EQ(t.poll(), ticker::action::send_tick);
        }
        t.on_read();  // a tick or a message from the peer in the fourth period
        EXPECT_EQ(t.poll(), ticker::action::send_tick);
    }
    t.on_write();
    EXPECT_EQ(t.poll(), ticker::action::none);
}

}  // namespace
}  // namespace vdist::dist
