#pragma once
/// \file
/// A XenStore client, one of two ways (store_way):
/// - libxenstore itself, wrapped. The same code talks to xenstored on Xen (/dev/xen/xenbus)
///   and to the host store (a Unix socket): libxenstore connects to the path in
///   XENSTORED_PATH when it is set, and to a Unix socket when that path is one. It delivers
///   watch events through a thread of its own (started by the first watch) and a pipe.
/// - direct: the same wire protocol (xs_wire.hpp) spoken on the host store's socket by this
///   client, with no thread: a node is a single-threaded process (store_direct.hpp).
///
/// Either way an event loop polls fileno() and drains events with next_event().
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "vdist/discovery/keys.hpp"

namespace vdist::discovery {

/// XenStore permission letters: n(one), r(ead), w(rite), b(oth).
enum class access : char { none = 'n', read = 'r', write = 'w', both = 'b' };

/// One entry of a node's permission list. The first entry names the owner (who may do
/// everything) and gives the access of every domain not listed later.
struct permission {
    store_domid domain = 0;
    access rights = access::none;
    friend bool operator==(const permission&, const permission&) = default;
};

struct watch_event {
    std::string path;   ///< the path that changed (or the watched one, on registration)
    std::string token;  ///< the token given to watch()
};

/// 0 = no transaction (XBT_NULL).
using transaction_id = std::uint32_t;

/// How a client speaks to the host store's socket (see the file's comment).
enum class store_way { direct, libxenstore };

class store_client {
  public:
    /// Connects as libxenstore does: XENSTORED_PATH, else the Xen device.
    [[nodiscard]] static std::expected<store_client, std::error_code> open();
    /// Connects to the host store's socket at `socket`: directly, or through libxenstore
    /// (which reads XENSTORED_PATH: it is set).
    [[nodiscard]] static std::expected<store_client, std::error_code> open(
        const std::filesystem::path& socket, store_way way = store_way::direct);

    store_client(store_client&&) noexcept;
    store_client& operator=(store_client&&) noexcept;
    ~store_client();

    // Errors are errno values as xenstored reports them: ENOENT, EACCES, EAGAIN (transaction
    // conflict), EINVAL, E2BIG, EQUOTA, ...
    [[nodiscard]] std::expected<std::string, std::error_code> read(std::string_view path,
                                                                   transaction_id tx = 0);
    [[nodiscard]] std::expected<void, std::error_code> write(std::string_view path,
                                                             std::string_view value,
                                                             transaction_id tx = 0);
    [[nodiscard]] std::expected<void, std::error_code> mkdir(std::string_view path,
                                                             transaction_id tx = 0);
    [[nodiscard]] std::expected<void, std::error_code> rm(std::string_view path,
                                                          transaction_id tx = 0);
    [[nodiscard]] std::expected<std::vector<std::string>, std::error_code> directory(
        std::string_view path, transaction_id tx = 0);
    [[nodiscard]] std::expected<std::vector<permission>, std::error_code> get_permissions(
        std::string_view path, transaction_id tx = 0);
    [[nodiscard]] std::expected<void, std::error_code> set_permissions(
        std::string_view path, const std::vector<permission>& permissions, transaction_id tx = 0);

    [[nodiscard]] std::expected<transaction_id, std::error_code> transaction_start();
    /// Commit (or abort); a conflict is std::errc::resource_unavailable_try_again (EAGAIN).
    [[nodiscard]] std::expected<void, std::error_code> transaction_end(transaction_id tx,
                                                                       bool abort = false);
    /// Runs `body` in a transaction, retrying on conflict (at most `attempts` times).
    [[nodiscard]] std::expected<void, std::error_code> transact(
        const std::function<std::expected<void, std::error_code>(transaction_id)>& body,
        int attempts = 100);

    /// Fires once at once, then on every change of `path` or below it, and on its deletion.
    [[nodiscard]] std::expected<void, std::error_code> watch(std::string_view path,
                                                             std::string_view token);
    [[nodiscard]] std::expected<void, std::error_code> unwatch(std::string_view path,
                                                               std::string_view token);
    /// Readable when watch events are pending.
    [[nodiscard]] int fileno() const;
    /// The next pending watch event, without blocking.
    [[nodiscard]] std::optional<watch_event> next_event();

  private:
    struct handle;
    explicit store_client(std::unique_ptr<handle> h) noexcept;
    std::unique_ptr<handle> handle_;
};

}  // namespace vdist::discovery
