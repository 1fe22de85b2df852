#pragma once
/// \file
/// The loopback backend: both ends of a vchan in one process, for unit tests. A
/// loopback_hypervisor plays Xen: it owns granted pages, event links and the store, enforces
/// that only the named peer maps a grant or binds a port, emulates unmap notification
/// (the live byte is zeroed and the port signalled when a mapping goes away) and counts every
/// live share, mapping, port and publication so that tests can check nothing leaks. Its
/// destructor aborts with a report if anything is still held.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "vdist/transport/errc.hpp"
#include "vdist/transport/seams.hpp"
#include "vdist/transport/unique_fd.hpp"

namespace vdist::transport {

class loopback_hypervisor;

namespace internal {
struct loopback_link;
struct loopback_grant;
}  // namespace internal

/// Counts of resources still held, per kind.
struct loopback_leaks {
    std::size_t shares = 0;
    std::size_t mappings = 0;
    std::size_t ports = 0;
    std::size_t publications = 0;

    [[nodiscard]] bool clean() const noexcept {
        return shares == 0 && mappings == 0 && ports == 0 && publications == 0;
    }
};

/// loopback model of grant_memory.
class loopback_grant_memory {
  public:
    /// Pages shared by this domain. Move-only; releases the grant on destruction.
    class shared_pages {
      public:
        shared_pages(shared_pages&& other) noexcept;
        shared_pages& operator=(shared_pages&& other) noexcept;
        ~shared_pages();
        [[nodiscard]] std::byte* data() const noexcept;
        [[nodiscard]] std::size_t size() const noexcept;
        [[nodiscard]] std::span<const grant_ref> refs() const noexcept { return refs_; }

      private:
        friend class loopback_grant_memory;
        shared_pages(loopback_hypervisor* hv, std::shared_ptr<internal::loopback_grant> grant,
                     std::vector<grant_ref> refs, domid_t self,
                     std::optional<unmap_notify> notify) noexcept;
        void release() noexcept;
        loopback_hypervisor* hv_ = nullptr;
        std::shared_ptr<internal::loopback_grant> grant_;
        std::vector<grant_ref> refs_;
        domid_t self_ = 0;
        std::optional<unmap_notify> notify_;
    };

    /// A peer's pages mapped by this domain. Move-only; unmapped on destruction.
    class mapped_pages {
      public:
        mapped_pages(mapped_pages&& other) noexcept;
        mapped_pages& operator=(mapped_pages&& other) noexcept;
        ~mapped_pages();
        [[nodiscard]] std::byte* data() const noexcept { return data_; }
        [[nodiscard]] std::size_t size() const noexcept { return size_; }

      private:
        friend class loopback_grant_memory;
        mapped_pages(loopback_hypervisor* hv, std::shared_ptr<internal::loopback_grant> grant,
                     std::byte* data, std::size_t size, domid_t self,
                     std::optional<unmap_notify> notify) noexcept;
        void release() noexcept;
        loopback_hypervisor* hv_ = nullptr;
        std::shared_ptr<internal::loopback_grant> grant_;
        std::byte* data_ = nullptr;
        std::size_t size_ = 0;
        domid_t self_ = 0;
        std::optional<unmap_notify> notify_;
    };

    loopback_grant_memory(loopback_hypervisor& hv, domid_t self) noexcept : hv_(&hv), self_(self) {}

    [[nodiscard]] result<shared_pages> share(domid_t peer, std::size_t pages,
                                             std::optional<unmap_notify> notify);
    [[nodiscard]] result<mapped_pages> map(domid_t peer, std::span<const grant_ref> refs,
                                           page_access access, std::optional<unmap_notify> notify);

  private:
    loopback_hypervisor* hv_;
    domid_t self_;
};

/// loopback model of event_channel: one eventfd per direction.
class loopback_event_channel {
  public:
    class port {
      public:
        port(port&& other) noexcept;
        port& operator=(port&& other) noexcept;
        ~port();
        [[nodiscard]] event_port local_port() const noexcept { return number_; }
        [[nodiscard]] result<void> notify();
        [[nodiscard]] result<wait_outcome> wait(std::chrono::nanoseconds timeout);
        [[nodiscard]] int native_handle() const noexcept;
        [[nodiscard]] bool peer_alive();

      private:
        friend class loopback_event_channel;
        port(loopback_hypervisor* hv, std::shared_ptr<internal::loopback_link> link, int side,
             event_port number) noexcept;
        void release() noexcept;
        loopback_hypervisor* hv_ = nullptr;
        std::shared_ptr<internal::loopback_link> link_;
        int side_ = 0;
        event_port number_ = 0;
    };

    loopback_event_channel(loopback_hypervisor& hv, domid_t self) noexcept
        : hv_(&hv), self_(self) {}

    [[nodiscard]] result<port> bind_unbound_port(domid_t peer);
    [[nodiscard]] result<port> bind_interdomain(domid_t peer, event_port remote);

  private:
    loopback_hypervisor* hv_;
    domid_t self_;
};

/// loopback model of rendezvous: an in-memory store of offers.
class loopback_rendezvous {
  public:
    class publication {
      public:
        publication(publication&& other) noexcept
            : hv_(std::exchange(other.hv_, nullptr)), path_(std::move(other.path_)) {}
        publication& operator=(publication&& other) noexcept;
        ~publication();

      private:
        friend class loopback_rendezvous;
        publication(loopback_hypervisor* hv, std::string path) noexcept
            : hv_(hv), path_(std::move(path)) {}
        loopback_hypervisor* hv_ = nullptr;
        std::string path_;
    };

    loopback_rendezvous(loopback_hypervisor& hv, domid_t self) noexcept : hv_(&hv), self_(self) {}

    [[nodiscard]] result<publication> publish(const vchan_address& address, vchan_offer offer);
    [[nodiscard]] result<vchan_offer> lookup(const vchan_address& address,
                                             std::chrono::nanoseconds timeout);

  private:
    loopback_hypervisor* hv_;
    domid_t self_;
};

/// The in-process "hypervisor" shared by loopback domains. Thread-safe.
class loopback_hypervisor {
  public:
    loopback_hypervisor() = default;
    loopback_hypervisor(const loopback_hypervisor&) = delete;
    loopback_hypervisor& operator=(const loopback_hypervisor&) = delete;
    /// Aborts with a report if any share, mapping, port or publication is still held.
    ~loopback_hypervisor();

    /// What is still held right now.
    [[nodiscard]] loopback_leaks outstanding() const;

  private:
    friend class loopback_grant_memory;
    friend class loopback_event_channel;
    friend class loopback_rendezvous;

    void signal(domid_t domain, event_port port);

    mutable std::mutex mutex_;
    std::condition_variable store_changed_;
    grant_ref next_ref_ = 1;
    std::map<std::pair<domid_t, grant_ref>, std::weak_ptr<internal::loopback_grant>> grants_;
    std::map<std::pair<domid_t, event_port>, std::weak_ptr<internal::loopback_link>> ports_;
    std::map<domid_t, event_port> next_port_;
    std::map<std::string, vchan_offer> store_;
    loopback_leaks held_;
};

/// One loopback domain.
class loopback_backend {
  public:
    using grant_memory_type = loopback_grant_memory;
    using event_channel_type = loopback_event_channel;
    using rendezvous_type = loopback_rendezvous;

    loopback_backend(loopback_hypervisor& hv, domid_t domid) noexcept
        : domid_(domid), memory_(hv, domid), events_(hv, domid), directory_(hv, domid) {}

    [[nodiscard]] domid_t domid() const noexcept { return domid_; }
    [[nodiscard]] loopback_grant_memory& memory() noexcept { return memory_; }
    [[nodiscard]] loopback_event_channel& events() noexcept { return events_; }
    [[nodiscard]] loopback_rendezvous& directory() noexcept { return directory_; }

  private:
    domid_t domid_;
    loopback_grant_memory memory_;
    loopback_event_channel events_;
    loopback_rendezvous directory_;
};

static_assert(vchan_backend<loopback_backend>);

}  // namespace vdist::transport
