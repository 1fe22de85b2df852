#pragma once
/// \file
/// The Xen models of the three seams (seams.hpp), over Debian's libxen: libxengnttab
/// (gntalloc to share pages, gntdev to map them), libxenevtchn and libxenstore. Setup follows
/// libxenvchan's init.c step for step, so that a vdist peer and a libxenvchan peer can meet:
///
/// ```
///  server                                         client
///  events().bind_unbound_port(client)             directory().lookup(address)  (waits on a watch)
///  memory().share(client, 1, notify srv_live)     events().bind_interdomain(server, port)
///  memory().share(client, n) for big rings        memory().map(server, {ring_ref}, rw,
///  directory().publish(address, {ring_ref, port})                     notify cli_live)
///                                                 memory().map(server, grants..., rw | ro)
/// ```
///
/// Only the setup path is here; the data path touches the mapped pages and the bound port,
/// never these objects. Nothing in this header needs the Xen C headers.
///
/// Lifetimes: shared_pages, mapped_pages and publication keep a plain pointer to the library
/// handle of the object that made them, so they must be destroyed before that object (in
/// practice: before the xen_backend). Moving the maker is fine; the handle does not move.
///
/// Threads: share, map, publish and lookup may be called from any thread (the underlying
/// handles serialise their requests); one port is used by one thread at a time.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vdist/transport/errc.hpp"
#include "vdist/transport/seams.hpp"
#include "vdist/transport/unique_fd.hpp"
#include "vdist/transport/vchan_layout.hpp"

// The libxen handle types, declared here so that users of this header need no Xen headers.
// xengnttab_handle and xengntshr_handle are both typedefs of struct xengntdev_handle.
struct xengntdev_handle;
struct xenevtchn_handle;
struct xs_handle;

namespace vdist::transport {

/// Grant-table memory through the gntalloc (share) and gntdev (map) devices.
class xen_grant_memory {
  public:
    /// Own pages granted to one peer domain; unshared (xengntshr_unshare) on destruction.
    /// The pages are writable by the peer. Move-only.
    class shared_pages {
      public:
        shared_pages(shared_pages&& other) noexcept;
        shared_pages& operator=(shared_pages&& other) noexcept;
        shared_pages(const shared_pages&) = delete;
        shared_pages& operator=(const shared_pages&) = delete;
        ~shared_pages();

        /// First byte of the shared pages (page aligned); null when moved from.
        [[nodiscard]] std::byte* data() const noexcept { return data_; }
        /// Length in bytes (pages * page_size).
        [[nodiscard]] std::size_t size() const noexcept { return refs_.size() * page_size; }
        /// The grant references, one per page, in page order (what the peer maps).
        [[nodiscard]] std::span<const grant_ref> refs() const noexcept { return refs_; }

      private:
        friend class xen_grant_memory;
        shared_pages(xengntdev_handle* handle, std::byte* data,
                     std::vector<grant_ref> refs) noexcept;
        void release() noexcept;

        xengntdev_handle* handle_ = nullptr;
        std::byte* data_ = nullptr;
        std::vector<grant_ref> refs_;
    };

    /// A peer's pages mapped into this process; unmapped (xengnttab_unmap) on destruction.
    /// Move-only.
    class mapped_pages {
      public:
        mapped_pages(mapped_pages&& other) noexcept;
        mapped_pages& operator=(mapped_pages&& other) noexcept;
        mapped_pages(const mapped_pages&) = delete;
        mapped_pages& operator=(const mapped_pages&) = delete;
        ~mapped_pages();

        /// First byte of the mapping (page aligned); null when moved from. The peer can write
        /// these bytes at any time: read each one once and trust nothing in it.
        [[nodiscard]] std::byte* data() const noexcept { return data_; }
        /// Length in bytes (refs * page_size).
        [[nodiscard]] std::size_t size() const noexcept { return pages_ * page_size; }

      private:
        friend class xen_grant_memory;
        mapped_pages(xengntdev_handle* handle, std::byte* data, std::size_t pages) noexcept;
        void release() noexcept;

        xengntdev_handle* handle_ = nullptr;
        std::byte* data_ = nullptr;
        std::size_t pages_ = 0;
    };

    /// Opens the gntalloc and gntdev devices. Fails with std::errc::no_such_device when this
    /// machine has no Xen devices (not a Xen guest, or the drivers are not loaded), otherwise
    /// with the errno of the failed open.
    [[nodiscard]] static result<xen_grant_memory> open();

    /// Shares `pages` fresh pages with `peer` (xengntshr_share_pages). With `notify` (one page
    /// only, else std::errc::invalid_argument) the kernel zeroes `notify->byte_offset` and
    /// signals `notify->port` when this process unshares or dies
    /// (xengntshr_share_page_notify); a notify port of 0, never a valid port, only zeroes the
    /// byte. System failures carry their errno (ENOSPC: the gntalloc page limit).
    [[nodiscard]] result<shared_pages> share(domid_t peer, std::size_t pages,
                                             std::optional<unmap_notify> notify);

    /// Maps the pages `peer` granted under `refs`, in order, into one contiguous range
    /// (xengnttab_map_domain_grant_refs). A ref of 0 fails with errc::invalid_grant before
    /// anything is mapped; an empty `refs` with std::errc::invalid_argument. With `notify`
    /// (one ref and read_write access only, else std::errc::invalid_argument) the kernel zeroes the
    /// byte and signals the port when this process unmaps or dies (xengnttab_map_grant_ref_notify).
    /// A ref the hypervisor refuses to map (not granted to this domain, revoked, out of range)
    /// fails with errc::invalid_grant; other system failures carry their errno.
    [[nodiscard]] result<mapped_pages> map(domid_t peer, std::span<const grant_ref> refs,
                                           page_access access, std::optional<unmap_notify> notify);

  private:
    struct share_device_closer {
        void operator()(xengntdev_handle* handle) const noexcept;
    };
    struct map_device_closer {
        void operator()(xengntdev_handle* handle) const noexcept;
    };
    xen_grant_memory(std::unique_ptr<xengntdev_handle, share_device_closer> share_device,
                     std::unique_ptr<xengntdev_handle, map_device_closer> map_device) noexcept;

    std::unique_ptr<xengntdev_handle, share_device_closer> share_device_;  // xengntshr (gntalloc)
    std::unique_ptr<xengntdev_handle, map_device_closer> map_device_;      // xengnttab (gntdev)
};

/// Event channels through the evtchn device. As libxenvchan does, every bound port gets its
/// own xenevtchn handle, so its fd is readable exactly when that port has fired.
class xen_event_channel {
  public:
    /// One bound port with its own xenevtchn handle; unbound and closed on destruction.
    /// Move-only; single-threaded.
    class port {
      public:
        port(port&& other) noexcept;
        port& operator=(port&& other) noexcept;
        port(const port&) = delete;
        port& operator=(const port&) = delete;
        ~port();

        /// This side's port number (what a server publishes as `event-channel`).
        [[nodiscard]] event_port local_port() const noexcept { return port_; }
        /// Signals the peer (xenevtchn_notify).
        [[nodiscard]] result<void> notify();
        /// Waits until the port fires or `timeout` passes (transport::forever: no limit), by
        /// polling the handle's fd; on an event, consumes it (xenevtchn_pending) and unmasks
        /// the port, as libxenvchan_wait does. A dying peer fires the port through the unmap
        /// notification of the control page, so the caller then reads the live byte.
        [[nodiscard]] result<wait_outcome> wait(std::chrono::nanoseconds timeout);
        /// Readable when an event is pending or the peer's domain may have gone; after it
        /// polls readable, call wait(0ns) to consume the event. The handle's fd (non-blocking),
        /// or, with a domain watch, an epoll fd over it and the watch's XenStore connection.
        [[nodiscard]] int native_handle() const noexcept;
        /// False once the peer is known to be gone. A peer process that exits or dies in a live
        /// domain is seen through the unmap notification (its kernel zeroes the peer's live
        /// byte in the control page and fires this port), which the channel layer reads. A
        /// peer whose whole domain is destroyed unmaps nothing: a port bound to another domain
        /// therefore watches XenStore's @releaseDomain and asks xenstored whether the peer is
        /// still introduced; both are privileged (XSA-115), so only dom0 and domains granted
        /// them have this watch. Cheap: a zero-timeout poll of the watch, no XenStore request
        /// unless the watch fired. Also false once a call on the port failed in a way that
        /// shows it is no longer bound.
        [[nodiscard]] bool peer_alive();
        /// Whether this port watches its peer's domain (see peer_alive()).
        [[nodiscard]] bool watches_peer_domain() const noexcept { return watch_ != nullptr; }

      private:
        friend class xen_event_channel;
        class domain_watch;
        port(xenevtchn_handle* handle, event_port local, int fd) noexcept;
        void release() noexcept;
        void note_failure(int error) noexcept;
        // Starts watching `peer`'s domain, if this domain may (see peer_alive()).
        [[nodiscard]] result<void> watch_domain(domid_t peer);
        // Consumes the domain watch's events; marks the peer gone if its domain was released.
        void check_peer_domain() noexcept;

        xenevtchn_handle* handle_ = nullptr;
        event_port port_ = 0;
        int fd_ = -1;
        bool peer_gone_ = false;
        std::unique_ptr<domain_watch> watch_;
        unique_fd poll_fd_;  // epoll over fd_ and the watch's fd, when there is a watch
    };

    /// Checks once that the evtchn device can be opened (the ports open their own handles).
    /// `self` is this domain's id: ports bound to another domain watch it (port::peer_alive).
    /// Fails with std::errc::no_such_device when this machine has no Xen devices.
    [[nodiscard]] static result<xen_event_channel> open(domid_t self);

    /// Server side: allocates a port for `peer` to bind to (xenevtchn_bind_unbound_port), and
    /// unmasks it.
    [[nodiscard]] result<port> bind_unbound_port(domid_t peer);
    /// Client side: binds to the server's published port (xenevtchn_bind_interdomain), and
    /// unmasks it. `remote` comes from the rendezvous: the hypervisor validates it.
    [[nodiscard]] result<port> bind_interdomain(domid_t peer, event_port remote);

  private:
    explicit xen_event_channel(domid_t self) noexcept : self_(self) {}
    // Wraps a freshly bound handle in a port, makes its fd non-blocking, unmasks, and watches
    // the peer's domain when it is not this one.
    [[nodiscard]] result<port> adopt(xenevtchn_handle* handle, event_port bound, domid_t peer);

    domid_t self_ = 0;
};

/// The vchan rendezvous in XenStore: `<address.xenstore_path()>/{ring-ref,event-channel}` as
/// decimal strings, owned by the server with read access for the client only.
class xen_rendezvous {
  public:
    /// A published offer; the path is removed from XenStore on destruction. Move-only.
    class publication {
      public:
        publication(publication&& other) noexcept;
        publication& operator=(publication&& other) noexcept;
        publication(const publication&) = delete;
        publication& operator=(const publication&) = delete;
        ~publication();

        /// Removes the offer now (xs_rm of the path, then of the `<client>` directory if it
        /// became empty, so that stale directories do not pile up), reporting failures; the
        /// destructor does the same and ignores them. Idempotent.
        [[nodiscard]] result<void> withdraw();
        /// The XenStore directory of the offer; empty once withdrawn or moved from.
        [[nodiscard]] const std::string& path() const noexcept { return path_; }

      private:
        friend class xen_rendezvous;
        publication(xs_handle* store, std::string path) noexcept;

        xs_handle* store_ = nullptr;
        std::string path_;
    };

    /// Connects to XenStore (xs_open(0): the xenstored socket in dom0, /dev/xen/xenbus in a
    /// guest) and reads this domain's id from the key `domid`. Fails with
    /// std::errc::no_such_device when there is no XenStore to connect to.
    [[nodiscard]] static result<xen_rendezvous> open();

    /// This domain's id, as XenStore reported it at open().
    [[nodiscard]] domid_t domid() const noexcept { return self_; }

    /// Writes `ring-ref` and `event-channel` in one transaction (retried on EAGAIN), each with
    /// permissions [{self, none}, {address.client, read}] as libxenvchan does. An invalid port
    /// name fails with std::errc::invalid_argument, a ring_ref of 0 with errc::invalid_grant,
    /// an event port of 0 with std::errc::invalid_argument.
    [[nodiscard]] result<publication> publish(const vchan_address& address, vchan_offer offer);

    /// Reads the offer at `address`. If it is not there yet (missing, or not yet readable by
    /// this domain), waits up to `timeout` on an XenStore watch of its `event-channel` key and
    /// of @releaseDomain, re-reading on each event. Values are parsed strictly (see
    /// xenstore_value.hpp): a malformed or zero value fails with errc::rendezvous_failed, the
    /// deadline with errc::timed_out. Whether the server domain is gone is not decided here:
    /// an unprivileged domain cannot ask, so a lookup for a dead server runs to its timeout.
    [[nodiscard]] result<vchan_offer> lookup(const vchan_address& address,
                                             std::chrono::nanoseconds timeout);

  private:
    struct store_closer {
        void operator()(xs_handle* store) const noexcept;
    };
    xen_rendezvous(std::unique_ptr<xs_handle, store_closer> store, domid_t self) noexcept;

    std::unique_ptr<xs_handle, store_closer> store_;
    domid_t self_ = 0;
};

/// The Xen backend: one model of each seam, for this domain. Move-only.
class xen_backend {
  public:
    using grant_memory_type = xen_grant_memory;    ///< gntalloc / gntdev
    using event_channel_type = xen_event_channel;  ///< evtchn
    using rendezvous_type = xen_rendezvous;        ///< XenStore

    /// Opens gntalloc, gntdev, evtchn and XenStore and reads this domain's id. On a machine
    /// without Xen this fails with std::errc::no_such_device; otherwise failures carry errno.
    [[nodiscard]] static result<xen_backend> open();

    /// This domain's id.
    [[nodiscard]] domid_t domid() const noexcept { return directory_.domid(); }
    /// Page sharing and mapping.
    [[nodiscard]] xen_grant_memory& memory() noexcept { return memory_; }
    /// Event-channel ports.
    [[nodiscard]] xen_event_channel& events() noexcept { return events_; }
    /// The XenStore rendezvous.
    [[nodiscard]] xen_rendezvous& directory() noexcept { return directory_; }

  private:
    xen_backend(xen_grant_memory memory, xen_event_channel events,
                xen_rendezvous directory) noexcept;

    xen_grant_memory memory_;
    xen_event_channel events_;
    xen_rendezvous directory_;
};

}  // namespace vdist::transport
