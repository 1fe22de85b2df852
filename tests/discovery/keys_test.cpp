#include "vdist/discovery/keys.hpp"

#include <gtest/gtest.h>

using namespace vdist::discovery;

class KeysTest : public testing::TestWithParam<std::string> {};

TEST_P(KeysTest, shouldRoundTripWhenEncodingNodeNames) {
    const std::string encoded = encode_component(GetParam());
    for (const char c : encoded) {
        EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '@' || c == '-')
            << encoded;
    }
    EXPECT_EQ(decode_component(encoded), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Names, KeysTest,
                         testing::Values("alive@host", "a.b@host.example.org", "under_score",
                                         std::string("nul\0byte", 8), "\xff\x80", "", "_5f"));

TEST(KeysComponentTest, shouldRejectWhenEncodingIsNotCanonical) {
    EXPECT_EQ(decode_component("a.b"), std::nullopt);  // '.' must be escaped
    EXPECT_EQ(decode_component("_41"), std::nullopt);  // 'A' needs no escape
    EXPECT_EQ(decode_component("_4"), std::nullopt);   // truncated
    EXPECT_EQ(decode_component("_zz"), std::nullopt);  // not hex
    EXPECT_EQ(decode_component("_2E"), std::nullopt);  // upper-case hex is not ours
    EXPECT_EQ(decode_component("a_2eb"), "a.b");
}

TEST(KeysPathTest, shouldFollowXenStoreLayoutWhenBuildingPaths) {
    EXPECT_EQ(domain_path(5), "/local/domain/5");
    EXPECT_EQ(node_record_path(5), "/local/domain/5/data/vdist/node");
    EXPECT_EQ(connect_inbox_path(5), "/local/domain/5/data/vdist/connect");
    EXPECT_EQ(node_entry_path("a@h.x"), "/vdist/nodes/a@h_2ex");
}
