// Control messages: their error category, parse_control (a decoded control tuple to a typed
// message), packet_writer (a typed message to a packet) and the ticker.

#include "vdist/dist/control.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "vdist/dist/etf_encoder.hpp"

namespace vdist::dist {
namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.packet"; }

    std::string message(int value) const override {
        switch (static_cast<packet_errc>(value)) {
            case packet_errc::packet_too_large:
                return "packet larger than the limit";
            case packet_errc::bad_framing:
                return "packet framing does not match the negotiated flags";
            case packet_errc::bad_atom_cache:
                return "malformed atom cache header, or a reference to an empty cache entry";
            case packet_errc::bad_term:
                return "control or message term does not decode";
            case packet_errc::bad_control:
                return "invalid control message";
            case packet_errc::missing_payload:
                return "control message without its message term";
            case packet_errc::unexpected_payload:
                return "message term after a control message that takes none";
            case packet_errc::bad_fragment:
                return "fragment of no open sequence, or out of order";
            case packet_errc::too_many_fragments:
                return "more fragmented messages or bytes in flight than the limits allow";
            case packet_errc::not_encodable:
                return "term not encodable, or packet too large to send";
        }
        return "unknown packet error " + std::to_string(value);
    }
};

// -- parse_control -------------------------------------------------------------------------------

// Whether a control message carries a message term after its tuple (the "+ Msg" of
// erl_dist_protocol), by opcode.
[[nodiscard]] constexpr bool takes_payload(dop op) noexcept {
    switch (op) {
        case dop::SEND:
        case dop::SEND_TT:
        case dop::REG_SEND:
        case dop::REG_SEND_TT:
        case dop::SEND_SENDER:
        case dop::SEND_SENDER_TT:
        case dop::PAYLOAD_EXIT:
        case dop::PAYLOAD_EXIT_TT:
        case dop::PAYLOAD_EXIT2:
        case dop::PAYLOAD_EXIT2_TT:
        case dop::PAYLOAD_MONITOR_P_EXIT:
        case dop::SPAWN_REQUEST:
        case dop::SPAWN_REQUEST_TT:
        case dop::ALIAS_SEND:
        case dop::ALIAS_SEND_TT:
            return true;
        default:
            return false;
    }
}

// The name and tuple size of each opcode vdist receives (0: not received).
struct opcode_shape {
    std::string_view name;
    std::size_t arity;
};

[[nodiscard]] constexpr opcode_shape shape_of(dop op) noexcept {
    switch (op) {
        case dop::LINK:
            return {"LINK", 3};
        case dop::SEND:
            return {"SEND", 3};
        case dop::EXIT:
            return {"EXIT", 4};
        case dop::UNLINK:
            return {"UNLINK", 3};
        case dop::REG_SEND:
            return {"REG_SEND", 4};
        case dop::GROUP_LEADER:
            return {"GROUP_LEADER", 3};
        case dop::EXIT2:
            return {"EXIT2", 4};
        case dop::SEND_TT:
            return {"SEND_TT", 4};
        case dop::EXIT_TT:
            return {"EXIT_TT", 5};
        case dop::REG_SEND_TT:
            return {"REG_SEND_TT", 5};
        case dop::EXIT2_TT:
            return {"EXIT2_TT", 5};
        case dop::MONITOR_P:
            return {"MONITOR_P", 4};
        case dop::DEMONITOR_P:
            return {"DEMONITOR_P", 4};
        case dop::MONITOR_P_EXIT:
            return {"MONITOR_P_EXIT", 5};
        case dop::SEND_SENDER:
            return {"SEND_SENDER", 3};
        case dop::SEND_SENDER_TT:
            return {"SEND_SENDER_TT", 4};
        case dop::PAYLOAD_EXIT:
            return {"PAYLOAD_EXIT", 3};
        case dop::PAYLOAD_EXIT_TT:
            return {"PAYLOAD_EXIT_TT", 4};
        case dop::PAYLOAD_EXIT2:
            return {"PAYLOAD_EXIT2", 3};
        case dop::PAYLOAD_EXIT2_TT:
            return {"PAYLOAD_EXIT2_TT", 4};
        case dop::PAYLOAD_MONITOR_P_EXIT:
            return {"PAYLOAD_MONITOR_P_EXIT", 4};
        case dop::SPAWN_REQUEST:
            return {"SPAWN_REQUEST", 6};
        case dop::SPAWN_REQUEST_TT:
            return {"SPAWN_REQUEST_TT", 7};
        case dop::SPAWN_REPLY:
            return {"SPAWN_REPLY", 5};
        case dop::SPAWN_REPLY_TT:
            return {"SPAWN_REPLY_TT", 6};
        case dop::ALIAS_SEND:
            return {"ALIAS_SEND", 3};
        case dop::ALIAS_SEND_TT:
            return {"ALIAS_SEND_TT", 4};
        case dop::UNLINK_ID:
            return {"UNLINK_ID", 4};
        case dop::UNLINK_ID_ACK:
            return {"UNLINK_ID_ACK", 4};
        case dop::NODE_LINK:  // never sent by OTP since R6; refused like an unknown opcode
            break;
    }
    return {{}, 0};
}

using parse_result = std::expected<control_message, packet_error>;

[[nodiscard]] std::unexpected<packet_error> refuse(packet_errc code, std::string detail) {
    return std::unexpected(packet_error{code, std::move(detail)});
}

// The fields of one control tuple, each checked for its type; a wrong one fails with
// bad_control "<OPCODE>: <field> is not <what>".
class fields {
  public:
    fields(std::string_view op, const std::vector<term>& elements) noexcept
        : op_(op), elements_(elements) {}

    [[nodiscard]] std::expected<pid, packet_error> pid_at(std::size_t i,
                                                          std::string_view field) const {
        if (const auto* p = elements_[i].get_if<pid>()) {
            return *p;
        }
        return wrong(field, "a pid");
    }
    [[nodiscard]] std::expected<atom, packet_error> atom_at(std::size_t i,
                                                            std::string_view field) const {
        if (const auto* a = elements_[i].get_if<atom>()) {
            return *a;
        }
        return wrong(field, "an atom");
    }
    [[nodiscard]] std::expected<reference, packet_error> reference_at(
        std::size_t i, std::string_view field) const {
        if (const auto* r = elements_[i].get_if<reference>()) {
            return *r;
        }
        return wrong(field, "a reference");
    }
    [[nodiscard]] std::expected<std::variant<pid, atom>, packet_error> process_at(
        std::size_t i, std::string_view field) const {
        if (const auto* p = elements_[i].get_if<pid>()) {
            return *p;
        }
        if (const auto* a = elements_[i].get_if<atom>()) {
            return *a;
        }
        return wrong(field, "a pid or an atom");
    }
    // An integer 0..2^64-1 (1..2^64-1 if `nonzero`).
    [[nodiscard]] std::expected<std::uint64_t, packet_error> unsigned_at(std::size_t i,
                                                                         std::string_view field,
                                                                         bool nonzero) const {
        const term& t = elements_[i];
        std::optional<std::uint64_t> value;
        if (const auto* small = t.get_if<std::int64_t>(); small != nullptr && *small >= 0) {
            value = static_cast<std::uint64_t>(*small);
        } else if (const auto* big = t.get_if<big_integer>();
                   big != nullptr && !big->negative && big->magnitude.size() <= 8) {
            std::uint64_t v = 0;
            for (std::size_t d = big->magnitude.size(); d-- > 0;) {
                v = (v << 8) | big->magnitude[d];
            }
            value = v;
        }
        if (!value || (nonzero && *value == 0)) {
            return wrong(field, nonzero ? "an integer in 1..2^64-1" : "an integer in 0..2^64-1");
        }
        return *value;
    }
    [[nodiscard]] const term& at(std::size_t i) const noexcept { return elements_[i]; }

    [[nodiscard]] std::unexpected<packet_error> wrong(std::string_view field,
                                                      std::string_view what) const {
        return refuse(packet_errc::bad_control, std::string(op_) + ": " + std::string(field) +
                                                    " is not " + std::string(what));
    }

  private:
    std::string_view op_;
    const std::vector<term>& elements_;
};

// Unwraps an expected field into `var`, or returns its error from the enclosing function.
#define VDIST_FIELD(var, expr)                       \
    auto var##_field = (expr);                       \
    if (!var##_field) {                              \
        return std::unexpected(var##_field.error()); \
    }                                                \
    auto var = std::move(*var##_field)

// The length of a proper list, or nullopt.
[[nodiscard]] std::optional<std::size_t> proper_length(const term& t) noexcept {
    const auto* l = t.get_if<list>();
    if (l == nullptr || !l->is_proper()) {
        return std::nullopt;
    }
    return l->elements.size();
}

[[nodiscard]] parse_result parse_link_like(dop op, const fields& f) {
    VDIST_FIELD(from, f.pid_at(1, "From"));
    VDIST_FIELD(to, f.pid_at(2, "To"));
    if (op == dop::LINK) {
        return link_message{std::move(from), std::move(to)};
    }
    if (op == dop::GROUP_LEADER) {
        return group_leader_message{std::move(from), std::move(to)};
    }
    return unlink_message{0, std::move(from), std::move(to), false};  // the old UNLINK
}

[[nodiscard]] parse_result parse_tuple(dop op, std::string_view name, const fields& f,
                                       std::optional<term>& payload) {
    switch (op) {
        case dop::LINK:
        case dop::GROUP_LEADER:
        case dop::UNLINK:
            return parse_link_like(op, f);
        case dop::SEND:
        case dop::SEND_TT: {
            // {2, Unused, To}: Unused was the cookie before OTP 21, '' since; not checked.
            VDIST_FIELD(to, f.pid_at(2, "To"));
            return send_message{std::nullopt, std::move(to), std::move(*payload)};
        }
        case dop::SEND_SENDER:
        case dop::SEND_SENDER_TT: {
            VDIST_FIELD(from, f.pid_at(1, "From"));
            VDIST_FIELD(to, f.pid_at(2, "To"));
            return send_message{std::move(from), std::move(to), std::move(*payload)};
        }
        case dop::REG_SEND:
        case dop::REG_SEND_TT: {
            VDIST_FIELD(from, f.pid_at(1, "From"));
            VDIST_FIELD(to_name, f.atom_at(3, "ToName"));
            return reg_send_message{std::move(from), to_name, std::move(*payload)};
        }
        case dop::EXIT:
        case dop::EXIT2:
        case dop::EXIT_TT:
        case dop::EXIT2_TT: {
            VDIST_FIELD(from, f.pid_at(1, "From"));
            VDIST_FIELD(to, f.pid_at(2, "To"));
            // The trace token, if any, comes before the reason: {13, From, To, Token, Reason}.
            const std::size_t reason = (op == dop::EXIT || op == dop::EXIT2) ? 3 : 4;
            return exit_message{std::move(from), std::move(to), f.at(reason),
                                op == dop::EXIT2 || op == dop::EXIT2_TT};
        }
        case dop::PAYLOAD_EXIT:
        case dop::PAYLOAD_EXIT_TT:
        case dop::PAYLOAD_EXIT2:
        case dop::PAYLOAD_EXIT2_TT: {
            VDIST_FIELD(from, f.pid_at(1, "From"));
            VDIST_FIELD(to, f.pid_at(2, "To"));
            return exit_message{std::move(from), std::move(to), std::move(*payload),
                                op == dop::PAYLOAD_EXIT2 || op == dop::PAYLOAD_EXIT2_TT};
        }
        case dop::UNLINK_ID:
        case dop::UNLINK_ID_ACK: {
            VDIST_FIELD(id, f.unsigned_at(1, "Id", true));
            VDIST_FIELD(from, f.pid_at(2, "From"));
            VDIST_FIELD(to, f.pid_at(3, "To"));
            return unlink_message{id, std::move(from), std::move(to), op == dop::UNLINK_ID_ACK};
        }
        case dop::MONITOR_P:
        case dop::DEMONITOR_P: {
            VDIST_FIELD(from, f.pid_at(1, "From"));
            VDIST_FIELD(to, f.process_at(2, "To"));
            VDIST_FIELD(ref, f.reference_at(3, "Ref"));
            return monitor_message{std::move(from), std::move(to), std::move(ref),
                                   op == dop::DEMONITOR_P};
        }
        case dop::MONITOR_P_EXIT:
        case dop::PAYLOAD_MONITOR_P_EXIT: {
            VDIST_FIELD(from, f.process_at(1, "From"));
            VDIST_FIELD(to, f.pid_at(2, "To"));
            VDIST_FIELD(ref, f.reference_at(3, "Ref"));
            term reason = op == dop::MONITOR_P_EXIT ? f.at(4) : std::move(*payload);
            return monitor_exit_message{std::move(from), std::move(to), std::move(ref),
                                        std::move(reason)};
        }
        case dop::SPAWN_REQUEST:
        case dop::SPAWN_REQUEST_TT: {
            VDIST_FIELD(request, f.reference_at(1, "ReqId"));
            VDIST_FIELD(from, f.pid_at(2, "From"));
            VDIST_FIELD(group_leader, f.pid_at(3, "GroupLeader"));
            const auto* mfa = f.at(4).get_if<tuple>();
            if (mfa == nullptr || mfa->elements.size() != 3) {
                return f.wrong("{Module, Function, Arity}", "a 3-tuple");
            }
            const fields mfa_fields(name, mfa->elements);
            VDIST_FIELD(module, mfa_fields.atom_at(0, "Module"));
            VDIST_FIELD(function, mfa_fields.atom_at(1, "Function"));
            VDIST_FIELD(arity, mfa_fields.unsigned_at(2, "Arity", false));
            if (!proper_length(f.at(5))) {
                return f.wrong("OptList", "a proper list");
            }
            const auto arguments = proper_length(*payload);
            if (!arguments || *arguments != arity) {
                return f.wrong("ArgList", "a proper list of Arity elements");
            }
            return spawn_request_message{std::move(request),
                                         std::move(from),
                                         std::move(group_leader),
                                         module,
                                         function,
                                         arity,
                                         f.at(5),
                                         std::move(*payload)};
        }
        case dop::SPAWN_REPLY:
        case dop::SPAWN_REPLY_TT: {
            VDIST_FIELD(request, f.reference_at(1, "ReqId"));
            VDIST_FIELD(to, f.pid_at(2, "To"));
            VDIST_FIELD(flags, f.unsigned_at(3, "Flags", false));
            if (!f.at(4).is<pid>() && !f.at(4).is<atom>()) {
                return f.wrong("Result", "a pid or an atom");
            }
            return spawn_reply_message{std::move(request), std::move(to), flags, f.at(4)};
        }
        case dop::ALIAS_SEND:
        case dop::ALIAS_SEND_TT: {
            VDIST_FIELD(from, f.pid_at(1, "From"));
            VDIST_FIELD(alias, f.reference_at(2, "Alias"));
            return alias_send_message{std::move(from), std::move(alias), std::move(*payload)};
        }
        case dop::NODE_LINK:
            break;
    }
    return refuse(packet_errc::bad_control, "unknown opcode");  // shape_of() let it through
}

#undef VDIST_FIELD

}  // namespace

const std::error_category& packet_category() noexcept {
    static const category instance;
    return instance;
}

parse_result parse_control(const term& control, std::optional<term> payload) {
    const auto* elements = control.get_if<tuple>();
    const std::int64_t* opcode = elements != nullptr && !elements->elements.empty()
                                     ? elements->elements.front().get_if<std::int64_t>()
                                     : nullptr;
    if (opcode == nullptr) {
        return refuse(packet_errc::bad_control, "control message is not a tuple with an opcode");
    }
    const auto op = static_cast<dop>(*opcode);
    const opcode_shape shape = *opcode > 0 && *opcode <= 255 ? shape_of(op) : opcode_shape{{}, 0};
    if (shape.arity == 0) {
        return refuse(packet_errc::bad_control,
                      "unknown or unsupported opcode " + std::to_string(*opcode));
    }
    const std::string name(shape.name);
    if (elements->elements.size() != shape.arity) {
        return refuse(packet_errc::bad_control,
                      name + ": a tuple of " + std::to_string(elements->elements.size()) +
                          " elements, not " + std::to_string(shape.arity));
    }
    if (takes_payload(op) && !payload) {
        return refuse(packet_errc::missing_payload, name + ": no message term");
    }
    if (!takes_payload(op) && payload) {
        return refuse(packet_errc::unexpected_payload, name + ": a message term after it");
    }
    return parse_tuple(op, shape.name, fields(shape.name, elements->elements), payload);
}

// -- packet_writer -------------------------------------------------------------------------------

namespace {

// Writes the control tuple of one message (and, through `payload`, which term follows it).
class tuple_writer {
  public:
    tuple_writer(etf_writer& out, std::uint64_t flags) noexcept : out_(out), flags_(flags) {}

    // The term written after the tuple, if any (set by the visit).
    const term* payload = nullptr;

    [[nodiscard]] std::expected<void, etf_errc> operator()(const link_message& m) {
        return pair(dop::LINK, m.from, m.to);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const group_leader_message& m) {
        return pair(dop::GROUP_LEADER, m.from, m.to);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const send_message& m) {
        payload = &m.message;
        out_.tuple_header(3);
        if (m.from && (flags_ & DFLAG_SEND_SENDER) != 0) {
            opcode(dop::SEND_SENDER);
            out_.pid(*m.from);
        } else {
            opcode(dop::SEND);
            out_.atom(atom{});
        }
        out_.pid(m.to);
        return {};
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const reg_send_message& m) {
        payload = &m.message;
        out_.tuple_header(4);
        opcode(dop::REG_SEND);
        out_.pid(m.from);
        out_.atom(atom{});
        out_.atom(m.to_name);
        return {};
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const exit_message& m) {
        if ((flags_ & DFLAG_EXIT_PAYLOAD) != 0) {
            payload = &m.reason;
            return pair(m.exit2 ? dop::PAYLOAD_EXIT2 : dop::PAYLOAD_EXIT, m.from, m.to);
        }
        out_.tuple_header(4);
        opcode(m.exit2 ? dop::EXIT2 : dop::EXIT);
        out_.pid(m.from);
        out_.pid(m.to);
        return out_.term(m.reason);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const unlink_message& m) {
        if ((flags_ & DFLAG_UNLINK_ID) == 0) {
            return pair(dop::UNLINK, m.from, m.to);  // acks never get here (write())
        }
        out_.tuple_header(4);
        opcode(m.ack ? dop::UNLINK_ID_ACK : dop::UNLINK_ID);
        if (auto written = unsigned_integer(m.id); !written) {
            return written;
        }
        out_.pid(m.from);
        out_.pid(m.to);
        return {};
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const monitor_message& m) {
        out_.tuple_header(4);
        opcode(m.demonitor ? dop::DEMONITOR_P : dop::MONITOR_P);
        out_.pid(m.from);
        process(m.to);
        return out_.reference(m.ref);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const monitor_exit_message& m) {
        const bool separate = (flags_ & DFLAG_EXIT_PAYLOAD) != 0;
        out_.tuple_header(separate ? 4 : 5);
        opcode(separate ? dop::PAYLOAD_MONITOR_P_EXIT : dop::MONITOR_P_EXIT);
        process(m.from);
        out_.pid(m.to);
        if (auto written = out_.reference(m.ref); !written) {
            return written;
        }
        if (separate) {
            payload = &m.reason;
            return {};
        }
        return out_.term(m.reason);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const spawn_request_message& m) {
        payload = &m.arguments;
        out_.tuple_header(6);
        opcode(dop::SPAWN_REQUEST);
        if (auto written = out_.reference(m.request); !written) {
            return written;
        }
        out_.pid(m.from);
        out_.pid(m.group_leader);
        out_.tuple_header(3);
        out_.atom(m.module);
        out_.atom(m.function);
        if (auto written = unsigned_integer(m.arity); !written) {
            return written;
        }
        return out_.term(m.options);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const spawn_reply_message& m) {
        out_.tuple_header(5);
        opcode(dop::SPAWN_REPLY);
        if (auto written = out_.reference(m.request); !written) {
            return written;
        }
        out_.pid(m.to);
        if (auto written = unsigned_integer(m.flags); !written) {
            return written;
        }
        return out_.term(m.result);
    }
    [[nodiscard]] std::expected<void, etf_errc> operator()(const alias_send_message& m) {
        payload = &m.message;
        out_.tuple_header(3);
        opcode(dop::ALIAS_SEND);
        out_.pid(m.from);
        return out_.reference(m.alias);
    }

  private:
    void opcode(dop op) { out_.integer(static_cast<std::int64_t>(op)); }
    // {Op, From, To} of two pids.
    [[nodiscard]] std::expected<void, etf_errc> pair(dop op, const pid& from, const pid& to) {
        out_.tuple_header(3);
        opcode(op);
        out_.pid(from);
        out_.pid(to);
        return {};
    }
    void process(const std::variant<pid, atom>& p) {
        if (const auto* id = std::get_if<pid>(&p)) {
            out_.pid(*id);
        } else {
            out_.atom(std::get<atom>(p));
        }
    }
    // An unsigned 64-bit value: above int64's range, a SMALL_BIG_EXT as OTP writes it.
    [[nodiscard]] std::expected<void, etf_errc> unsigned_integer(std::uint64_t value) {
        if (value <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            out_.integer(static_cast<std::int64_t>(value));
            return {};
        }
        big_integer big;
        big.magnitude.resize(8);
        for (auto& digit : big.magnitude) {
            digit = static_cast<std::uint8_t>(value);
            value >>= 8;
        }
        return out_.big(big);
    }

    etf_writer& out_;
    std::uint64_t flags_;
};

}  // namespace

packet_writer::packet_writer(std::uint64_t flags) : flags_(flags), empty_() {}

std::expected<void, packet_error> packet_writer::write(std::vector<std::byte>& out,
                                                       const control_message& message) {
    if (const auto* unlink = std::get_if<unlink_message>(&message);
        unlink != nullptr && unlink->ack && (flags_ & DFLAG_UNLINK_ID) == 0) {
        return {};  // the old link protocol has no acks
    }
    const std::size_t start = out.size();
    const bool header = uses_dist_header(flags_);
    // Len:32 (filled in below), then `131 68 0` (a distribution header with no atom cache
    // references) or `112 131` (pass-through, the control term's version byte).
    out.resize(start + 7);
    std::byte* framing = out.data() + start + 4;
    if (header) {
        framing[0] = std::byte{131};
        framing[1] = std::byte{DIST_HEADER};
        framing[2] = std::byte{0};
    } else {
        framing[0] = std::byte{PASS_THROUGH};
        framing[1] = std::byte{131};
        out.resize(start + 6);
    }
    std::expected<void, etf_errc> written;
    {
        etf_writer body(out);
        tuple_writer tuple(body, flags_);
        written = std::visit(tuple, message);
        if (written && tuple.payload != nullptr) {
            if (!header) {
                body.version();
            }
            written = body.term(*tuple.payload);
        }
    }
    const std::size_t length = out.size() - start - 4;
    if (!written || length > std::numeric_limits<std::uint32_t>::max()) {
        out.resize(start);
        return std::unexpected(
            packet_error{packet_errc::not_encodable,
                         written ? "packet of " + std::to_string(length) + " bytes, over 4 GiB"
                                 : make_error_code(written.error()).message()});
    }
    const std::uint32_t prefix = std::byteswap(static_cast<std::uint32_t>(length));
    std::memcpy(out.data() + start, &prefix, sizeof prefix);
    return {};
}

void packet_writer::write_tick(std::vector<std::byte>& out) {
    out.resize(out.size() + 4);  // zeroed: a zero length
}

// -- ticker --------------------------------------------------------------------------------------

ticker::ticker(duration net_ticktime, unsigned intensity)
    : period_(net_ticktime / std::max(intensity, 1u)), intensity_(std::max(intensity, 1u)) {}

ticker::action ticker::poll() noexcept {
    // dist_util:con_loop/2: a read resets the count of silent periods; `intensity` silent
    // periods in a row are a dead peer. A tick goes out when we wrote nothing for a period.
    if (read_since_poll_) {
        silent_polls_ = 0;
    } else {
        ++silent_polls_;
    }
    const bool wrote = written_since_poll_;
    read_since_poll_ = false;
    written_since_poll_ = false;
    if (silent_polls_ >= intensity_) {
        return action::timed_out;
    }
    return wrote ? action::none : action::send_tick;
}

}  // namespace vdist::dist
