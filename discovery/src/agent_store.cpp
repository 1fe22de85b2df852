// The agent's two stores: one in memory, and the host store server (when built).
#include <map>

#include "vdist/discovery/agent.hpp"
#ifdef VDIST_HAVE_STORE_SERVER
#include "vdist/discovery/store_server.hpp"
#endif

namespace vdist::discovery {
namespace {

std::unexpected<std::error_code> fail(std::errc e) {
    return std::unexpected(std::make_error_code(e));
}

bool below(std::string_view path, std::string_view prefix) {
    return path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/';
}

/// Keys with values; parents are implied (created by write, listed by directory).
class memory_store final : public agent_store {
  public:
    std::expected<void, std::error_code> write(std::string_view path,
                                               std::string_view value) override {
        if (!path.starts_with('/')) {
            return fail(std::errc::invalid_argument);
        }
        keys_[std::string(path)] = std::string(value);
        for (auto slash = path.rfind('/'); slash != 0 && slash != std::string_view::npos;
             slash = path.rfind('/', slash - 1)) {
            keys_.try_emplace(std::string(path.substr(0, slash)));
        }
        return {};
    }
    std::expected<void, std::error_code> mkdir(std::string_view path) override {
        if (keys_.contains(std::string(path))) {
            return {};
        }
        return write(path, "");
    }
    std::expected<void, std::error_code> rm(std::string_view path) override {
        auto it = keys_.find(std::string(path));
        if (it == keys_.end()) {
            return fail(std::errc::no_such_file_or_directory);
        }
        it = keys_.erase(it);
        while (it != keys_.end() && below(it->first, path)) {
            it = keys_.erase(it);
        }
        return {};
    }
    std::expected<std::string, std::error_code> read(std::string_view path) const override {
        const auto it = keys_.find(std::string(path));
        if (it == keys_.end()) {
            return fail(std::errc::no_such_file_or_directory);
        }
        return it->second;
    }
    std::expected<std::vector<std::string>, std::error_code> directory(
        std::string_view path) const override {
        if (!keys_.contains(std::string(path))) {
            return fail(std::errc::no_such_file_or_directory);
        }
        std::vector<std::string> children;
        for (auto it = keys_.upper_bound(std::string(path));
             it != keys_.end() && below(it->first, path); ++it) {
            const std::string_view rest = std::string_view(it->first).substr(path.size() + 1);
            if (rest.find('/') == std::string_view::npos) {
                children.emplace_back(rest);
            }
        }
        return children;
    }
    std::expected<void, std::error_code> set_permissions(std::string_view path,
                                                         const std::vector<permission>&) override {
        if (!keys_.contains(std::string(path))) {
            return fail(std::errc::no_such_file_or_directory);
        }
        return {};
    }
    std::vector<std::string> all_paths() const override {
        std::vector<std::string> paths;
        for (const auto& [path, value] : keys_) {
            paths.push_back(path);
        }
        return paths;
    }
    void release_domain(store_domid) override {}

  private:
    std::map<std::string, std::string, std::less<>> keys_;
};

#ifdef VDIST_HAVE_STORE_SERVER
class served_store final : public agent_store {
  public:
    explicit served_store(std::unique_ptr<store_server> server, std::string socket)
        : server_(std::move(server)), socket_(std::move(socket)) {}
    std::expected<void, std::error_code> write(std::string_view path,
                                               std::string_view value) override {
        return server_->write(path, value);
    }
    std::expected<void, std::error_code> mkdir(std::string_view path) override {
        return server_->mkdir(path);
    }
    std::expected<void, std::error_code> rm(std::string_view path) override {
        return server_->rm(path);
    }
    std::expected<std::string, std::error_code> read(std::string_view path) const override {
        return server_->read(path);
    }
    std::expected<std::vector<std::string>, std::error_code> directory(
        std::string_view path) const override {
        return server_->directory(path);
    }
    std::expected<void, std::error_code> set_permissions(
        std::string_view path, const std::vector<permission>& permissions) override {
        return server_->set_permissions(path, permissions);
    }
    std::vector<std::string> all_paths() const override { return server_->all_paths(); }
    void release_domain(store_domid domid) override { server_->release_domain(domid); }
    int native_handle() const override { return server_->native_handle(); }
    void poll() override { server_->poll(); }
    std::string socket_path() const override { return socket_; }

  private:
    std::unique_ptr<store_server> server_;
    std::string socket_;
};
#endif

}  // namespace

std::unique_ptr<agent_store> make_memory_store() {
    return std::make_unique<memory_store>();
}

bool host_store_available() noexcept {
#ifdef VDIST_HAVE_STORE_SERVER
    return true;
#else
    return false;
#endif
}

std::expected<std::unique_ptr<agent_store>, std::error_code> serve_host_store(
    [[maybe_unused]] const std::filesystem::path& socket,
    [[maybe_unused]] std::function<std::optional<store_domid>(pid_t)> identify) {
#ifdef VDIST_HAVE_STORE_SERVER
    auto server = store_server::listen(
        socket, [identify = std::move(identify)](pid_t pid, uid_t) { return identify(pid); });
    if (!server) {
        return std::unexpected(server.error());
    }
    return std::make_unique<served_store>(std::move(*server), socket.string());
#else
    return fail(std::errc::function_not_supported);
#endif
}

}  // namespace vdist::discovery
