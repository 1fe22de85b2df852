#pragma once
/// \file
/// The three seams between the vchan protocol and the machine it runs on, as in libxenvchan
/// (libxengnttab, libxenevtchn, libxenstore) and ocaml-vchan (MEMORY, EVENTS, CONFIGURATION):
///
///  - grant_memory:  share pages with a peer domain / map a peer's pages by grant ref;
///  - event_channel: bind a port (unbound for a server, interdomain for a client), notify it,
///                   wait on it, expose a pollable fd;
///  - rendezvous:    publish / look up `{ring-ref, event-channel}` for a vchan address.
///
/// Models: xen_* (real Xen), host_* (memfd pages, eventfds, Unix socket with SCM_RIGHTS) and
/// loopback_* (one process, with a leak check). The ring is a template over a backend that
/// bundles one model of each seam; nothing on the data path makes a virtual call.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vdist/transport/errc.hpp"

namespace vdist::transport {

using domid_t = std::uint16_t;     ///< Xen domid_t
using grant_ref = std::uint32_t;   ///< Xen grant_ref_t; 0 is never a valid ring-ref
using event_port = std::uint32_t;  ///< Xen evtchn_port_t

/// Wait forever (for wait() and blocking channel operations).
inline constexpr std::chrono::nanoseconds forever = std::chrono::nanoseconds::max();

enum class page_access { read_only, read_write };

/// Unmap notification: when the mapping process goes away, zero `byte_offset` of the first
/// page and signal `port` (xengntshr_share_page_notify / xengnttab_map_grant_ref_notify).
struct unmap_notify {
    std::size_t byte_offset = 0;
    event_port port = 0;
};

/// A vchan's address: XenStore path `/local/domain/<server>/data/vchan/<client>/<port>`.
/// For interop with libxenvchan keep `xenstore_path()` under 50 bytes: libxenvchan formats
/// `<path>/event-channel` into a 64-byte buffer and silently cuts longer paths.
struct vchan_address {
    domid_t server = 0;
    domid_t client = 0;
    std::string port;

    /// The XenStore directory holding `ring-ref` and `event-channel`.
    [[nodiscard]] std::string xenstore_path() const {
        return "/local/domain/" + std::to_string(server) + "/data/vchan/" + std::to_string(client) +
               "/" + port;
    }
};

/// What a server publishes and a client looks up.
struct vchan_offer {
    grant_ref ring_ref = 0;
    event_port port = 0;
};

/// Result of waiting on an event port.
enum class wait_outcome { notified, timed_out };

/// Pages mapped into this process (RAII: unmapped on destruction).
template <class P>
concept page_region = std::movable<P> && requires(const P& p) {
    { p.data() } -> std::same_as<std::byte*>;
    { p.size() } -> std::same_as<std::size_t>;
};

/// Pages this domain shares with a peer, with their grant references in page order.
template <class S>
concept shared_region = page_region<S> && requires(const S& s) {
    { s.refs() } -> std::same_as<std::span<const grant_ref>>;
};

/// Grant-table memory: share own pages with one peer, map a peer's pages by reference.
/// `notify` may only be given for a single page.
template <class G>
concept grant_memory = requires(G& g, domid_t peer, std::size_t pages,
                                std::span<const grant_ref> refs, page_access access,
                                std::optional<unmap_notify> notify) {
    typename G::shared_pages;
    typename G::mapped_pages;
    requires shared_region<typename G::shared_pages>;
    requires page_region<typename G::mapped_pages>;
    { g.share(peer, pages, notify) } -> std::same_as<result<typename G::shared_pages>>;
    { g.map(peer, refs, access, notify) } -> std::same_as<result<typename G::mapped_pages>>;
};

/// One bound event-channel port (RAII: unbound on destruction). Single-threaded per port.
template <class P>
concept bound_port = std::movable<P> && requires(P& p, std::chrono::nanoseconds timeout) {
    /// This side's port number (what a server publishes).
    { p.local_port() } -> std::same_as<event_port>;
    /// Signal the peer.
    { p.notify() } -> std::same_as<result<void>>;
    /// Block until an event arrives, the peer dies, or the timeout passes; consumes the
    /// pending event and unmasks the port.
    { p.wait(timeout) } -> std::same_as<result<wait_outcome>>;
    /// A pollable file descriptor, readable when an event is pending.
    { p.native_handle() } -> std::same_as<int>;
    /// False once the peer is known to be gone (process died, domain released). Cheap.
    { p.peer_alive() } -> std::same_as<bool>;
};

/// Event channels: a server binds an unbound port for a peer, a client binds to it.
template <class E>
concept event_channel = requires(E& e, domid_t peer, event_port remote) {
    typename E::port;
    requires bound_port<typename E::port>;
    { e.bind_unbound_port(peer) } -> std::same_as<result<typename E::port>>;
    { e.bind_interdomain(peer, remote) } -> std::same_as<result<typename E::port>>;
};

/// Rendezvous: a server publishes its offer (withdrawn when the publication is destroyed),
/// a client looks it up, waiting up to `timeout` for it to appear.
template <class R>
concept rendezvous = requires(R& r, const vchan_address& address, vchan_offer offer,
                              std::chrono::nanoseconds timeout) {
    typename R::publication;
    requires std::movable<typename R::publication>;
    { r.publish(address, offer) } -> std::same_as<result<typename R::publication>>;
    { r.lookup(address, timeout) } -> std::same_as<result<vchan_offer>>;
};

/// A backend bundles one model of each seam for one domain.
template <class B>
concept vchan_backend = requires(B& b) {
    typename B::grant_memory_type;
    typename B::event_channel_type;
    typename B::rendezvous_type;
    requires grant_memory<typename B::grant_memory_type>;
    requires event_channel<typename B::event_channel_type>;
    requires rendezvous<typename B::rendezvous_type>;
    { b.domid() } -> std::same_as<domid_t>;
    { b.memory() } -> std::same_as<typename B::grant_memory_type&>;
    { b.events() } -> std::same_as<typename B::event_channel_type&>;
    { b.directory() } -> std::same_as<typename B::rendezvous_type&>;
};

}  // namespace vdist::transport
