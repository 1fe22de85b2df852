#pragma once
/// \file
/// The host backend: Xen's primitives emulated on plain Linux, one node process per domain.
///
///  - grant_memory: each share is a memfd of its pages; a grant ref is (share id << 9) | page,
///    never 0. The memfds travel to the peer during rendezvous, which maps pages by offset. As
///    on Xen, memory outlives the share while the peer still maps it, so data written before
///    a close stays readable. Unlike Xen, the peer gets every share made for it (not only the
///    ones it maps) and nothing stops it from mapping them writable.
///  - event_channel: two eventfds per channel, one per direction; a port number is a
///    domain-local counter.
///  - rendezvous: the server listens on a Unix socket `<run_dir>/vchan.<srv>.<cli>.<port>.sock`;
///    the client connects and receives `{ring-ref, event-channel}` plus the grant-table memfd
///    and both eventfds (SCM_RIGHTS). The socket stays open for the channel's life: its
///    hang-up is the emulation of the unmap notification, so a killed peer is seen at once.
///
/// The server side accepts its client inside its own thread, whenever it waits on the port or
/// checks liveness (ring_channel::wait_connected, any blocking operation, an event loop that
/// polls native_handle()).

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "vdist/transport/errc.hpp"
#include "vdist/transport/seams.hpp"
#include "vdist/transport/unique_fd.hpp"

namespace vdist::transport {

namespace internal {
struct host_domain;
struct host_link;
}  // namespace internal

/// host model of grant_memory.
class host_grant_memory {
  public:
    /// Pages shared with a peer. Unshared on destruction (the peer's mapping stays valid).
    class shared_pages {
      public:
        shared_pages(shared_pages&& other) noexcept;
        shared_pages& operator=(shared_pages&& other) noexcept;
        ~shared_pages();
        [[nodiscard]] std::byte* data() const noexcept { return data_; }
        [[nodiscard]] std::size_t size() const noexcept { return refs_.size() * 4096; }
        [[nodiscard]] std::span<const grant_ref> refs() const noexcept { return refs_; }

      private:
        friend class host_grant_memory;
        shared_pages(std::shared_ptr<internal::host_domain> domain, std::byte* data,
                     std::vector<grant_ref> refs) noexcept;
        void release() noexcept;
        std::shared_ptr<internal::host_domain> domain_;
        std::byte* data_ = nullptr;
        std::vector<grant_ref> refs_;
    };

    /// A peer's pages mapped into this process. Unmapped on destruction.
    class mapped_pages {
      public:
        mapped_pages(mapped_pages&& other) noexcept;
        mapped_pages& operator=(mapped_pages&& other) noexcept;
        ~mapped_pages();
        [[nodiscard]] std::byte* data() const noexcept { return data_; }
        [[nodiscard]] std::size_t size() const noexcept { return size_; }

      private:
        friend class host_grant_memory;
        mapped_pages(std::byte* data, std::size_t size) noexcept : data_(data), size_(size) {}
        std::byte* data_ = nullptr;
        std::size_t size_ = 0;
    };

    explicit host_grant_memory(std::shared_ptr<internal::host_domain> domain) noexcept
        : domain_(std::move(domain)) {}

    /// Share `pages` zeroed pages (at most 512) with `peer`. Unmap notification is emulated by
    /// the rendezvous socket, so `notify` is accepted and not needed.
    [[nodiscard]] result<shared_pages> share(domid_t peer, std::size_t pages,
                                             std::optional<unmap_notify> notify);
    /// Map `refs` of one of `peer`'s shares, received in a rendezvous with that peer.
    [[nodiscard]] result<mapped_pages> map(domid_t peer, std::span<const grant_ref> refs,
                                           page_access access, std::optional<unmap_notify> notify);

  private:
    std::shared_ptr<internal::host_domain> domain_;
};

/// host model of event_channel.
class host_event_channel {
  public:
    /// A bound port: eventfds plus the rendezvous socket that tells whether the peer lives.
    class port {
      public:
        port(port&&) noexcept;
        port& operator=(port&&) noexcept;
        ~port();
        [[nodiscard]] event_port local_port() const noexcept { return number_; }
        [[nodiscard]] result<void> notify();
        [[nodiscard]] result<wait_outcome> wait(std::chrono::nanoseconds timeout);
        /// An epoll fd: readable on a notification, a connecting client or a peer hang-up.
        [[nodiscard]] int native_handle() const noexcept { return poll_fd_.get(); }
        [[nodiscard]] bool peer_alive();

      private:
        friend class host_event_channel;
        port(event_port number, unique_fd wait_fd, unique_fd notify_fd,
             std::shared_ptr<internal::host_link> link);
        /// Accept a waiting client, notice hang-ups, and (only when waiting) consume the event.
        void service(bool consume_event);
        event_port number_ = 0;
        unique_fd wait_fd_;
        unique_fd notify_fd_;
        unique_fd poll_fd_;
        std::shared_ptr<internal::host_link> link_;
    };

    explicit host_event_channel(std::shared_ptr<internal::host_domain> domain) noexcept
        : domain_(std::move(domain)) {}

    [[nodiscard]] result<port> bind_unbound_port(domid_t peer);
    /// Bind to a port learnt from a rendezvous lookup with `peer`.
    [[nodiscard]] result<port> bind_interdomain(domid_t peer, event_port remote);

  private:
    std::shared_ptr<internal::host_domain> domain_;
};

/// host model of rendezvous (Unix sockets under the run directory).
class host_rendezvous {
  public:
    /// A published offer; withdrawn (socket unlinked) on destruction.
    class publication {
      public:
        publication(publication&&) noexcept = default;
        publication& operator=(publication&&) noexcept = default;
        ~publication();

      private:
        friend class host_rendezvous;
        explicit publication(std::shared_ptr<internal::host_link> link) noexcept
            : link_(std::move(link)) {}
        std::shared_ptr<internal::host_link> link_;
    };

    explicit host_rendezvous(std::shared_ptr<internal::host_domain> domain) noexcept
        : domain_(std::move(domain)) {}

    [[nodiscard]] result<publication> publish(const vchan_address& address, vchan_offer offer);
    /// Waits up to `timeout` for the server's answer. A lookup that connected but timed out
    /// keeps its connection for the next lookup of the same address, so timeout 0 looks up
    /// without blocking: call again until it answers (the server answers from its own loop).
    [[nodiscard]] result<vchan_offer> lookup(const vchan_address& address,
                                             std::chrono::nanoseconds timeout);
    /// The socket of a lookup of `address` kept by a timeout, or -1: it turns readable when the
    /// server answers, so a caller's loop can wait for it instead of calling again blindly.
    /// Owned here; it changes hands at the next lookup of the address.
    [[nodiscard]] int pending_lookup(const vchan_address& address) const;

    /// The socket path of a vchan address under `run_dir`.
    [[nodiscard]] static std::filesystem::path socket_path(const std::filesystem::path& run_dir,
                                                           const vchan_address& address);

  private:
    std::shared_ptr<internal::host_domain> domain_;
};

/// One emulated domain: a grant table, event ports and rendezvous sockets.
class host_backend {
  public:
    using grant_memory_type = host_grant_memory;
    using event_channel_type = host_event_channel;
    using rendezvous_type = host_rendezvous;

    /// Create domain `domid` with its rendezvous sockets under `run_dir` (created if needed).
    [[nodiscard]] static result<host_backend> create(domid_t domid, std::filesystem::path run_dir);

    host_backend(host_backend&&) noexcept = default;
    host_backend& operator=(host_backend&&) noexcept = default;
    ~host_backend();

    [[nodiscard]] domid_t domid() const noexcept;
    [[nodiscard]] host_grant_memory& memory() noexcept { return *memory_; }
    [[nodiscard]] host_event_channel& events() noexcept { return *events_; }
    [[nodiscard]] host_rendezvous& directory() noexcept { return *directory_; }
    /// Pages currently shared (for leak checks).
    [[nodiscard]] std::size_t shared_page_count() const noexcept;

  private:
    explicit host_backend(std::shared_ptr<internal::host_domain> domain);
    std::shared_ptr<internal::host_domain> domain_;
    std::unique_ptr<host_grant_memory> memory_;
    std::unique_ptr<host_event_channel> events_;
    std::unique_ptr<host_rendezvous> directory_;
};

static_assert(vchan_backend<host_backend>);

}  // namespace vdist::transport
