#pragma once
/// \file
/// runtime::ring_directory over the store (keys.hpp):
///
/// - locate(name) reads `/vdist/nodes/<enc(name)>/domid` (the toolstack writes it);
/// - offer(peer, port) writes `/local/domain/<peer>/data/vdist/connect/<self>-<port>` (empty
///   value) into the peer's inbox, which the toolstack creates with inbox_permissions(): one
///   write, no transaction (the entry inherits the inbox's list, see there);
/// - this node watches its own inbox; take_offers() lists it when a watch event says something
///   new may be there, returns each well-formed entry once (in the store's directory order)
///   and removes junk; a taken entry stays until its offerer withdraws it (one round trip less
///   on the way to a ring; the removal's event is recognised and lists nothing);
/// - withdraw(peer, port) removes the offer it wrote, if still there (the runtime does so once
///   the connection is up, or when it gives the offer up).
///
/// Single-threaded: one node's loop owns it.

#include <expected>
#include <memory>
#include <set>
#include <string>
#include <system_error>

#include "vdist/discovery/store_client.hpp"
#include "vdist/runtime/ring_directory.hpp"

namespace vdist::discovery {

class store_ring_directory final : public runtime::ring_directory {
  public:
    /// Takes the client and watches this node's inbox.
    [[nodiscard]] static std::expected<std::unique_ptr<store_ring_directory>, std::error_code> open(
        store_client client, transport::domid_t self);

    [[nodiscard]] transport::domid_t self() const override { return self_; }
    [[nodiscard]] std::optional<transport::domid_t> locate(std::string_view name) override;
    [[nodiscard]] bool offer(transport::domid_t peer, std::uint32_t port) override;
    [[nodiscard]] int native_handle() const override;
    [[nodiscard]] std::vector<runtime::ring_offer> take_offers() override;
    void withdraw(transport::domid_t peer, std::uint32_t port) override;

    /// The permissions the toolstack gives domain `owner`'s inbox: everyone may write (offer),
    /// and `owner` is also listed with read+write. As in xenstored, an entry an offerer creates
    /// inherits this list with the offerer as owner, so the inbox's owner can read the entry,
    /// is told of it by its watch, and removes it, without the offerer granting anything.
    [[nodiscard]] static std::vector<permission> inbox_permissions(store_domid owner);

    /// "<from>-<port>" as an inbox entry, and back (nullopt for anything else).
    [[nodiscard]] static std::string offer_entry(transport::domid_t from, std::uint32_t port);
    [[nodiscard]] static std::optional<runtime::ring_offer> parse_offer_entry(
        std::string_view entry);

  private:
    store_ring_directory(store_client client, transport::domid_t self);

    store_client client_;
    transport::domid_t self_;
    std::string inbox_;
    /// Entries taken and not yet withdrawn (so they are not returned twice).
    std::set<std::string> taken_;
    /// List the inbox at the next take_offers(), events or not (offers made before it opened).
    bool list_next_ = false;
};

}  // namespace vdist::discovery
