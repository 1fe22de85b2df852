#include "vdist/transport/host_backend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>

#include "poll_fd.hpp"

namespace vdist::transport {
namespace internal {

inline constexpr std::size_t host_page = 4096;

// A grant ref names a page of one share: (share id << 9) | page. Share ids start at 1, so
// ref 0 is never valid; a share holds at most 512 pages (two 1 MiB rings need 256 each).
inline constexpr unsigned share_page_bits = 9;
inline constexpr std::size_t max_share_pages = std::size_t{1} << share_page_bits;
inline constexpr std::size_t max_hello_shares = 64;

[[nodiscard]] constexpr grant_ref make_ref(std::uint32_t share, std::size_t page) noexcept {
    return (share << share_page_bits) | static_cast<grant_ref>(page);
}
[[nodiscard]] constexpr std::uint32_t share_of(grant_ref ref) noexcept {
    return ref >> share_page_bits;
}
[[nodiscard]] constexpr std::size_t page_of(grant_ref ref) noexcept {
    return ref & (max_share_pages - 1);
}

/// One share record of the hello.
struct hello_share {
    std::uint32_t id = 0;
    std::uint32_t pages = 0;
};

/// What a server sends a client on the rendezvous socket: this header, `share_count` share
/// records, and as SCM_RIGHTS the eventfd the server waits on, the eventfd the client waits on,
/// then one memfd per share record.
struct host_hello {
    static constexpr std::uint32_t expected_magic = 0x76647374;  // "vdst"
    static constexpr std::uint16_t expected_version = 2;
    std::uint32_t magic = expected_magic;
    std::uint16_t version = expected_version;
    std::uint16_t reserved = 0;
    std::uint32_t ring_ref = 0;
    std::uint32_t port = 0;
    std::uint32_t share_count = 0;
};
inline constexpr std::size_t hello_event_fds = 2;

struct hello_message {
    host_hello header;
    std::array<hello_share, max_hello_shares> shares;
};

struct pending_binding {
    unique_fd connection;
    unique_fd to_server;
    unique_fd to_client;
};

/// A share as the client holds it between rendezvous and mapping.
struct peer_table {
    unique_fd fd;
    std::size_t pages = 0;
};

/// A share as its owner holds it: the memory lives as long as any process maps it, so a peer
/// keeps reading what we wrote after we unshare, as on Xen.
struct share_entry {
    domid_t peer = 0;
    unique_fd fd;
    std::size_t pages = 0;
};

struct host_domain {
    domid_t domid = 0;
    std::filesystem::path run_dir;
    std::uint32_t next_share = 1;
    std::map<std::uint32_t, share_entry> shares;
    /// The keys of `shares` by the peer they are for: a rendezvous hands over the shares for
    /// its peer without walking those for every other (a parent of hundreds of children).
    std::set<std::pair<domid_t, std::uint32_t>> shares_by_peer;
    std::size_t shared_pages = 0;
    event_port next_port = 1;
    std::map<event_port, std::weak_ptr<host_link>> unbound;
    std::map<std::pair<domid_t, std::uint32_t>, peer_table> peer_tables;
    std::map<std::pair<domid_t, event_port>, pending_binding> pending;
    /// Lookups that connected but have no answer yet, by socket path: the next lookup of the
    /// same address goes on waiting on the same connection instead of starting over, so a
    /// caller can look up without blocking (timeout 0) and come back later.
    std::map<std::string, unique_fd> lookups;
};

/// The rendezvous socket of one channel: listening until the client attaches, then connected
/// for the channel's life so that a hang-up reveals a dead peer.
struct host_link {
    domid_t peer = 0;
    std::shared_ptr<host_domain> domain;  // server side: the shares to hand over
    int poll_fd = -1;                     // the port's epoll set (borrowed)
    unique_fd listener;
    unique_fd connection;
    std::filesystem::path path;
    vchan_offer offer;
    unique_fd give_to_server;
    unique_fd give_to_client;
    bool gone = false;

    void stop_listening() noexcept {
        if (listener) {
            listener.reset();
            std::error_code ignored;
            std::filesystem::remove(path, ignored);
        }
    }
};

namespace {

result<unique_fd> make_eventfd() {
    unique_fd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd) {
        return fail_errno();
    }
    return fd;
}

result<void> watch(int poll_fd, int fd) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.fd = fd;
    if (::epoll_ctl(poll_fd, EPOLL_CTL_ADD, fd, &event) != 0) {
        return fail_errno();
    }
    return {};
}

result<void> send_hello(int socket, const host_link& link) {
    hello_message hello;
    hello.header.ring_ref = link.offer.ring_ref;
    hello.header.port = link.offer.port;
    std::vector<int> fds{link.give_to_server.get(), link.give_to_client.get()};
    const auto& by_peer = link.domain->shares_by_peer;
    for (auto it = by_peer.lower_bound({link.peer, 0});
         it != by_peer.end() && it->first == link.peer; ++it) {
        const auto id = it->second;
        const auto& share = link.domain->shares.at(id);
        if (hello.header.share_count == max_hello_shares) {
            return std::unexpected(std::make_error_code(std::errc::too_many_files_open));
        }
        hello.shares[hello.header.share_count++] = {id, static_cast<std::uint32_t>(share.pages)};
        fds.push_back(share.fd.get());
    }
    const std::size_t bytes = sizeof hello.header + hello.header.share_count * sizeof(hello_share);
    iovec iov{&hello, bytes};
    std::vector<char> control(CMSG_SPACE(fds.size() * sizeof(int)));
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(header), fds.data(), fds.size() * sizeof(int));
    if (::sendmsg(socket, &message, MSG_NOSIGNAL) != static_cast<ssize_t>(bytes)) {
        return fail_errno();
    }
    return {};
}

struct received_hello {
    hello_message hello;
    std::vector<unique_fd> fds;
};

/// Receive and validate the server's hello. Every fd received is owned, even on failure.
result<received_hello> receive_hello(int socket) {
    received_hello received;
    iovec iov{&received.hello, sizeof received.hello};
    constexpr std::size_t max_fds = hello_event_fds + max_hello_shares;
    std::vector<char> control(CMSG_SPACE(max_fds * sizeof(int)));
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.data();
    message.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (n < 0) {
        return fail_errno();
    }
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < count; ++i) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
            received.fds.emplace_back(fd);
        }
    }
    const auto& header = received.hello.header;
    if (n < static_cast<ssize_t>(sizeof header) || (message.msg_flags & MSG_CTRUNC) ||
        header.magic != host_hello::expected_magic ||
        header.version != host_hello::expected_version || header.share_count > max_hello_shares ||
        static_cast<std::size_t>(n) != sizeof header + header.share_count * sizeof(hello_share) ||
        received.fds.size() != hello_event_fds + header.share_count) {
        return fail(errc::protocol_error);
    }
    for (std::size_t i = 0; i < header.share_count; ++i) {
        const auto& share = received.hello.shares[i];
        struct stat file {};
        if (share.id == 0 || share.pages == 0 || share.pages > max_share_pages ||
            ::fstat(received.fds[hello_event_fds + i].get(), &file) != 0 ||
            !S_ISREG(file.st_mode) ||
            file.st_size != static_cast<off_t>(std::size_t{share.pages} * host_page)) {
            return fail(errc::protocol_error);
        }
    }
    return received;
}

}  // namespace
}  // namespace internal

using internal::host_page;

// --- grant memory -------------------------------------------------------------------------------

host_grant_memory::shared_pages::shared_pages(std::shared_ptr<internal::host_domain> domain,
                                              std::byte* data, std::vector<grant_ref> refs) noexcept
    : domain_(std::move(domain)), data_(data), refs_(std::move(refs)) {}

host_grant_memory::shared_pages::shared_pages(shared_pages&& other) noexcept
    : domain_(std::move(other.domain_)),
      data_(std::exchange(other.data_, nullptr)),
      refs_(std::move(other.refs_)) {}

host_grant_memory::shared_pages& host_grant_memory::shared_pages::operator=(
    shared_pages&& other) noexcept {
    if (this != &other) {
        release();
        domain_ = std::move(other.domain_);
        data_ = std::exchange(other.data_, nullptr);
        refs_ = std::move(other.refs_);
    }
    return *this;
}

host_grant_memory::shared_pages::~shared_pages() {
    release();
}

void host_grant_memory::shared_pages::release() noexcept {
    if (data_ == nullptr) {
        return;
    }
    ::munmap(data_, size());
    // Closing our fd frees nothing the peer still maps: the kernel frees the pages with the
    // last mapping, as Xen keeps a granted page until the grantee unmaps it.
    if (const auto share = domain_->shares.find(internal::share_of(refs_.front()));
        share != domain_->shares.end()) {
        domain_->shares_by_peer.erase({share->second.peer, share->first});
        domain_->shares.erase(share);
    }
    domain_->shared_pages -= refs_.size();
    data_ = nullptr;
}

host_grant_memory::mapped_pages::mapped_pages(mapped_pages&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

host_grant_memory::mapped_pages& host_grant_memory::mapped_pages::operator=(
    mapped_pages&& other) noexcept {
    if (this != &other) {
        if (data_ != nullptr) {
            ::munmap(data_, size_);
        }
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

host_grant_memory::mapped_pages::~mapped_pages() {
    if (data_ != nullptr) {
        ::munmap(data_, size_);
    }
}

result<host_grant_memory::shared_pages> host_grant_memory::share(domid_t peer, std::size_t pages,
                                                                 std::optional<unmap_notify>) {
    auto& domain = *domain_;
    if (pages == 0 || pages > internal::max_share_pages) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    const std::uint32_t id = domain.next_share++;
    const std::string name =
        "vdist-grant-" + std::to_string(domain.domid) + "-" + std::to_string(id);
    unique_fd memory(::memfd_create(name.c_str(), MFD_CLOEXEC));
    if (!memory || ::ftruncate(memory.get(), static_cast<off_t>(pages * host_page)) != 0) {
        return fail_errno();
    }
    void* data =
        ::mmap(nullptr, pages * host_page, PROT_READ | PROT_WRITE, MAP_SHARED, memory.get(), 0);
    if (data == MAP_FAILED) {
        return fail_errno();
    }
    std::vector<grant_ref> refs(pages);
    for (std::size_t i = 0; i < pages; ++i) {
        refs[i] = internal::make_ref(id, i);
    }
    domain.shares[id] = internal::share_entry{peer, std::move(memory), pages};
    domain.shares_by_peer.insert({peer, id});
    domain.shared_pages += pages;
    return shared_pages(domain_, static_cast<std::byte*>(data), std::move(refs));
}

result<host_grant_memory::mapped_pages> host_grant_memory::map(domid_t peer,
                                                               std::span<const grant_ref> refs,
                                                               page_access access,
                                                               std::optional<unmap_notify>) {
    // All refs must name pages of one share that a rendezvous with `peer` handed over.
    const auto table = refs.empty()
                           ? domain_->peer_tables.end()
                           : domain_->peer_tables.find({peer, internal::share_of(refs[0])});
    if (table == domain_->peer_tables.end()) {
        return fail(errc::invalid_grant);
    }
    for (grant_ref ref : refs) {
        if (internal::share_of(ref) != table->first.second ||
            internal::page_of(ref) >= table->second.pages) {
            return fail(errc::invalid_grant);
        }
    }
    const std::size_t size = refs.size() * host_page;
    void* base = ::mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return fail_errno();
    }
    mapped_pages mapping(static_cast<std::byte*>(base), size);
    const int protection = access == page_access::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
    // Map each run of consecutive refs with one call; refs from a peer need not be consecutive.
    for (std::size_t start = 0; start < refs.size();) {
        std::size_t end = start + 1;
        while (end < refs.size() && refs[end] == refs[end - 1] + 1) {
            ++end;
        }
        void* at = ::mmap(mapping.data() + start * host_page, (end - start) * host_page, protection,
                          MAP_SHARED | MAP_FIXED, table->second.fd.get(),
                          static_cast<off_t>(internal::page_of(refs[start]) * host_page));
        if (at == MAP_FAILED) {
            return fail_errno();
        }
        start = end;
    }
    if (refs.size() == table->second.pages) {
        domain_->peer_tables.erase(table);  // the mapping keeps the memory; the fd is done
    }
    return mapping;
}

// --- event channel ------------------------------------------------------------------------------

host_event_channel::port::port(event_port number, unique_fd wait_fd, unique_fd notify_fd,
                               std::shared_ptr<internal::host_link> link)
    : number_(number),
      wait_fd_(std::move(wait_fd)),
      notify_fd_(std::move(notify_fd)),
      poll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      link_(std::move(link)) {
    link_->poll_fd = poll_fd_.get();
}

host_event_channel::port::port(port&&) noexcept = default;
host_event_channel::port& host_event_channel::port::operator=(port&&) noexcept = default;
host_event_channel::port::~port() {
    if (link_) {
        link_->poll_fd = -1;
    }
}

result<void> host_event_channel::port::notify() {
    const std::uint64_t one = 1;
    if (::write(notify_fd_.get(), &one, sizeof one) < 0 && errno != EAGAIN) {
        return fail_errno();
    }
    return {};
}

void host_event_channel::port::service(bool consume_event) {
    auto& link = *link_;
    if (link.listener) {
        unique_fd client(
            ::accept4(link.listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (client && internal::send_hello(client.get(), link)) {
            link.stop_listening();
            link.give_to_server.reset();
            link.give_to_client.reset();
            if (internal::watch(poll_fd_.get(), client.get())) {
                link.connection = std::move(client);
            }
        }
    }
    if (link.connection) {
        // The peer never writes to the socket after the hello: readable means hang-up.
        std::array<char, 64> sink{};
        const ssize_t n = ::recv(link.connection.get(), sink.data(), sink.size(), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            link.gone = true;
            link.connection.reset();  // closing removes it from the epoll set
        }
    }
    if (consume_event) {
        std::uint64_t events = 0;
        (void)::read(wait_fd_.get(), &events, sizeof events);
    }
}

result<wait_outcome> host_event_channel::port::wait(std::chrono::nanoseconds timeout) {
    auto outcome = internal::wait_readable(poll_fd_.get(), timeout);
    if (outcome && *outcome == wait_outcome::notified) {
        service(true);
    }
    return outcome;
}

bool host_event_channel::port::peer_alive() {
    if (link_->gone) {
        return false;
    }
    pollfd fd{poll_fd_.get(), POLLIN, 0};
    if (::poll(&fd, 1, 0) > 0) {
        service(false);  // an event stays pending for the next wait(): never swallow a wake-up
    }
    return !link_->gone;
}

result<host_event_channel::port> host_event_channel::bind_unbound_port(domid_t peer) {
    auto to_server = internal::make_eventfd();
    auto to_client = internal::make_eventfd();
    if (!to_server || !to_client) {
        return std::unexpected(!to_server ? to_server.error() : to_client.error());
    }
    auto link = std::make_shared<internal::host_link>();
    link->peer = peer;
    link->domain = domain_;
    link->give_to_server.reset(::fcntl(to_server->get(), F_DUPFD_CLOEXEC, 0));
    link->give_to_client.reset(::fcntl(to_client->get(), F_DUPFD_CLOEXEC, 0));
    if (!link->give_to_server || !link->give_to_client) {
        return fail_errno();
    }
    const event_port number = domain_->next_port++;
    domain_->unbound[number] = link;
    port bound(number, std::move(*to_server), std::move(*to_client), link);
    if (!bound.poll_fd_) {
        return fail_errno();
    }
    if (auto watched = internal::watch(bound.poll_fd_.get(), bound.wait_fd_.get()); !watched) {
        return std::unexpected(watched.error());
    }
    return bound;
}

result<host_event_channel::port> host_event_channel::bind_interdomain(domid_t peer,
                                                                      event_port remote) {
    auto pending = domain_->pending.find({peer, remote});
    if (pending == domain_->pending.end()) {
        return fail(errc::rendezvous_failed);
    }
    auto binding = std::move(pending->second);
    domain_->pending.erase(pending);
    auto link = std::make_shared<internal::host_link>();
    link->peer = peer;
    const event_port number = domain_->next_port++;
    port bound(number, std::move(binding.to_client), std::move(binding.to_server), link);
    if (!bound.poll_fd_) {
        return fail_errno();
    }
    for (int fd : {bound.wait_fd_.get(), binding.connection.get()}) {
        if (auto watched = internal::watch(bound.poll_fd_.get(), fd); !watched) {
            return std::unexpected(watched.error());
        }
    }
    link->connection = std::move(binding.connection);
    return bound;
}

// --- rendezvous ---------------------------------------------------------------------------------

host_rendezvous::publication::~publication() {
    if (link_) {
        link_->stop_listening();
    }
}

std::filesystem::path host_rendezvous::socket_path(const std::filesystem::path& run_dir,
                                                   const vchan_address& address) {
    return run_dir / ("vchan." + std::to_string(address.server) + "." +
                      std::to_string(address.client) + "." + address.port + ".sock");
}

namespace {

result<sockaddr_un> unix_address(const std::filesystem::path& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string text = path.string();
    if (text.size() >= sizeof address.sun_path) {
        return std::unexpected(std::make_error_code(std::errc::filename_too_long));
    }
    std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
    return address;
}

}  // namespace

result<host_rendezvous::publication> host_rendezvous::publish(const vchan_address& address,
                                                              vchan_offer offer) {
    auto found = domain_->unbound.find(offer.port);
    auto link = found == domain_->unbound.end() ? nullptr : found->second.lock();
    if (!link || address.server != domain_->domid || address.client != link->peer ||
        link->poll_fd < 0) {
        return fail(errc::rendezvous_failed);
    }
    domain_->unbound.erase(found);
    const auto path = socket_path(domain_->run_dir, address);
    auto socket_address = unix_address(path);
    if (!socket_address) {
        return std::unexpected(socket_address.error());
    }
    unique_fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener) {
        return fail_errno();
    }
    ::unlink(path.c_str());  // a stale socket of a dead server
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&*socket_address),
               sizeof *socket_address) != 0 ||
        ::listen(listener.get(), 4) != 0) {
        return fail_errno();
    }
    if (auto watched = internal::watch(link->poll_fd, listener.get()); !watched) {
        return std::unexpected(watched.error());
    }
    link->listener = std::move(listener);
    link->path = path;
    link->offer = offer;
    return publication(std::move(link));
}

result<vchan_offer> host_rendezvous::lookup(const vchan_address& address,
                                            std::chrono::nanoseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = timeout == forever ? clock::time_point::max() : clock::now() + timeout;
    auto socket_address = unix_address(socket_path(domain_->run_dir, address));
    if (!socket_address) {
        return std::unexpected(socket_address.error());
    }
    const auto key = socket_path(domain_->run_dir, address).string();
    unique_fd connection = std::move(domain_->lookups[key]);
    domain_->lookups.erase(key);
    while (!connection) {
        connection.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!connection) {
            return fail_errno();
        }
        if (::connect(connection.get(), reinterpret_cast<const sockaddr*>(&*socket_address),
                      sizeof *socket_address) == 0) {
            break;
        }
        connection.reset();
        if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) {
            return fail_errno();
        }
        if (clock::now() >= deadline) {
            return fail(errc::timed_out);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    // The server answers from its own thread when it next services the port. Until then the
    // connection is kept for the next lookup of this address (see host_domain::lookups).
    for (;;) {
        pollfd fd{connection.get(), POLLIN, 0};
        int wait_ms = 100;
        if (deadline != clock::time_point::max()) {
            const auto remaining =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
            wait_ms = static_cast<int>(std::clamp<std::int64_t>(remaining.count(), 0, 100));
        }
        const int ready = ::poll(&fd, 1, wait_ms);
        if (ready > 0) {
            break;
        }
        if (ready < 0 && errno != EINTR) {
            return fail_errno();
        }
        if (ready == 0 && deadline != clock::time_point::max() && clock::now() >= deadline) {
            domain_->lookups[key] = std::move(connection);
            return fail(errc::timed_out);
        }
    }
    auto received = internal::receive_hello(connection.get());
    if (!received) {
        return std::unexpected(received.error());
    }
    if (received->hello.header.ring_ref == 0) {
        return fail(errc::protocol_error);
    }
    const int flags = ::fcntl(connection.get(), F_GETFL);
    ::fcntl(connection.get(), F_SETFL, flags | O_NONBLOCK);
    const vchan_offer offer{received->hello.header.ring_ref, received->hello.header.port};
    std::erase_if(domain_->peer_tables,
                  [&](const auto& entry) { return entry.first.first == address.server; });
    for (std::size_t i = 0; i < received->hello.header.share_count; ++i) {
        const auto& share = received->hello.shares[i];
        domain_->peer_tables[{address.server, share.id}] = internal::peer_table{
            std::move(received->fds[internal::hello_event_fds + i]), share.pages};
    }
    domain_->pending[{address.server, offer.port}] = internal::pending_binding{
        std::move(connection), std::move(received->fds[0]), std::move(received->fds[1])};
    return offer;
}

int host_rendezvous::pending_lookup(const vchan_address& address) const {
    const auto found = domain_->lookups.find(socket_path(domain_->run_dir, address).string());
    return found == domain_->lookups.end() ? -1 : found->second.get();
}

// --- backend ------------------------------------------------------------------------------------

host_backend::host_backend(std::shared_ptr<internal::host_domain> domain)
    : domain_(std::move(domain)),
      memory_(std::make_unique<host_grant_memory>(domain_)),
      events_(std::make_unique<host_event_channel>(domain_)),
      directory_(std::make_unique<host_rendezvous>(domain_)) {}

host_backend::~host_backend() = default;

result<host_backend> host_backend::create(domid_t domid, std::filesystem::path run_dir) {
    std::error_code error;
    std::filesystem::create_directories(run_dir, error);
    if (error) {
        return std::unexpected(error);
    }
    auto domain = std::make_shared<internal::host_domain>();
    domain->domid = domid;
    domain->run_dir = std::move(run_dir);
    return host_backend(std::move(domain));
}

domid_t host_backend::domid() const noexcept {
    return domain_->domid;
}

std::size_t host_backend::shared_page_count() const noexcept {
    return domain_->shared_pages;
}

}  // namespace vdist::transport
