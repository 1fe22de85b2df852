#pragma once
/// \file
/// The seam between distribution and discovery for rings: where a node finds co-located peers
/// and learns of the rings other nodes offer it.
///
/// A connection to a peer on the same host goes over a vchan instead of TCP. The initiating node
/// is the vchan server: it creates the rings for the peer's domid at a fresh port, publishes
/// them (libxenvchan's `/local/domain/<self>/data/vchan/<peer>/<port>` on Xen, the host backend's
/// rendezvous socket on a host), and `offer`s the port to the peer. The peer sees the offer
/// (`native_handle()` turns readable, `take_offers()`), attaches as the vchan client and runs the
/// Erlang handshake as acceptor. Both sides may do this at once; the handshake settles it as
/// OTP settles simultaneous TCP connects.
///
/// Implemented over the store (discovery/store_ring_directory.hpp); tests may use their own.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "vdist/transport/seams.hpp"

namespace vdist::runtime {

/// A ring offered to this node: the offering domain is the vchan server at `port`.
struct ring_offer {
    transport::domid_t from = 0;
    std::uint32_t port = 0;
};

class ring_directory {
  public:
    ring_directory() = default;
    ring_directory(const ring_directory&) = delete;
    ring_directory& operator=(const ring_directory&) = delete;
    virtual ~ring_directory() = default;

    /// This node's domid.
    [[nodiscard]] virtual transport::domid_t self() const = 0;
    /// The domid of node `name` if it runs on this host (reachable over a ring); nullopt means
    /// "not here": use TCP distribution.
    [[nodiscard]] virtual std::optional<transport::domid_t> locate(std::string_view name) = 0;
    /// Tell `peer` that a vchan server for it is published on this domain at `port`.
    [[nodiscard]] virtual bool offer(transport::domid_t peer, std::uint32_t port) = 0;
    /// Readable when offers may have arrived (then call take_offers()); -1 if none can.
    [[nodiscard]] virtual int native_handle() const = 0;
    /// The offers that arrived since the last call, each once, oldest first.
    [[nodiscard]] virtual std::vector<ring_offer> take_offers() = 0;
    /// An offer made by this node is finished with (attached or abandoned): forget it.
    virtual void withdraw(transport::domid_t peer, std::uint32_t port) = 0;
};

}  // namespace vdist::runtime
