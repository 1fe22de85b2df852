#include "vdist/transport/xen_backend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "xenstore_value.hpp"

// The libxen headers have no extern "C" guards of their own.
extern "C" {
#include <xen/xen.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>
}

namespace vdist::transport {

static_assert(grant_memory<xen_grant_memory>);
static_assert(event_channel<xen_event_channel>);
static_assert(rendezvous<xen_rendezvous>);
static_assert(vchan_backend<xen_backend>);

static_assert(internal::first_reserved_domid == DOMID_FIRST_RESERVED);
static_assert(std::is_same_v<grant_ref, std::uint32_t>, "xengntshr fills uint32_t refs");
static_assert(std::is_same_v<event_port, evtchn_port_t>);
static_assert(internal::max_port_name_length + 64 < XENSTORE_ABS_PATH_MAX);

namespace {

// The libraries report through errno; their loggers would also print to stderr, which a
// library inside an Erlang node must not do. This logger drops every message.
void discard_message(xentoollog_logger*, xentoollog_level, int, const char*, const char*, va_list) {
}
void discard_destroy(xentoollog_logger*) {}
xentoollog_logger silent_logger{discard_message, nullptr, discard_destroy};

[[nodiscard]] std::unexpected<std::error_code> fail(std::errc e) noexcept {
    return std::unexpected(std::make_error_code(e));
}

[[nodiscard]] std::unexpected<std::error_code> fail_with(int error) noexcept {
    return std::unexpected(std::error_code(error, std::system_category()));
}

// Opening a Xen device that is not there is the one failure every non-Xen machine meets:
// name it for what it means.
[[nodiscard]] std::unexpected<std::error_code> fail_open() noexcept {
    if (errno == ENOENT || errno == ENXIO || errno == ENODEV) {
        return fail(std::errc::no_such_device);
    }
    return fail_errno();
}

// Most pages one share/map call takes: the libraries count pages in an int and bytes in a
// size_t. A vchan needs at most 256 per ring; anything near this bound is a bug or an attack.
constexpr std::size_t max_pages_per_call =
    static_cast<std::size_t>(std::numeric_limits<int>::max()) / page_size;

// libxengnttab's "no event" port for the unmap notification.
constexpr evtchn_port_t no_notify_port = std::numeric_limits<evtchn_port_t>::max();

// EAGAIN from xs_transaction_end means "someone else wrote, start over". libxenvchan retries
// forever; a bound turns a livelock into an error.
constexpr int max_transaction_attempts = 64;

// A waiting lookup also re-reads the store this often, watch or no watch: xenstored does not
// promise watch events for nodes the watcher cannot read, and libxenstore does not wake a
// watcher whose connection broke (the re-read then reports the broken connection).
constexpr std::chrono::nanoseconds lookup_recheck_interval = std::chrono::seconds(1);

// A relative timeout turned into an absolute one, with transport::forever meaning none.
class deadline {
  public:
    explicit deadline(std::chrono::nanoseconds timeout) noexcept {
        using clock = std::chrono::steady_clock;
        if (timeout == forever) {
            return;
        }
        const auto now = clock::now();
        const auto bounded = std::max(timeout, std::chrono::nanoseconds::zero());
        if (bounded > clock::time_point::max() - now) {
            return;  // later than the clock can count: the same as forever
        }
        at_ = now + bounded;
    }

    // Time left (zero once passed), or nullopt when there is no deadline.
    [[nodiscard]] std::optional<std::chrono::nanoseconds> remaining() const noexcept {
        if (!at_) {
            return std::nullopt;
        }
        const auto left = *at_ - std::chrono::steady_clock::now();
        return std::max(std::chrono::duration_cast<std::chrono::nanoseconds>(left),
                        std::chrono::nanoseconds::zero());
    }

  private:
    std::optional<std::chrono::steady_clock::time_point> at_;
};

// Waits until `fd` is readable (true) or the deadline passes (false), restarting on signals.
[[nodiscard]] result<bool> wait_readable(int fd, const deadline& until) {
    for (;;) {
        const auto left = until.remaining();
        timespec limit{};
        if (left) {
            limit.tv_sec = static_cast<time_t>(left->count() / 1'000'000'000);
            limit.tv_nsec = static_cast<long>(left->count() % 1'000'000'000);
        }
        pollfd entry{fd, POLLIN, 0};
        const int ready = ::ppoll(&entry, 1, left ? &limit : nullptr, nullptr);
        if (ready < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail_errno();
        }
        if (ready == 0) {
            return false;
        }
        if ((entry.revents & POLLNVAL) != 0) {
            return fail(std::errc::bad_file_descriptor);
        }
        if ((entry.revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
            return true;  // the read that follows reports an error condition precisely
        }
    }
}

struct free_deleter {
    void operator()(void* memory) const noexcept { std::free(memory); }
};

// One XenStore value: the bytes, nullopt if the key does not exist (ENOENT) or is not
// readable by this domain yet (EACCES: xenstored reports a missing key under a directory
// the reader may not list as EACCES, and the client may not list the server's directory).
[[nodiscard]] result<std::optional<std::string>> read_key(xs_handle* store,
                                                          const std::string& path) {
    unsigned int length = 0;
    std::unique_ptr<void, free_deleter> value(xs_read(store, XBT_NULL, path.c_str(), &length));
    if (!value) {
        if (errno == ENOENT || errno == EACCES) {
            return std::optional<std::string>{};
        }
        return fail_errno();
    }
    return std::optional<std::string>(std::in_place, static_cast<const char*>(value.get()), length);
}

// The offer at `path`, nullopt while either key is absent.
[[nodiscard]] result<std::optional<vchan_offer>> read_offer(xs_handle* store,
                                                            const std::string& path) {
    auto ring_ref_text = read_key(store, path + "/ring-ref");
    if (!ring_ref_text) {
        return std::unexpected(ring_ref_text.error());
    }
    auto port_text = read_key(store, path + "/event-channel");
    if (!port_text) {
        return std::unexpected(port_text.error());
    }
    if (!*ring_ref_text || !*port_text) {
        return std::optional<vchan_offer>{};
    }
    const auto ring_ref = internal::parse_decimal(**ring_ref_text);
    if (!ring_ref) {
        return std::unexpected(ring_ref.error());
    }
    const auto port = internal::parse_decimal(**port_text);
    if (!port) {
        return std::unexpected(port.error());
    }
    return std::optional<vchan_offer>(vchan_offer{*ring_ref, *port});
}

// Writes one key and its permissions inside transaction `t`; false with errno on failure.
[[nodiscard]] bool write_key(xs_handle* store, xs_transaction_t t, const std::string& path,
                             const std::string& value, xs_permissions (&permissions)[2]) {
    return xs_write(store, t, path.c_str(), value.data(),
                    static_cast<unsigned int>(value.size())) &&
           xs_set_permissions(store, t, path.c_str(), permissions, 2);
}

// Removes `directory` if it has no children, atomically with the check so that an offer
// published meanwhile under it survives. Best effort: tidying must never fail a withdrawal.
void remove_if_empty(xs_handle* store, const std::string& directory) {
    for (int attempt = 0; attempt < max_transaction_attempts; ++attempt) {
        const xs_transaction_t t = xs_transaction_start(store);
        if (t == XBT_NULL) {
            return;
        }
        unsigned int children = 0;
        std::unique_ptr<char*, free_deleter> listing(
            xs_directory(store, t, directory.c_str(), &children));
        if (!listing || children != 0 || !xs_rm(store, t, directory.c_str())) {
            (void)xs_transaction_end(store, t, true);
            return;
        }
        if (xs_transaction_end(store, t, false) || errno != EAGAIN) {
            return;
        }
    }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// xen_grant_memory

void xen_grant_memory::share_device_closer::operator()(xengntdev_handle* handle) const noexcept {
    (void)xengntshr_close(handle);
}

void xen_grant_memory::map_device_closer::operator()(xengntdev_handle* handle) const noexcept {
    (void)xengnttab_close(handle);
}

xen_grant_memory::xen_grant_memory(
    std::unique_ptr<xengntdev_handle, share_device_closer> share_device,
    std::unique_ptr<xengntdev_handle, map_device_closer> map_device) noexcept
    : share_device_(std::move(share_device)), map_device_(std::move(map_device)) {}

result<xen_grant_memory> xen_grant_memory::open() {
    std::unique_ptr<xengntdev_handle, share_device_closer> share_device(
        xengntshr_open(&silent_logger, 0));
    if (!share_device) {
        return fail_open();
    }
    std::unique_ptr<xengntdev_handle, map_device_closer> map_device(
        xengnttab_open(&silent_logger, 0));
    if (!map_device) {
        return fail_open();
    }
    return xen_grant_memory(std::move(share_device), std::move(map_device));
}

result<xen_grant_memory::shared_pages> xen_grant_memory::share(domid_t peer, std::size_t pages,
                                                               std::optional<unmap_notify> notify) {
    if (pages == 0 || pages > max_pages_per_call) {
        return fail(std::errc::invalid_argument);
    }
    if (notify && (pages != 1 || notify->byte_offset >= page_size)) {
        return fail(std::errc::invalid_argument);
    }
    std::vector<grant_ref> refs(pages);
    constexpr int writable = 1;  // the peer writes its rings and indices in these pages
    void* data = nullptr;
    if (notify) {
        const evtchn_port_t port = notify->port != 0 ? notify->port : no_notify_port;
        data = xengntshr_share_page_notify(share_device_.get(), peer, refs.data(), writable,
                                           static_cast<std::uint32_t>(notify->byte_offset), port);
    } else {
        data = xengntshr_share_pages(share_device_.get(), peer, static_cast<int>(pages),
                                     refs.data(), writable);
    }
    if (data == nullptr) {
        return fail_errno();
    }
    return shared_pages(share_device_.get(), static_cast<std::byte*>(data), std::move(refs));
}

result<xen_grant_memory::mapped_pages> xen_grant_memory::map(domid_t peer,
                                                             std::span<const grant_ref> refs,
                                                             page_access access,
                                                             std::optional<unmap_notify> notify) {
    if (refs.empty() || refs.size() > max_pages_per_call) {
        return fail(std::errc::invalid_argument);
    }
    if (std::ranges::find(refs, grant_ref{0}) != refs.end()) {
        return transport::fail(errc::invalid_grant);
    }
    const int protection = access == page_access::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
    void* data = nullptr;
    if (notify) {
        // The kernel clears the byte through this mapping, so it must be writable.
        if (refs.size() != 1 || notify->byte_offset >= page_size ||
            access != page_access::read_write) {
            return fail(std::errc::invalid_argument);
        }
        const evtchn_port_t port = notify->port != 0 ? notify->port : no_notify_port;
        data =
            xengnttab_map_grant_ref_notify(map_device_.get(), peer, refs.front(), protection,
                                           static_cast<std::uint32_t>(notify->byte_offset), port);
    } else {
        // The library takes a mutable array it never writes; hand it a private copy rather
        // than cast away the caller's const.
        std::vector<std::uint32_t> request(refs.begin(), refs.end());
        data = xengnttab_map_domain_grant_refs(map_device_.get(),
                                               static_cast<std::uint32_t>(request.size()), peer,
                                               request.data(), protection);
    }
    if (data == nullptr) {
        // gntdev answers EINVAL for any grant the hypervisor refused to map (not granted to
        // us, revoked, out of the granter's table); the arguments were checked above.
        return errno == EINVAL ? transport::fail(errc::invalid_grant) : fail_errno();
    }
    return mapped_pages(map_device_.get(), static_cast<std::byte*>(data), refs.size());
}

xen_grant_memory::shared_pages::shared_pages(xengntdev_handle* handle, std::byte* data,
                                             std::vector<grant_ref> refs) noexcept
    : handle_(handle), data_(data), refs_(std::move(refs)) {}

xen_grant_memory::shared_pages::shared_pages(shared_pages&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      refs_(std::exchange(other.refs_, {})) {}

xen_grant_memory::shared_pages& xen_grant_memory::shared_pages::operator=(
    shared_pages&& other) noexcept {
    if (this != &other) {
        release();
        handle_ = std::exchange(other.handle_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        refs_ = std::exchange(other.refs_, {});
    }
    return *this;
}

xen_grant_memory::shared_pages::~shared_pages() {
    release();
}

void xen_grant_memory::shared_pages::release() noexcept {
    if (data_ != nullptr) {
        // Unsharing also ends the grants: gntalloc revokes them once the peer unmaps.
        (void)xengntshr_unshare(handle_, data_, static_cast<std::uint32_t>(refs_.size()));
    }
    handle_ = nullptr;
    data_ = nullptr;
    refs_.clear();
}

xen_grant_memory::mapped_pages::mapped_pages(xengntdev_handle* handle, std::byte* data,
                                             std::size_t pages) noexcept
    : handle_(handle), data_(data), pages_(pages) {}

xen_grant_memory::mapped_pages::mapped_pages(mapped_pages&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      data_(std::exchange(other.data_, nullptr)),
      pages_(std::exchange(other.pages_, 0)) {}

xen_grant_memory::mapped_pages& xen_grant_memory::mapped_pages::operator=(
    mapped_pages&& other) noexcept {
    if (this != &other) {
        release();
        handle_ = std::exchange(other.handle_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        pages_ = std::exchange(other.pages_, 0);
    }
    return *this;
}

xen_grant_memory::mapped_pages::~mapped_pages() {
    release();
}

void xen_grant_memory::mapped_pages::release() noexcept {
    if (data_ != nullptr) {
        // With an unmap notification, this is also what zeroes the live byte and signals
        // the peer.
        (void)xengnttab_unmap(handle_, data_, static_cast<std::uint32_t>(pages_));
    }
    handle_ = nullptr;
    data_ = nullptr;
    pages_ = 0;
}

// ---------------------------------------------------------------------------------------------
// xen_event_channel

// Tells whether a peer domain still exists, on a XenStore connection of its own (its watch
// events then cannot be consumed by anyone else, and its watch ends with it): xenstored fires
// @releaseDomain whenever any domain is destroyed, and XS_IS_DOMAIN_INTRODUCED then says whether
// it was the peer. Both are privileged since XSA-115: in a domain without the privilege, open()
// gives no watch.
class xen_event_channel::port::domain_watch {
  public:
    // A watch on `peer`, or nullptr when this domain may not watch domains.
    [[nodiscard]] static result<std::unique_ptr<domain_watch>> open(domid_t peer) {
        std::unique_ptr<xs_handle, store_connection_closer> store(xs_open(0));
        if (!store) {
            return fail_open();
        }
        // Ask for the fd before registering: xenstored fires a watch once on registration,
        // and that first firing already marks the fd readable.
        const int fd = xs_fileno(store.get());
        if (fd < 0) {
            return fail_errno();
        }
        if (auto introduced = is_introduced(store.get(), peer); !introduced) {
            if (introduced.error() == std::errc::permission_denied) {
                return nullptr;
            }
            return std::unexpected(introduced.error());
        }
        if (!xs_watch(store.get(), "@releaseDomain", "vdist-peer-domain")) {
            return errno == EACCES ? result<std::unique_ptr<domain_watch>>(nullptr) : fail_errno();
        }
        return std::unique_ptr<domain_watch>(new domain_watch(std::move(store), fd, peer));
    }

    // Readable when the watch has fired.
    [[nodiscard]] int fd() const noexcept { return fd_; }

    // Consumes the fired events; false only when one fired and xenstored then said the peer is
    // no longer introduced. When the answer cannot be had (a broken connection), the peer is
    // taken to be alive: the ring's own checks and the distribution ticks still apply.
    [[nodiscard]] bool peer_exists() noexcept {
        bool fired = false;
        while (std::unique_ptr<char*, free_deleter> event{xs_check_watch(store_.get())}) {
            fired = true;
        }
        if (!fired) {
            return true;
        }
        const auto introduced = is_introduced(store_.get(), peer_);
        return !introduced || *introduced;
    }

  private:
    struct store_connection_closer {
        void operator()(xs_handle* store) const noexcept { xs_close(store); }
    };

    domain_watch(std::unique_ptr<xs_handle, store_connection_closer> store, int fd,
                 domid_t peer) noexcept
        : store_(std::move(store)), fd_(fd), peer_(peer) {}

    // XS_IS_DOMAIN_INTRODUCED. libxenstore answers false both for "F" and for a failed
    // request; errno, cleared first, tells them apart.
    [[nodiscard]] static result<bool> is_introduced(xs_handle* store, domid_t domain) {
        errno = 0;
        if (xs_is_domain_introduced(store, domain)) {
            return true;
        }
        if (errno != 0) {
            return fail_errno();
        }
        return false;
    }

    std::unique_ptr<xs_handle, store_connection_closer> store_;
    int fd_ = -1;
    domid_t peer_ = 0;
};

namespace {

struct event_handle_closer {
    void operator()(xenevtchn_handle* handle) const noexcept { (void)xenevtchn_close(handle); }
};
using event_handle = std::unique_ptr<xenevtchn_handle, event_handle_closer>;

[[nodiscard]] result<event_handle> open_event_handle() {
    event_handle handle(xenevtchn_open(&silent_logger, 0));
    if (!handle) {
        return fail_open();
    }
    return handle;
}

// The handle's fd, switched to non-blocking so that a spurious wake-up makes
// xenevtchn_pending fail with EAGAIN instead of blocking in read().
[[nodiscard]] result<int> nonblocking_fd(xenevtchn_handle* handle) {
    const int fd = xenevtchn_fd(handle);
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return fail_errno();
    }
    return fd;
}

}  // namespace

result<xen_event_channel> xen_event_channel::open(domid_t self) {
    auto probe = open_event_handle();
    if (!probe) {
        return std::unexpected(probe.error());
    }
    return xen_event_channel(self);
}

result<xen_event_channel::port> xen_event_channel::bind_unbound_port(domid_t peer) {
    auto handle = open_event_handle();
    if (!handle) {
        return std::unexpected(handle.error());
    }
    const xenevtchn_port_or_error_t bound = xenevtchn_bind_unbound_port(handle->get(), peer);
    if (bound < 0) {
        return fail_errno();
    }
    return adopt(handle->release(), static_cast<event_port>(bound), peer);
}

result<xen_event_channel::port> xen_event_channel::bind_interdomain(domid_t peer,
                                                                    event_port remote) {
    auto handle = open_event_handle();
    if (!handle) {
        return std::unexpected(handle.error());
    }
    const xenevtchn_port_or_error_t bound = xenevtchn_bind_interdomain(handle->get(), peer, remote);
    if (bound < 0) {
        return fail_errno();
    }
    return adopt(handle->release(), static_cast<event_port>(bound), peer);
}

result<xen_event_channel::port> xen_event_channel::adopt(xenevtchn_handle* handle, event_port bound,
                                                         domid_t peer) {
    // The port owns the handle and the binding from here on: every failure below unbinds.
    port adopted(handle, bound, xenevtchn_fd(handle));
    auto nonblocking = nonblocking_fd(handle);
    if (!nonblocking) {
        return std::unexpected(nonblocking.error());
    }
    if (xenevtchn_unmask(handle, bound) != 0) {
        return fail_errno();
    }
    if (peer != self_) {
        if (auto watched = adopted.watch_domain(peer); !watched) {
            return std::unexpected(watched.error());
        }
    }
    return adopted;
}

xen_event_channel::port::port(xenevtchn_handle* handle, event_port local, int fd) noexcept
    : handle_(handle), port_(local), fd_(fd) {}

xen_event_channel::port::port(port&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      port_(std::exchange(other.port_, 0)),
      fd_(std::exchange(other.fd_, -1)),
      peer_gone_(std::exchange(other.peer_gone_, false)),
      watch_(std::move(other.watch_)),
      poll_fd_(std::move(other.poll_fd_)) {}

xen_event_channel::port& xen_event_channel::port::operator=(port&& other) noexcept {
    if (this != &other) {
        release();
        handle_ = std::exchange(other.handle_, nullptr);
        port_ = std::exchange(other.port_, 0);
        fd_ = std::exchange(other.fd_, -1);
        peer_gone_ = std::exchange(other.peer_gone_, false);
        watch_ = std::move(other.watch_);
        poll_fd_ = std::move(other.poll_fd_);
    }
    return *this;
}

xen_event_channel::port::~port() {
    release();
}

void xen_event_channel::port::release() noexcept {
    if (handle_ != nullptr) {
        (void)xenevtchn_unbind(handle_, port_);
        (void)xenevtchn_close(handle_);
    }
    handle_ = nullptr;
    port_ = 0;
    fd_ = -1;
    poll_fd_.reset();
    watch_.reset();
}

void xen_event_channel::port::note_failure(int error) noexcept {
    // The evtchn driver answers ENOTCONN / EINVAL for a port it no longer has bound for us.
    if (error == ENOTCONN || error == EINVAL) {
        peer_gone_ = true;
    }
}

result<void> xen_event_channel::port::notify() {
    if (handle_ == nullptr) {
        return fail(std::errc::bad_file_descriptor);
    }
    if (xenevtchn_notify(handle_, port_) != 0) {
        const int error = errno;
        note_failure(error);
        return fail_with(error);
    }
    return {};
}

result<wait_outcome> xen_event_channel::port::wait(std::chrono::nanoseconds timeout) {
    if (handle_ == nullptr) {
        return fail(std::errc::bad_file_descriptor);
    }
    const deadline until(timeout);
    for (;;) {
        const auto readable = wait_readable(native_handle(), until);
        if (!readable) {
            return std::unexpected(readable.error());
        }
        if (!*readable) {
            return wait_outcome::timed_out;
        }
        if (watch_) {
            check_peer_domain();
            if (peer_gone_) {
                return wait_outcome::notified;  // the caller finds peer_alive() false
            }
        }
        const xenevtchn_port_or_error_t fired = xenevtchn_pending(handle_);
        if (fired < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;  // woken with nothing pending: wait for the rest of the timeout
            }
            const int error = errno;
            note_failure(error);
            return fail_with(error);
        }
        // The driver masked the port when it fired; unmask it so the next event is delivered
        // (an event arriving in between stays pending and is delivered on unmask).
        if (xenevtchn_unmask(handle_, static_cast<evtchn_port_t>(fired)) != 0) {
            const int error = errno;
            note_failure(error);
            return fail_with(error);
        }
        return wait_outcome::notified;
    }
}

int xen_event_channel::port::native_handle() const noexcept {
    return poll_fd_ ? poll_fd_.get() : fd_;
}

bool xen_event_channel::port::peer_alive() {
    if (!peer_gone_ && watch_) {
        pollfd entry{watch_->fd(), POLLIN, 0};
        if (::poll(&entry, 1, 0) > 0) {
            check_peer_domain();
        }
    }
    return !peer_gone_;
}

void xen_event_channel::port::check_peer_domain() noexcept {
    if (!watch_->peer_exists()) {
        peer_gone_ = true;
    }
}

result<void> xen_event_channel::port::watch_domain(domid_t peer) {
    auto watch = domain_watch::open(peer);
    if (!watch) {
        return std::unexpected(watch.error());
    }
    if (!*watch) {
        return {};  // not allowed here: the unmap notification is all this port has
    }
    unique_fd poll(::epoll_create1(EPOLL_CLOEXEC));
    if (!poll) {
        return fail_errno();
    }
    for (const int fd : {fd_, (*watch)->fd()}) {
        epoll_event interest{};
        interest.events = EPOLLIN;
        interest.data.fd = fd;
        if (::epoll_ctl(poll.get(), EPOLL_CTL_ADD, fd, &interest) != 0) {
            return fail_errno();
        }
    }
    watch_ = std::move(*watch);
    poll_fd_ = std::move(poll);
    return {};
}

// ---------------------------------------------------------------------------------------------
// xen_rendezvous

void xen_rendezvous::store_closer::operator()(xs_handle* store) const noexcept {
    xs_close(store);
}

xen_rendezvous::xen_rendezvous(std::unique_ptr<xs_handle, store_closer> store,
                               domid_t self) noexcept
    : store_(std::move(store)), self_(self) {}

result<xen_rendezvous> xen_rendezvous::open() {
    std::unique_ptr<xs_handle, store_closer> store(xs_open(0));
    if (!store) {
        return fail_open();
    }
    // A relative path resolves under this domain's home, /local/domain/<self>.
    auto text = read_key(store.get(), "domid");
    if (!text) {
        return std::unexpected(text.error());
    }
    if (!*text) {
        return transport::fail(errc::rendezvous_failed);
    }
    const auto self = internal::parse_domid(**text);
    if (!self) {
        return std::unexpected(self.error());
    }
    return xen_rendezvous(std::move(store), *self);
}

result<xen_rendezvous::publication> xen_rendezvous::publish(const vchan_address& address,
                                                            vchan_offer offer) {
    if (!internal::is_valid_port_name(address.port) || offer.port == 0) {
        return fail(std::errc::invalid_argument);
    }
    if (offer.ring_ref == 0) {
        return transport::fail(errc::invalid_grant);
    }
    const std::string path = address.xenstore_path();
    const std::string ring_ref_key = path + "/ring-ref";
    const std::string port_key = path + "/event-channel";
    const std::string ring_ref_text = std::to_string(offer.ring_ref);
    const std::string port_text = std::to_string(offer.port);
    // The server owns the nodes and nobody else may read them, except the client.
    xs_permissions permissions[2] = {{self_, XS_PERM_NONE}, {address.client, XS_PERM_READ}};

    for (int attempt = 0; attempt < max_transaction_attempts; ++attempt) {
        const xs_transaction_t t = xs_transaction_start(store_.get());
        if (t == XBT_NULL) {
            return fail_errno();
        }
        if (!write_key(store_.get(), t, ring_ref_key, ring_ref_text, permissions) ||
            !write_key(store_.get(), t, port_key, port_text, permissions)) {
            const int error = errno;
            (void)xs_transaction_end(store_.get(), t, true);
            return fail_with(error);
        }
        if (xs_transaction_end(store_.get(), t, false)) {
            return publication(store_.get(), path);
        }
        if (errno != EAGAIN) {
            return fail_errno();
        }
    }
    return fail_with(EAGAIN);
}

result<vchan_offer> xen_rendezvous::lookup(const vchan_address& address,
                                           std::chrono::nanoseconds timeout) {
    if (!internal::is_valid_port_name(address.port)) {
        return fail(std::errc::invalid_argument);
    }
    const deadline until(timeout);
    const std::string path = address.xenstore_path();
    auto offer = read_offer(store_.get(), path);
    if (!offer) {
        return std::unexpected(offer.error());
    }
    if (*offer) {
        return **offer;
    }
    if (until.remaining() == std::chrono::nanoseconds::zero()) {
        return transport::fail(errc::timed_out);
    }

    // Wait on a connection of our own: its watch events cannot be consumed by a concurrent
    // lookup, and its watches end with it.
    std::unique_ptr<xs_handle, store_closer> watcher(xs_open(0));
    if (!watcher) {
        return fail_open();
    }
    // Ask for the fd before registering, so that the first firing of the watches (xenstored
    // fires each once on registration) already marks it readable.
    const int fd = xs_fileno(watcher.get());
    if (fd < 0) {
        return fail_errno();
    }
    // Watch the key, not the directory: the client may not be allowed to read the directory.
    const std::string port_key = path + "/event-channel";
    if (!xs_watch(watcher.get(), port_key.c_str(), "vdist-offer")) {
        return fail_errno();
    }
    // Any domain's death fires this. It only makes us look again; failing to register it (a
    // xenstored that restricts special watches) costs nothing but that.
    (void)xs_watch(watcher.get(), "@releaseDomain", "vdist-release");

    for (;;) {
        // Read after the watch is registered, so that a publication between the first read
        // and the registration is not missed.
        offer = read_offer(watcher.get(), path);
        if (!offer) {
            return std::unexpected(offer.error());
        }
        if (*offer) {
            return **offer;
        }
        const auto left = until.remaining();
        if (left == std::chrono::nanoseconds::zero()) {
            return transport::fail(errc::timed_out);
        }
        const deadline slice(
            std::min(left.value_or(lookup_recheck_interval), lookup_recheck_interval));
        const auto readable = wait_readable(fd, slice);
        if (!readable) {
            return std::unexpected(readable.error());
        }
        if (!*readable) {
            continue;  // the slice ended: read again, then check the overall deadline
        }
        // Drain every queued event: each means only "look again".
        while (std::unique_ptr<char*, free_deleter> event{xs_check_watch(watcher.get())}) {
        }
        if (errno != EAGAIN) {
            return fail_errno();  // the connection to xenstored broke
        }
    }
}

xen_rendezvous::publication::publication(xs_handle* store, std::string path) noexcept
    : store_(store), path_(std::move(path)) {}

xen_rendezvous::publication::publication(publication&& other) noexcept
    : store_(std::exchange(other.store_, nullptr)), path_(std::exchange(other.path_, {})) {}

xen_rendezvous::publication& xen_rendezvous::publication::operator=(publication&& other) noexcept {
    if (this != &other) {
        (void)withdraw();
        store_ = std::exchange(other.store_, nullptr);
        path_ = std::exchange(other.path_, {});
    }
    return *this;
}

xen_rendezvous::publication::~publication() {
    (void)withdraw();
}

result<void> xen_rendezvous::publication::withdraw() {
    if (store_ == nullptr) {
        return {};
    }
    xs_handle* const store = std::exchange(store_, nullptr);
    const std::string path = std::exchange(path_, {});
    if (!xs_rm(store, XBT_NULL, path.c_str()) && errno != ENOENT) {
        return fail_errno();
    }
    // Empty `<client>` directories left behind pile up until listing them fails
    // (QubesOS/qubes-issues#1390); remove ours if this offer was its last entry.
    remove_if_empty(store, path.substr(0, path.rfind('/')));
    return {};
}

// ---------------------------------------------------------------------------------------------
// xen_backend

xen_backend::xen_backend(xen_grant_memory memory, xen_event_channel events,
                         xen_rendezvous directory) noexcept
    : memory_(std::move(memory)), events_(std::move(events)), directory_(std::move(directory)) {}

result<xen_backend> xen_backend::open() {
    auto directory = xen_rendezvous::open();
    if (!directory) {
        return std::unexpected(directory.error());
    }
    auto memory = xen_grant_memory::open();
    if (!memory) {
        return std::unexpected(memory.error());
    }
    auto events = xen_event_channel::open(directory->domid());
    if (!events) {
        return std::unexpected(events.error());
    }
    return xen_backend(std::move(*memory), std::move(*events), std::move(*directory));
}

}  // namespace vdist::transport
