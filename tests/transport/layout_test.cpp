// Tests of the vchan control-page layout (vchan_layout.hpp): the ring orders a server picks for
// requested sizes (what libxenvchan_server_init picks), the checks a client makes on orders it
// reads from a page it cannot trust, and where each ring lives.
//
// The arithmetic behind the grant-list cases: grants[] starts at offset 24 and holds one
// 4-byte ref per page of a paged ring (order 12..20: 2^(order-12) pages). It must end before
// the first in-page ring (offset 1024 for order 10, 2048 for order 11) or the end of the page:
//   order 10 in page: 24 + 4 * refs <= 1024  ->  at most 250 refs: order 19 (128) fits, 20 (256)
//   not order 11 in page: 24 + 4 * refs <= 2048  ->  at most 506 refs: order 20 (256) fits both
//   paged:       24 + 4 * refs <= 4096  ->  at most 1018 refs: 20 + 20 (512) fits

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>

#include "vdist/transport/vchan_layout.hpp"

namespace vdist::transport {
namespace {

constexpr std::size_t kib = 1024;
constexpr std::size_t mib = 1024 * 1024;

[[nodiscard]] ring_orders orders(std::uint16_t left, std::uint16_t right) {
    return {{left}, {right}};
}

[[nodiscard]] bool valid(ring_orders candidate) {
    return candidate.validate().has_value();
}

// --- for_sizes ---------------------------------------------------------------------------------

/// Requested minimum sizes and the orders libxenvchan_server_init would pick for them.
struct sizes_case {
    const char* name;
    std::size_t left_min;
    std::size_t right_min;
    std::uint16_t left_order;
    std::uint16_t right_order;
};

void PrintTo(const sizes_case& c, std::ostream* out) {
    *out << "left_min " << c.left_min << ", right_min " << c.right_min << " -> (" << c.left_order
         << ", " << c.right_order << ")";
}

[[nodiscard]] std::string case_name(const ::testing::TestParamInfo<sizes_case>& tested) {
    return tested.param.name;
}

class RingOrdersTest : public ::testing::TestWithParam<sizes_case> {};

TEST_P(RingOrdersTest, shouldPickWhatLibxenvchanPicksWhenGivenMinimumSizes) {
    const auto& c = GetParam();
    const auto picked = ring_orders::for_sizes(c.left_min, c.right_min);
    EXPECT_EQ(picked.left.order, c.left_order);
    EXPECT_EQ(picked.right.order, c.right_order);
    EXPECT_TRUE(valid(picked)) << "for_sizes must only pick orders a client accepts";
}

INSTANTIATE_TEST_SUITE_P(
    ServerInit, RingOrdersTest,
    ::testing::Values(
        // Both fit the in-page slots: 1 KiB left, 2 KiB right (libxenvchan's first choice).
        sizes_case{"nothing_inPage10x11", 0, 0, 10, 11},
        sizes_case{"oneByte_inPage10x11", 1, 1, 10, 11},
        sizes_case{"exactSlots_inPage10x11", 1 * kib, 2 * kib, 10, 11},
        // Left too big for 1 KiB but both fit the other way round.
        sizes_case{"leftOver1KiB_inPage11x10", 1 * kib + 1, 1 * kib, 11, 10},
        sizes_case{"exactSlots_inPage11x10", 2 * kib, 1 * kib, 11, 10},
        // Only one side small: it gets the 2 KiB slot, the other whole pages.
        sizes_case{"rightOver2KiB_left2KiBSlot", 1 * kib, 2 * kib + 1, 11, 12},
        sizes_case{"bothOver1KiB_left2KiBSlot", 1 * kib + 1, 1 * kib + 1, 11, 12},
        sizes_case{"both2KiB_left2KiBSlot", 2 * kib, 2 * kib, 11, 12},
        sizes_case{"leftOver2KiB_right2KiBSlot", 2 * kib + 1, 1 * kib, 12, 11},
        sizes_case{"largeRight_left2KiBSlot", 0, 64 * kib, 11, 16},
        // Both paged, rounded up to powers of two.
        sizes_case{"bothOnePage", 4 * kib, 4 * kib, 12, 12},
        sizes_case{"justOverAPage_roundedUp", 4 * kib + 1, 3 * kib, 13, 12},
        sizes_case{"64KiBAndOneByteMore", 64 * kib, 64 * kib + 1, 16, 17},
        sizes_case{"largest", 1 * mib, 1 * mib, 20, 20},
        // Larger requests are capped at order 20 (libxenvchan refuses them).
        sizes_case{"overLargest_capped", 1 * mib + 1, 4 * mib, 20, 20},
        sizes_case{"huge_capped", std::numeric_limits<std::size_t>::max(),
                   std::numeric_limits<std::size_t>::max(), 20, 20}),
    case_name);

// --- validate: orders out of range ----------------------------------------------------------

TEST_F(RingOrdersTest, shouldRejectOrderWhenBelow10) {
    EXPECT_EQ(orders(9, 11).validate().error(), errc::invalid_order);
    EXPECT_EQ(orders(11, 9).validate().error(), errc::invalid_order);
    EXPECT_EQ(orders(0, 12).validate().error(), errc::invalid_order);
    EXPECT_EQ(orders(12, 0).validate().error(), errc::invalid_order);
}

TEST_F(RingOrdersTest, shouldRejectOrderWhenAbove20) {
    EXPECT_EQ(orders(21, 11).validate().error(), errc::invalid_order);
    EXPECT_EQ(orders(12, 21).validate().error(), errc::invalid_order);
    // A shift count a hostile page could hold; must not be used to compute a size.
    EXPECT_EQ(orders(0xffff, 12).validate().error(), errc::invalid_order);
    EXPECT_EQ(orders(64, 64).validate().error(), errc::invalid_order);
}

// --- validate: in-page slots ----------------------------------------------------------------

TEST_F(RingOrdersTest, shouldRejectEqualInPageOrdersWhenBothAreOrder10) {
    EXPECT_EQ(orders(10, 10).validate().error(), errc::invalid_order);
}

TEST_F(RingOrdersTest, shouldRejectEqualInPageOrdersWhenBothAreOrder11) {
    EXPECT_EQ(orders(11, 11).validate().error(), errc::invalid_order);
}

TEST_F(RingOrdersTest, shouldAcceptInPageOrdersWhenTheyUseDistinctSlots) {
    EXPECT_TRUE(valid(orders(10, 11)));
    EXPECT_TRUE(valid(orders(11, 10)));
}

TEST_F(RingOrdersTest, shouldAcceptEqualOrdersWhenBothRingsArePaged) {
    EXPECT_TRUE(valid(orders(12, 12)));
    EXPECT_TRUE(valid(orders(16, 16)));
}

// --- validate: grant list against the in-page rings -------------------------------------------

TEST_F(RingOrdersTest, shouldRejectGrantListWhenItRunsIntoTheOrder10Ring) {
    // 256 refs at offset 24 end at 1048, past the order-10 ring at 1024.
    EXPECT_EQ(orders(10, 20).validate().error(), errc::invalid_order);
    EXPECT_EQ(orders(20, 10).validate().error(), errc::invalid_order);
}

TEST_F(RingOrdersTest, shouldAcceptGrantListWhenItEndsBeforeTheOrder10Ring) {
    // 128 refs end at 536.
    EXPECT_TRUE(valid(orders(10, 19)));
    EXPECT_TRUE(valid(orders(19, 10)));
    EXPECT_TRUE(valid(orders(10, 12)));
}

TEST_F(RingOrdersTest, shouldAcceptGrantListWhenTheOrder11RingLeavesRoomFor256Refs) {
    // 256 refs end at 1048, before the order-11 ring at 2048.
    EXPECT_TRUE(valid(orders(11, 20)));
    EXPECT_TRUE(valid(orders(20, 11)));
}

TEST_F(RingOrdersTest, shouldAcceptGrantListWhenBothRingsHaveTheLargestOrder) {
    // 512 refs end at 2072, inside the 4096-byte page.
    EXPECT_TRUE(valid(orders(20, 20)));
}

TEST_F(RingOrdersTest, shouldCountOneGrantPerRingPageWhenRingsArePaged) {
    EXPECT_EQ(orders(10, 11).grant_count(), 0u);
    EXPECT_EQ(orders(11, 12).grant_count(), 1u);
    EXPECT_EQ(orders(12, 12).grant_count(), 2u);
    EXPECT_EQ(orders(16, 10).grant_count(), 16u);
    EXPECT_EQ(orders(20, 20).grant_count(), 512u);
}

// --- ring_geometry ---------------------------------------------------------------------------

TEST(RingGeometryTest, shouldPlaceTheRingInTheControlPageWhenItsOrderIs10Or11) {
    constexpr ring_geometry small{10};
    constexpr ring_geometry large{11};
    static_assert(small.in_control_page() && large.in_control_page());
    EXPECT_EQ(small.size(), 1 * kib);
    EXPECT_EQ(small.page_offset(), 1024u);
    EXPECT_EQ(small.page_count(), 0u);
    EXPECT_EQ(large.size(), 2 * kib);
    EXPECT_EQ(large.page_offset(), 2048u);
    EXPECT_EQ(large.page_count(), 0u);
    // Both slots fit the control page without overlapping each other or the header.
    EXPECT_GE(small.page_offset(), grants_offset);
    EXPECT_LE(small.page_offset() + small.size(), large.page_offset());
    EXPECT_EQ(large.page_offset() + large.size(), page_size);
}

TEST(RingGeometryTest, shouldUseSeparatePagesWhenTheOrderIs12OrMore) {
    EXPECT_FALSE(ring_geometry{12}.in_control_page());
    EXPECT_EQ(ring_geometry{12}.page_count(), 1u);
    EXPECT_EQ(ring_geometry{13}.page_count(), 2u);
    EXPECT_EQ(ring_geometry{16}.page_count(), 16u);
    EXPECT_EQ(ring_geometry{20}.page_count(), 256u);
    EXPECT_EQ(ring_geometry{20}.size(), 1 * mib);
    for (std::uint16_t order = first_paged_order; order <= max_ring_order; ++order) {
        EXPECT_EQ(ring_geometry{order}.page_count() * page_size, ring_geometry{order}.size())
            << "order " << order;
    }
}

}  // namespace
}  // namespace vdist::transport
