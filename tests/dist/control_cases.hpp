#pragma once
// Control messages for the tests of control.hpp: wire bytes written by hand (independently of
// the encoder), one case per opcode and flag combination with the control tuple and message
// term it must produce, and the packets around them. Shared by control_test (byte for byte),
// packet_reader_test and control_erlang_test (the same cases by name, built by a real erl in
// erlang/control.escript, whose values must match these).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vdist/dist/control.hpp"
#include "vdist/dist/protocol.hpp"
#include "vdist/test/bytes.hpp"

namespace vdist::dist::test_cases {

using test::bytes;
using test::concat;
using test::text;
using test::wire;

// -- ETF by hand
// -----------------------------------------------------------------------------------

[[nodiscard]] inline bytes be(std::uint64_t value, int width) {
    bytes out;
    for (int shift = 8 * (width - 1); shift >= 0; shift -= 8) {
        out.push_back(static_cast<std::byte>((value >> shift) & 0xff));
    }
    return out;
}
/// SMALL_ATOM_UTF8_EXT.
[[nodiscard]] inline bytes atom_ext(std::string_view name) {
    return concat(wire({119, static_cast<int>(name.size())}), text(name));
}
/// SMALL_INTEGER_EXT.
[[nodiscard]] inline bytes small(int value) {
    return wire({97, value});
}
/// SMALL_TUPLE_EXT header.
[[nodiscard]] inline bytes tuple_of(int arity) {
    return wire({104, arity});
}
/// NEW_PID_EXT.
[[nodiscard]] inline bytes pid_ext(const pid& p) {
    return concat(
        concat(concat(concat(wire({88}), atom_ext(p.node.text())), be(p.id, 4)), be(p.serial, 4)),
        be(p.creation, 4));
}
/// NEWER_REFERENCE_EXT.
[[nodiscard]] inline bytes ref_ext(const reference& r) {
    bytes out = concat(concat(concat(wire({90}), be(r.words.size(), 2)), atom_ext(r.node.text())),
                       be(r.creation, 4));
    for (const auto word : r.words) {
        out = concat(out, be(word, 4));
    }
    return out;
}
/// Concatenation of any number of pieces.
[[nodiscard]] inline bytes cat(std::initializer_list<bytes> pieces) {
    bytes out;
    for (const auto& piece : pieces) {
        out.insert(out.end(), piece.begin(), piece.end());
    }
    return out;
}

// -- packets
// ---------------------------------------------------------------------------------------

/// Len:32 + payload.
[[nodiscard]] inline bytes framed(const bytes& payload) {
    return concat(be(payload.size(), 4), payload);
}
/// A pass-through packet: 112 131 Ctrl [131 Msg] (terms given without their 131).
[[nodiscard]] inline bytes pass_through_packet(const bytes& control,
                                               const std::optional<bytes>& message = {}) {
    bytes payload = cat({wire({112, 131}), control});
    if (message) {
        payload = cat({payload, wire({131}), *message});
    }
    return framed(payload);
}
/// A distribution-header packet with no atom cache references: 131 68 0 Ctrl [Msg].
[[nodiscard]] inline bytes header_packet(const bytes& control,
                                         const std::optional<bytes>& message = {}) {
    bytes payload = cat({wire({131, 68, 0}), control});
    if (message) {
        payload = concat(payload, *message);
    }
    return framed(payload);
}

// -- the values every case uses (control.escript builds the same)
// -----------------------------------

struct values {
    explicit values(atom_table& atoms)
        : local{atoms("vdist@127.0.0.1"), 1, 0, 3},
          remote{atoms("e1@127.0.0.1"), 9, 0, 0x6b090cf3},
          spawned{atoms("vdist@127.0.0.1"), 77, 1, 3},
          ref{atoms("e1@127.0.0.1"), 0x6b090cf3, {0x1234, 0x56789, 0x9abcdef0}},
          net_kernel(atoms("net_kernel")),
          normal(atoms("normal")),
          noproc(atoms("noproc")),
          hello(atoms("hello")) {}

    pid local, remote, spawned;
    reference ref;
    atom net_kernel, normal, noproc, hello;

    /// The message term of the sends: {hello, 42}.
    [[nodiscard]] term message() const { return tuple{hello, 42}; }
    [[nodiscard]] bytes message_ext() const {
        return cat({tuple_of(2), atom_ext("hello"), small(42)});
    }
};

/// One control message, the flags it is written under (besides the framing) and what it
/// must become.
struct control_case {
    std::string name;  // also the case's name in control.escript
    std::uint64_t flags;
    control_message message;
    std::optional<bytes> control;  // nullopt: nothing is written
    std::optional<bytes> payload;
};

[[nodiscard]] inline std::vector<control_case> all_cases(atom_table& atoms) {
    const values v(atoms);
    const auto A = [](std::string_view name) { return atom_ext(name); };
    const bytes local = pid_ext(v.local);
    const bytes remote = pid_ext(v.remote);
    const bytes ref = ref_ext(v.ref);
    const bytes msg = v.message_ext();
    const std::uint64_t none = 0;
    const atom module = atoms("lists");
    const atom function = atoms("seq");
    const atom link = atoms("link");
    const atom monitor = atoms("monitor");
    const atom badarg = atoms("badarg");
    const term args = list{1, 3};  // a string on the wire: STRING_EXT
    const term mixed = list{term(1), term(binary(std::string_view("x")))};
    std::vector<control_case> cases = {
        {"link",
         none,
         link_message{v.local, v.remote},
         cat({tuple_of(3), small(1), local, remote}),
         {}},
        {"send", none, send_message{std::nullopt, v.remote, v.message()},
         cat({tuple_of(3), small(2), A(""), remote}), msg},
        {"send_with_sender_not_negotiated", none, send_message{v.local, v.remote, v.message()},
         cat({tuple_of(3), small(2), A(""), remote}), msg},
        {"send_sender", DFLAG_SEND_SENDER, send_message{v.local, v.remote, v.message()},
         cat({tuple_of(3), small(22), local, remote}), msg},
        {"send_sender_negotiated_without_from", DFLAG_SEND_SENDER,
         send_message{std::nullopt, v.remote, v.message()},
         cat({tuple_of(3), small(2), A(""), remote}), msg},
        {"reg_send", none, reg_send_message{v.local, v.net_kernel, v.message()},
         cat({tuple_of(4), small(6), local, A(""), A("net_kernel")}), msg},
        {"exit",
         none,
         exit_message{v.local, v.remote, v.normal, false},
         cat({tuple_of(4), small(3), local, remote, A("normal")}),
         {}},
        {"exit2",
         none,
         exit_message{v.local, v.remote, v.normal, true},
         cat({tuple_of(4), small(8), local, remote, A("normal")}),
         {}},
        {"payload_exit", DFLAG_EXIT_PAYLOAD, exit_message{v.local, v.remote, v.normal, false},
         cat({tuple_of(3), small(24), local, remote}), A("normal")},
        {"payload_exit2", DFLAG_EXIT_PAYLOAD, exit_message{v.local, v.remote, v.normal, true},
         cat({tuple_of(3), small(26), local, remote}), A("normal")},
        {"unlink_id",
         DFLAG_UNLINK_ID,
         unlink_message{7, v.local, v.remote, false},
         cat({tuple_of(4), small(35), small(7), local, remote}),
         {}},
        {"unlink_id_ack",
         DFLAG_UNLINK_ID,
         unlink_message{300, v.local, v.remote, true},
         cat({tuple_of(4), small(36), wire({98, 0, 0, 1, 0x2c}), local, remote}),
         {}},
        {"unlink_id_largest",
         DFLAG_UNLINK_ID,
         unlink_message{UINT64_MAX, v.local, v.remote, false},
         cat({tuple_of(4), small(35), wire({110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 255}),
              local, remote}),
         {}},
        {"unlink_id_beyond_int64",
         DFLAG_UNLINK_ID,
         unlink_message{std::uint64_t{1} << 63, v.local, v.remote, false},
         cat({tuple_of(4), small(35), wire({110, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}), local, remote}),
         {}},
        {"unlink_old",
         none,
         unlink_message{7, v.local, v.remote, false},
         cat({tuple_of(3), small(4), local, remote}),
         {}},
        {"unlink_ack_old", none, unlink_message{7, v.local, v.remote, true}, {}, {}},
        {"monitor_p",
         none,
         monitor_message{v.local, v.remote, v.ref, false},
         cat({tuple_of(4), small(19), local, remote, ref}),
         {}},
        {"monitor_p_name",
         none,
         monitor_message{v.local, v.net_kernel, v.ref, false},
         cat({tuple_of(4), small(19), local, A("net_kernel"), ref}),
         {}},
        {"demonitor_p",
         none,
         monitor_message{v.local, v.remote, v.ref, true},
         cat({tuple_of(4), small(20), local, remote, ref}),
         {}},
        {"monitor_p_exit",
         none,
         monitor_exit_message{v.local, v.remote, v.ref, v.noproc},
         cat({tuple_of(5), small(21), local, remote, ref, A("noproc")}),
         {}},
        {"monitor_p_exit_name",
         none,
         monitor_exit_message{v.net_kernel, v.remote, v.ref, v.noproc},
         cat({tuple_of(5), small(21), A("net_kernel"), remote, ref, A("noproc")}),
         {}},
        {"payload_monitor_p_exit", DFLAG_EXIT_PAYLOAD,
         monitor_exit_message{v.local, v.remote, v.ref, v.noproc},
         cat({tuple_of(4), small(28), local, remote, ref}), A("noproc")},
        {"group_leader",
         none,
         group_leader_message{v.local, v.remote},
         cat({tuple_of(3), small(7), local, remote}),
         {}},
        {"spawn_request", DFLAG_SPAWN,
         spawn_request_message{v.ref, v.local, v.remote, module, function, 2,
                               list{term(link), term(monitor)}, args},
         cat({tuple_of(6), small(29), ref, local, remote, tuple_of(3), A("lists"), A("seq"),
              small(2), wire({108, 0, 0, 0, 2}), A("link"), A("monitor"), wire({106})}),
         wire({107, 0, 2, 1, 3})},
        {"spawn_request_no_options", DFLAG_SPAWN,
         spawn_request_message{v.ref, v.local, v.remote, module, function, 2, list{}, mixed},
         cat({tuple_of(6), small(29), ref, local, remote, tuple_of(3), A("lists"), A("seq"),
              small(2), wire({106})}),
         cat({wire({108, 0, 0, 0, 2}), small(1), wire({109, 0, 0, 0, 1, 'x', 106})})},
        {"spawn_reply",
         DFLAG_SPAWN,
         spawn_reply_message{v.ref, v.remote,
                             ERTS_DIST_SPAWN_FLAG_LINK | ERTS_DIST_SPAWN_FLAG_MONITOR, v.spawned},
         cat({tuple_of(5), small(31), ref, remote, small(3), pid_ext(v.spawned)}),
         {}},
        {"spawn_reply_error",
         DFLAG_SPAWN,
         spawn_reply_message{v.ref, v.remote, 0, badarg},
         cat({tuple_of(5), small(31), ref, remote, small(0), A("badarg")}),
         {}},
        {"alias_send", DFLAG_ALIAS, alias_send_message{v.local, v.ref, v.message()},
         cat({tuple_of(3), small(33), local, ref}), msg},
    };
    return cases;
}

}  // namespace vdist::dist::test_cases
