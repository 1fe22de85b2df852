// Tests of the Xen backend that need no hypervisor: the seam concepts, a clean failure of
// open() off Xen, and the strict parsing of what other domains write into XenStore.
// End-to-end tests on real Xen (labelled `xen`) come with the Xen integration issue.

#include "vdist/transport/xen_backend.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

// Internal to the transport library; the parser is header-only.
#include "xen/xenstore_value.hpp"

namespace vdist::transport {
namespace {

using internal::is_valid_port_name;
using internal::parse_decimal;
using internal::parse_domid;

// --- concepts ----------------------------------------------------------------------------------

TEST(XenBackendTest, shouldModelEverySeamWhenCheckedAgainstTheConcepts) {
    static_assert(grant_memory<xen_grant_memory>);
    static_assert(shared_region<xen_grant_memory::shared_pages>);
    static_assert(page_region<xen_grant_memory::mapped_pages>);
    static_assert(event_channel<xen_event_channel>);
    static_assert(bound_port<xen_event_channel::port>);
    static_assert(rendezvous<xen_rendezvous>);
    static_assert(vchan_backend<xen_backend>);
    SUCCEED();
}

TEST(XenBackendTest, shouldBeMoveOnlyWhenHoldingKernelResources) {
    static_assert(!std::is_copy_constructible_v<xen_backend>);
    static_assert(std::is_nothrow_move_constructible_v<xen_grant_memory::shared_pages>);
    static_assert(!std::is_copy_constructible_v<xen_grant_memory::shared_pages>);
    static_assert(std::is_nothrow_move_constructible_v<xen_grant_memory::mapped_pages>);
    static_assert(!std::is_copy_constructible_v<xen_grant_memory::mapped_pages>);
    static_assert(std::is_nothrow_move_constructible_v<xen_event_channel::port>);
    static_assert(!std::is_copy_constructible_v<xen_event_channel::port>);
    static_assert(std::is_nothrow_move_constructible_v<xen_rendezvous::publication>);
    static_assert(!std::is_copy_constructible_v<xen_rendezvous::publication>);
    SUCCEED();
}

// --- open() off Xen ----------------------------------------------------------------------------

bool running_on_xen() {
    return ::access("/dev/xen/evtchn", F_OK) == 0 || ::access("/proc/xen", F_OK) == 0;
}

TEST(XenBackendTest, shouldFailWithNoSuchDeviceWhenOpenedWithoutXen) {
    if (running_on_xen()) {
        GTEST_SKIP() << "this machine runs on Xen";
    }
    const auto backend = xen_backend::open();
    ASSERT_FALSE(backend.has_value());
    EXPECT_EQ(backend.error(), std::errc::no_such_device) << backend.error().message();
    EXPECT_FALSE(backend.error().message().empty());
}

TEST(XenBackendTest, shouldFailEachSeamWithNoSuchDeviceWhenOpenedWithoutXen) {
    if (running_on_xen()) {
        GTEST_SKIP() << "this machine runs on Xen";
    }
    const auto memory = xen_grant_memory::open();
    ASSERT_FALSE(memory.has_value());
    EXPECT_EQ(memory.error(), std::errc::no_such_device) << memory.error().message();

    const auto events = xen_event_channel::open(0);
    ASSERT_FALSE(events.has_value());
    EXPECT_EQ(events.error(), std::errc::no_such_device) << events.error().message();

    const auto directory = xen_rendezvous::open();
    ASSERT_FALSE(directory.has_value());
    EXPECT_EQ(directory.error(), std::errc::no_such_device) << directory.error().message();
}

// --- parse_decimal: ring-ref and event-channel values --------------------------------------------

struct decimal_case {
    std::string_view name;
    std::string_view text;
    std::uint32_t expected;  // 0: must be refused
};

class XenstoreDecimalTest : public ::testing::TestWithParam<decimal_case> {};

TEST_P(XenstoreDecimalTest, shouldAcceptOnlyPositiveDecimalsWhenParsingAnOffer) {
    const auto& c = GetParam();
    const auto parsed = parse_decimal(c.text);
    if (c.expected == 0) {
        ASSERT_FALSE(parsed.has_value()) << "parsed " << *parsed;
        EXPECT_EQ(parsed.error(), errc::rendezvous_failed);
    } else {
        ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
        EXPECT_EQ(*parsed, c.expected);
    }
}

using namespace std::string_view_literals;

INSTANTIATE_TEST_SUITE_P(
    Cases, XenstoreDecimalTest,
    ::testing::Values(
        decimal_case{"one", "1", 1}, decimal_case{"typical_ref", "8", 8},
        decimal_case{"typical_port", "73", 73},
        decimal_case{"leading_zero", "007", 7},  // harmless, and what "%03d" would write
        decimal_case{"max", "4294967295", 4294967295U},
        decimal_case{"max_with_zeros", "0004294967295", 4294967295U}, decimal_case{"empty", "", 0},
        decimal_case{"zero", "0", 0}, decimal_case{"zeros", "000", 0},
        decimal_case{"overflow_by_one", "4294967296", 0},
        decimal_case{"overflow_last_digit", "4294967300", 0},
        decimal_case{"overflow_long", "99999999999999999999", 0}, decimal_case{"negative", "-1", 0},
        decimal_case{"plus", "+1", 0}, decimal_case{"leading_space", " 1", 0},
        decimal_case{"trailing_newline", "1\n", 0}, decimal_case{"hex", "0x10", 0},
        decimal_case{"letters", "ab", 0}, decimal_case{"trailing_garbage", "12abc", 0},
        decimal_case{"embedded_nul",
                     std::string_view("1\0"
                                      "2",
                                      3),
                     0}),
    [](const auto& test_case) { return std::string(test_case.param.name); });

// --- parse_domid: this domain's id ---------------------------------------------------------------

TEST(XenstoreDomidTest, shouldAcceptDomZeroWhenReadingOwnDomid) {
    const auto parsed = parse_domid("0");
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, domid_t{0});
}

TEST(XenstoreDomidTest, shouldAcceptTheLastOrdinaryDomidWhenReadingOwnDomid) {
    const auto parsed = parse_domid("32751");  // DOMID_FIRST_RESERVED - 1
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, domid_t{32751});
}

TEST(XenstoreDomidTest, shouldRefuseReservedOrMalformedDomidsWhenReadingOwnDomid) {
    for (std::string_view text : {"32752", "32753", "65535", "65536", "", "-1", "1 ", "x"}) {
        const auto parsed = parse_domid(text);
        ASSERT_FALSE(parsed.has_value()) << '"' << text << '"';
        EXPECT_EQ(parsed.error(), errc::rendezvous_failed);
    }
}

// --- is_valid_port_name: the last component of a vchan path
// ---------------------------------------

TEST(XenstorePortNameTest, shouldAcceptPathAlphabetNamesWhenCheckingAPort) {
    for (std::string_view port : {"1", "512", "dist", "erl-dist_0", "a@b"}) {
        EXPECT_TRUE(is_valid_port_name(port)) << port;
    }
    EXPECT_TRUE(is_valid_port_name(std::string(internal::max_port_name_length, 'p')));
}

TEST(XenstorePortNameTest, shouldRefuseNamesThatCouldLeaveTheVchanDirectoryWhenCheckingAPort) {
    for (std::string_view port : {"", "/", "a/b", "..", "../0/1", "a b", "a.b", "é"}) {
        EXPECT_FALSE(is_valid_port_name(port)) << port;
    }
    EXPECT_FALSE(is_valid_port_name("a\0b"sv));
    EXPECT_FALSE(is_valid_port_name(std::string(internal::max_port_name_length + 1, 'p')));
}

}  // namespace
}  // namespace vdist::transport
