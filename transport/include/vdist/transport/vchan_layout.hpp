#pragma once
/// \file
/// The shared control page of a vchan, byte for byte as libxenvchan lays it out
/// (xen/include/public/io/libxenvchan.h). This header owns the format; nothing else in vdist
/// computes an offset into the page.
///
/// ```
///  control page (4096 bytes, granted by the server, unmap-notify on srv_live / cli_live)
///  0        8        16    18    20  21  22  23  24                    1024      2048      4096
///  +--------+--------+-----+-----+---+---+---+---+---------------------+---------+---------+
///  | left   | right  |left |right|cli|srv|cli|srv| grants[]: external  | ring of | ring of |
///  |cons|prod cons|prod order|order|live|live|ntf|ntf| ring pages, left  | order 10| order 11|
///  +--------+--------+-----+-----+---+---+---+---+ first, then right   +---------+---------+
///   left  = client writes, server reads      right = server writes, client reads
///   *_live: 0 exited, 1 connected, 2 client not yet connected (0 is what unmap-notify writes)
///   cli_notify: bits the CLIENT honours (armed by the server); srv_notify: the reverse
/// ```
///
/// A ring of order 10 lives at offset 1024 of the control page, one of order 11 at offset 2048,
/// one of order 12..20 in 2^(order-12) separately granted pages. Indices are free-running
/// uint32; the byte position is `index & (size - 1)`. Only the writer stores `prod`, only the
/// reader stores `cons`.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "vdist/transport/errc.hpp"

namespace vdist::transport {

/// One producer/consumer index pair (libxenvchan `struct ring_shared`).
struct ring_shared {
    std::uint32_t cons;
    std::uint32_t prod;
};

/// The fixed head of the control page (libxenvchan `struct vchan_interface` without `grants[]`).
struct vchan_control {
    ring_shared left;   ///< client writes, server reads
    ring_shared right;  ///< server writes, client reads
    std::uint16_t left_order;
    std::uint16_t right_order;
    std::uint8_t cli_live;
    std::uint8_t srv_live;
    std::uint8_t cli_notify;
    std::uint8_t srv_notify;
};

inline constexpr std::size_t page_size = 4096;
inline constexpr std::size_t grants_offset = 24;  ///< offset of `uint32_t grants[]`
inline constexpr std::uint16_t min_ring_order = 10;
inline constexpr std::uint16_t max_ring_order = 20;  ///< libxenvchan MAX_RING_SHIFT
inline constexpr std::uint16_t first_paged_order = 12;

inline constexpr std::uint8_t VCHAN_NOTIFY_WRITE = 0x1;  ///< "notify me when data is written"
inline constexpr std::uint8_t VCHAN_NOTIFY_READ = 0x2;   ///< "notify me when data is consumed"

inline constexpr std::uint8_t live_exited = 0;
inline constexpr std::uint8_t live_connected = 1;
inline constexpr std::uint8_t live_not_yet_connected = 2;

static_assert(sizeof(ring_shared) == 8);
static_assert(offsetof(vchan_control, left) == 0);
static_assert(offsetof(vchan_control, left) + offsetof(ring_shared, cons) == 0);
static_assert(offsetof(vchan_control, left) + offsetof(ring_shared, prod) == 4);
static_assert(offsetof(vchan_control, right) == 8);
static_assert(offsetof(vchan_control, left_order) == 16);
static_assert(offsetof(vchan_control, right_order) == 18);
static_assert(offsetof(vchan_control, cli_live) == 20);
static_assert(offsetof(vchan_control, srv_live) == 21);
static_assert(offsetof(vchan_control, cli_notify) == 22);
static_assert(offsetof(vchan_control, srv_notify) == 23);
static_assert(sizeof(vchan_control) == grants_offset);
static_assert(std::atomic_ref<std::uint32_t>::required_alignment <= alignof(std::uint32_t));
static_assert(std::atomic_ref<std::uint8_t>::is_always_lock_free);

/// Where one ring lives, derived from its order.
struct ring_geometry {
    std::uint16_t order = 0;

    [[nodiscard]] constexpr std::size_t size() const noexcept { return std::size_t{1} << order; }
    [[nodiscard]] constexpr bool in_control_page() const noexcept {
        return order < first_paged_order;
    }
    /// Offset inside the control page of an in-page ring.
    [[nodiscard]] constexpr std::size_t page_offset() const noexcept {
        return order == min_ring_order ? 1024 : 2048;
    }
    /// Number of separately granted pages (0 for an in-page ring).
    [[nodiscard]] constexpr std::size_t page_count() const noexcept {
        return in_control_page() ? 0 : std::size_t{1} << (order - first_paged_order);
    }
};

/// Ring orders of a channel, validated as a client must validate what it reads from the page.
struct ring_orders {
    ring_geometry left;
    ring_geometry right;

    /// Total grant refs listed in the control page.
    [[nodiscard]] constexpr std::size_t grant_count() const noexcept {
        return left.page_count() + right.page_count();
    }

    /// Checks orders 10..20, distinct in-page slots, and that grants[] stays clear of the
    /// in-page rings and the end of the control page.
    [[nodiscard]] constexpr result<void> validate() const noexcept {
        for (auto ring : {left, right}) {
            if (ring.order < min_ring_order || ring.order > max_ring_order) {
                return fail(errc::invalid_order);
            }
        }
        if (left.order == right.order && left.in_control_page()) {
            return fail(errc::invalid_order);
        }
        std::size_t grants_end = page_size;
        for (auto ring : {left, right}) {
            if (ring.in_control_page() && ring.page_offset() < grants_end) {
                grants_end = ring.page_offset();
            }
        }
        if (grants_offset + grant_count() * sizeof(std::uint32_t) > grants_end) {
            return fail(errc::invalid_order);
        }
        return {};
    }

    /// The orders libxenvchan's server_init picks for the requested minimum sizes: in-page
    /// slots when they fit, otherwise whole pages; sizes are rounded up to powers of two.
    [[nodiscard]] static constexpr ring_orders for_sizes(std::size_t left_min,
                                                         std::size_t right_min) noexcept {
        auto order_for = [](std::size_t bytes, std::uint16_t floor) {
            std::uint16_t order = floor;
            while ((std::size_t{1} << order) < bytes && order < max_ring_order) {
                ++order;
            }
            return order;
        };
        if (left_min <= 1024 && right_min <= 2048) {
            return {{min_ring_order}, {11}};
        }
        if (left_min <= 2048 && right_min <= 1024) {
            return {{11}, {min_ring_order}};
        }
        if (left_min <= 2048) {
            return {{11}, {order_for(right_min, first_paged_order)}};
        }
        if (right_min <= 2048) {
            return {{order_for(left_min, first_paged_order)}, {11}};
        }
        return {{order_for(left_min, first_paged_order)},
                {order_for(right_min, first_paged_order)}};
    }
};

/// Typed access to a mapped control page. Every access to a field the peer can write goes
/// through an atomic_ref, so that the compiler reads it exactly once where the code reads it.
class vchan_page {
  public:
    explicit vchan_page(std::byte* page) noexcept : page_(page) {}

    [[nodiscard]] vchan_control& control() const noexcept {
        return *reinterpret_cast<vchan_control*>(page_);
    }
    [[nodiscard]] std::atomic_ref<std::uint32_t> index(std::uint32_t& field) const noexcept {
        return std::atomic_ref<std::uint32_t>(field);
    }
    [[nodiscard]] std::atomic_ref<std::uint8_t> byte(std::uint8_t& field) const noexcept {
        return std::atomic_ref<std::uint8_t>(field);
    }
    [[nodiscard]] std::atomic_ref<std::uint16_t> order(std::uint16_t& field) const noexcept {
        return std::atomic_ref<std::uint16_t>(field);
    }
    /// Grant ref `i` of `grants[]`; the caller bounds `i` by ring_orders::grant_count().
    [[nodiscard]] std::atomic_ref<std::uint32_t> grant(std::size_t i) const noexcept {
        return std::atomic_ref<std::uint32_t>(
            *reinterpret_cast<std::uint32_t*>(page_ + grants_offset + i * sizeof(std::uint32_t)));
    }
    [[nodiscard]] std::byte* in_page_ring(ring_geometry ring) const noexcept {
        return page_ + ring.page_offset();
    }
    [[nodiscard]] std::byte* data() const noexcept { return page_; }

  private:
    std::byte* page_;
};

}  // namespace vdist::transport
