#include "vdist/discovery/xs_wire.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

namespace xs = vdist::discovery::xs;

namespace {

std::string raw_header(std::uint32_t type, std::uint32_t req_id, std::uint32_t tx_id,
                       std::uint32_t len) {
    const xs::header head{type, req_id, tx_id, len};
    std::string out(xs::header_size, '\0');
    std::memcpy(out.data(), &head, sizeof(head));
    return out;
}

}  // namespace

TEST(XsWireTest, shouldSplitMessagesWhenFedByteByByte) {
    const std::string stream = xs::build(xs::XS_READ, 7, 0, std::string_view("/a\0", 3)) +
                               xs::build(xs::XS_WRITE, 8, 3, std::string_view("/b\0v", 4));
    xs::message_splitter splitter;
    std::vector<xs::message> got;
    for (const char c : stream) {
        ASSERT_TRUE(splitter.feed(std::string_view(&c, 1)));
        for (;;) {
            auto next = splitter.next();
            ASSERT_TRUE(next);
            if (!*next) {
                break;
            }
            got.push_back(**next);
        }
    }
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[0].head.type, xs::XS_READ);
    EXPECT_EQ(got[0].head.req_id, 7U);
    EXPECT_EQ(got[0].payload, std::string_view("/a\0", 3));
    EXPECT_EQ(got[1].head.tx_id, 3U);
    EXPECT_EQ(got[1].payload, std::string_view("/b\0v", 4));
}

TEST(XsWireTest, shouldFailBeforeBufferingWhenLengthExceedsPayloadMax) {
    xs::message_splitter splitter;
    ASSERT_TRUE(splitter.feed(raw_header(xs::XS_READ, 1, 0, xs::payload_max + 1)));
    auto next = splitter.next();
    ASSERT_FALSE(next);
    EXPECT_EQ(next.error(), xs::errc::payload_too_large);
}

TEST(XsWireTest, shouldAcceptPayloadMaxExactlyWhenComplete) {
    xs::message_splitter splitter;
    ASSERT_TRUE(splitter.feed(xs::build(xs::XS_WRITE, 1, 0, std::string(xs::payload_max, 'x'))));
    auto next = splitter.next();
    ASSERT_TRUE(next && *next);
    EXPECT_EQ((*next)->payload.size(), xs::payload_max);
}

TEST(XsWireTest, shouldRefuseInputWhenBoundIsExceeded) {
    xs::message_splitter splitter(64);
    EXPECT_TRUE(splitter.feed(std::string(64, 'x')));
    auto more = splitter.feed("y");
    ASSERT_FALSE(more);
    EXPECT_EQ(more.error(), xs::errc::buffer_overflow);
}

TEST(XsWireTest, shouldNameErrorsWhenBuildingErrorReplies) {
    const std::string reply = xs::build_error(9, 2, EACCES);
    xs::header head;
    std::memcpy(&head, reply.data(), sizeof(head));
    EXPECT_EQ(head.type, xs::XS_ERROR);
    EXPECT_EQ(head.req_id, 9U);
    EXPECT_EQ(reply.substr(xs::header_size), std::string_view("EACCES\0", 7));
    EXPECT_EQ(xs::error_from_name("EAGAIN"), EAGAIN);
    EXPECT_EQ(xs::error_from_name("EWHATEVER"), std::nullopt);
    EXPECT_EQ(xs::error_name(EDOM), "EINVAL");
}

TEST(XsWireTest, shouldTerminateBothStringsWhenBuildingWatchEvents) {
    const std::string event = xs::build_watch_event("/a/b", "tok");
    EXPECT_EQ(event.substr(xs::header_size), std::string_view("/a/b\0tok\0", 9));
}

TEST(XsWireTest, shouldRejectPayloadWhenLastStringIsUnterminated) {
    EXPECT_EQ(xs::split_strings(std::string_view("a\0b", 3)), std::nullopt);
    EXPECT_EQ(xs::split_strings(""), std::nullopt);
    const auto two = xs::split_strings(std::string_view("a\0\0", 3));
    ASSERT_TRUE(two);
    EXPECT_EQ(*two, (std::vector<std::string_view>{"a", ""}));
}
