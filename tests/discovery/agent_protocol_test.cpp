#include "vdist/discovery/agent_protocol.hpp"

#include <gtest/gtest.h>

namespace vdist::discovery {
namespace {

node_config_message sample_config() {
    return {.name = "n1-h@localhost",
            .cookie = "secret",
            .domid = 7,
            .host = "h",
            .store = "/tmp/d/store.sock",
            .run_dir = "/tmp/d/run",
            .ticktime_ms = 5000,
            .wait = node_wait::spin};
}

std::expected<std::optional<dist::term>, std::error_code> read_one(
    dist::atom_table& atoms, std::span<const std::byte> bytes) {
    frame_reader reader(atoms);
    reader.feed(bytes);
    return reader.next();
}

/// Every entry of the message's map is required: without any one, decoding fails (bad_field).
void expect_every_field_required(const dist::term& message_term) {
    const auto& entries =
        std::get<dist::map>(std::get<dist::tuple>(message_term.value()).elements[1].value())
            .entries;
    for (std::size_t drop = 0; drop < entries.size(); ++drop) {
        auto broken = message_term;
        auto& e =
            std::get<dist::map>(std::get<dist::tuple>(broken.value()).elements[1].value()).entries;
        e.erase(e.begin() + static_cast<std::ptrdiff_t>(drop));
        const auto message = agent_to_node_from(broken);
        ASSERT_FALSE(message) << "without entry " << drop;
        EXPECT_EQ(message.error(), make_error_code(agent_errc::bad_field))
            << "without entry " << drop;
    }
}

TEST(AgentProtocolTest, shouldRoundTripConfigWhenFramedAndFedByteByByte) {
    dist::atom_table atoms;
    auto bytes = frame(to_term(agent_to_node{sample_config()}, atoms));
    ASSERT_TRUE(bytes);
    frame_reader reader(atoms);
    for (std::size_t i = 0; i + 1 < bytes->size(); ++i) {
        reader.feed(std::span(bytes->data() + i, 1));
        auto none = reader.next();
        ASSERT_TRUE(none);
        ASSERT_FALSE(*none) << "a whole term before the last byte, at " << i;
    }
    reader.feed(std::span(bytes->data() + bytes->size() - 1, 1));
    auto got = reader.next();
    ASSERT_TRUE(got && *got);
    auto message = agent_to_node_from(**got);
    ASSERT_TRUE(message);
    EXPECT_EQ(std::get<node_config_message>(*message), sample_config());
}

TEST(AgentProtocolTest, shouldRoundTripStatsReplyWhenItHasRows) {
    dist::atom_table atoms;
    const dist::reference ref{atoms.intern("agent@h").value(), 0, {1, 2, 3}};
    stats_reply reply{ref, {{"a@h", "tcp", 1, 2, 3, 4}, {"b@h", "ring", 5, 6, 7, 8}}};
    auto bytes = frame(to_term(node_to_agent{reply}, atoms));
    ASSERT_TRUE(bytes);
    auto got = read_one(atoms, *bytes);
    ASSERT_TRUE(got && *got);
    auto message = node_to_agent_from(**got);
    ASSERT_TRUE(message);
    const auto& back = std::get<stats_reply>(*message);
    EXPECT_EQ(back.ref, ref);
    EXPECT_EQ(back.connections, reply.connections);
}

TEST(AgentProtocolTest, shouldFailWhenLengthIsZeroOrAboveTheLimit) {
    dist::atom_table atoms;
    for (const std::uint32_t length :
         {0u, static_cast<std::uint32_t>(max_frame_size + 1), 0xffffffffu}) {
        const std::byte header[4] = {
            static_cast<std::byte>(length >> 24), static_cast<std::byte>(length >> 16),
            static_cast<std::byte>(length >> 8), static_cast<std::byte>(length)};
        auto got = read_one(atoms, header);
        ASSERT_FALSE(got) << length;
        EXPECT_EQ(got.error(), make_error_code(agent_errc::frame_too_large));
    }
}

TEST(AgentProtocolTest, shouldFailWhenFrameIsNotAnExternalTerm) {
    dist::atom_table atoms;
    const std::byte bytes[] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{3},
                               std::byte{1}, std::byte{2}, std::byte{3}};
    auto got = read_one(atoms, bytes);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error(), make_error_code(agent_errc::bad_term));
}

TEST(AgentProtocolTest, shouldRefuseConfigWhenAFieldIsMissingOrOutOfRange) {
    dist::atom_table atoms;
    expect_every_field_required(to_term(agent_to_node{sample_config()}, atoms));
    auto zero_domid = sample_config();
    zero_domid.domid = 0;
    EXPECT_FALSE(agent_to_node_from(to_term(agent_to_node{zero_domid}, atoms)));
}

TEST(AgentProtocolTest, shouldRoundTripDomainMessageAndRefuseItWhenAFieldIsMissing) {
    dist::atom_table atoms;
    const domain_message sent{7, "/tmp/h/store.sock", "/tmp/h/run"};
    auto bytes = frame(to_term(agent_to_node{sent}, atoms));
    ASSERT_TRUE(bytes);
    auto got = read_one(atoms, *bytes);
    ASSERT_TRUE(got && *got);
    auto message = agent_to_node_from(**got);
    ASSERT_TRUE(message);
    EXPECT_EQ(std::get<domain_message>(*message), sent);

    expect_every_field_required(to_term(agent_to_node{sent}, atoms));
    EXPECT_FALSE(agent_to_node_from(to_term(agent_to_node{domain_message{0, "s", "r"}}, atoms)));
}

TEST(AgentProtocolTest, shouldRoundTripAssignedReplyWhenTheAgentNamesTheChild) {
    dist::atom_table atoms;
    const dist::reference ref{atoms.intern("n1@h").value(), 0, {4, 0, 0}};
    auto bytes = frame(to_term(agent_to_node{assigned_reply{ref, "n2-h@localhost", 2}}, atoms));
    ASSERT_TRUE(bytes);
    auto got = read_one(atoms, *bytes);
    ASSERT_TRUE(got && *got);
    auto message = agent_to_node_from(**got);
    ASSERT_TRUE(message);
    const auto& back = std::get<assigned_reply>(*message);
    EXPECT_EQ(back.ref, ref);
    EXPECT_EQ(back.node_name, "n2-h@localhost");
    EXPECT_EQ(back.domid, 2U);
    const auto assigned = atoms.intern("assigned").value();
    const auto name = atoms.intern("n2-h@localhost").value();
    const dist::term no_name = dist::tuple{assigned, ref, 7, 2};
    EXPECT_EQ(agent_to_node_from(no_name).error(), make_error_code(agent_errc::bad_field));
    const dist::term no_domain = dist::tuple{assigned, ref, name, 0};
    EXPECT_EQ(agent_to_node_from(no_domain).error(), make_error_code(agent_errc::bad_field));
}

TEST(AgentProtocolTest, shouldRefuseUnknownMessagesWhenDecoding) {
    dist::atom_table atoms;
    const dist::term hello = dist::tuple{atoms.intern("hello").value(), 1};
    EXPECT_EQ(agent_to_node_from(hello).error(), make_error_code(agent_errc::unknown_message));
    EXPECT_EQ(node_to_agent_from(hello).error(), make_error_code(agent_errc::unknown_message));
    EXPECT_EQ(node_to_agent_from(dist::term(7)).error(),
              make_error_code(agent_errc::unknown_message));
}

}  // namespace
}  // namespace vdist::discovery
