#pragma once
/// \file
/// Parsing and checking of the strings vdist reads from and writes to XenStore. Everything in
/// the store may have been written by another domain, so every value is parsed strictly:
/// decimal digits only, no sign, no whitespace, no trailing bytes, no overflow.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "vdist/transport/errc.hpp"
#include "vdist/transport/seams.hpp"

namespace vdist::transport::internal {

/// Xen DOMID_FIRST_RESERVED: domids from here on name special domains, never a running guest.
inline constexpr std::uint32_t first_reserved_domid = 0x7FF0;

/// Longest vchan port name accepted in a vchan_address (XenStore allows far longer paths;
/// this keeps every vchan path well inside XENSTORE_ABS_PATH_MAX).
inline constexpr std::size_t max_port_name_length = 128;

/// The value of a non-empty string of ASCII decimal digits, or nullopt if `text` is empty,
/// holds any other byte (sign, space, NUL, ...) or does not fit in 32 bits.
[[nodiscard]] constexpr std::optional<std::uint32_t> parse_digits(std::string_view text) noexcept {
    if (text.empty()) {
        return std::nullopt;
    }
    constexpr std::uint32_t max = std::numeric_limits<std::uint32_t>::max();
    std::uint32_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<std::uint32_t>(c - '0');
        if (value > (max - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

/// A rendezvous value (`ring-ref` or `event-channel`) as libxenvchan writes it ("%d").
/// Zero is refused as well: it is never a valid ring-ref nor event-channel port.
/// Fails with errc::rendezvous_failed.
[[nodiscard]] inline result<std::uint32_t> parse_decimal(std::string_view text) noexcept {
    const auto value = parse_digits(text);
    if (!value || *value == 0) {
        return fail(errc::rendezvous_failed);
    }
    return *value;
}

/// This domain's id as read from the XenStore key `domid` (0 is dom0 and valid; reserved ids
/// are not). Fails with errc::rendezvous_failed.
[[nodiscard]] inline result<domid_t> parse_domid(std::string_view text) noexcept {
    const auto value = parse_digits(text);
    if (!value || *value >= first_reserved_domid) {
        return fail(errc::rendezvous_failed);
    }
    return static_cast<domid_t>(*value);
}

/// True if `port` can be the last component of a vchan XenStore path: 1..max_port_name_length
/// bytes from the XenStore path alphabet ([A-Za-z0-9_@-]) without '/', so that a port name can
/// never climb out of `/local/domain/<server>/data/vchan/<client>/`.
[[nodiscard]] constexpr bool is_valid_port_name(std::string_view port) noexcept {
    if (port.empty() || port.size() > max_port_name_length) {
        return false;
    }
    for (char c : port) {
        const bool alphanumeric =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alphanumeric && c != '-' && c != '_' && c != '@') {
            return false;
        }
    }
    return true;
}

}  // namespace vdist::transport::internal
