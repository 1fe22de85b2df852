#include "store_model.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <utility>

#include "vdist/discovery/xs_wire.hpp"

namespace vdist::discovery::internal {

namespace {

bool valid_path_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '_' || c == '@' || c == '-';
}

std::string parent_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == 0 ? std::string("/") : path.substr(0, slash);
}

std::string child_path(const std::string& parent, std::string_view name) {
    std::string out = parent == "/" ? std::string() : parent;
    out.push_back('/');
    out.append(name);
    return out;
}

std::string last_component(const std::string& path) {
    return path.substr(path.rfind('/') + 1);
}

bool is_special(std::string_view path) {
    return path == "@releaseDomain" || path == "@introduceDomain";
}

}  // namespace

std::optional<std::string> canonical_path(store_domid domid, std::string_view path) {
    if (path.empty()) {
        return std::nullopt;
    }
    std::string out;
    if (path.front() != '/') {
        out = domain_path(domid) + "/";
    }
    out.append(path);
    if (out.size() > xs::abs_path_max || !std::all_of(out.begin(), out.end(), valid_path_char) ||
        out.find("//") != std::string::npos || (out.size() > 1 && out.back() == '/')) {
        return std::nullopt;
    }
    return out;
}

bool is_subpath(std::string_view parent, std::string_view child) {
    if (parent == "/") {
        return !child.empty() && child.front() == '/';
    }
    return child.starts_with(parent) &&
           (child.size() == parent.size() || child[parent.size()] == '/');
}

bool allowed(store_domid domid, const std::vector<permission>& permissions, access wanted) {
    if (domid == 0) {
        return true;
    }
    if (permissions.empty()) {
        return false;
    }
    access rights = permissions.front().rights;
    if (permissions.front().domain == domid) {
        rights = access::both;
    } else {
        const auto entry = std::find_if(permissions.begin() + 1, permissions.end(),
                                        [&](const permission& p) { return p.domain == domid; });
        if (entry != permissions.end()) {
            rights = entry->rights;
        }
    }
    return rights == access::both || rights == wanted;
}

std::string format_permissions(const std::vector<permission>& permissions) {
    std::string out;
    for (const auto& entry : permissions) {
        out.push_back(static_cast<char>(entry.rights));
        out.append(std::to_string(entry.domain));
        out.push_back('\0');
    }
    return out;
}

std::optional<permission> parse_permission(std::string_view text) {
    if (text.size() < 2) {
        return std::nullopt;
    }
    permission out;
    switch (text.front()) {
        case 'n':
        case 'r':
        case 'w':
        case 'b':
            out.rights = static_cast<access>(text.front());
            break;
        default:
            return std::nullopt;
    }
    const auto digits = text.substr(1);
    const auto [end, error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), out.domain);
    if (error != std::errc{} || end != digits.data() + digits.size() || out.domain > 0xffff) {
        return std::nullopt;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// tree

tree::tree() {
    nodes_["/"] = node{"", {{0, access::none}}, {}, next_generation_++};
}

const node* tree::find(const std::string& path) const {
    const auto it = nodes_.find(path);
    return it == nodes_.end() ? nullptr : &it->second;
}

const std::string& tree::nearest_existing(const std::string& path) const {
    std::string at = path;
    while (!nodes_.contains(at)) {
        at = parent_of(at);
    }
    return nodes_.find(at)->first;
}

void tree::touch(const std::string& path, access_log* log) const {
    if (log != nullptr) {
        log->touched.emplace(path, generation_of(path));
    }
}

void tree::mark_written(const std::string& path, access_log* log) {
    if (log != nullptr) {
        touch(path, log);
        log->written.insert(path);
    }
}

std::uint64_t tree::generation_of(const std::string& path) const {
    const node* found = find(path);
    return found == nullptr ? 0 : found->generation;
}

std::expected<const node*, int> tree::lookup(store_domid domid, const std::string& path,
                                             access wanted, access_log* log) const {
    touch(path, log);
    const node* found = find(path);
    if (found == nullptr) {
        // Without access to the parent, a domain may not even learn whether a node exists.
        const node* parent = find(nearest_existing(path));
        return std::unexpected(allowed(domid, parent->permissions, access::read) ? ENOENT : EACCES);
    }
    if (!allowed(domid, found->permissions, wanted)) {
        return std::unexpected(EACCES);
    }
    return found;
}

std::expected<std::string, int> tree::read(store_domid domid, const std::string& path,
                                           access_log* log) const {
    auto found = lookup(domid, path, access::read, log);
    if (!found) {
        return std::unexpected(found.error());
    }
    return (*found)->value;
}

void tree::create(store_domid domid, const std::string& path, std::string_view value,
                  access_log* log) {
    const std::string parent = parent_of(path);
    if (!nodes_.contains(parent)) {
        create(domid, parent, "", log);
    }
    mark_written(parent, log);
    mark_written(path, log);
    node& parent_node = nodes_[parent];
    parent_node.children.insert(last_component(path));
    parent_node.generation = next_generation_++;
    // As xenstored: inherit the parent's list; an unprivileged creator owns what it creates.
    node created{std::string(value), parent_node.permissions, {}, next_generation_++};
    if (domid != 0) {
        created.permissions.front().domain = domid;
    }
    nodes_[path] = std::move(created);
}

std::expected<void, int> tree::write(store_domid domid, const std::string& path,
                                     std::string_view value, access_log* log,
                                     std::vector<change>& changes) {
    if (const node* found = find(path)) {
        if (!allowed(domid, found->permissions, access::write)) {
            touch(path, log);
            return std::unexpected(EACCES);
        }
        mark_written(path, log);
        node& n = nodes_[path];
        n.value = std::string(value);
        n.generation = next_generation_++;
        changes.push_back({path, n.permissions, false});
        return {};
    }
    touch(path, log);
    const std::string& ancestor = nearest_existing(path);
    if (!allowed(domid, nodes_.at(ancestor).permissions, access::write)) {
        return std::unexpected(EACCES);
    }
    create(domid, path, value, log);
    changes.push_back({path, nodes_.at(path).permissions, false});
    return {};
}

std::expected<void, int> tree::mkdir(store_domid domid, const std::string& path, access_log* log,
                                     std::vector<change>& changes) {
    if (find(path) != nullptr) {
        auto found = lookup(domid, path, access::write, log);
        if (!found) {
            return std::unexpected(found.error());
        }
        return {};
    }
    return write(domid, path, "", log, changes);
}

std::expected<void, int> tree::rm(store_domid domid, const std::string& path, access_log* log,
                                  std::vector<change>& changes) {
    if (path == "/") {
        return std::unexpected(EINVAL);
    }
    touch(path, log);
    const node* found = find(path);
    if (found == nullptr) {
        // As xenstored: removing what is not there is fine when its parent exists.
        const std::string parent = parent_of(path);
        const node* parent_node = find(parent);
        if (parent_node == nullptr) {
            return std::unexpected(ENOENT);
        }
        touch(parent, log);
        return allowed(domid, parent_node->permissions, access::read) ? std::expected<void, int>{}
                                                                      : std::unexpected(EACCES);
    }
    if (!allowed(domid, found->permissions, access::write)) {
        return std::unexpected(EACCES);
    }
    changes.push_back({path, found->permissions, true});
    std::vector<std::string> doomed{path};
    for (std::size_t i = 0; i < doomed.size(); ++i) {
        for (const auto& child : nodes_.at(doomed[i]).children) {
            doomed.push_back(child_path(doomed[i], child));
        }
    }
    for (const auto& gone : doomed) {
        mark_written(gone, log);
        nodes_.erase(gone);
    }
    const std::string parent = parent_of(path);
    mark_written(parent, log);
    node& parent_node = nodes_.at(parent);
    parent_node.children.erase(last_component(path));
    parent_node.generation = next_generation_++;
    return {};
}

std::expected<std::vector<std::string>, int> tree::directory(store_domid domid,
                                                             const std::string& path,
                                                             access_log* log) const {
    auto found = lookup(domid, path, access::read, log);
    if (!found) {
        return std::unexpected(found.error());
    }
    return std::vector<std::string>((*found)->children.begin(), (*found)->children.end());
}

std::expected<std::vector<permission>, int> tree::get_permissions(store_domid domid,
                                                                  const std::string& path,
                                                                  access_log* log) const {
    auto found = lookup(domid, path, access::read, log);
    if (!found) {
        return std::unexpected(found.error());
    }
    return (*found)->permissions;
}

std::expected<void, int> tree::set_permissions(store_domid domid, const std::string& path,
                                               std::vector<permission> permissions, access_log* log,
                                               std::vector<change>& changes) {
    if (permissions.empty()) {
        return std::unexpected(EINVAL);
    }
    auto found = lookup(domid, path, access::write, log);
    if (!found) {
        return std::unexpected(found.error());
    }
    if (domid != 0) {
        if ((*found)->permissions.front().domain != domid) {
            return std::unexpected(EACCES);
        }
        // An unprivileged owner may not give its node away.
        if (permissions.front().domain != domid) {
            return std::unexpected(EPERM);
        }
    }
    mark_written(path, log);
    node& n = nodes_.at(path);
    n.permissions = std::move(permissions);
    n.generation = next_generation_++;
    changes.push_back({path, n.permissions, false});
    return {};
}

void tree::apply(const tree& from, const std::set<std::string>& written) {
    for (const auto& path : written) {
        if (const node* source = from.find(path)) {
            node copy = *source;
            copy.generation = next_generation_++;
            nodes_[path] = std::move(copy);
        } else {
            nodes_.erase(path);
        }
    }
}

std::vector<std::string> tree::paths() const {
    std::vector<std::string> out;
    out.reserve(nodes_.size());
    for (const auto& [path, n] : nodes_) {
        out.push_back(path);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// store_model

std::expected<store_model::target, int> store_model::target_for(connection_id conn,
                                                                std::uint32_t tx) {
    if (tx == 0) {
        return target{&tree_, nullptr, &direct_changes_};
    }
    const auto it = transactions_.find(tx);
    if (it == transactions_.end() || it->second.connection != conn) {
        return std::unexpected(ENOENT);
    }
    return target{&it->second.snapshot, &it->second.log, &it->second.changes};
}

#define VDIST_CANONICAL(name, domid, path)         \
    const auto name = canonical_path(domid, path); \
    if (!name) {                                   \
        return std::unexpected(EINVAL);            \
    }                                              \
    auto on = target_for(conn, tx);                \
    if (!on) {                                     \
        return std::unexpected(on.error());        \
    }

std::expected<std::string, int> store_model::read(store_domid domid, connection_id conn,
                                                  std::uint32_t tx, std::string_view path) {
    VDIST_CANONICAL(full, domid, path)
    return on->view->read(domid, *full, on->log);
}

std::expected<void, int> store_model::write(store_domid domid, connection_id conn, std::uint32_t tx,
                                            std::string_view path, std::string_view value) {
    VDIST_CANONICAL(full, domid, path)
    auto result = on->view->write(domid, *full, value, on->log, *on->changes);
    fire(direct_changes_);
    return result;
}

std::expected<void, int> store_model::mkdir(store_domid domid, connection_id conn, std::uint32_t tx,
                                            std::string_view path) {
    VDIST_CANONICAL(full, domid, path)
    auto result = on->view->mkdir(domid, *full, on->log, *on->changes);
    fire(direct_changes_);
    return result;
}

std::expected<void, int> store_model::rm(store_domid domid, connection_id conn, std::uint32_t tx,
                                         std::string_view path) {
    VDIST_CANONICAL(full, domid, path)
    auto result = on->view->rm(domid, *full, on->log, *on->changes);
    fire(direct_changes_);
    return result;
}

std::expected<std::vector<std::string>, int> store_model::directory(store_domid domid,
                                                                    connection_id conn,
                                                                    std::uint32_t tx,
                                                                    std::string_view path) {
    VDIST_CANONICAL(full, domid, path)
    return on->view->directory(domid, *full, on->log);
}

std::expected<std::vector<permission>, int> store_model::get_permissions(store_domid domid,
                                                                         connection_id conn,
                                                                         std::uint32_t tx,
                                                                         std::string_view path) {
    VDIST_CANONICAL(full, domid, path)
    return on->view->get_permissions(domid, *full, on->log);
}

std::expected<void, int> store_model::set_permissions(store_domid domid, connection_id conn,
                                                      std::uint32_t tx, std::string_view path,
                                                      std::vector<permission> permissions) {
    VDIST_CANONICAL(full, domid, path)
    auto result =
        on->view->set_permissions(domid, *full, std::move(permissions), on->log, *on->changes);
    fire(direct_changes_);
    return result;
}

#undef VDIST_CANONICAL

std::expected<std::uint32_t, int> store_model::transaction_start(connection_id conn) {
    const auto open =
        std::count_if(transactions_.begin(), transactions_.end(),
                      [&](const auto& entry) { return entry.second.connection == conn; });
    if (static_cast<std::size_t>(open) >= max_transactions_per_connection) {
        return std::unexpected(ENOSPC);
    }
    std::uint32_t id = next_transaction_;
    while (id == 0 || transactions_.contains(id)) {
        ++id;
    }
    next_transaction_ = id + 1;
    transactions_.emplace(id, transaction{conn, tree_, {}, {}});
    return id;
}

std::expected<void, int> store_model::transaction_end(connection_id conn, std::uint32_t tx,
                                                      bool commit) {
    const auto it = transactions_.find(tx);
    if (tx == 0 || it == transactions_.end() || it->second.connection != conn) {
        return std::unexpected(ENOENT);
    }
    transaction ended = std::move(it->second);
    transactions_.erase(it);
    if (!commit) {
        return {};
    }
    for (const auto& [path, generation] : ended.log.touched) {
        if (tree_.generation_of(path) != generation) {
            return std::unexpected(EAGAIN);
        }
    }
    tree_.apply(ended.snapshot, ended.log.written);
    fire(ended.changes);
    return {};
}

std::expected<void, int> store_model::watch(store_domid domid, connection_id conn,
                                            std::string_view path, std::string_view token) {
    std::string full;
    if (is_special(path)) {
        full = std::string(path);
    } else if (auto canonical = canonical_path(domid, path)) {
        full = std::move(*canonical);
    } else {
        return std::unexpected(EINVAL);
    }
    const auto [first, last] = watches_.equal_range(full);
    for (auto it = first; it != last; ++it) {
        if (it->second.connection == conn && it->second.token == token) {
            return std::unexpected(EEXIST);
        }
    }
    auto& mine = watches_per_connection_[conn];
    if (mine >= max_watches_per_connection) {
        return std::unexpected(E2BIG);
    }
    std::string relative_to;
    if (!is_special(path) && path.front() != '/') {
        relative_to = domain_path(domid) + "/";
    }
    ++mine;
    watches_.emplace(std::move(full),
                     watch_entry{conn, domid, std::string(token), std::move(relative_to)});
    // As xenstored: every new watch fires once at once (with the path as given).
    deliveries_.push_back({conn, std::string(path), std::string(token)});
    return {};
}

std::expected<void, int> store_model::unwatch(store_domid domid, connection_id conn,
                                              std::string_view path, std::string_view token) {
    std::string full(path);
    if (!is_special(path)) {
        auto canonical = canonical_path(domid, path);
        if (!canonical) {
            return std::unexpected(EINVAL);
        }
        full = std::move(*canonical);
    }
    const auto [first, last] = watches_.equal_range(full);
    const auto it = std::find_if(first, last, [&](const auto& entry) {
        return entry.second.connection == conn && entry.second.token == token;
    });
    if (it == last) {
        return std::unexpected(ENOENT);
    }
    watches_.erase(it);
    if (--watches_per_connection_[conn] == 0) {
        watches_per_connection_.erase(conn);
    }
    return {};
}

void store_model::fire_special(std::string_view name) {
    const auto [first, last] = watches_.equal_range(name);
    for (auto it = first; it != last; ++it) {
        deliveries_.push_back({it->second.connection, it->first, it->second.token});
    }
}

void store_model::fire(const std::vector<change>& changes) {
    const auto deliver = [&](const change& changed, const watch_entry& entry,
                             std::string_view reported) {
        if (!allowed(entry.domid, changed.permissions, access::read)) {
            return;
        }
        if (!entry.relative_to.empty() && reported.starts_with(entry.relative_to)) {
            reported.remove_prefix(entry.relative_to.size());
        }
        deliveries_.push_back({entry.connection, std::string(reported), entry.token});
    };
    for (const auto& changed : changes) {
        // Watches on the path or an ancestor ("/", "/a", "/a/b", ...): the event names the
        // changed path.
        for (std::size_t end = 1; end <= changed.path.size(); ++end) {
            if (end != 1 && end != changed.path.size() && changed.path[end] != '/') {
                continue;
            }
            const auto [first, last] =
                watches_.equal_range(std::string_view(changed.path).substr(0, end));
            for (auto it = first; it != last; ++it) {
                deliver(changed, it->second, changed.path);
            }
        }
        if (!changed.removed) {
            continue;
        }
        // A watched node went with an ancestor: the event names the watched node.
        const std::string below = changed.path == "/" ? "/" : changed.path + "/";
        for (auto it = watches_.lower_bound(below);
             it != watches_.end() && it->first.starts_with(below); ++it) {
            deliver(changed, it->second, it->first);
        }
    }
    if (&changes == &direct_changes_) {
        direct_changes_.clear();
    }
}

void store_model::drop_connection(connection_id conn) {
    std::erase_if(watches_, [&](const auto& entry) { return entry.second.connection == conn; });
    watches_per_connection_.erase(conn);
    std::erase_if(transactions_,
                  [&](const auto& entry) { return entry.second.connection == conn; });
    std::erase_if(deliveries_, [&](const delivery& d) { return d.connection == conn; });
}

std::vector<store_model::delivery> store_model::take_deliveries() {
    return std::exchange(deliveries_, {});
}

}  // namespace vdist::discovery::internal
