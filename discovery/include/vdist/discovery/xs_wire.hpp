#pragma once
/// \file
/// The XenStore wire protocol (xen/include/public/io/xs_wire.h), sans IO: every message is a
/// header of four native-endian 32-bit words followed by `len` payload bytes.
///
/// ```
///   0        4        8        12       16                 16+len
///   +--------+--------+--------+--------+------------------+
///   | type   | req_id | tx_id  | len    | payload          |   len <= XENSTORE_PAYLOAD_MAX
///   +--------+--------+--------+--------+------------------+
/// ```
///
/// Payloads are NUL-separated strings: requests "path\0" (READ, MKDIR, RM, DIRECTORY,
/// GET_PERMS), "path\0value" (WRITE, value not terminated), "path\0token\0" (WATCH, UNWATCH),
/// "path\0perm\0perm\0..." (SET_PERMS, perm = one of n/r/w/b then the domid), "T\0" or "F\0"
/// (TRANSACTION_END). A reply echoes type and req_id; errors are XS_ERROR with the errno name
/// ("ENOENT\0"); a watch event is XS_WATCH_EVENT "path\0token\0", req_id 0.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace vdist::discovery::xs {

// Message types, with xs_wire.h's names and numbers (checked against it in xs_wire.cpp).
inline constexpr std::uint32_t XS_CONTROL = 0;
inline constexpr std::uint32_t XS_DIRECTORY = 1;
inline constexpr std::uint32_t XS_READ = 2;
inline constexpr std::uint32_t XS_GET_PERMS = 3;
inline constexpr std::uint32_t XS_WATCH = 4;
inline constexpr std::uint32_t XS_UNWATCH = 5;
inline constexpr std::uint32_t XS_TRANSACTION_START = 6;
inline constexpr std::uint32_t XS_TRANSACTION_END = 7;
inline constexpr std::uint32_t XS_INTRODUCE = 8;
inline constexpr std::uint32_t XS_RELEASE = 9;
inline constexpr std::uint32_t XS_GET_DOMAIN_PATH = 10;
inline constexpr std::uint32_t XS_WRITE = 11;
inline constexpr std::uint32_t XS_MKDIR = 12;
inline constexpr std::uint32_t XS_RM = 13;
inline constexpr std::uint32_t XS_SET_PERMS = 14;
inline constexpr std::uint32_t XS_WATCH_EVENT = 15;
inline constexpr std::uint32_t XS_ERROR = 16;
inline constexpr std::uint32_t XS_IS_DOMAIN_INTRODUCED = 17;
inline constexpr std::uint32_t XS_RESUME = 18;
inline constexpr std::uint32_t XS_SET_TARGET = 19;
inline constexpr std::uint32_t XS_RESET_WATCHES = 21;
inline constexpr std::uint32_t XS_DIRECTORY_PART = 22;

/// Largest payload either side may send (XENSTORE_PAYLOAD_MAX).
inline constexpr std::size_t payload_max = 4096;
/// Longest absolute path (XENSTORE_ABS_PATH_MAX).
inline constexpr std::size_t abs_path_max = 3072;

/// struct xsd_sockmsg, native byte order.
struct header {
    std::uint32_t type = 0;
    std::uint32_t req_id = 0;
    std::uint32_t tx_id = 0;
    std::uint32_t len = 0;
};
inline constexpr std::size_t header_size = 16;
static_assert(sizeof(header) == header_size);
static_assert(offsetof(header, type) == 0 && offsetof(header, req_id) == 4);
static_assert(offsetof(header, tx_id) == 8 && offsetof(header, len) == 12);

/// Framing errors: the stream can no longer be trusted (the connection is closed).
enum class errc {
    payload_too_large = 1,  ///< header.len > payload_max
    buffer_overflow,        ///< more unprocessed input than the splitter may hold
};
[[nodiscard]] const std::error_category& wire_category() noexcept;
[[nodiscard]] std::error_code make_error_code(errc e) noexcept;

/// One complete message.
struct message {
    header head;
    std::string payload;
};

/// Cuts a byte stream into messages. Holds at most `max_buffered` unprocessed bytes.
class message_splitter {
  public:
    explicit message_splitter(std::size_t max_buffered = 4 * (header_size + payload_max))
        : max_buffered_(max_buffered) {}

    /// Appends received bytes; fails (and stays failed) when the bound is exceeded.
    [[nodiscard]] std::expected<void, std::error_code> feed(std::string_view bytes);
    /// The next complete message, nullopt when more bytes are needed, or a framing error.
    [[nodiscard]] std::expected<std::optional<message>, std::error_code> next();
    /// How many more bytes may be fed.
    [[nodiscard]] std::size_t room() const noexcept {
        return max_buffered_ - (buffer_.size() - consumed_);
    }

  private:
    std::string buffer_;
    std::size_t consumed_ = 0;
    std::size_t max_buffered_;
};

/// A whole message (header + payload) as bytes; payload must be <= payload_max.
[[nodiscard]] std::string build(std::uint32_t type, std::uint32_t req_id, std::uint32_t tx_id,
                                std::string_view payload);
/// An XS_ERROR reply carrying the errno's name.
[[nodiscard]] std::string build_error(std::uint32_t req_id, std::uint32_t tx_id, int error);
/// An XS_WATCH_EVENT "path\0token\0".
[[nodiscard]] std::string build_watch_event(std::string_view path, std::string_view token);

/// The errno's XenStore name ("EACCES"); "EINVAL" for errnos xs_wire.h does not list.
[[nodiscard]] std::string_view error_name(int error) noexcept;
/// The errno for a XenStore error name, nullopt for an unknown name.
[[nodiscard]] std::optional<int> error_from_name(std::string_view name) noexcept;

/// Splits a payload made only of NUL-terminated strings; nullopt when the last is not
/// terminated (or the payload is empty).
[[nodiscard]] std::optional<std::vector<std::string_view>> split_strings(std::string_view payload);

}  // namespace vdist::discovery::xs

template <>
struct std::is_error_code_enum<vdist::discovery::xs::errc> : std::true_type {};
