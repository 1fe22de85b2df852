#include "vdist/transport/loopback_backend.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "poll_fd.hpp"

namespace vdist::transport {
namespace internal {

struct loopback_grant {
    domid_t owner = 0;
    domid_t peer = 0;
    grant_ref first = 0;
    std::size_t count = 0;
    std::byte* pages = nullptr;

    loopback_grant(domid_t owner_domid, domid_t peer_domid, grant_ref first_ref, std::size_t n)
        : owner(owner_domid),
          peer(peer_domid),
          first(first_ref),
          count(n),
          pages(static_cast<std::byte*>(std::aligned_alloc(4096, n * 4096))) {
        if (pages != nullptr) {
            std::memset(pages, 0, n * 4096);
        }
    }
    loopback_grant(const loopback_grant&) = delete;
    loopback_grant& operator=(const loopback_grant&) = delete;
    ~loopback_grant() { std::free(pages); }
};

struct loopback_link {
    std::array<unique_fd, 2> wake;  // wake[side] is what `side` waits on
    std::array<std::atomic<bool>, 2> closed{};
    std::array<domid_t, 2> domain{};
    std::array<event_port, 2> number{};
    bool connected = false;
};

namespace {

void zero_live_byte(std::byte* page, const std::optional<unmap_notify>& notify) {
    std::atomic_ref<std::uint8_t>(*reinterpret_cast<std::uint8_t*>(page + notify->byte_offset))
        .store(0, std::memory_order_release);
}

}  // namespace
}  // namespace internal

// --- grant memory -------------------------------------------------------------------------------

loopback_grant_memory::shared_pages::shared_pages(loopback_hypervisor* hv,
                                                  std::shared_ptr<internal::loopback_grant> grant,
                                                  std::vector<grant_ref> refs, domid_t self,
                                                  std::optional<unmap_notify> notify) noexcept
    : hv_(hv), grant_(std::move(grant)), refs_(std::move(refs)), self_(self), notify_(notify) {}

loopback_grant_memory::shared_pages::shared_pages(shared_pages&& other) noexcept
    : hv_(std::exchange(other.hv_, nullptr)),
      grant_(std::move(other.grant_)),
      refs_(std::move(other.refs_)),
      self_(other.self_),
      notify_(other.notify_) {}

loopback_grant_memory::shared_pages& loopback_grant_memory::shared_pages::operator=(
    shared_pages&& other) noexcept {
    if (this != &other) {
        release();
        hv_ = std::exchange(other.hv_, nullptr);
        grant_ = std::move(other.grant_);
        refs_ = std::move(other.refs_);
        self_ = other.self_;
        notify_ = other.notify_;
    }
    return *this;
}

loopback_grant_memory::shared_pages::~shared_pages() {
    release();
}

std::byte* loopback_grant_memory::shared_pages::data() const noexcept {
    return grant_->pages;
}
std::size_t loopback_grant_memory::shared_pages::size() const noexcept {
    return grant_->count * 4096;
}

void loopback_grant_memory::shared_pages::release() noexcept {
    if (hv_ == nullptr) {
        return;
    }
    if (notify_) {
        internal::zero_live_byte(grant_->pages, notify_);
        hv_->signal(self_, notify_->port);
    }
    std::lock_guard lock(hv_->mutex_);
    for (grant_ref ref : refs_) {
        hv_->grants_.erase({self_, ref});
    }
    --hv_->held_.shares;
    hv_ = nullptr;
}

loopback_grant_memory::mapped_pages::mapped_pages(loopback_hypervisor* hv,
                                                  std::shared_ptr<internal::loopback_grant> grant,
                                                  std::byte* data, std::size_t size, domid_t self,
                                                  std::optional<unmap_notify> notify) noexcept
    : hv_(hv), grant_(std::move(grant)), data_(data), size_(size), self_(self), notify_(notify) {}

loopback_grant_memory::mapped_pages::mapped_pages(mapped_pages&& other) noexcept
    : hv_(std::exchange(other.hv_, nullptr)),
      grant_(std::move(other.grant_)),
      data_(other.data_),
      size_(other.size_),
      self_(other.self_),
      notify_(other.notify_) {}

loopback_grant_memory::mapped_pages& loopback_grant_memory::mapped_pages::operator=(
    mapped_pages&& other) noexcept {
    if (this != &other) {
        release();
        hv_ = std::exchange(other.hv_, nullptr);
        grant_ = std::move(other.grant_);
        data_ = other.data_;
        size_ = other.size_;
        self_ = other.self_;
        notify_ = other.notify_;
    }
    return *this;
}

loopback_grant_memory::mapped_pages::~mapped_pages() {
    release();
}

void loopback_grant_memory::mapped_pages::release() noexcept {
    if (hv_ == nullptr) {
        return;
    }
    if (notify_) {
        internal::zero_live_byte(data_, notify_);
        hv_->signal(self_, notify_->port);
    }
    std::lock_guard lock(hv_->mutex_);
    --hv_->held_.mappings;
    hv_ = nullptr;
}

result<loopback_grant_memory::shared_pages> loopback_grant_memory::share(
    domid_t peer, std::size_t pages, std::optional<unmap_notify> notify) {
    if (pages == 0 || (notify && (pages != 1 || notify->byte_offset >= 4096))) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    std::lock_guard lock(hv_->mutex_);
    const grant_ref first = hv_->next_ref_;
    auto grant = std::make_shared<internal::loopback_grant>(self_, peer, first, pages);
    if (grant->pages == nullptr) {
        return std::unexpected(std::make_error_code(std::errc::not_enough_memory));
    }
    hv_->next_ref_ += static_cast<grant_ref>(pages);
    std::vector<grant_ref> refs(pages);
    for (std::size_t i = 0; i < pages; ++i) {
        refs[i] = first + static_cast<grant_ref>(i);
        hv_->grants_[{self_, refs[i]}] = grant;
    }
    ++hv_->held_.shares;
    return shared_pages(hv_, std::move(grant), std::move(refs), self_, notify);
}

result<loopback_grant_memory::mapped_pages> loopback_grant_memory::map(
    domid_t peer, std::span<const grant_ref> refs, page_access,
    std::optional<unmap_notify> notify) {
    if (refs.empty() || (notify && (refs.size() != 1 || notify->byte_offset >= 4096))) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    std::lock_guard lock(hv_->mutex_);
    auto found = hv_->grants_.find({peer, refs[0]});
    auto grant = found == hv_->grants_.end() ? nullptr : found->second.lock();
    // In one process the pages can only be handed out as the one block they were shared in.
    if (!grant || grant->peer != self_ || refs[0] < grant->first ||
        refs[0] - grant->first + refs.size() > grant->count) {
        return fail(errc::invalid_grant);
    }
    for (std::size_t i = 1; i < refs.size(); ++i) {
        if (refs[i] != refs[0] + i) {
            return fail(errc::invalid_grant);
        }
    }
    std::byte* data = grant->pages + std::size_t{refs[0] - grant->first} * 4096;
    ++hv_->held_.mappings;
    return mapped_pages(hv_, std::move(grant), data, refs.size() * 4096, self_, notify);
}

// --- event channel ------------------------------------------------------------------------------

loopback_event_channel::port::port(loopback_hypervisor* hv,
                                   std::shared_ptr<internal::loopback_link> link, int side,
                                   event_port number) noexcept
    : hv_(hv), link_(std::move(link)), side_(side), number_(number) {}

loopback_event_channel::port::port(port&& other) noexcept
    : hv_(std::exchange(other.hv_, nullptr)),
      link_(std::move(other.link_)),
      side_(other.side_),
      number_(other.number_) {}

loopback_event_channel::port& loopback_event_channel::port::operator=(port&& other) noexcept {
    if (this != &other) {
        release();
        hv_ = std::exchange(other.hv_, nullptr);
        link_ = std::move(other.link_);
        side_ = other.side_;
        number_ = other.number_;
    }
    return *this;
}

loopback_event_channel::port::~port() {
    release();
}

void loopback_event_channel::port::release() noexcept {
    if (hv_ == nullptr) {
        return;
    }
    const auto self = static_cast<std::size_t>(side_);
    link_->closed[self].store(true);
    const std::uint64_t one = 1;
    (void)::write(link_->wake[1 - self].get(), &one, sizeof one);
    std::lock_guard lock(hv_->mutex_);
    hv_->ports_.erase({link_->domain[self], number_});
    --hv_->held_.ports;
    hv_ = nullptr;
}

result<void> loopback_event_channel::port::notify() {
    const std::uint64_t one = 1;
    if (::write(link_->wake[1 - static_cast<std::size_t>(side_)].get(), &one, sizeof one) < 0 &&
        errno != EAGAIN) {
        return fail_errno();
    }
    return {};
}

result<wait_outcome> loopback_event_channel::port::wait(std::chrono::nanoseconds timeout) {
    auto outcome = internal::wait_readable(native_handle(), timeout);
    if (outcome && *outcome == wait_outcome::notified) {
        std::uint64_t events = 0;
        (void)::read(native_handle(), &events, sizeof events);
    }
    return outcome;
}

int loopback_event_channel::port::native_handle() const noexcept {
    return link_->wake[static_cast<std::size_t>(side_)].get();
}

bool loopback_event_channel::port::peer_alive() {
    return link_->connected && !link_->closed[1 - static_cast<std::size_t>(side_)].load();
}

result<loopback_event_channel::port> loopback_event_channel::bind_unbound_port(domid_t peer) {
    auto link = std::make_shared<internal::loopback_link>();
    for (auto& fd : link->wake) {
        fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!fd) {
            return fail_errno();
        }
    }
    std::lock_guard lock(hv_->mutex_);
    const event_port number = ++hv_->next_port_[self_];
    link->domain = {self_, peer};
    link->number[0] = number;
    hv_->ports_[{self_, number}] = link;
    ++hv_->held_.ports;
    return port(hv_, std::move(link), 0, number);
}

result<loopback_event_channel::port> loopback_event_channel::bind_interdomain(domid_t peer,
                                                                              event_port remote) {
    std::lock_guard lock(hv_->mutex_);
    auto found = hv_->ports_.find({peer, remote});
    auto link = found == hv_->ports_.end() ? nullptr : found->second.lock();
    if (!link || link->domain[1] != self_ || link->connected) {
        return fail(errc::rendezvous_failed);
    }
    const event_port number = ++hv_->next_port_[self_];
    link->number[1] = number;
    link->connected = true;
    hv_->ports_[{self_, number}] = link;
    ++hv_->held_.ports;
    return port(hv_, std::move(link), 1, number);
}

// --- rendezvous ---------------------------------------------------------------------------------

loopback_rendezvous::publication& loopback_rendezvous::publication::operator=(
    publication&& other) noexcept {
    if (this != &other) {
        this->~publication();
        hv_ = std::exchange(other.hv_, nullptr);
        path_ = std::move(other.path_);
    }
    return *this;
}

loopback_rendezvous::publication::~publication() {
    if (hv_ == nullptr) {
        return;
    }
    std::lock_guard lock(hv_->mutex_);
    hv_->store_.erase(path_);
    --hv_->held_.publications;
    hv_ = nullptr;
}

result<loopback_rendezvous::publication> loopback_rendezvous::publish(const vchan_address& address,
                                                                      vchan_offer offer) {
    if (address.server != self_) {
        return fail(errc::rendezvous_failed);
    }
    std::string path = address.xenstore_path();
    {
        std::lock_guard lock(hv_->mutex_);
        hv_->store_[path] = offer;
        ++hv_->held_.publications;
    }
    hv_->store_changed_.notify_all();
    return publication(hv_, std::move(path));
}

result<vchan_offer> loopback_rendezvous::lookup(const vchan_address& address,
                                                std::chrono::nanoseconds timeout) {
    const std::string path = address.xenstore_path();
    std::unique_lock lock(hv_->mutex_);
    auto present = [&] { return hv_->store_.contains(path); };
    if (timeout == forever) {
        hv_->store_changed_.wait(lock, present);
    } else if (!hv_->store_changed_.wait_for(lock, timeout, present)) {
        return fail(errc::timed_out);
    }
    return hv_->store_.at(path);
}

// --- hypervisor ---------------------------------------------------------------------------------

void loopback_hypervisor::signal(domid_t domain, event_port port) {
    std::lock_guard lock(mutex_);
    auto found = ports_.find({domain, port});
    auto link = found == ports_.end() ? nullptr : found->second.lock();
    if (!link) {
        return;
    }
    const std::size_t side = link->domain[0] == domain && link->number[0] == port ? 0 : 1;
    const std::uint64_t one = 1;
    (void)::write(link->wake[1 - side].get(), &one, sizeof one);
}

loopback_leaks loopback_hypervisor::outstanding() const {
    std::lock_guard lock(mutex_);
    return held_;
}

loopback_hypervisor::~loopback_hypervisor() {
    const auto leaks = outstanding();
    if (!leaks.clean()) {
        std::fprintf(stderr,
                     "loopback_hypervisor: leaked %zu shares, %zu mappings, %zu ports, "
                     "%zu publications\n",
                     leaks.shares, leaks.mappings, leaks.ports, leaks.publications);
        std::abort();
    }
}

}  // namespace vdist::transport
