#pragma once
/// \file
/// The host store: XenStore semantics served over XenStore's own wire protocol on a Unix
/// socket, so that libxenstore (store_client.hpp) is the client in both worlds.
///
/// Semantics kept from xenstored: hierarchical keys (parents created on write), atomic
/// transactions (a conflicting commit fails with EAGAIN), watches that fire on change and on
/// deletion of the path or anything below it, per-domain permissions (dom0 may do anything; a
/// domain reads and writes only what the permission lists allow, a new node inherits its
/// parent's list with the creator as owner). A client's domain is learnt from its socket's
/// peer credentials (SO_PEERCRED) through `identify`; unknown processes are refused.
///
/// Hostile clients: every length is bounded (XENSTORE_PAYLOAD_MAX = 4096), malformed requests
/// get an error reply (EINVAL, E2BIG, ...), a client that breaks framing is disconnected;
/// nothing a client sends can stop the server or affect other clients' data beyond its rights.

#include <sys/types.h>

#include <cstddef>
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
#include "vdist/discovery/store_client.hpp"

namespace vdist::discovery {

class store_server {
  public:
    /// The domain of a connecting process, or nullopt to refuse it.
    using identify_fn = std::function<std::optional<store_domid>(pid_t pid, uid_t uid)>;

    /// Listens on `socket` (replacing a stale socket file).
    [[nodiscard]] static std::expected<std::unique_ptr<store_server>, std::error_code> listen(
        const std::filesystem::path& socket, identify_fn identify);

    store_server(const store_server&) = delete;
    store_server& operator=(const store_server&) = delete;
    ~store_server();  // closes every connection, unlinks the socket

    /// Readable (an epoll fd) when a client connects or sends; then call poll().
    [[nodiscard]] int native_handle() const;
    /// Serves everything that is ready; never blocks.
    void poll();

    // The toolstack's own access, as dom0, without a socket. Watches fire as for clients.
    [[nodiscard]] std::expected<std::string, std::error_code> read(std::string_view path) const;
    [[nodiscard]] std::expected<void, std::error_code> write(std::string_view path,
                                                             std::string_view value);
    [[nodiscard]] std::expected<void, std::error_code> mkdir(std::string_view path);
    [[nodiscard]] std::expected<void, std::error_code> rm(std::string_view path);
    [[nodiscard]] std::expected<std::vector<std::string>, std::error_code> directory(
        std::string_view path) const;
    [[nodiscard]] std::expected<void, std::error_code> set_permissions(
        std::string_view path, const std::vector<permission>& permissions);

    /// A domain is gone: close its connections, drop its watches and transactions.
    void release_domain(store_domid domid);

    /// Number of keys in the store (for leak checks), and every path (sorted).
    [[nodiscard]] std::size_t key_count() const;
    [[nodiscard]] std::vector<std::string> all_paths() const;
    [[nodiscard]] std::size_t connection_count() const;
    /// Registered watches and open transactions, over all connections.
    [[nodiscard]] std::size_t watch_count() const;
    [[nodiscard]] std::size_t transaction_count() const;

  private:
    struct impl;
    explicit store_server(std::unique_ptr<impl> self);
    std::unique_ptr<impl> self_;
};

}  // namespace vdist::discovery
