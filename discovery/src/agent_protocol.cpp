#include "vdist/discovery/agent_protocol.hpp"

#include <cstring>
#include <string_view>

#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_encoder.hpp"

namespace vdist::discovery {
namespace {

using dist::term;

class agent_category_impl final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.agent"; }
    std::string message(int value) const override {
        switch (static_cast<agent_errc>(value)) {
            case agent_errc::frame_too_large:
                return "first channel: frame length out of range";
            case agent_errc::bad_term:
                return "first channel: frame is not an external term";
            case agent_errc::unknown_message:
                return "first channel: unknown message";
            case agent_errc::bad_field:
                return "first channel: missing or mistyped field";
            case agent_errc::not_encodable:
                return "first channel: message not encodable";
        }
        return "first channel: unknown error";
    }
};

dist::atom atom_of(dist::atom_table& atoms, std::string_view text) {
    // Every atom here is a literal of this file or a node name the agent made: valid.
    return atoms.intern(text).value_or(dist::atom{});
}

term bin(std::string_view text) {
    return dist::binary(text);
}

std::string_view text_of(const dist::binary& b) {
    return {reinterpret_cast<const char*>(b.bytes().data()), b.size()};
}

std::optional<std::string_view> atom_text(const term& t) {
    if (const auto* a = t.get_if<dist::atom>()) {
        return a->text();
    }
    return std::nullopt;
}

const dist::tuple* tagged(const term& t, std::string_view tag, std::size_t arity) {
    const auto* tup = t.get_if<dist::tuple>();
    if (tup == nullptr || tup->elements.size() != arity) {
        return nullptr;
    }
    return atom_text(tup->elements[0]) == tag ? tup : nullptr;
}

std::optional<std::string> string_field(const dist::map& m, std::string_view key,
                                        dist::atom_table& atoms) {
    const term* value = m.find(term(atom_of(atoms, key)));
    if (value == nullptr) {
        return std::nullopt;
    }
    if (const auto* b = value->get_if<dist::binary>()) {
        return std::string(text_of(*b));
    }
    if (const auto a = atom_text(*value)) {
        return std::string(*a);
    }
    return std::nullopt;
}

std::optional<std::int64_t> int_field(const dist::map& m, std::string_view key,
                                      dist::atom_table& atoms) {
    const term* value = m.find(term(atom_of(atoms, key)));
    if (value == nullptr || !value->is<std::int64_t>()) {
        return std::nullopt;
    }
    return *value->get_if<std::int64_t>();
}

std::optional<std::uint64_t> counter(const term& t) {
    const auto* i = t.get_if<std::int64_t>();
    if (i == nullptr || *i < 0) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(*i);
}

std::unexpected<std::error_code> fail(agent_errc e) {
    return std::unexpected(make_error_code(e));
}

std::string_view wait_name(node_wait w) {
    switch (w) {
        case node_wait::busy:
            return "busy";
        case node_wait::spin:
            return "spin";
        case node_wait::block:
            return "block";
    }
    return "block";
}

term term_of(const node_config_message& c, dist::atom_table& atoms) {
    auto key = [&](std::string_view k) { return term(atom_of(atoms, k)); };
    return dist::tuple{atom_of(atoms, "config"),
                       dist::map({{key("name"), atom_of(atoms, c.name)},
                                  {key("cookie"), bin(c.cookie)},
                                  {key("domid"), static_cast<std::int64_t>(c.domid)},
                                  {key("host"), bin(c.host)},
                                  {key("store"), bin(c.store)},
                                  {key("run_dir"), bin(c.run_dir)},
                                  {key("ticktime"), c.ticktime_ms},
                                  {key("wait"), atom_of(atoms, wait_name(c.wait))}})};
}

term term_of(const domain_message& d, dist::atom_table& atoms) {
    auto key = [&](std::string_view k) { return term(atom_of(atoms, k)); };
    return dist::tuple{atom_of(atoms, "domain"),
                       dist::map({{key("domid"), static_cast<std::int64_t>(d.domid)},
                                  {key("store"), bin(d.store)},
                                  {key("run_dir"), bin(d.run_dir)}})};
}

bool valid_domid(std::optional<std::int64_t> domid) {
    return domid && *domid > 0 && *domid <= 0x7fff;
}

std::expected<agent_to_node, std::error_code> domain_from(const term& body) {
    const auto* m = body.get_if<dist::map>();
    if (m == nullptr) {
        return fail(agent_errc::bad_field);
    }
    dist::atom_table atoms(16);
    const auto domid = int_field(*m, "domid", atoms);
    auto store = string_field(*m, "store", atoms);
    auto run_dir = string_field(*m, "run_dir", atoms);
    if (!valid_domid(domid) || !store || !run_dir) {
        return fail(agent_errc::bad_field);
    }
    return domain_message{static_cast<std::uint32_t>(*domid), std::move(*store),
                          std::move(*run_dir)};
}

std::expected<agent_to_node, std::error_code> config_from(const term& body) {
    const auto* m = body.get_if<dist::map>();
    if (m == nullptr) {
        return fail(agent_errc::bad_field);
    }
    // Keys are compared by text, so a private table is enough for the lookups.
    dist::atom_table atoms(64);
    node_config_message c;
    const term* name = m->find(term(atom_of(atoms, "name")));
    const auto name_text = name != nullptr ? atom_text(*name) : std::nullopt;
    auto cookie = string_field(*m, "cookie", atoms);
    auto host = string_field(*m, "host", atoms);
    auto store = string_field(*m, "store", atoms);
    auto run_dir = string_field(*m, "run_dir", atoms);
    auto domid = int_field(*m, "domid", atoms);
    auto ticktime = int_field(*m, "ticktime", atoms);
    auto wait = string_field(*m, "wait", atoms);
    if (!name_text || name_text->find('@') == std::string_view::npos || !cookie || !host ||
        !store || !run_dir || !valid_domid(domid) || !ticktime || *ticktime < 1000 ||
        *ticktime > 3'600'000 || !wait) {
        return fail(agent_errc::bad_field);
    }
    c.name = std::string(*name_text);
    c.cookie = std::move(*cookie);
    c.host = std::move(*host);
    c.store = std::move(*store);
    c.run_dir = std::move(*run_dir);
    c.domid = static_cast<std::uint32_t>(*domid);
    c.ticktime_ms = *ticktime;
    if (*wait == "busy") {
        c.wait = node_wait::busy;
    } else if (*wait == "spin") {
        c.wait = node_wait::spin;
    } else if (*wait == "block") {
        c.wait = node_wait::block;
    } else {
        return fail(agent_errc::bad_field);
    }
    return c;
}

}  // namespace

const std::error_category& agent_category() noexcept {
    static const agent_category_impl instance;
    return instance;
}

std::error_code make_error_code(agent_errc e) noexcept {
    return {static_cast<int>(e), agent_category()};
}

term to_term(const agent_to_node& message, dist::atom_table& atoms) {
    auto a = [&](std::string_view text) { return term(atom_of(atoms, text)); };
    return std::visit(
        [&](const auto& m) -> term {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, node_config_message> ||
                          std::is_same_v<T, domain_message>) {
                return term_of(m, atoms);
            } else if constexpr (std::is_same_v<T, stats_request>) {
                return dist::tuple{a("stats"), m.ref};
            } else if constexpr (std::is_same_v<T, assigned_reply>) {
                return dist::tuple{a("assigned"), m.ref, a(m.node_name),
                                   static_cast<std::int64_t>(m.domid)};
            } else if constexpr (std::is_same_v<T, spawned_reply>) {
                return dist::tuple{a("spawned"), m.ref, a(m.node_name), m.echo};
            } else if constexpr (std::is_same_v<T, spawn_failed_reply>) {
                return dist::tuple{a("spawn_failed"), m.ref, bin(m.reason)};
            } else {
                return a("stop");
            }
        },
        message);
}

term to_term(const node_to_agent& message, dist::atom_table& atoms) {
    auto a = [&](std::string_view text) { return term(atom_of(atoms, text)); };
    return std::visit(
        [&](const auto& m) -> term {
            using T = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<T, ready_message>) {
                return dist::tuple{a("ready"), m.echo};
            } else if constexpr (std::is_same_v<T, stats_reply>) {
                std::vector<term> rows;
                rows.reserve(m.connections.size());
                for (const auto& c : m.connections) {
                    rows.emplace_back(dist::tuple{a(c.peer), a(c.carrier),
                                                  static_cast<std::int64_t>(c.messages_in),
                                                  static_cast<std::int64_t>(c.messages_out),
                                                  static_cast<std::int64_t>(c.bytes_in),
                                                  static_cast<std::int64_t>(c.bytes_out)});
                }
                return dist::tuple{a("stats"), m.ref, dist::list(std::move(rows))};
            } else {
                dist::map opts({{a("restart"), a(m.restart)}});
                return dist::tuple{a("spawn"), m.ref, std::move(opts)};
            }
        },
        message);
}

std::expected<agent_to_node, std::error_code> agent_to_node_from(const term& t) {
    if (atom_text(t) == "stop") {
        return stop_message{};
    }
    if (const auto* c = tagged(t, "config", 2)) {
        return config_from(c->elements[1]);
    }
    if (const auto* d = tagged(t, "domain", 2)) {
        return domain_from(d->elements[1]);
    }
    if (const auto* s = tagged(t, "stats", 2)) {
        const auto* ref = s->elements[1].get_if<dist::reference>();
        if (ref == nullptr) {
            return fail(agent_errc::bad_field);
        }
        return stats_request{*ref};
    }
    if (const auto* s = tagged(t, "assigned", 4)) {
        const auto* ref = s->elements[1].get_if<dist::reference>();
        const auto name = atom_text(s->elements[2]);
        const auto* domid = s->elements[3].get_if<std::int64_t>();
        if (ref == nullptr || !name || domid == nullptr || !valid_domid(*domid)) {
            return fail(agent_errc::bad_field);
        }
        return assigned_reply{*ref, std::string(*name), static_cast<std::uint32_t>(*domid)};
    }
    if (const auto* s = tagged(t, "spawned", 4)) {
        const auto* ref = s->elements[1].get_if<dist::reference>();
        const auto name = atom_text(s->elements[2]);
        const auto* p = s->elements[3].get_if<dist::pid>();
        if (ref == nullptr || !name || p == nullptr) {
            return fail(agent_errc::bad_field);
        }
        return spawned_reply{*ref, std::string(*name), *p};
    }
    if (const auto* s = tagged(t, "spawn_failed", 3)) {
        const auto* ref = s->elements[1].get_if<dist::reference>();
        const auto* reason = s->elements[2].get_if<dist::binary>();
        if (ref == nullptr || reason == nullptr) {
            return fail(agent_errc::bad_field);
        }
        return spawn_failed_reply{*ref, std::string(text_of(*reason))};
    }
    return fail(agent_errc::unknown_message);
}

std::expected<node_to_agent, std::error_code> node_to_agent_from(const term& t) {
    if (const auto* r = tagged(t, "ready", 2)) {
        const auto* p = r->elements[1].get_if<dist::pid>();
        if (p == nullptr) {
            return fail(agent_errc::bad_field);
        }
        return ready_message{*p};
    }
    if (const auto* s = tagged(t, "stats", 3)) {
        const auto* ref = s->elements[1].get_if<dist::reference>();
        const auto* rows = s->elements[2].get_if<dist::list>();
        if (ref == nullptr || rows == nullptr || !rows->is_proper()) {
            return fail(agent_errc::bad_field);
        }
        stats_reply reply{*ref, {}};
        for (const auto& row : rows->elements) {
            const auto* r = row.get_if<dist::tuple>();
            if (r == nullptr || r->elements.size() != 6) {
                return fail(agent_errc::bad_field);
            }
            const auto peer = atom_text(r->elements[0]);
            const auto carrier = atom_text(r->elements[1]);
            const auto in = counter(r->elements[2]), out = counter(r->elements[3]);
            const auto bytes_in = counter(r->elements[4]), bytes_out = counter(r->elements[5]);
            if (!peer || !carrier || !in || !out || !bytes_in || !bytes_out) {
                return fail(agent_errc::bad_field);
            }
            reply.connections.push_back(
                {std::string(*peer), std::string(*carrier), *in, *out, *bytes_in, *bytes_out});
        }
        return reply;
    }
    if (const auto* s = tagged(t, "spawn", 3)) {
        const auto* ref = s->elements[1].get_if<dist::reference>();
        const auto* opts = s->elements[2].get_if<dist::map>();
        if (ref == nullptr || opts == nullptr) {
            return fail(agent_errc::bad_field);
        }
        spawn_request request{*ref, "temporary"};
        dist::atom_table atoms(8);
        if (auto restart = string_field(*opts, "restart", atoms)) {
            if (*restart != "permanent" && *restart != "transient" && *restart != "temporary") {
                return fail(agent_errc::bad_field);
            }
            request.restart = std::move(*restart);
        }
        return request;
    }
    return fail(agent_errc::unknown_message);
}

std::expected<std::vector<std::byte>, std::error_code> frame(const term& t) {
    auto body = dist::encode(t);
    if (!body || body->size() > max_frame_size) {
        return fail(agent_errc::not_encodable);
    }
    std::vector<std::byte> out(frame_header_size + body->size());
    const auto n = static_cast<std::uint32_t>(body->size());
    out[0] = static_cast<std::byte>(n >> 24);
    out[1] = static_cast<std::byte>(n >> 16);
    out[2] = static_cast<std::byte>(n >> 8);
    out[3] = static_cast<std::byte>(n);
    std::memcpy(out.data() + frame_header_size, body->data(), body->size());
    return out;
}

void frame_reader::feed(std::span<const std::byte> bytes) {
    if (consumed_ > 0 && consumed_ == buffer_.size()) {
        buffer_.clear();
        consumed_ = 0;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

std::expected<std::optional<term>, std::error_code> frame_reader::next() {
    if (failed_) {
        return std::unexpected(failed_);
    }
    const std::size_t available = buffer_.size() - consumed_;
    if (available < frame_header_size) {
        return std::nullopt;
    }
    const auto* p = buffer_.data() + consumed_;
    const std::size_t length =
        (std::to_integer<std::size_t>(p[0]) << 24) | (std::to_integer<std::size_t>(p[1]) << 16) |
        (std::to_integer<std::size_t>(p[2]) << 8) | std::to_integer<std::size_t>(p[3]);
    if (length == 0 || length > max_frame_size) {
        failed_ = make_error_code(agent_errc::frame_too_large);
        return std::unexpected(failed_);
    }
    if (available - frame_header_size < length) {
        return std::nullopt;
    }
    dist::etf_decoder decoder(*atoms_);
    auto decoded = decoder.decode(std::span(p + frame_header_size, length));
    if (!decoded) {
        failed_ = make_error_code(agent_errc::bad_term);
        return std::unexpected(failed_);
    }
    consumed_ += frame_header_size + length;
    if (consumed_ == buffer_.size()) {
        buffer_.clear();
        consumed_ = 0;
    }
    return std::optional<term>(std::move(*decoded));
}

}  // namespace vdist::discovery
