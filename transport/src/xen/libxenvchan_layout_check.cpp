/// \file
/// Compile-time proof that vchan_layout.hpp and libxenvchan's shared page agree byte for byte:
/// every field of vdist's vchan_control sits at the offset of the same field of the real
/// `struct vchan_interface`, and the notify bits have the same values. Built only with Xen.

#include <cstddef>
#include <cstdint>

// The Xen header ends its struct with the GNU zero-length array `uint32_t grants[0]`, and has
// no extern "C" guard.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wzero-length-bounds"
extern "C" {
#include <xen/io/libxenvchan.h>
}
#pragma GCC diagnostic pop

// Xen's notify bits are macros with the very names vdist gives its constants: take their
// values, then retire the macros before vdist's header declares the constants.
namespace vdist::transport::internal {
inline constexpr std::uint8_t xen_notify_write = VCHAN_NOTIFY_WRITE;
inline constexpr std::uint8_t xen_notify_read = VCHAN_NOTIFY_READ;
}  // namespace vdist::transport::internal
#undef VCHAN_NOTIFY_WRITE
#undef VCHAN_NOTIFY_READ

#include "vdist/transport/vchan_layout.hpp"

namespace vdist::transport::internal {

using xen_interface = ::vchan_interface;
using xen_ring_shared = ::ring_shared;

static_assert(offsetof(xen_ring_shared, cons) == offsetof(transport::ring_shared, cons));
static_assert(offsetof(xen_ring_shared, prod) == offsetof(transport::ring_shared, prod));
static_assert(sizeof(xen_ring_shared) == sizeof(transport::ring_shared));

static_assert(offsetof(xen_interface, left.cons) == offsetof(vchan_control, left.cons));
static_assert(offsetof(xen_interface, left.prod) == offsetof(vchan_control, left.prod));
static_assert(offsetof(xen_interface, right.cons) == offsetof(vchan_control, right.cons));
static_assert(offsetof(xen_interface, right.prod) == offsetof(vchan_control, right.prod));
static_assert(offsetof(xen_interface, left_order) == offsetof(vchan_control, left_order));
static_assert(offsetof(xen_interface, right_order) == offsetof(vchan_control, right_order));
static_assert(offsetof(xen_interface, cli_live) == offsetof(vchan_control, cli_live));
static_assert(offsetof(xen_interface, srv_live) == offsetof(vchan_control, srv_live));
static_assert(offsetof(xen_interface, cli_notify) == offsetof(vchan_control, cli_notify));
static_assert(offsetof(xen_interface, srv_notify) == offsetof(vchan_control, srv_notify));
static_assert(offsetof(xen_interface, grants) == grants_offset);
static_assert(sizeof(xen_interface) == sizeof(vchan_control));

static_assert(sizeof(xen_interface::left_order) == sizeof(vchan_control::left_order));
static_assert(sizeof(xen_interface::cli_live) == sizeof(vchan_control::cli_live));

static_assert(xen_notify_write == transport::VCHAN_NOTIFY_WRITE);
static_assert(xen_notify_read == transport::VCHAN_NOTIFY_READ);

/// True in every build that compiled this file: the layouts matched (keeps the unit non-empty).
inline constexpr bool libxenvchan_layout_matches = true;

}  // namespace vdist::transport::internal
