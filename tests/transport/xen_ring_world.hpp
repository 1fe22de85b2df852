#pragma once
/// \file
/// The ring world of xen_ring_channel_test: two instances of the real Xen backend in this
/// process, both in this domain (dom0 under tests/xen's QEMU harness), so that each vchan is
/// made of real gntalloc shares, gntdev mappings, event channels and a XenStore offer. Same
/// members as loopback_ring_world.hpp, which describes them.
///
/// Off Xen, opening the backend fails with std::errc::no_such_device: unavailable() then names
/// the reason and the tests are skipped, never passed.
///
/// released() asks the kernel and XenStore what this process still holds, as the loopback
/// hypervisor counts what it holds:
///
/// ```
///  shares     ranges of /dev/xen/gntalloc in /proc/self/maps: xengntshr_share_pages mmap()s
///             that device for every share, and xengntshr_unshare is munmap()
///  mappings   ranges of /dev/xen/gntdev in /proc/self/maps: xengnttab mmap()s that device
///             for every map, and xengnttab_unmap munmap()s it before releasing the grants
///  ports      fds open on /dev/xen/evtchn: the backend opens one xenevtchn handle per bound
///             port and closes it when the port is unbound
///  offers     the XenStore directory of every address this world handed out
/// ```
///
/// The destructor runs the same check, so that every test fails if a channel leaked, as the
/// loopback hypervisor aborts.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "vdist/transport/seams.hpp"
#include "vdist/transport/xen_backend.hpp"

// The libxen headers have no extern "C" guards of their own.
extern "C" {
#include <xenstore.h>
}

namespace vdist::test {

/// Two Xen backends of this domain in this process. Not copyable or movable.
class xen_ring_world {
  public:
    using backend_type = transport::xen_backend;

    static constexpr std::string_view name = "xen";

    /// Opens both backends and a XenStore connection of its own (for released()). A failure is
    /// kept for unavailable() and opened(), which the fixture's SetUp reports.
    xen_ring_world() { open(); }
    xen_ring_world(const xen_ring_world&) = delete;
    xen_ring_world& operator=(const xen_ring_world&) = delete;
    /// Fails the running test if a share, mapping, port or offer outlived the channels.
    ~xen_ring_world() {
        if (!opened()) {
            return;
        }
        if (auto held = released(); !held) {
            ADD_FAILURE() << held.message();
        }
    }

    /// Why the tests are skipped: set when this machine has no Xen devices.
    [[nodiscard]] std::optional<std::string> unavailable() const {
        if (open_error_ == std::errc::no_such_device) {
            return "not running on Xen (no /dev/xen devices)";
        }
        return std::nullopt;
    }

    /// Failure with the error of any other failed open.
    [[nodiscard]] ::testing::AssertionResult opened() const {
        if (open_error_) {
            return ::testing::AssertionFailure()
                   << name << " world: opening the backend failed: " << open_error_.message();
        }
        return ::testing::AssertionSuccess();
    }

    /// The backend of the server end. Only after opened() succeeded.
    [[nodiscard]] backend_type& server_domain() noexcept { return *server_domain_; }
    /// The backend of the client end. Only after opened() succeeded.
    [[nodiscard]] backend_type& client_domain() noexcept { return *client_domain_; }

    /// The address of `port` from this domain to itself (dom0: {0, 0, port}). Remembers the
    /// port, so that released() checks that its offer was removed. Keep names short: for
    /// libxenvchan the path must stay under 50 bytes (seams.hpp).
    [[nodiscard]] transport::vchan_address address(std::string_view port) {
        ports_.emplace(port);
        return address_of(port);
    }

    /// Success when no gntalloc or gntdev range is mapped, no event-channel handle is open and
    /// no offer handed out by address() is left in XenStore; otherwise a failure naming each.
    [[nodiscard]] ::testing::AssertionResult released() const {
        std::string held;
        const auto note = [&held](const std::string& what) {
            held += held.empty() ? "" : "; ";
            held += what;
        };
        for (const auto& [device, kind] : {std::pair{"/dev/xen/gntalloc", "share(s)"},
                                           std::pair{"/dev/xen/gntdev", "mapping(s)"}}) {
            const auto ranges = mapped_ranges_of(device);
            if (!ranges) {
                note("cannot read /proc/self/maps");
            } else if (*ranges != 0) {
                note(std::to_string(*ranges) + " " + kind + " (" + device +
                     " ranges in /proc/self/maps)");
            }
        }
        const auto ports = open_fds_on("/dev/xen/evtchn");
        if (!ports) {
            note("cannot list /proc/self/fd");
        } else if (*ports != 0) {
            note(std::to_string(*ports) + " port(s) (open /dev/xen/evtchn handles)");
        }
        for (const auto& port : ports_) {
            const std::string path = address_of(port).xenstore_path();
            unsigned int length = 0;
            const std::unique_ptr<void, free_deleter> value(
                xs_read(store_.get(), XBT_NULL, path.c_str(), &length));
            const int error = errno;
            if (value) {
                note("offer still in XenStore at " + path);
            } else if (error != ENOENT) {
                note("cannot read " + path +
                     " from XenStore: " + std::error_code(error, std::system_category()).message());
            }
        }
        if (held.empty()) {
            return ::testing::AssertionSuccess();
        }
        return ::testing::AssertionFailure() << name << " world still holds: " << held;
    }

  private:
    struct store_closer {
        void operator()(xs_handle* store) const noexcept { xs_close(store); }
    };
    struct free_deleter {
        void operator()(void* memory) const noexcept { std::free(memory); }
    };

    void open() {
        auto server = backend_type::open();
        if (!server) {
            open_error_ = server.error();
            return;
        }
        auto client = backend_type::open();
        if (!client) {
            open_error_ = client.error();
            return;
        }
        store_.reset(xs_open(0));
        if (!store_) {
            open_error_ = std::error_code(errno, std::system_category());
            return;
        }
        server_domain_.emplace(std::move(*server));
        client_domain_.emplace(std::move(*client));
    }

    [[nodiscard]] transport::vchan_address address_of(std::string_view port) const {
        const transport::domid_t self = server_domain_ ? server_domain_->domid() : 0;
        return {self, self, std::string(port)};
    }

    /// Lines of /proc/self/maps whose path is `device` (one per mapped range of it), or nullopt
    /// when the file cannot be read.
    [[nodiscard]] static std::optional<std::size_t> mapped_ranges_of(std::string_view device) {
        std::ifstream maps("/proc/self/maps");
        if (!maps) {
            return std::nullopt;
        }
        const std::string suffix = " " + std::string(device);
        std::size_t ranges = 0;
        for (std::string line; std::getline(maps, line);) {
            if (line.ends_with(suffix)) {
                ++ranges;
            }
        }
        return ranges;
    }

    /// File descriptors of this process open on `device`, or nullopt when /proc/self/fd cannot
    /// be listed.
    [[nodiscard]] static std::optional<std::size_t> open_fds_on(std::string_view device) {
        std::error_code error;
        std::filesystem::directory_iterator fds("/proc/self/fd", error);
        if (error) {
            return std::nullopt;
        }
        std::size_t open = 0;
        for (const auto& fd : fds) {
            // An fd closed since the listing has no link any more: it is not open.
            const auto target = std::filesystem::read_symlink(fd.path(), error);
            if (!error && target == device) {
                ++open;
            }
        }
        return open;
    }

    std::error_code open_error_;
    std::optional<backend_type> server_domain_;
    std::optional<backend_type> client_domain_;
    std::unique_ptr<xs_handle, store_closer> store_;
    std::set<std::string, std::less<>> ports_;
};

/// The world ring_channel_test.cpp runs over when this header is selected.
using ring_world = xen_ring_world;

}  // namespace vdist::test
