#pragma once
/// \file
/// The vchan ring channel: libxenvchan's protocol over any backend that models the three seams
/// (seams.hpp). vchan_server / vchan_client do what libxenvchan_server_init / client_init do;
/// ring_channel<B> is the byte stream and frame API of channel.hpp over the two rings.
///
/// Hostile peer: orders and grant refs are copied into private memory at attach; each
/// operation reads the peer's index once; `prod - cons > size` closes the channel with
/// errc::ring_corrupt; frame headers are bounded before use; a peer that exits (live byte 0) or
/// dies (backend liveness) is reported as errc::peer_gone once its data has been read.

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "vdist/transport/channel.hpp"
#include "vdist/transport/errc.hpp"
#include "vdist/transport/seams.hpp"
#include "vdist/transport/vchan_layout.hpp"

// The frame calls are inlined into their callers: returned through memory, a frame is stored
// field by field and read back whole, and such a load waits for every older store to reach the
// cache, ring writes pending on the peer's core included (a cross-core round trip per message).
#define VDIST_HOT [[gnu::always_inline]] inline
#define VDIST_COLD [[gnu::noinline]]

namespace vdist::transport {

enum class vchan_role { server, client };

namespace internal {

/// Free-running index difference; meaningful when the indices are at most 2^31 apart.
[[nodiscard]] constexpr std::uint32_t distance(std::uint32_t from, std::uint32_t to) noexcept {
    return to - from;
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Copy `bytes` into a ring at free-running `index`, in two parts when it wraps.
inline void copy_into_ring(std::byte* ring, std::uint32_t mask, std::uint32_t index,
                           std::span<const std::byte> bytes) noexcept {
    const std::size_t position = index & mask;
    const std::size_t first = std::min(bytes.size(), std::size_t{mask} + 1 - position);
    std::memcpy(ring + position, bytes.data(), first);
    std::memcpy(ring, bytes.data() + first, bytes.size() - first);
}

/// Copy out of a ring at free-running `index`, in two parts when it wraps.
inline void copy_from_ring(const std::byte* ring, std::uint32_t mask, std::uint32_t index,
                           std::span<std::byte> bytes) noexcept {
    const std::size_t position = index & mask;
    const std::size_t first = std::min(bytes.size(), std::size_t{mask} + 1 - position);
    std::memcpy(bytes.data(), ring + position, first);
    std::memcpy(bytes.data() + first, ring, bytes.size() - first);
}

struct frame_header {
    std::uint32_t length;
    std::uint32_t kind;
};
static_assert(sizeof(frame_header) == frame_header_size);

}  // namespace internal

/// One end of a vchan, used by one thread at a time (see channel.hpp).
/// Move-only; destroying it closes the channel and releases every page, port and record.
template <vchan_backend B>
class ring_channel {
  public:
    using port_type = typename B::event_channel_type::port;
    using shared_pages = typename B::grant_memory_type::shared_pages;
    using mapped_pages = typename B::grant_memory_type::mapped_pages;
    using publication = typename B::rendezvous_type::publication;

    ring_channel(ring_channel&&) noexcept = default;
    ring_channel& operator=(ring_channel&& other) noexcept {
        if (this != &other) {
            close();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    ~ring_channel() { close(); }

    // --- byte stream ------------------------------------------------------------------------

    /// Non-blocking partial write; 0 when the ring is full.
    [[nodiscard]] result<std::size_t> write_some(std::span<const std::byte> bytes) {
        auto space = writable(bytes.size());
        if (!space) {
            return std::unexpected(space.error());
        }
        const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(*space, bytes.size()));
        if (n == 0) {
            return std::size_t{0};
        }
        internal::copy_into_ring(s().write_ring, s().write_mask, s().write_prod, bytes.first(n));
        publish_prod(s().write_prod + n);
        return finish_write(n);
    }

    /// Blocking partial write: waits for room for at least one byte.
    [[nodiscard]] result<std::size_t> write(std::span<const std::byte> bytes,
                                            std::chrono::nanoseconds timeout) {
        if (bytes.empty()) {
            return std::size_t{0};
        }
        auto ready = await_space(1, deadline_after(timeout));
        if (!ready) {
            return std::unexpected(ready.error());
        }
        return write_some(bytes);
    }

    /// Blocking write of every byte, streamed through the ring in pieces.
    [[nodiscard]] result<void> write_all(std::span<const std::byte> bytes,
                                         std::chrono::nanoseconds timeout) {
        const auto deadline = deadline_after(timeout);
        while (!bytes.empty()) {
            auto ready = await_space(1, deadline);
            if (!ready) {
                return std::unexpected(ready.error());
            }
            auto written = write_some(bytes);
            if (!written) {
                return std::unexpected(written.error());
            }
            bytes = bytes.subspan(*written);
        }
        return {};
    }

    /// Non-blocking all-or-nothing write.
    [[nodiscard]] result<write_status> try_send(std::span<const std::byte> bytes) {
        if (bytes.size() > max_message_size()) {
            return fail(errc::frame_too_large);
        }
        auto space = writable(bytes.size());
        if (!space) {
            return std::unexpected(space.error());
        }
        if (*space < bytes.size()) {
            return write_status::full;
        }
        auto written = write_some(bytes);
        if (!written) {
            return std::unexpected(written.error());
        }
        return write_status::sent;
    }

    /// Blocking all-or-nothing write.
    [[nodiscard]] result<void> send(std::span<const std::byte> bytes,
                                    std::chrono::nanoseconds timeout) {
        if (bytes.size() > max_message_size()) {
            return fail(errc::frame_too_large);
        }
        auto ready = await_space(bytes.size(), deadline_after(timeout));
        if (!ready) {
            return std::unexpected(ready.error());
        }
        auto written = write_some(bytes);
        if (!written) {
            return std::unexpected(written.error());
        }
        return {};
    }

    /// Non-blocking partial read; 0 when nothing is ready (errc::peer_gone once the peer is
    /// gone and the ring is drained).
    [[nodiscard]] result<std::size_t> read_some(std::span<std::byte> bytes) {
        auto ready = readable_or_gone(std::max<std::size_t>(bytes.size(), 1));
        if (!ready) {
            return std::unexpected(ready.error());
        }
        const auto n = static_cast<std::uint32_t>(std::min<std::size_t>(*ready, bytes.size()));
        if (n == 0) {
            return drained(std::size_t{0});
        }
        internal::copy_from_ring(s().read_ring, s().read_mask, s().read_cons, bytes.first(n));
        publish_cons(s().read_cons + n);
        return finish_read(n);
    }

    /// Blocking partial read: waits for at least one byte.
    [[nodiscard]] result<std::size_t> read(std::span<std::byte> bytes,
                                           std::chrono::nanoseconds timeout) {
        if (bytes.empty()) {
            return std::size_t{0};
        }
        auto ready = await_data(1, deadline_after(timeout));
        if (!ready) {
            return std::unexpected(ready.error());
        }
        return read_some(bytes);
    }

    /// Blocking read of exactly bytes.size() bytes, streamed in pieces.
    [[nodiscard]] result<void> read_exact(std::span<std::byte> bytes,
                                          std::chrono::nanoseconds timeout) {
        const auto deadline = deadline_after(timeout);
        while (!bytes.empty()) {
            auto ready = await_data(1, deadline);
            if (!ready) {
                return std::unexpected(ready.error());
            }
            auto got = read_some(bytes);
            if (!got) {
                return std::unexpected(got.error());
            }
            bytes = bytes.subspan(*got);
        }
        return {};
    }

    /// Non-blocking all-or-nothing read.
    [[nodiscard]] result<read_status> try_recv(std::span<std::byte> bytes) {
        if (bytes.size() > max_message_size()) {
            return fail(errc::frame_too_large);
        }
        auto ready = readable_or_gone(bytes.size());
        if (!ready) {
            return std::unexpected(ready.error());
        }
        if (*ready < bytes.size()) {
            return read_status::empty;
        }
        auto got = read_some(bytes);
        if (!got) {
            return std::unexpected(got.error());
        }
        return read_status::received;
    }

    /// Blocking all-or-nothing read.
    [[nodiscard]] result<void> recv(std::span<std::byte> bytes, std::chrono::nanoseconds timeout) {
        if (bytes.size() > max_message_size()) {
            return fail(errc::frame_too_large);
        }
        auto ready = await_data(bytes.size(), deadline_after(timeout));
        if (!ready) {
            return std::unexpected(ready.error());
        }
        auto got = read_some(bytes);
        if (!got) {
            return std::unexpected(got.error());
        }
        return {};
    }

    // --- frames -------------------------------------------------------------------------------

    /// Reserve a frame of `n` payload bytes in ring memory; a false frame when the ring is
    /// full. At most one reservation is outstanding; commit() publishes it.
    [[nodiscard]] VDIST_HOT result<write_frame> try_reserve(std::size_t n) {
        if (n > max_frame_payload()) {
            return fail(errc::frame_too_large);
        }
        if (auto usable = check_usable(); !usable) {
            return std::unexpected(usable.error());
        }
        auto& st = s();
        if ((st.write_prod & (frame_alignment - 1)) != 0) {
            return fail(errc::misaligned_frame);
        }
        const auto footprint = static_cast<std::uint32_t>(frame_footprint(n));
        const std::uint32_t position = st.write_prod & st.write_mask;
        const std::uint32_t to_end = st.write_mask + 1 - position;
        std::uint32_t needed = footprint;
        if (footprint > to_end) {
            needed = to_end + footprint;  // padding to the end, then the frame at offset 0
        }
        auto space = writable(needed);
        if (!space) {
            return std::unexpected(space.error());
        }
        if (*space < needed) {
            if (footprint > to_end && *space >= to_end) {
                // Pad now so that the reader frees the tail while we wait for the head.
                write_padding(position, to_end);
            }
            return write_frame{};
        }
        if (footprint > to_end) {
            write_padding(position, to_end);
        }
        std::byte* frame = st.write_ring + (st.write_prod & st.write_mask);
        st.reserved = footprint;
        return write_frame{{frame + frame_header_size, n}, footprint};
    }

    /// Reserve a frame, waiting for room.
    [[nodiscard]] VDIST_HOT result<write_frame> reserve(std::size_t n,
                                                        std::chrono::nanoseconds timeout) {
        const auto deadline = deadline_after(timeout);
        for (;;) {
            auto frame = try_reserve(n);
            if (!frame || *frame) {
                return frame;
            }
            // Room for the frame at the current position (padding, if any, is written).
            const std::uint32_t position = s().write_prod & s().write_mask;
            const std::uint32_t to_end = s().write_mask + 1 - position;
            const std::size_t footprint = frame_footprint(n);
            // Not even the padding fitted: wait for room for it; try_reserve then pads and the
            // next round waits for the frame at offset 0.
            const std::size_t needed = footprint > to_end ? to_end : footprint;
            auto ready = await_space(needed, deadline);
            if (!ready) {
                return std::unexpected(ready.error());
            }
        }
    }

    /// Publish the reserved frame, shrunk to its first `used` payload bytes.
    [[nodiscard]] VDIST_HOT result<void> commit(write_frame frame, std::size_t used) {
        auto& st = s();
        if (st.reserved == 0 || frame.footprint != st.reserved || used > frame.payload.size()) {
            return fail(errc::protocol_error);
        }
        const internal::frame_header header{static_cast<std::uint32_t>(used), frame_kind_data};
        std::memcpy(frame.payload.data() - frame_header_size, &header, sizeof header);
        const auto footprint = static_cast<std::uint32_t>(frame_footprint(used));
        st.reserved = 0;
        publish_prod(st.write_prod + footprint);
        auto done = finish_write(footprint);
        if (!done) {
            return std::unexpected(done.error());
        }
        return {};
    }

    /// Next frame without blocking; a false frame when none is complete. Frames must be
    /// released in the order they were read; several may be held at once.
    [[nodiscard]] VDIST_HOT result<transport::read_frame> try_read_frame() {
        auto& st = s();
        for (;;) {
            auto ready = readable_or_gone(frame_header_size, st.read_peek);
            if (!ready) {
                return std::unexpected(ready.error());
            }
            if (*ready < frame_header_size) {
                return drained(transport::read_frame{});
            }
            if ((st.read_peek & (frame_alignment - 1)) != 0) {
                return fail(errc::misaligned_frame);
            }
            const std::uint32_t position = st.read_peek & st.read_mask;
            const std::uint32_t to_end = st.read_mask + 1 - position;
            internal::frame_header header;
            std::memcpy(&header, st.read_ring + position, sizeof header);  // read once
            if (header.kind == frame_kind_padding) {
                if (header.length != to_end - frame_header_size || *ready < to_end) {
                    return corrupt();
                }
                st.read_peek += to_end;
                if (st.read_cons + to_end == st.read_peek) {
                    // Nothing held before the padding: give its space back at once.
                    publish_cons(st.read_peek);
                    auto done = finish_read(to_end);
                    if (!done) {
                        return std::unexpected(done.error());
                    }
                }
                continue;
            }
            if (header.kind != frame_kind_data ||
                header.length > st.read_mask + 1 - frame_header_size ||
                frame_footprint(header.length) > to_end) {
                return corrupt();
            }
            const auto footprint = static_cast<std::uint32_t>(frame_footprint(header.length));
            if (*ready < footprint) {
                return transport::read_frame{};
            }
            st.read_peek += footprint;
            return transport::read_frame{
                {st.read_ring + position + frame_header_size, header.length}, footprint};
        }
    }

    /// Next frame, waiting for one.
    [[nodiscard]] VDIST_HOT result<transport::read_frame> read_frame(
        std::chrono::nanoseconds timeout) {
        const auto deadline = deadline_after(timeout);
        for (;;) {
            auto frame = try_read_frame();
            if (!frame || *frame) {
                return frame;
            }
            const std::size_t held = internal::distance(s().read_cons, s().read_peek);
            auto ready = await_data(held + frame_header_size, deadline);
            if (!ready) {
                return std::unexpected(ready.error());
            }
        }
    }

    /// Give the space of `frame` (and of any padding before it) back to the writer.
    [[nodiscard]] VDIST_HOT result<void> release(transport::read_frame frame) {
        auto& st = s();
        const auto* start = frame.payload.data() - frame_header_size;
        if (start < st.read_ring || start >= st.read_ring + st.read_mask + 1) {
            return fail(errc::protocol_error);
        }
        const auto position = static_cast<std::uint32_t>(start - st.read_ring);
        const std::uint32_t skipped = (position - st.read_cons) & st.read_mask;
        const std::uint32_t advance = skipped + static_cast<std::uint32_t>(frame.footprint);
        if (advance > internal::distance(st.read_cons, st.read_peek)) {
            return fail(errc::protocol_error);
        }
        publish_cons(st.read_cons + advance);
        auto done = finish_read(advance);
        if (!done) {
            return std::unexpected(done.error());
        }
        return {};
    }

    // --- notifications ------------------------------------------------------------------------

    /// Hold back index publication and notifications until end_batch(): the shared control
    /// line moves between cores and the notify check runs once per batch, not per message.
    void begin_batch() noexcept { ++s().batch_depth; }

    /// End a batch; publishes the indices and delivers held-back notifications when the
    /// outermost batch ends.
    [[nodiscard]] result<void> end_batch() {
        auto& st = s();
        if (st.batch_depth > 0 && --st.batch_depth == 0) {
            return flush();
        }
        return {};
    }

    /// Publish held-back indices and deliver held-back notifications now.
    [[nodiscard]] result<void> flush() {
        auto& st = s();
        if (st.write_prod != st.write_prod_published) {
            store_prod(st.write_prod);
        }
        if (st.read_cons != st.read_cons_published) {
            store_cons(st.read_cons);
        }
        st.read_unsignalled = 0;
        const std::uint8_t pending = std::exchange(st.pending_notify, std::uint8_t{0});
        return pending == 0 ? result<void>{} : send_notify(pending);
    }

    /// Event-loop integration: ask the peer to notify us when data arrives; true when data is
    /// already there, so the loop must not sleep. When native_handle() polls readable, call
    /// consume_notification().
    [[nodiscard]] result<bool> arm_readable() {
        if (auto done = flush(); !done) {
            return std::unexpected(done.error());
        }
        request_notify(VCHAN_NOTIFY_WRITE);
        auto ready = readable_or_gone(1);
        if (!ready) {
            return std::unexpected(ready.error());
        }
        return *ready > 0;
    }

    /// Event-loop integration: ask the peer to notify us when room frees; true when `wanted`
    /// bytes are already free.
    [[nodiscard]] result<bool> arm_writable(std::size_t wanted) {
        if (auto done = flush(); !done) {
            return std::unexpected(done.error());
        }
        request_notify(VCHAN_NOTIFY_READ);
        auto space = writable(wanted);
        if (!space) {
            return std::unexpected(space.error());
        }
        return *space >= wanted;
    }

    /// Take a pending event off the port without blocking.
    [[nodiscard]] result<void> consume_notification() {
        auto waited = s().port.wait(std::chrono::nanoseconds::zero());
        if (!waited) {
            return std::unexpected(waited.error());
        }
        return {};
    }

    // --- state ----------------------------------------------------------------------------------

    /// Server only: wait until a client has attached (cli_live becomes 1).
    [[nodiscard]] result<void> wait_connected(std::chrono::nanoseconds timeout) {
        const auto deadline = deadline_after(timeout);
        for (;;) {
            const auto live = peer_live_byte();
            if (live == live_connected) {
                return {};
            }
            if (live == live_exited || !s().port.peer_alive()) {
                return fail(errc::peer_gone);
            }
            auto waited = sleep_on_port(deadline);
            if (!waited) {
                return std::unexpected(waited.error());
            }
        }
    }

    /// True while the peer has not exited or died.
    [[nodiscard]] bool peer_alive() {
        return peer_live_byte() != live_exited && s().port.peer_alive();
    }

    [[nodiscard]] std::size_t max_message_size() const noexcept {
        return std::min(s().read_mask, s().write_mask) + std::size_t{1};
    }
    [[nodiscard]] std::size_t max_frame_payload() const noexcept {
        return s().write_mask + 1 - frame_header_size;
    }
    [[nodiscard]] std::size_t read_capacity() const noexcept { return s().read_mask + 1u; }
    [[nodiscard]] std::size_t write_capacity() const noexcept { return s().write_mask + 1u; }
    [[nodiscard]] std::uint64_t generation() const noexcept { return s().generation; }
    [[nodiscard]] vchan_role role() const noexcept { return s().role; }
    [[nodiscard]] const wait_policy& policy() const noexcept { return s().policy; }
    void set_policy(wait_policy policy) noexcept { s().policy = policy; }
    /// The event port's pollable fd (readable when the peer notified us).
    [[nodiscard]] int native_handle() const noexcept { return s().port.native_handle(); }

    /// Replace this end with a freshly attached one (after migration or reconnection). Handles
    /// taken before (channel_handle) now fail with errc::stale_generation.
    void reattach(ring_channel&& fresh) {
        const auto next = generation() + 1;
        *this = std::move(fresh);
        s().generation = next;
    }

    /// Mark this end as exited in the control page and wake the peer. Data already in the
    /// ring stays readable for the peer. Idempotent.
    void close() noexcept {
        if (!state_ || state_->closed) {
            return;
        }
        auto& st = *state_;
        (void)flush();
        st.closed = true;
        // Release: everything we wrote before is visible once the peer sees the live byte.
        std::atomic_ref<std::uint8_t>(*st.own_live).store(live_exited, std::memory_order_release);
        (void)st.port.notify();
    }

    /// The raw control page (tests that play a hostile peer use it).
    [[nodiscard]] vchan_page control_page() const noexcept { return s().page; }

  private:
    template <vchan_backend>
    friend struct vchan_factory;

    struct state {
        vchan_role role = vchan_role::server;
        wait_policy policy;
        std::uint64_t generation = 1;
        vchan_page page{nullptr};

        // The ring this end reads: the peer publishes prod, we own cons.
        const std::byte* read_ring = nullptr;
        std::uint32_t read_mask = 0;
        std::uint32_t* read_prod_shared = nullptr;
        std::uint32_t* read_cons_shared = nullptr;
        std::uint32_t read_cons = 0;  // private: what we consumed
        std::uint32_t read_cons_published = 0;
        std::uint32_t read_peek = 0;  // end of frames handed out, not yet released
        std::uint32_t read_prod_seen = 0;

        // The ring this end writes: we own prod, the peer publishes cons.
        std::byte* write_ring = nullptr;
        std::uint32_t write_mask = 0;
        std::uint32_t* write_prod_shared = nullptr;
        std::uint32_t* write_cons_shared = nullptr;
        std::uint32_t write_prod = 0;  // private: what we produced
        std::uint32_t write_prod_published = 0;
        std::uint32_t write_cons_seen = 0;
        std::uint32_t reserved = 0;

        std::uint8_t* own_notify = nullptr;   // bits we honour (the peer arms them)
        std::uint8_t* peer_notify = nullptr;  // bits the peer honours (we arm them)
        std::uint8_t* own_live = nullptr;
        std::uint8_t* peer_live = nullptr;

        unsigned batch_depth = 0;
        std::uint8_t pending_notify = 0;
        std::uint32_t read_unsignalled = 0;  // bytes released since the last READ check
        bool corrupt = false;
        bool closed = false;

        port_type port;
        std::vector<shared_pages> shared;
        std::vector<mapped_pages> mapped;
        std::optional<publication> published;

        explicit state(port_type p) : port(std::move(p)) {}
    };

    explicit ring_channel(std::unique_ptr<state> st) noexcept : state_(std::move(st)) {}

    [[nodiscard]] state& s() noexcept { return *state_; }
    [[nodiscard]] const state& s() const noexcept { return *state_; }

    using clock = std::chrono::steady_clock;

    [[nodiscard]] static clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
        if (timeout == forever) {
            return clock::time_point::max();
        }
        return clock::now() + timeout;
    }

    [[nodiscard]] result<void> check_usable() const {
        if (s().corrupt) {
            return fail(errc::ring_corrupt);
        }
        if (s().closed) {
            return fail(errc::peer_gone);
        }
        return {};
    }

    [[nodiscard]] VDIST_COLD std::unexpected<std::error_code> corrupt() {
        s().corrupt = true;
        close();
        return fail(errc::ring_corrupt);
    }

    [[nodiscard]] std::uint8_t peer_live_byte() const noexcept {
        return std::atomic_ref<std::uint8_t>(*s().peer_live).load(std::memory_order_acquire);
    }

    /// Bytes free in the write ring. Re-reads the peer's cons (once) only when the cached
    /// value shows less than `wanted` bytes free.
    [[nodiscard]] result<std::uint32_t> writable(std::size_t wanted = 1) {
        if (auto usable = check_usable(); !usable) {
            return std::unexpected(usable.error());
        }
        auto& st = s();
        // Outside a batch we are about to store to the control line anyway: check the peer
        // still lives, so that writes to an exited peer fail at once.
        if (st.batch_depth == 0 && peer_live_byte() == live_exited) {
            return fail(errc::peer_gone);
        }
        const std::uint32_t size = st.write_mask + 1;
        std::uint32_t used = internal::distance(st.write_cons_seen, st.write_prod);
        if (size - used < wanted) {
            // Acquire: the peer's reads of the ring happen before we overwrite that space.
            const std::uint32_t cons = std::atomic_ref<std::uint32_t>(*st.write_cons_shared)
                                           .load(std::memory_order_acquire);
            used = internal::distance(cons, st.write_prod);
            // cons only moves forward, and never past what we produced.
            if (used > size || internal::distance(st.write_cons_seen, cons) >
                                   internal::distance(st.write_cons_seen, st.write_prod)) {
                return corrupt();
            }
            st.write_cons_seen = cons;
            if (peer_live_byte() == live_exited) {
                return fail(errc::peer_gone);
            }
        }
        return size - used;
    }

    /// Bytes readable past `from` (default: our consumer index), re-reading the peer's prod
    /// (once) only when the cached value shows fewer than `wanted` bytes.
    [[nodiscard]] result<std::uint32_t> readable(std::size_t wanted, std::uint32_t from) {
        auto& st = s();
        std::uint32_t ready = internal::distance(from, st.read_prod_seen);
        if (ready < wanted) {
            // Acquire: the peer's writes into the ring are visible before we read them.
            const std::uint32_t prod = std::atomic_ref<std::uint32_t>(*st.read_prod_shared)
                                           .load(std::memory_order_acquire);
            // prod only moves forward: never behind frames already handed out, never more
            // than a ring's worth ahead of what we consumed.
            const std::uint32_t published = internal::distance(st.read_cons, prod);
            if (published > st.read_mask + 1 ||
                published < internal::distance(st.read_cons, st.read_prod_seen)) {
                return corrupt();
            }
            st.read_prod_seen = prod;
            ready = internal::distance(from, prod);
        }
        return ready;
    }

    /// Like readable(), but reports peer_gone when the peer has gone and less than `wanted`
    /// bytes are left.
    [[nodiscard]] result<std::uint32_t> readable_or_gone(std::size_t wanted = 1) {
        return readable_or_gone(wanted, s().read_cons);
    }
    [[nodiscard]] result<std::uint32_t> readable_or_gone(std::size_t wanted, std::uint32_t from) {
        if (auto usable = check_usable(); !usable) {
            return std::unexpected(usable.error());
        }
        auto ready = readable(wanted, from);
        if (!ready || *ready >= wanted || peer_live_byte() != live_exited) {
            return ready;
        }
        // The peer exited: its last writes were released before its live byte; look again.
        ready = readable(wanted, from);
        if (ready && *ready < wanted && *ready == 0) {
            return fail(errc::peer_gone);
        }
        return ready;
    }

    /// Inside a batch an index is published once a quarter of the ring has passed (so that
    /// the peer works in parallel on large frames), else when the batch ends.
    void publish_prod(std::uint32_t prod) noexcept {
        auto& st = s();
        st.write_prod = prod;
        if (st.batch_depth == 0 ||
            internal::distance(st.write_prod_published, prod) > (st.write_mask >> 2)) {
            store_prod(prod);
        }
    }

    void store_prod(std::uint32_t prod) noexcept {
        s().write_prod_published = prod;
        // Release: the bytes written into the ring are visible before the new index.
        std::atomic_ref<std::uint32_t>(*s().write_prod_shared)
            .store(prod, std::memory_order_release);
    }

    void publish_cons(std::uint32_t cons) noexcept {
        auto& st = s();
        st.read_cons = cons;
        if (internal::distance(st.read_peek, cons) <= st.read_mask + 1u) {
            st.read_peek = cons;  // stream reads move the peek point along
        }
        if (st.batch_depth == 0 ||
            internal::distance(st.read_cons_published, cons) > (st.read_mask >> 2)) {
            store_cons(cons);
        }
    }

    void store_cons(std::uint32_t cons) noexcept {
        s().read_cons_published = cons;
        // Release: our reads of the ring are complete before the writer may reuse the space.
        std::atomic_ref<std::uint32_t>(*s().read_cons_shared)
            .store(cons, std::memory_order_release);
    }

    void write_padding(std::uint32_t position, std::uint32_t to_end) noexcept {
        const internal::frame_header header{to_end - static_cast<std::uint32_t>(frame_header_size),
                                            frame_kind_padding};
        std::memcpy(s().write_ring + position, &header, sizeof header);
        publish_prod(s().write_prod + to_end);
        s().pending_notify |= VCHAN_NOTIFY_WRITE;
    }

    [[nodiscard]] result<std::size_t> finish_write(std::size_t n) {
        s().pending_notify |= VCHAN_NOTIFY_WRITE;
        if (s().batch_depth == 0) {
            if (auto done = flush(); !done) {
                return std::unexpected(done.error());
            }
        }
        return n;
    }

    /// The "space freed" notification is lazy: it needs a full fence, and a writer only waits
    /// for it when the ring is full. It goes out with our next write, wait, flush or close,
    /// when we find the ring empty, or after a quarter ring of reads, whichever comes first.
    [[nodiscard]] result<std::size_t> finish_read(std::size_t n) {
        auto& st = s();
        st.pending_notify |= VCHAN_NOTIFY_READ;
        st.read_unsignalled += static_cast<std::uint32_t>(n);
        if (st.batch_depth == 0 && st.read_unsignalled > (st.read_mask >> 2)) {
            if (auto done = flush(); !done) {
                return std::unexpected(done.error());
            }
        }
        return n;
    }

    /// The reader found the ring empty: deliver a pending "space freed" notification now.
    template <class T>
    [[nodiscard]] result<T> drained(T value) {
        if (s().batch_depth == 0 && (s().pending_notify & VCHAN_NOTIFY_READ) != 0) {
            if (auto done = flush(); !done) {
                return std::unexpected(done.error());
            }
        }
        return value;
    }

    /// vchan send_notify: kick the peer only if it armed one of `bits`, clearing them.
    [[nodiscard]] result<void> send_notify(std::uint8_t bits) {
        auto& st = s();
        // Full fence: our index store is ordered before we read the notify byte, pairing with
        // the peer's fence between arming the byte and re-reading our index (request_notify).
        std::atomic_thread_fence(std::memory_order_seq_cst);
        std::atomic_ref<std::uint8_t> own(*st.own_notify);
        if ((own.load(std::memory_order_relaxed) & bits) == 0) {
            return {};
        }
        const auto armed =
            own.fetch_and(static_cast<std::uint8_t>(~bits), std::memory_order_seq_cst);
        if ((armed & bits) == 0) {
            return {};
        }
        return st.port.notify();
    }

    /// vchan request_notify: ask the peer to kick us on `bit`.
    void request_notify(std::uint8_t bit) noexcept {
        std::atomic_ref<std::uint8_t>(*s().peer_notify).fetch_or(bit, std::memory_order_seq_cst);
        // Full fence: the armed bit is visible before we re-read the peer's index.
        std::atomic_thread_fence(std::memory_order_seq_cst);
    }

    [[nodiscard]] result<void> sleep_on_port(clock::time_point deadline) {
        auto timeout = s().policy.recheck;
        if (deadline != clock::time_point::max()) {
            const auto remaining = deadline - clock::now();
            if (remaining <= clock::duration::zero()) {
                return fail(errc::timed_out);
            }
            timeout = std::min<std::chrono::nanoseconds>(timeout, remaining);
        }
        auto waited = s().port.wait(timeout);
        if (!waited) {
            return std::unexpected(waited.error());
        }
        return {};
    }

    /// Wait until `ready()` holds, following the channel's wait policy. `arm_bit` is the
    /// notification we ask for before sleeping.
    template <class Ready>
    [[nodiscard]] VDIST_COLD result<void> await(Ready ready, std::uint8_t arm_bit,
                                                clock::time_point deadline) {
        if (auto done = flush(); !done) {  // never sleep on notifications we are holding back
            return done;
        }
        const auto mode = s().policy.mode;
        if (mode != wait_mode::block) {
            const auto spin_until = mode == wait_mode::busy_poll ? clock::time_point::max()
                                                                 : clock::now() + s().policy.spin;
            for (std::uint32_t spins = 1;; ++spins) {
                auto r = ready();
                if (!r || *r) {
                    return r ? result<void>{} : std::unexpected(r.error());
                }
                internal::cpu_relax();
                if (spins % 64 == 0) {
                    const auto now = clock::now();
                    if (now >= deadline) {
                        return fail(errc::timed_out);
                    }
                    if (now >= spin_until) {
                        break;
                    }
                    if (spins % 4096 == 0 && !peer_alive()) {
                        break;  // let the blocking path report it after a final look
                    }
                }
            }
        }
        for (;;) {
            request_notify(arm_bit);
            auto r = ready();
            if (!r || *r) {
                return r ? result<void>{} : std::unexpected(r.error());
            }
            if (!peer_alive()) {
                r = ready();
                if (!r || *r) {
                    return r ? result<void>{} : std::unexpected(r.error());
                }
                return fail(errc::peer_gone);
            }
            if (auto waited = sleep_on_port(deadline); !waited) {
                return waited;
            }
        }
    }

    [[nodiscard]] result<void> await_space(std::size_t wanted, clock::time_point deadline) {
        if (wanted > write_capacity()) {
            return fail(errc::frame_too_large);
        }
        return await(
            [&]() -> result<bool> {
                auto space = writable(wanted);
                if (!space) {
                    return std::unexpected(space.error());
                }
                return *space >= wanted;
            },
            VCHAN_NOTIFY_READ, deadline);
    }

    [[nodiscard]] result<void> await_data(std::size_t wanted, clock::time_point deadline) {
        if (wanted > read_capacity()) {
            return fail(errc::frame_too_large);
        }
        return await(
            [&]() -> result<bool> {
                auto ready = readable_or_gone(wanted);
                if (!ready) {
                    return std::unexpected(ready.error());
                }
                return *ready >= wanted;
            },
            VCHAN_NOTIFY_WRITE, deadline);
    }

    std::unique_ptr<state> state_;
};

/// libxenvchan_server_init / libxenvchan_client_init over the backend's seams.
template <vchan_backend B>
struct vchan_factory {
    using channel_type = ring_channel<B>;
    using state = typename channel_type::state;

    static result<channel_type> server(B& backend, const vchan_address& address, ring_orders orders,
                                       wait_policy policy) {
        if (auto valid = orders.validate(); !valid) {
            return std::unexpected(valid.error());
        }
        auto port = backend.events().bind_unbound_port(address.client);
        if (!port) {
            return std::unexpected(port.error());
        }
        auto control = backend.memory().share(
            address.client, 1, unmap_notify{offsetof(vchan_control, srv_live), port->local_port()});
        if (!control) {
            return std::unexpected(control.error());
        }
        auto st = std::make_unique<state>(std::move(*port));
        st->role = vchan_role::server;
        st->policy = policy;
        st->page = vchan_page(control->data());
        std::memset(control->data(), 0, page_size);
        auto& ctl = st->page.control();
        ctl.left_order = orders.left.order;
        ctl.right_order = orders.right.order;
        ctl.cli_live = live_not_yet_connected;
        ctl.srv_live = live_connected;
        ctl.cli_notify = VCHAN_NOTIFY_WRITE;
        const grant_ref ring_ref = control->refs()[0];
        st->shared.push_back(std::move(*control));

        std::size_t next_grant = 0;
        std::array<std::byte*, 2> rings{};
        for (std::size_t i = 0; i < 2; ++i) {
            const ring_geometry ring = i == 0 ? orders.left : orders.right;
            if (ring.in_control_page()) {
                rings[i] = st->page.in_page_ring(ring);
                continue;
            }
            auto pages = backend.memory().share(address.client, ring.page_count(), std::nullopt);
            if (!pages) {
                return std::unexpected(pages.error());
            }
            for (grant_ref ref : pages->refs()) {
                st->page.grant(next_grant++).store(ref, std::memory_order_relaxed);
            }
            rings[i] = pages->data();
            st->shared.push_back(std::move(*pages));
        }
        // The server reads left (client -> server) and writes right (server -> client).
        wire(*st, vchan_role::server, rings[0], orders.left, rings[1], orders.right);

        auto published = backend.directory().publish(address, {ring_ref, st->port.local_port()});
        if (!published) {
            return std::unexpected(published.error());
        }
        st->published.emplace(std::move(*published));
        return channel_type(std::move(st));
    }

    static result<channel_type> client(B& backend, const vchan_address& address, wait_policy policy,
                                       std::chrono::nanoseconds timeout) {
        auto offer = backend.directory().lookup(address, timeout);
        if (!offer) {
            return std::unexpected(offer.error());
        }
        if (offer->ring_ref == 0) {
            return fail(errc::invalid_grant);
        }
        auto port = backend.events().bind_interdomain(address.server, offer->port);
        if (!port) {
            return std::unexpected(port.error());
        }
        const grant_ref ring_ref = offer->ring_ref;
        auto control = backend.memory().map(
            address.server, std::span(&ring_ref, 1), page_access::read_write,
            unmap_notify{offsetof(vchan_control, cli_live), port->local_port()});
        if (!control) {
            return std::unexpected(control.error());
        }
        auto st = std::make_unique<state>(std::move(*port));
        st->role = vchan_role::client;
        st->policy = policy;
        st->page = vchan_page(control->data());
        auto& ctl = st->page.control();
        // Private copies: the server could change the shared orders at any time.
        const ring_orders orders{{st->page.order(ctl.left_order).load(std::memory_order_relaxed)},
                                 {st->page.order(ctl.right_order).load(std::memory_order_relaxed)}};
        if (auto valid = orders.validate(); !valid) {
            return std::unexpected(valid.error());
        }
        std::vector<grant_ref> refs(orders.grant_count());
        for (std::size_t i = 0; i < refs.size(); ++i) {
            refs[i] = st->page.grant(i).load(std::memory_order_relaxed);
        }
        st->mapped.push_back(std::move(*control));

        std::array<std::byte*, 2> rings{};
        std::size_t next_grant = 0;
        for (std::size_t i = 0; i < 2; ++i) {
            const ring_geometry ring = i == 0 ? orders.left : orders.right;
            if (ring.in_control_page()) {
                rings[i] = st->page.in_page_ring(ring);
                continue;
            }
            // The client writes left and only reads right.
            const auto access = i == 0 ? page_access::read_write : page_access::read_only;
            auto pages = backend.memory().map(
                address.server, std::span(refs).subspan(next_grant, ring.page_count()), access,
                std::nullopt);
            if (!pages) {
                return std::unexpected(pages.error());
            }
            next_grant += ring.page_count();
            rings[i] = pages->data();
            st->mapped.push_back(std::move(*pages));
        }
        wire(*st, vchan_role::client, rings[1], orders.right, rings[0], orders.left);

        st->page.byte(ctl.srv_notify).store(VCHAN_NOTIFY_WRITE, std::memory_order_relaxed);
        st->page.byte(ctl.cli_live).store(live_connected, std::memory_order_release);
        if (auto kicked = st->port.notify(); !kicked) {
            return std::unexpected(kicked.error());
        }
        return channel_type(std::move(st));
    }

  private:
    static void wire(state& st, vchan_role role, std::byte* read_ring, ring_geometry read,
                     std::byte* write_ring, ring_geometry write) {
        auto& ctl = st.page.control();
        const bool server = role == vchan_role::server;
        ring_shared& read_indices = server ? ctl.left : ctl.right;
        ring_shared& write_indices = server ? ctl.right : ctl.left;
        st.read_ring = read_ring;
        st.read_mask = static_cast<std::uint32_t>(read.size() - 1);
        st.read_prod_shared = &read_indices.prod;
        st.read_cons_shared = &read_indices.cons;
        st.write_ring = write_ring;
        st.write_mask = static_cast<std::uint32_t>(write.size() - 1);
        st.write_prod_shared = &write_indices.prod;
        st.write_cons_shared = &write_indices.cons;
        // A fresh client starts from whatever the indices say (the server may have written).
        st.read_cons = st.read_cons_published = st.read_peek = st.read_prod_seen =
            std::atomic_ref<std::uint32_t>(read_indices.cons).load(std::memory_order_acquire);
        st.write_prod = st.write_prod_published = st.write_cons_seen =
            std::atomic_ref<std::uint32_t>(write_indices.prod).load(std::memory_order_acquire);
        st.own_notify = server ? &ctl.srv_notify : &ctl.cli_notify;
        st.peer_notify = server ? &ctl.cli_notify : &ctl.srv_notify;
        st.own_live = server ? &ctl.srv_live : &ctl.cli_live;
        st.peer_live = server ? &ctl.cli_live : &ctl.srv_live;
    }
};

/// Create the server end of a vchan and publish it (libxenvchan_server_init). The server reads
/// the left ring and writes the right ring.
template <vchan_backend B>
[[nodiscard]] result<ring_channel<B>> vchan_server(B& backend, const vchan_address& address,
                                                   ring_orders orders, wait_policy policy = {}) {
    return vchan_factory<B>::server(backend, address, orders, policy);
}

/// Attach to a published vchan as its client (libxenvchan_client_init), waiting up to
/// `timeout` for the server to publish.
template <vchan_backend B>
[[nodiscard]] result<ring_channel<B>> vchan_client(B& backend, const vchan_address& address,
                                                   wait_policy policy = {},
                                                   std::chrono::nanoseconds timeout = forever) {
    return vchan_factory<B>::client(backend, address, policy, timeout);
}

/// A handle to a channel fixed at one generation: after the channel is re-attached every
/// operation through an older handle fails with errc::stale_generation.
template <class C>
class channel_handle {
  public:
    explicit channel_handle(C& channel) noexcept
        : channel_(&channel), generation_(channel.generation()) {}

    /// The channel, if this handle is still current.
    [[nodiscard]] result<C*> get() const {
        if (channel_->generation() != generation_) {
            return fail(errc::stale_generation);
        }
        return channel_;
    }
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }

  private:
    C* channel_;
    std::uint64_t generation_;
};

}  // namespace vdist::transport

#undef VDIST_HOT
#undef VDIST_COLD
