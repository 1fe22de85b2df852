#pragma once
/// \file
/// Errors of the transport layer. Back-pressure ("ring full") and "no data yet" are not errors:
/// they are values of the operations that can meet them (see ring_channel.hpp).

#include <expected>
#include <system_error>

namespace vdist::transport {

/// Transport failures. System call failures travel as std::system_category codes instead.
enum class errc {
    ring_corrupt = 1,   ///< the peer published impossible indices or frame headers
    peer_gone,          ///< the peer closed the channel or died, and nothing is left to read
    stale_generation,   ///< the handle belongs to an earlier generation of the channel
    frame_too_large,    ///< a frame or all-or-nothing message can never fit in the ring
    invalid_order,      ///< ring orders in the control page are out of 10..20 or collide
    invalid_grant,      ///< a grant reference is zero, unknown, or out of range
    rendezvous_failed,  ///< the rendezvous record is missing or malformed
    timed_out,          ///< a blocking operation reached its deadline
    not_connected,      ///< the peer has not attached yet
    misaligned_frame,   ///< frame API used on a ring that is not at a frame boundary
    protocol_error,     ///< the peer broke the setup protocol (bad message on the rendezvous)
};

/// The category of errc values ("vdist.transport").
[[nodiscard]] const std::error_category& transport_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), transport_category()};
}

/// Every fallible transport operation returns a result.
template <class T>
using result = std::expected<T, std::error_code>;

/// Shorthand for returning an errc as a failed result.
[[nodiscard]] inline std::unexpected<std::error_code> fail(errc e) noexcept {
    return std::unexpected(make_error_code(e));
}

/// Shorthand for returning the current errno as a failed result.
[[nodiscard]] std::unexpected<std::error_code> fail_errno() noexcept;

}  // namespace vdist::transport

template <>
struct std::is_error_code_enum<vdist::transport::errc> : std::true_type {};
