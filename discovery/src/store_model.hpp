#pragma once
// The host store's data model, without any socket: the tree of nodes, transactions and
// watches, with XenStore semantics. Errors are errno values (ENOENT, EACCES, EAGAIN, ...), as
// they travel on the wire. Single-threaded: the server (or a test) owns it.

#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vdist/discovery/store_client.hpp"

namespace vdist::discovery::internal {

using connection_id = std::uint64_t;
/// The model's own access (the toolstack's direct API): no connection.
inline constexpr connection_id no_connection = 0;

/// A path canonicalised for `domid` (relative paths are under /local/domain/<domid>), or
/// nullopt when it is not a valid XenStore path.
[[nodiscard]] std::optional<std::string> canonical_path(store_domid domid, std::string_view path);
/// `child` is `parent` or below it.
[[nodiscard]] bool is_subpath(std::string_view parent, std::string_view child);
/// Whether `domid` has `wanted` (read or write) on a node with `permissions`.
[[nodiscard]] bool allowed(store_domid domid, const std::vector<permission>& permissions,
                           access wanted);
/// "b0\0r5\0" and back.
[[nodiscard]] std::string format_permissions(const std::vector<permission>& permissions);
[[nodiscard]] std::optional<permission> parse_permission(std::string_view text);

struct node {
    std::string value;
    std::vector<permission> permissions;
    std::set<std::string> children;
    std::uint64_t generation = 0;
};

/// What a transaction read or wrote: each path with its generation when first touched
/// (0 = it did not exist).
struct access_log {
    std::map<std::string, std::uint64_t> touched;
    std::set<std::string> written;
};

/// A change to report to watches: the path, and the node's permissions (as it was, when it is
/// removed) for the watcher's read check.
struct change {
    std::string path;
    std::vector<permission> permissions;
    bool removed = false;
};

/// The tree of nodes. `log` (nullable) records accesses for a transaction; `changes` collects
/// what to report to watches.
class tree {
  public:
    tree();

    [[nodiscard]] std::expected<std::string, int> read(store_domid domid, const std::string& path,
                                                       access_log* log) const;
    [[nodiscard]] std::expected<void, int> write(store_domid domid, const std::string& path,
                                                 std::string_view value, access_log* log,
                                                 std::vector<change>& changes);
    [[nodiscard]] std::expected<void, int> mkdir(store_domid domid, const std::string& path,
                                                 access_log* log, std::vector<change>& changes);
    [[nodiscard]] std::expected<void, int> rm(store_domid domid, const std::string& path,
                                              access_log* log, std::vector<change>& changes);
    [[nodiscard]] std::expected<std::vector<std::string>, int> directory(store_domid domid,
                                                                         const std::string& path,
                                                                         access_log* log) const;
    [[nodiscard]] std::expected<std::vector<permission>, int> get_permissions(
        store_domid domid, const std::string& path, access_log* log) const;
    [[nodiscard]] std::expected<void, int> set_permissions(store_domid domid,
                                                           const std::string& path,
                                                           std::vector<permission> permissions,
                                                           access_log* log,
                                                           std::vector<change>& changes);

    /// 0 when absent.
    [[nodiscard]] std::uint64_t generation_of(const std::string& path) const;
    /// Copies what a committed transaction wrote from `from` (its snapshot).
    void apply(const tree& from, const std::set<std::string>& written);

    [[nodiscard]] std::size_t size() const { return nodes_.size(); }
    [[nodiscard]] std::vector<std::string> paths() const;

  private:
    [[nodiscard]] const node* find(const std::string& path) const;
    /// The nearest existing ancestor of a missing path.
    [[nodiscard]] const std::string& nearest_existing(const std::string& path) const;
    [[nodiscard]] std::expected<const node*, int> lookup(store_domid domid, const std::string& path,
                                                         access wanted, access_log* log) const;
    void create(store_domid domid, const std::string& path, std::string_view value,
                access_log* log);
    void touch(const std::string& path, access_log* log) const;
    void mark_written(const std::string& path, access_log* log);

    std::map<std::string, node> nodes_;
    std::uint64_t next_generation_ = 1;
};

/// The store: the tree, open transactions and registered watches.
class store_model {
  public:
    struct delivery {
        connection_id connection = 0;
        std::string path;
        std::string token;
    };

    static constexpr std::size_t max_transactions_per_connection = 16;
    static constexpr std::size_t max_watches_per_connection = 128;

    [[nodiscard]] std::expected<std::string, int> read(store_domid domid, connection_id conn,
                                                       std::uint32_t tx, std::string_view path);
    [[nodiscard]] std::expected<void, int> write(store_domid domid, connection_id conn,
                                                 std::uint32_t tx, std::string_view path,
                                                 std::string_view value);
    [[nodiscard]] std::expected<void, int> mkdir(store_domid domid, connection_id conn,
                                                 std::uint32_t tx, std::string_view path);
    [[nodiscard]] std::expected<void, int> rm(store_domid domid, connection_id conn,
                                              std::uint32_t tx, std::string_view path);
    [[nodiscard]] std::expected<std::vector<std::string>, int> directory(store_domid domid,
                                                                         connection_id conn,
                                                                         std::uint32_t tx,
                                                                         std::string_view path);
    [[nodiscard]] std::expected<std::vector<permission>, int> get_permissions(
        store_domid domid, connection_id conn, std::uint32_t tx, std::string_view path);
    [[nodiscard]] std::expected<void, int> set_permissions(store_domid domid, connection_id conn,
                                                           std::uint32_t tx, std::string_view path,
                                                           std::vector<permission> permissions);

    [[nodiscard]] std::expected<std::uint32_t, int> transaction_start(connection_id conn);
    [[nodiscard]] std::expected<void, int> transaction_end(connection_id conn, std::uint32_t tx,
                                                           bool commit);

    [[nodiscard]] std::expected<void, int> watch(store_domid domid, connection_id conn,
                                                 std::string_view path, std::string_view token);
    [[nodiscard]] std::expected<void, int> unwatch(store_domid domid, connection_id conn,
                                                   std::string_view path, std::string_view token);
    /// Fires a special watch ("@releaseDomain").
    void fire_special(std::string_view name);
    /// A connection is gone: its watches and transactions go too.
    void drop_connection(connection_id conn);

    /// Watch events produced since the last call, in order.
    [[nodiscard]] std::vector<delivery> take_deliveries();

    [[nodiscard]] std::size_t key_count() const { return tree_.size(); }
    [[nodiscard]] std::vector<std::string> all_paths() const { return tree_.paths(); }
    [[nodiscard]] std::size_t transaction_count() const { return transactions_.size(); }
    [[nodiscard]] std::size_t watch_count() const { return watches_.size(); }

  private:
    struct transaction {
        connection_id connection = 0;
        tree snapshot;
        access_log log;
        std::vector<change> changes;
    };
    struct watch_entry {
        connection_id connection = 0;
        store_domid domid = 0;
        std::string token;
        /// For a watch given as a relative path: "/local/domain/<d>/", cut from event paths
        /// (as xenstored reports them relative again).
        std::string relative_to;
    };

    /// The tree and log an operation works on: the transaction's snapshot, or the store.
    struct target {
        tree* view;
        access_log* log;
        std::vector<change>* changes;
    };
    [[nodiscard]] std::expected<target, int> target_for(connection_id conn, std::uint32_t tx);
    void fire(const std::vector<change>& changes);

    tree tree_;
    std::map<std::uint32_t, transaction> transactions_;
    std::uint32_t next_transaction_ = 1;
    /// By watched path: a change looks up its path's ancestors (and, removed, its
    /// descendants), not every watch (a host agent's store has one per node, or more).
    std::multimap<std::string, watch_entry, std::less<>> watches_;
    std::map<connection_id, std::size_t> watches_per_connection_;
    std::vector<delivery> deliveries_;
    std::vector<change> direct_changes_;
};

}  // namespace vdist::discovery::internal
