// The XenStore wire codec. The constants are checked against Xen's own xs_wire.h (libxen-dev),
// which is included first and its macros captured, because they share our constants' names.
#include <cerrno>
#include <cstdint>
// (xs_wire.h needs the two above)
#include <xen/io/xs_wire.h>

namespace {
constexpr unsigned xen_payload_max = XENSTORE_PAYLOAD_MAX;
constexpr unsigned xen_abs_path_max = XENSTORE_ABS_PATH_MAX;
}  // namespace
#undef XENSTORE_PAYLOAD_MAX
#undef XENSTORE_ABS_PATH_MAX

#include <array>
#include <cerrno>
#include <cstring>

#include "vdist/discovery/xs_wire.hpp"

namespace vdist::discovery::xs {

static_assert(XS_CONTROL == ::XS_CONTROL && XS_DIRECTORY == ::XS_DIRECTORY);
static_assert(XS_READ == ::XS_READ && XS_GET_PERMS == ::XS_GET_PERMS);
static_assert(XS_WATCH == ::XS_WATCH && XS_UNWATCH == ::XS_UNWATCH);
static_assert(XS_TRANSACTION_START == ::XS_TRANSACTION_START);
static_assert(XS_TRANSACTION_END == ::XS_TRANSACTION_END);
static_assert(XS_INTRODUCE == ::XS_INTRODUCE && XS_RELEASE == ::XS_RELEASE);
static_assert(XS_GET_DOMAIN_PATH == ::XS_GET_DOMAIN_PATH && XS_WRITE == ::XS_WRITE);
static_assert(XS_MKDIR == ::XS_MKDIR && XS_RM == ::XS_RM && XS_SET_PERMS == ::XS_SET_PERMS);
static_assert(XS_WATCH_EVENT == ::XS_WATCH_EVENT && XS_ERROR == ::XS_ERROR);
static_assert(XS_IS_DOMAIN_INTRODUCED == ::XS_IS_DOMAIN_INTRODUCED && XS_RESUME == ::XS_RESUME);
static_assert(XS_SET_TARGET == ::XS_SET_TARGET && XS_RESET_WATCHES == ::XS_RESET_WATCHES);
static_assert(XS_DIRECTORY_PART == ::XS_DIRECTORY_PART);
static_assert(payload_max == xen_payload_max && abs_path_max == xen_abs_path_max);
static_assert(sizeof(header) == sizeof(xsd_sockmsg));

namespace {

class wire_category_impl final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.discovery.xs_wire"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::payload_too_large:
                return "message payload larger than XENSTORE_PAYLOAD_MAX";
            case errc::buffer_overflow:
                return "too much unprocessed input";
        }
        return "unknown xs_wire error";
    }
};

struct named_error {
    int error;
    std::string_view name;
};
// The errors xs_wire.h's xsd_errors lists, in its order.
constexpr std::array<named_error, 16> named_errors{{{EINVAL, "EINVAL"},
                                                    {EACCES, "EACCES"},
                                                    {EEXIST, "EEXIST"},
                                                    {EISDIR, "EISDIR"},
                                                    {ENOENT, "ENOENT"},
                                                    {ENOMEM, "ENOMEM"},
                                                    {ENOSPC, "ENOSPC"},
                                                    {EIO, "EIO"},
                                                    {ENOTEMPTY, "ENOTEMPTY"},
                                                    {ENOSYS, "ENOSYS"},
                                                    {EROFS, "EROFS"},
                                                    {EBUSY, "EBUSY"},
                                                    {EAGAIN, "EAGAIN"},
                                                    {EISCONN, "EISCONN"},
                                                    {E2BIG, "E2BIG"},
                                                    {EPERM, "EPERM"}}};

static_assert(named_errors.size() == sizeof(xsd_errors) / sizeof(xsd_errors[0]));

}  // namespace

const std::error_category& wire_category() noexcept {
    static const wire_category_impl category;
    return category;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), wire_category()};
}

std::expected<void, std::error_code> message_splitter::feed(std::string_view bytes) {
    if (bytes.size() > room()) {
        return std::unexpected(make_error_code(errc::buffer_overflow));
    }
    if (consumed_ > 0) {
        buffer_.erase(0, consumed_);
        consumed_ = 0;
    }
    buffer_.append(bytes);
    return {};
}

std::expected<std::optional<message>, std::error_code> message_splitter::next() {
    const std::size_t available = buffer_.size() - consumed_;
    if (available < header_size) {
        return std::nullopt;
    }
    message out;
    std::memcpy(&out.head, buffer_.data() + consumed_, header_size);
    // Checked before waiting for the payload: a hostile length never makes us buffer it.
    if (out.head.len > payload_max) {
        return std::unexpected(make_error_code(errc::payload_too_large));
    }
    if (available < header_size + out.head.len) {
        return std::nullopt;
    }
    out.payload.assign(buffer_, consumed_ + header_size, out.head.len);
    consumed_ += header_size + out.head.len;
    return out;
}

std::string build(std::uint32_t type, std::uint32_t req_id, std::uint32_t tx_id,
                  std::string_view payload) {
    const header head{type, req_id, tx_id, static_cast<std::uint32_t>(payload.size())};
    std::string out(header_size + payload.size(), '\0');
    std::memcpy(out.data(), &head, header_size);
    std::memcpy(out.data() + header_size, payload.data(), payload.size());
    return out;
}

std::string build_error(std::uint32_t req_id, std::uint32_t tx_id, int error) {
    std::string payload(error_name(error));
    payload.push_back('\0');
    return build(XS_ERROR, req_id, tx_id, payload);
}

std::string build_watch_event(std::string_view path, std::string_view token) {
    std::string payload;
    payload.reserve(path.size() + token.size() + 2);
    payload.append(path).push_back('\0');
    payload.append(token).push_back('\0');
    return build(XS_WATCH_EVENT, 0, 0, payload);
}

std::string_view error_name(int error) noexcept {
    for (const auto& entry : named_errors) {
        if (entry.error == error) {
            return entry.name;
        }
    }
    return "EINVAL";
}

std::optional<int> error_from_name(std::string_view name) noexcept {
    for (const auto& entry : named_errors) {
        if (entry.name == name) {
            return entry.error;
        }
    }
    return std::nullopt;
}

std::optional<std::vector<std::string_view>> split_strings(std::string_view payload) {
    if (payload.empty() || payload.back() != '\0') {
        return std::nullopt;
    }
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (start < payload.size()) {
        const std::size_t end = payload.find('\0', start);
        out.push_back(payload.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

}  // namespace vdist::discovery::xs
