#pragma once
/// \file
/// The ring world of ring_channel_test (host CI): two loopback domains, 1 (server) and 2
/// (client), under one loopback_hypervisor that plays Xen and counts every share, mapping, port
/// and publication still held.
///
/// A ring world is what ring_channel_test.cpp runs over (selected by VDIST_RING_WORLD); its
/// twin is xen_ring_world.hpp, with the same members:
///
/// ```
///  backend_type       the vchan backend both ends use
///  name               a short name for messages
///  unavailable()      why the tests cannot run on this machine (they are skipped), or nullopt
///  opened()           whether both domains are ready (a failure fails the test)
///  server_domain()    the backend of the server end
///  client_domain()    the backend of the client end
///  address(port)      the vchan address of `port` from the server to the client domain
///  released()         nothing is held any more: no share, mapping, port or offer
/// ```

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "vdist/transport/loopback_backend.hpp"
#include "vdist/transport/seams.hpp"

namespace vdist::test {

/// Two loopback domains in this process. Not copyable or movable (the domains point at the
/// hypervisor).
class loopback_ring_world {
  public:
    using backend_type = transport::loopback_backend;

    static constexpr std::string_view name = "loopback";

    loopback_ring_world() = default;
    loopback_ring_world(const loopback_ring_world&) = delete;
    loopback_ring_world& operator=(const loopback_ring_world&) = delete;

    /// Loopback runs anywhere: never a reason to skip.
    [[nodiscard]] std::optional<std::string> unavailable() const { return std::nullopt; }
    /// Loopback domains cannot fail to open.
    [[nodiscard]] ::testing::AssertionResult opened() const {
        return ::testing::AssertionSuccess();
    }

    /// The domain of the server end (domid 1).
    [[nodiscard]] backend_type& server_domain() noexcept { return server_domain_; }
    /// The domain of the client end (domid 2).
    [[nodiscard]] backend_type& client_domain() noexcept { return client_domain_; }

    /// The address of `port` from domain 1 to domain 2.
    [[nodiscard]] transport::vchan_address address(std::string_view port) const {
        return {server_domain_.domid(), client_domain_.domid(), std::string(port)};
    }

    /// Success when the hypervisor holds no share, mapping, port or publication; otherwise a
    /// failure that counts each.
    [[nodiscard]] ::testing::AssertionResult released() const {
        const transport::loopback_leaks held = hypervisor_.outstanding();
        if (held.clean()) {
            return ::testing::AssertionSuccess();
        }
        return ::testing::AssertionFailure()
               << name << " world still holds " << held.shares << " share(s), " << held.mappings
               << " mapping(s), " << held.ports << " port(s), " << held.publications
               << " publication(s)";
    }

  private:
    // Declared first so that it is destroyed last: it aborts if a channel still holds a page,
    // port or record.
    transport::loopback_hypervisor hypervisor_;
    backend_type server_domain_{hypervisor_, 1};
    backend_type client_domain_{hypervisor_, 2};
};

/// The world ring_channel_test.cpp runs over when this header is selected.
using ring_world = loopback_ring_world;

}  // namespace vdist::test
