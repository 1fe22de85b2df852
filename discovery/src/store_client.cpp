#include "vdist/discovery/store_client.hpp"

// xenstore.h declares C functions without extern "C".
extern "C" {
#include <xenstore.h>
}

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "store_direct.hpp"
#include "store_model.hpp"

namespace vdist::discovery {

struct store_client::handle {
    xs_handle* xs = nullptr;                         // libxenstore
    std::unique_ptr<internal::store_direct> direct;  // or the wire protocol itself
    ~handle() {
        if (xs != nullptr) {
            xs_close(xs);
        }
    }
};

namespace {

std::error_code last_error() {
    return {errno != 0 ? errno : EIO, std::generic_category()};
}

/// libxenstore wants NUL-terminated strings.
std::string terminated(std::string_view text) {
    return std::string(text);
}

/// The wire's "path\0" and "path\0token\0" payloads.
std::string strings(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (const auto part : parts) {
        out.append(part);
        out.push_back('\0');
    }
    return out;
}

/// A reply that carries nothing but "OK".
std::expected<void, std::error_code> done(
    const std::expected<std::string, std::error_code>& reply) {
    if (!reply) {
        return std::unexpected(reply.error());
    }
    return {};
}

std::error_code malformed_reply() {
    return {EIO, std::generic_category()};
}

}  // namespace

store_client::store_client(std::unique_ptr<handle> h) noexcept : handle_(std::move(h)) {}
store_client::store_client(store_client&&) noexcept = default;
store_client& store_client::operator=(store_client&&) noexcept = default;
store_client::~store_client() = default;

std::expected<store_client, std::error_code> store_client::open() {
    auto h = std::make_unique<handle>();
    errno = 0;
    h->xs = xs_open(0);
    if (h->xs == nullptr) {
        return std::unexpected(last_error());
    }
    return store_client(std::move(h));
}

std::expected<store_client, std::error_code> store_client::open(const std::filesystem::path& socket,
                                                                store_way way) {
    if (way == store_way::direct) {
        auto direct = internal::store_direct::connect(socket);
        if (!direct) {
            return std::unexpected(direct.error());
        }
        auto h = std::make_unique<handle>();
        h->direct = std::move(*direct);
        return store_client(std::move(h));
    }
    // libxenstore reads XENSTORED_PATH in xs_open() (xs_daemon_socket(), then xs_domain_dev()),
    // and connects as a Unix socket when the path is one.
    if (::setenv("XENSTORED_PATH", socket.c_str(), 1) != 0) {
        return std::unexpected(last_error());
    }
    return open();
}

std::expected<std::string, std::error_code> store_client::read(std::string_view path,
                                                               transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        return direct->request(xs::XS_READ, tx, strings({path}));
    }
    unsigned int length = 0;
    errno = 0;
    void* value = xs_read(handle_->xs, tx, terminated(path).c_str(), &length);
    if (value == nullptr) {
        return std::unexpected(last_error());
    }
    std::string out(static_cast<const char*>(value), length);
    std::free(value);
    return out;
}

std::expected<void, std::error_code> store_client::write(std::string_view path,
                                                         std::string_view value,
                                                         transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_WRITE, tx, strings({path}) + std::string(value)));
    }
    errno = 0;
    if (!xs_write(handle_->xs, tx, terminated(path).c_str(), value.data(),
                  static_cast<unsigned int>(value.size()))) {
        return std::unexpected(last_error());
    }
    return {};
}

std::expected<void, std::error_code> store_client::mkdir(std::string_view path, transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_MKDIR, tx, strings({path})));
    }
    errno = 0;
    if (!xs_mkdir(handle_->xs, tx, terminated(path).c_str())) {
        return std::unexpected(last_error());
    }
    return {};
}

std::expected<void, std::error_code> store_client::rm(std::string_view path, transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_RM, tx, strings({path})));
    }
    errno = 0;
    if (!xs_rm(handle_->xs, tx, terminated(path).c_str())) {
        return std::unexpected(last_error());
    }
    return {};
}

std::expected<std::vector<std::string>, std::error_code> store_client::directory(
    std::string_view path, transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        auto reply = direct->request(xs::XS_DIRECTORY, tx, strings({path}));
        if (!reply) {
            return std::unexpected(reply.error());
        }
        if (reply->empty()) {
            return std::vector<std::string>{};
        }
        const auto names = xs::split_strings(*reply);
        if (!names) {
            return std::unexpected(malformed_reply());
        }
        return std::vector<std::string>(names->begin(), names->end());
    }
    unsigned int count = 0;
    errno = 0;
    char** names = xs_directory(handle_->xs, tx, terminated(path).c_str(), &count);
    if (names == nullptr) {
        return std::unexpected(last_error());
    }
    std::vector<std::string> out(names, names + count);
    std::free(names);
    return out;
}

std::expected<std::vector<permission>, std::error_code> store_client::get_permissions(
    std::string_view path, transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        auto reply = direct->request(xs::XS_GET_PERMS, tx, strings({path}));
        if (!reply) {
            return std::unexpected(reply.error());
        }
        const auto texts = xs::split_strings(*reply);
        if (!texts) {
            return std::unexpected(malformed_reply());
        }
        std::vector<permission> out;
        for (const auto text : *texts) {
            const auto p = internal::parse_permission(text);
            if (!p) {
                return std::unexpected(malformed_reply());
            }
            out.push_back(*p);
        }
        return out;
    }
    unsigned int count = 0;
    errno = 0;
    xs_permissions* list = xs_get_permissions(handle_->xs, tx, terminated(path).c_str(), &count);
    if (list == nullptr) {
        return std::unexpected(last_error());
    }
    std::vector<permission> out;
    for (unsigned int i = 0; i < count; ++i) {
        access rights = access::none;
        const auto bits = list[i].perms & (XS_PERM_READ | XS_PERM_WRITE);
        if (bits == (XS_PERM_READ | XS_PERM_WRITE)) {
            rights = access::both;
        } else if (bits == XS_PERM_READ) {
            rights = access::read;
        } else if (bits == XS_PERM_WRITE) {
            rights = access::write;
        }
        out.push_back({list[i].id, rights});
    }
    std::free(list);
    return out;
}

std::expected<void, std::error_code> store_client::set_permissions(
    std::string_view path, const std::vector<permission>& permissions, transaction_id tx) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_SET_PERMS, tx,
                                    strings({path}) + internal::format_permissions(permissions)));
    }
    std::vector<xs_permissions> list;
    for (const auto& entry : permissions) {
        unsigned int bits = XS_PERM_NONE;
        switch (entry.rights) {
            case access::none:
                break;
            case access::read:
                bits = XS_PERM_READ;
                break;
            case access::write:
                bits = XS_PERM_WRITE;
                break;
            case access::both:
                bits = XS_PERM_READ | XS_PERM_WRITE;
                break;
        }
        list.push_back({entry.domain, bits});
    }
    errno = 0;
    if (!xs_set_permissions(handle_->xs, tx, terminated(path).c_str(), list.data(),
                            static_cast<unsigned int>(list.size()))) {
        return std::unexpected(last_error());
    }
    return {};
}

std::expected<transaction_id, std::error_code> store_client::transaction_start() {
    if (auto* direct = handle_->direct.get()) {
        auto reply = direct->request(xs::XS_TRANSACTION_START, 0, strings({""}));
        if (!reply) {
            return std::unexpected(reply.error());
        }
        const std::string_view text(reply->c_str());
        transaction_id tx = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), tx);
        if (ec != std::errc() || end != text.data() + text.size() || tx == 0) {
            return std::unexpected(malformed_reply());
        }
        return tx;
    }
    errno = 0;
    const xs_transaction_t tx = xs_transaction_start(handle_->xs);
    if (tx == XBT_NULL) {
        return std::unexpected(last_error());
    }
    return tx;
}

std::expected<void, std::error_code> store_client::transaction_end(transaction_id tx, bool abort) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_TRANSACTION_END, tx, strings({abort ? "F" : "T"})));
    }
    errno = 0;
    if (!xs_transaction_end(handle_->xs, tx, abort)) {
        return std::unexpected(last_error());
    }
    return {};
}

std::expected<void, std::error_code> store_client::transact(
    const std::function<std::expected<void, std::error_code>(transaction_id)>& body, int attempts) {
    std::error_code last = std::make_error_code(std::errc::resource_unavailable_try_again);
    for (int attempt = 0; attempt < attempts; ++attempt) {
        auto tx = transaction_start();
        if (!tx) {
            return std::unexpected(tx.error());
        }
        if (auto done = body(*tx); !done) {
            (void)transaction_end(*tx, true);
            return done;
        }
        auto ended = transaction_end(*tx);
        if (ended) {
            return {};
        }
        if (ended.error() != std::errc::resource_unavailable_try_again) {
            return ended;
        }
        last = ended.error();
    }
    return std::unexpected(last);
}

std::expected<void, std::error_code> store_client::watch(std::string_view path,
                                                         std::string_view token) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_WATCH, 0, strings({path, token})));
    }
    errno = 0;
    if (!xs_watch(handle_->xs, terminated(path).c_str(), terminated(token).c_str())) {
        return std::unexpected(last_error());
    }
    return {};
}

std::expected<void, std::error_code> store_client::unwatch(std::string_view path,
                                                           std::string_view token) {
    if (auto* direct = handle_->direct.get()) {
        return done(direct->request(xs::XS_UNWATCH, 0, strings({path, token})));
    }
    errno = 0;
    if (!xs_unwatch(handle_->xs, terminated(path).c_str(), terminated(token).c_str())) {
        return std::unexpected(last_error());
    }
    return {};
}

int store_client::fileno() const {
    if (const auto* direct = handle_->direct.get()) {
        return direct->fileno();
    }
    return xs_fileno(handle_->xs);
}

std::optional<watch_event> store_client::next_event() {
    if (auto* direct = handle_->direct.get()) {
        return direct->next_event();
    }
    char** event = xs_check_watch(handle_->xs);
    if (event == nullptr) {
        return std::nullopt;
    }
    watch_event out{event[XS_WATCH_PATH], event[XS_WATCH_TOKEN]};
    std::free(event);
    return out;
}

}  // namespace vdist::discovery
