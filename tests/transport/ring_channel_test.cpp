// Tests of the vchan ring channel (vchan.hpp) with both ends of a vchan in this process. The
// same tests run in two ring worlds, chosen per binary by VDIST_RING_WORLD (CMakeLists.txt):
//
//   ring_channel_test       loopback_ring_world.hpp: two loopback domains under a
//                           loopback_hypervisor that plays Xen and checks that nothing leaks
//                           (host CI, label unit);
//   xen_ring_channel_test   xen_ring_world.hpp: two instances of the real Xen backend in dom0
//                           (gntalloc, gntdev, event channels, XenStore), run by tests/xen's
//                           QEMU harness; skipped on a machine without Xen.
//
// The tests cover the byte stream, all-or-nothing messages, frames, back-pressure, a hostile
// peer writing into the shared page, close and unmap notification, generations, lossy
// notifications and lost wake-ups.
//
// Threads: every test that runs a second thread gives each blocking call a finite
// operation_timeout (so a lost wake-up surfaces as errc::timed_out, not a hang) and waits for
// the thread under a watchdog (finish()).

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "vdist/test/pattern.hpp"
#include "vdist/transport/channel.hpp"
#include "vdist/transport/fault_injection.hpp"
#include "vdist/transport/vchan.hpp"
#include "vdist/transport/vchan_layout.hpp"

// The ring world: loopback_ring_world.hpp or xen_ring_world.hpp, each defining test::ring_world.
#ifndef VDIST_RING_WORLD
#error "define VDIST_RING_WORLD as the header of the ring world to run over"
#endif
#include VDIST_RING_WORLD

namespace vdist::transport {
namespace {

using namespace std::chrono_literals;
using test::ring_world;
using channel_type = ring_channel<ring_world::backend_type>;

/// Deadline of every blocking call in these tests; far longer than any of them needs.
constexpr std::chrono::nanoseconds operation_timeout = 10s;
/// How long a test waits for its second thread before declaring it stuck.
constexpr std::chrono::seconds watchdog_limit = 30s;

// --- helpers -----------------------------------------------------------------------------------

/// Waits for a thread started with std::async. A thread still running after watchdog_limit is
/// stuck in a call nothing can interrupt, and std::future's destructor would wait for it
/// forever: the test fails and the binary aborts instead of hanging.
template <class T>
T finish(std::future<T>& peer, const char* what) {
    if (peer.wait_for(watchdog_limit) != std::future_status::ready) {
        ADD_FAILURE() << "watchdog: " << what << " still running after " << watchdog_limit.count()
                      << " s";
        std::fflush(stdout);
        std::fprintf(stderr, "watchdog: %s is stuck; aborting rather than hanging\n", what);
        std::abort();
    }
    return peer.get();
}

/// The error of a result, or an empty error_code on success (for one-line EXPECT_EQs).
template <class T>
[[nodiscard]] std::error_code error_of(const result<T>& r) {
    return r ? std::error_code{} : r.error();
}

[[nodiscard]] std::vector<std::byte> pattern_bytes(std::size_t n, std::uint64_t seed) {
    std::vector<std::byte> bytes(n);
    test::pattern(seed).fill(bytes);
    return bytes;
}

[[nodiscard]] std::uint32_t index_of(std::uint32_t& field) {
    return std::atomic_ref<std::uint32_t>(field).load(std::memory_order_acquire);
}

/// Frame contents a reader can check: the sequence number in the first 4 bytes (when they
/// fit), the rest filled with the sequence number's low byte.
void fill_frame(std::span<std::byte> payload, std::uint32_t sequence) {
    if (payload.empty()) {
        return;
    }
    std::memset(payload.data(), static_cast<int>(sequence & 0xffu), payload.size());
    std::memcpy(payload.data(), &sequence, std::min(payload.size(), sizeof sequence));
}

[[nodiscard]] bool frame_matches(std::span<const std::byte> payload, std::uint32_t sequence) {
    std::vector<std::byte> expected(payload.size());
    fill_frame(expected, sequence);
    return payload.size() == 0 || std::memcmp(payload.data(), expected.data(), payload.size()) == 0;
}

/// Reserve a frame of `n` bytes, fill it for `sequence` and commit it.
[[nodiscard]] result<void> write_test_frame(channel_type& writer, std::size_t n,
                                            std::uint32_t sequence) {
    auto frame = writer.reserve(n, operation_timeout);
    if (!frame) {
        return std::unexpected(frame.error());
    }
    fill_frame(frame->payload, sequence);
    return writer.commit(*frame, n);
}

// --- parameters --------------------------------------------------------------------------------

/// One ring configuration: orders chosen for their edge cases, and how blocked calls wait.
struct ring_case {
    const char* name;
    ring_orders orders;
    wait_mode mode;
};

void PrintTo(const ring_case& c, std::ostream* out) {
    *out << "orders (" << c.orders.left.order << ", " << c.orders.right.order << "), " << c.name;
}

[[nodiscard]] ring_orders orders(std::uint16_t left, std::uint16_t right) {
    return {{left}, {right}};
}

/// Both ends of one vchan in the ring world. Members are declared in destruction order: the
/// world first, so that it is destroyed last (the loopback hypervisor aborts if a channel still
/// holds a page, port or record; the Xen world fails the test).
class RingChannelTest : public ::testing::TestWithParam<ring_case> {
  protected:
    void SetUp() override {
        if (const auto reason = world.unavailable()) {
            GTEST_SKIP() << *reason;
        }
        ASSERT_TRUE(world.opened());
    }

    /// Create the server, attach the client, wait until the server sees it.
    void connect(ring_orders chosen, wait_policy policy) {
        auto made_server = vchan_server(world.server_domain(), address, chosen, policy);
        ASSERT_TRUE(made_server) << made_server.error().message();
        server.emplace(std::move(*made_server));
        auto made_client = vchan_client(world.client_domain(), address, policy, operation_timeout);
        ASSERT_TRUE(made_client) << made_client.error().message();
        client.emplace(std::move(*made_client));
        auto connected = server->wait_connected(operation_timeout);
        ASSERT_TRUE(connected) << connected.error().message();
    }

    /// connect() with the parameter's orders and wait mode (TEST_P only).
    void connect() { connect(GetParam().orders, wait_policy{.mode = GetParam().mode}); }

    /// connect() with the parameter's orders and wait mode and no periodic re-check: a lost
    /// notification then shows as errc::timed_out (TEST_P only).
    void connect_without_recheck() {
        connect(GetParam().orders, wait_policy{.mode = GetParam().mode, .recheck = forever});
    }

    /// Destroy both ends and connect a fresh pair on the same address.
    void reconnect(ring_orders chosen, wait_policy policy) {
        client.reset();
        server.reset();
        connect(chosen, policy);
    }

    [[nodiscard]] vchan_control& shared_control() const { return server->control_page().control(); }

    ring_world world;
    vchan_address address = world.address("test");
    std::optional<channel_type> server;
    std::optional<channel_type> client;
};

[[nodiscard]] std::string case_name(const ::testing::TestParamInfo<ring_case>& tested) {
    return tested.param.name;
}

// Every ring size in the mode that sleeps at every wait (each wait depends on a notification),
// then the spinning modes on the smallest ring (most wraps) and a middle-sized one.
INSTANTIATE_TEST_SUITE_P(
    RingSizes, RingChannelTest,
    ::testing::Values(ring_case{"inPage1KiBLeft2KiBRight_block", orders(10, 11), wait_mode::block},
                      ring_case{"inPage2KiBLeft1KiBRight_block", orders(11, 10), wait_mode::block},
                      ring_case{"onePage4KiB_block", orders(12, 12), wait_mode::block},
                      ring_case{"pages64KiB_block", orders(16, 16), wait_mode::block},
                      ring_case{"pages1MiB_block", orders(20, 20), wait_mode::block}),
    case_name);

INSTANTIATE_TEST_SUITE_P(WaitModes, RingChannelTest,
                         ::testing::Values(ring_case{"inPage1KiBLeft2KiBRight_busyPoll",
                                                     orders(10, 11), wait_mode::busy_poll},
                                           ring_case{"inPage1KiBLeft2KiBRight_spinThenBlock",
                                                     orders(10, 11), wait_mode::spin_then_block},
                                           ring_case{"pages64KiB_busyPoll", orders(16, 16),
                                                     wait_mode::busy_poll},
                                           ring_case{"pages64KiB_spinThenBlock", orders(16, 16),
                                                     wait_mode::spin_then_block}),
                         case_name);

// --- byte stream -------------------------------------------------------------------------------

struct stream_outcome {
    std::size_t bytes = 0;
    std::uint64_t checksum = 0;
    std::error_code error;
};

constexpr std::uint64_t stream_seed = 0x5eed;

/// Bytes to stream through a ring of `capacity`: a few MB and at least six wraps, and an odd
/// total so that the last chunk is cut short. Two busy-polling threads on a loaded machine may
/// share a core and then hand over once per scheduler time slice, so those streams are shorter.
[[nodiscard]] std::size_t stream_length(std::size_t capacity, wait_mode mode) {
    const std::size_t floor =
        mode == wait_mode::busy_poll ? std::size_t{256} << 10 : std::size_t{3} << 20;
    return std::max(floor, 6 * capacity) + 12345;
}

/// Chunk sizes around the ring size; the reader uses another order so that reads and writes
/// never line up.
[[nodiscard]] std::vector<std::size_t> writer_chunks(std::size_t capacity) {
    return {1, 7, 1000, capacity - 1, capacity + 3};
}
[[nodiscard]] std::vector<std::size_t> reader_chunks(std::size_t capacity) {
    return {capacity + 3, 1000, 1, capacity - 1, 7};
}

stream_outcome write_stream(channel_type& writer, std::size_t total,
                            const std::vector<std::size_t>& chunks) {
    test::pattern source(stream_seed);
    test::fnv1a checksum;
    std::vector<std::byte> buffer(*std::ranges::max_element(chunks));
    stream_outcome outcome;
    for (std::size_t i = 0; outcome.bytes < total; ++i) {
        const auto piece =
            std::span(buffer).first(std::min(chunks[i % chunks.size()], total - outcome.bytes));
        source.fill(piece);
        checksum.update(piece);
        if (auto written = writer.write_all(piece, operation_timeout); !written) {
            outcome.error = written.error();
            break;
        }
        outcome.bytes += piece.size();
    }
    outcome.checksum = checksum.value();
    return outcome;
}

stream_outcome read_stream(channel_type& reader, std::size_t total,
                           const std::vector<std::size_t>& chunks) {
    test::fnv1a checksum;
    std::vector<std::byte> buffer(*std::ranges::max_element(chunks));
    stream_outcome outcome;
    for (std::size_t i = 0; outcome.bytes < total; ++i) {
        const auto piece =
            std::span(buffer).first(std::min(chunks[i % chunks.size()], total - outcome.bytes));
        if (auto got = reader.read_exact(piece, operation_timeout); !got) {
            outcome.error = got.error();
            break;
        }
        checksum.update(piece);
        outcome.bytes += piece.size();
    }
    outcome.checksum = checksum.value();
    return outcome;
}

/// Stream from `writer` (another thread) to `reader` (this thread) and compare checksums.
void expect_stream_intact(channel_type& writer, channel_type& reader) {
    const std::size_t capacity = writer.write_capacity();
    ASSERT_EQ(reader.read_capacity(), capacity);
    const std::size_t total = stream_length(capacity, writer.policy().mode);
    auto sender = std::async(std::launch::async,
                             [&] { return write_stream(writer, total, writer_chunks(capacity)); });
    const auto received = read_stream(reader, total, reader_chunks(capacity));
    const auto sent = finish(sender, "stream writer");
    EXPECT_FALSE(sent.error) << sent.error.message();
    EXPECT_FALSE(received.error) << received.error.message();
    EXPECT_EQ(sent.bytes, total);
    EXPECT_EQ(received.bytes, total);
    EXPECT_EQ(received.checksum, sent.checksum);
    std::array<std::byte, 1> extra{};
    EXPECT_EQ(reader.read_some(extra).value_or(99), 0u) << "nothing beyond the stream";
}

TEST_P(RingChannelTest, shouldDeliverStreamIntactWhenServerWritesToClient) {
    ASSERT_NO_FATAL_FAILURE(connect());
    ASSERT_NO_FATAL_FAILURE(expect_stream_intact(*server, *client));
    // Server -> client travels on the right ring only.
    auto& control = shared_control();
    EXPECT_EQ(index_of(control.right.prod),
              static_cast<std::uint32_t>(stream_length(server->write_capacity(), GetParam().mode)));
    EXPECT_EQ(index_of(control.right.cons), index_of(control.right.prod));
    EXPECT_EQ(index_of(control.left.prod), 0u);
    EXPECT_EQ(server->write_capacity(), GetParam().orders.right.size());
}

TEST_P(RingChannelTest, shouldDeliverStreamIntactWhenClientWritesToServer) {
    ASSERT_NO_FATAL_FAILURE(connect());
    ASSERT_NO_FATAL_FAILURE(expect_stream_intact(*client, *server));
    // Client -> server travels on the left ring only.
    auto& control = shared_control();
    EXPECT_EQ(index_of(control.left.prod),
              static_cast<std::uint32_t>(stream_length(client->write_capacity(), GetParam().mode)));
    EXPECT_EQ(index_of(control.left.cons), index_of(control.left.prod));
    EXPECT_EQ(index_of(control.right.prod), 0u);
    EXPECT_EQ(client->write_capacity(), GetParam().orders.left.size());
}

// --- partial and all-or-nothing ----------------------------------------------------------------

TEST_P(RingChannelTest, shouldWriteAtMostTheFreeSpaceWhenWritingSome) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t capacity = server->write_capacity();
    const auto data = pattern_bytes(capacity + 100, 1);

    auto first = server->write_some(data);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(*first, capacity);
    auto when_full = server->write_some(std::span(data).subspan(capacity));
    ASSERT_TRUE(when_full) << when_full.error().message();
    EXPECT_EQ(*when_full, 0u) << "a full ring takes nothing";

    std::array<std::byte, 10> head{};
    auto got = client->read_some(head);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_EQ(*got, head.size());
    auto refill = server->write_some(std::span(data).subspan(capacity));
    ASSERT_TRUE(refill) << refill.error().message();
    EXPECT_EQ(*refill, head.size()) << "exactly the space the reader freed";

    std::vector<std::byte> received(head.begin(), head.end());
    std::vector<std::byte> rest(capacity);
    auto drained = client->read_exact(rest, operation_timeout);
    ASSERT_TRUE(drained) << drained.error().message();
    received.insert(received.end(), rest.begin(), rest.end());
    EXPECT_TRUE(std::ranges::equal(received, std::span(data).first(capacity + head.size())));
}

TEST_P(RingChannelTest, shouldReturnZeroWhenReadingSomeFromAnEmptyRing) {
    ASSERT_NO_FATAL_FAILURE(connect());
    std::array<std::byte, 16> buffer{};
    auto from_server = client->read_some(buffer);
    ASSERT_TRUE(from_server) << from_server.error().message();
    EXPECT_EQ(*from_server, 0u);
    auto from_client = server->read_some(buffer);
    ASSERT_TRUE(from_client) << from_client.error().message();
    EXPECT_EQ(*from_client, 0u);
}

TEST_P(RingChannelTest, shouldReturnFullAndWriteNothingWhenTheMessageDoesNotFit) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t capacity = server->write_capacity();
    const auto filler = pattern_bytes(capacity - 5, 2);
    ASSERT_EQ(server->write_some(filler).value_or(0), filler.size());

    const auto message = pattern_bytes(6, 3);
    auto status = server->try_send(message);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(*status, write_status::full);

    std::vector<std::byte> received(capacity);
    EXPECT_EQ(client->read_some(received).value_or(0), filler.size()) << "the message was not cut";
    EXPECT_TRUE(std::ranges::equal(std::span(received).first(filler.size()), filler));
    EXPECT_EQ(client->read_some(received).value_or(99), 0u);
}

TEST_P(RingChannelTest, shouldSendWhenTheMessageFitsTheFreeSpaceExactly) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t capacity = server->write_capacity();
    const auto filler = pattern_bytes(capacity - 5, 2);
    ASSERT_EQ(server->write_some(filler).value_or(0), filler.size());

    const auto message = pattern_bytes(5, 3);
    auto status = server->try_send(message);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(*status, write_status::sent);
    auto after = server->try_send(std::span(message).first(1));
    ASSERT_TRUE(after) << after.error().message();
    EXPECT_EQ(*after, write_status::full);

    std::vector<std::byte> received(capacity);
    ASSERT_EQ(client->read_some(received).value_or(0), capacity);
    EXPECT_TRUE(std::ranges::equal(std::span(received).last(5), message));
}

// try_send must look at the reader's progress before answering `full`, as send() does: the
// space the reader freed since the writer last looked is free.
TEST_P(RingChannelTest, shouldSendWhenTheReaderHasDrainedSinceTheWriterLastLooked) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t capacity = server->write_capacity();
    const auto filler = pattern_bytes(capacity - 5, 2);
    ASSERT_EQ(server->write_some(filler).value_or(0), filler.size());
    std::vector<std::byte> received(capacity);
    ASSERT_EQ(client->read_some(received).value_or(0), filler.size());

    // The ring is empty now; a 6-byte message fits.
    const auto message = pattern_bytes(6, 3);
    auto status = server->try_send(message);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(*status, write_status::sent) << "ring is empty, yet try_send reports full";
}

TEST_P(RingChannelTest, shouldRefuseWithFrameTooLargeWhenTheMessageExceedsMaxMessageSize) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t largest = server->max_message_size();
    EXPECT_EQ(largest, std::min(GetParam().orders.left.size(), GetParam().orders.right.size()));
    const auto too_large = pattern_bytes(largest + 1, 4);
    std::vector<std::byte> buffer(largest + 1);

    EXPECT_EQ(error_of(server->try_send(too_large)), errc::frame_too_large);
    EXPECT_EQ(error_of(server->send(too_large, operation_timeout)), errc::frame_too_large);
    EXPECT_EQ(error_of(client->try_send(too_large)), errc::frame_too_large);
    EXPECT_EQ(error_of(client->send(too_large, operation_timeout)), errc::frame_too_large);
    EXPECT_EQ(error_of(client->try_recv(buffer)), errc::frame_too_large);
    EXPECT_EQ(error_of(client->recv(buffer, operation_timeout)), errc::frame_too_large);

    // The largest message itself goes through, whole.
    const auto message = std::span(too_large).first(largest);
    auto sent = server->send(message, operation_timeout);
    ASSERT_TRUE(sent) << sent.error().message();
    auto received = client->recv(std::span(buffer).first(largest), operation_timeout);
    ASSERT_TRUE(received) << received.error().message();
    EXPECT_TRUE(std::ranges::equal(std::span(buffer).first(largest), message));
}

TEST_P(RingChannelTest, shouldReturnEmptyWhenOnlyPartOfTheMessageHasArrived) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t length = std::min<std::size_t>(server->max_message_size(), 100);
    const auto message = pattern_bytes(length, 5);
    std::vector<std::byte> buffer(length);

    ASSERT_EQ(server->write_some(std::span(message).first(length / 2)).value_or(0), length / 2);
    for (int attempt = 0; attempt < 3; ++attempt) {
        auto status = client->try_recv(buffer);
        ASSERT_TRUE(status) << status.error().message();
        EXPECT_EQ(*status, read_status::empty) << "attempt " << attempt;
    }
    ASSERT_EQ(server->write_some(std::span(message).subspan(length / 2)).value_or(0),
              length - length / 2);
    auto status = client->try_recv(buffer);
    ASSERT_TRUE(status) << status.error().message();
    EXPECT_EQ(*status, read_status::received);
    EXPECT_TRUE(std::ranges::equal(buffer, message)) << "nothing was consumed by the empty tries";
}

// --- frames --------------------------------------------------------------------------------------

TEST_P(RingChannelTest, shouldPublishOnlyTheCommittedBytesWhenCommitShrinksTheFrame) {
    ASSERT_NO_FATAL_FAILURE(connect());
    auto frame = server->reserve(100, operation_timeout);
    ASSERT_TRUE(frame) << frame.error().message();
    ASSERT_TRUE(static_cast<bool>(*frame));
    EXPECT_EQ(frame->payload.size(), 100u);
    EXPECT_EQ(frame->footprint, frame_footprint(100));
    fill_frame(frame->payload.first(40), 1);
    ASSERT_TRUE(server->commit(*frame, 40));
    EXPECT_EQ(index_of(shared_control().right.prod), frame_footprint(40));

    // The next frame starts right after the shrunk one.
    ASSERT_TRUE(write_test_frame(*server, 9, 2));
    EXPECT_EQ(index_of(shared_control().right.prod), frame_footprint(40) + frame_footprint(9));

    auto first = client->read_frame(operation_timeout);
    ASSERT_TRUE(first) << first.error().message();
    EXPECT_EQ(first->payload.size(), 40u);
    EXPECT_TRUE(frame_matches(first->payload, 1));
    ASSERT_TRUE(client->release(*first));
    auto second = client->read_frame(operation_timeout);
    ASSERT_TRUE(second) << second.error().message();
    EXPECT_EQ(second->payload.size(), 9u);
    EXPECT_TRUE(frame_matches(second->payload, 2));
    ASSERT_TRUE(client->release(*second));
    EXPECT_EQ(index_of(shared_control().right.cons), index_of(shared_control().right.prod));
}

/// Write `count` frames cycling through `sizes` from `writer` (another thread) and read them on
/// `reader` (this thread), each checked, and check that the writer had to insert padding.
void expect_frames_intact(channel_type& writer, channel_type& reader, std::uint32_t& writer_prod,
                          const std::vector<std::size_t>& sizes, std::uint32_t count) {
    auto sender = std::async(std::launch::async, [&]() -> std::error_code {
        for (std::uint32_t i = 0; i < count; ++i) {
            if (auto done = write_test_frame(writer, sizes[i % sizes.size()], i); !done) {
                return done.error();
            }
        }
        return {};
    });
    std::uint32_t received = 0;
    std::size_t footprints = 0;
    for (; received < count; ++received) {
        auto frame = reader.read_frame(operation_timeout);
        if (!frame) {
            ADD_FAILURE() << "frame " << received << ": " << frame.error().message();
            break;
        }
        const auto expected_size = sizes[received % sizes.size()];
        EXPECT_EQ(frame->payload.size(), expected_size) << "frame " << received;
        EXPECT_TRUE(frame_matches(frame->payload, received)) << "frame " << received;
        footprints += frame_footprint(expected_size);
        auto released = reader.release(*frame);
        ASSERT_TRUE(released) << released.error().message();
    }
    const auto sent = finish(sender, "frame writer");
    EXPECT_FALSE(sent) << sent.message();
    EXPECT_EQ(received, count);
    if (received == count) {
        const std::size_t padding = index_of(writer_prod) - static_cast<std::uint32_t>(footprints);
        EXPECT_GT(padding, 0u) << "the sizes were chosen so that frames wrap with padding";
    }
}

[[nodiscard]] std::vector<std::size_t> awkward_frame_sizes(const channel_type& writer) {
    return {0, 1, 7, 8, 9, writer.max_frame_payload()};
}

constexpr std::uint32_t frames_per_test = 6 * 64;

TEST_P(RingChannelTest, shouldDeliverFramesInOrderWhenTheServerWritesSizesAcrossTheWrapPoint) {
    ASSERT_NO_FATAL_FAILURE(connect());
    expect_frames_intact(*server, *client, shared_control().right.prod,
                         awkward_frame_sizes(*server), frames_per_test);
}

TEST_P(RingChannelTest, shouldDeliverFramesInOrderWhenTheClientWritesSizesAcrossTheWrapPoint) {
    ASSERT_NO_FATAL_FAILURE(connect());
    expect_frames_intact(*client, *server, shared_control().left.prod, awkward_frame_sizes(*client),
                         frames_per_test);
}

// A frame of max_frame_payload() of the writer must be readable by the peer, including when
// the peer's own write ring is smaller than the ring it reads (orders 10/11 and 11/10).
TEST_P(RingChannelTest, shouldDeliverTheLargestFrameWhenEitherEndWritesIt) {
    ASSERT_NO_FATAL_FAILURE(connect());
    for (auto [writer, reader] : {std::pair{&*server, &*client}, std::pair{&*client, &*server}}) {
        SCOPED_TRACE(writer == &*server ? "server writes" : "client writes");
        const std::size_t largest = writer->max_frame_payload();
        EXPECT_EQ(largest, writer->write_capacity() - frame_header_size);
        ASSERT_TRUE(write_test_frame(*writer, largest, 7));
        auto frame = reader->try_read_frame();
        ASSERT_TRUE(frame) << "reader refused a frame its peer may write: "
                           << frame.error().message();
        ASSERT_TRUE(static_cast<bool>(*frame));
        EXPECT_EQ(frame->payload.size(), largest);
        EXPECT_TRUE(frame_matches(frame->payload, 7));
        ASSERT_TRUE(reader->release(*frame));
    }
}

TEST_P(RingChannelTest, shouldRefuseNotStreamWhenAFrameIsLargerThanMaxFramePayload) {
    ASSERT_NO_FATAL_FAILURE(connect());
    for (channel_type* writer : {&*server, &*client}) {
        const std::size_t too_large = writer->max_frame_payload() + 1;
        EXPECT_EQ(error_of(writer->try_reserve(too_large)), errc::frame_too_large);
        EXPECT_EQ(error_of(writer->reserve(too_large, operation_timeout)), errc::frame_too_large);
    }
    EXPECT_EQ(index_of(shared_control().left.prod), 0u) << "nothing was streamed";
    EXPECT_EQ(index_of(shared_control().right.prod), 0u) << "nothing was streamed";
}

// A frame that must wrap (padding to the ring's end, then the frame at offset 0) while the
// reader still holds the start of the ring fits once the reader catches up: reserve() waits
// for that, it does not report the frame as too large.
TEST_P(RingChannelTest, shouldWaitForRoomWhenAFrameMustWrapBehindUnreadFrames) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t size = server->write_capacity();
    // Half a ring, read and released; half a ring up to the end; a quarter at offset 0.
    ASSERT_TRUE(write_test_frame(*server, size / 2 - frame_header_size, 1));
    auto first = client->try_read_frame();
    ASSERT_TRUE(first && *first);
    ASSERT_TRUE(client->release(*first));
    ASSERT_TRUE(write_test_frame(*server, size / 2 - frame_header_size, 2));
    ASSERT_TRUE(write_test_frame(*server, size / 4 - frame_header_size, 3));
    // Now 3/4 of the ring is unread, the write position is at 1/4: 3/4 to the end, 1/4 free.

    auto largest = server->reserve(server->max_frame_payload(), 50ms);
    EXPECT_EQ(error_of(largest), errc::timed_out) << "the frame fits once the reader catches up";

    // With a reader catching up, the frame is reserved.
    auto reader = std::async(std::launch::async, [&]() -> std::error_code {
        for (std::uint32_t sequence : {2u, 3u, 4u}) {
            auto frame = client->read_frame(operation_timeout);
            if (!frame) {
                return frame.error();
            }
            if (!frame_matches(frame->payload, sequence)) {
                return errc::protocol_error;
            }
            if (auto released = client->release(*frame); !released) {
                return released.error();
            }
        }
        return {};
    });
    auto fits = write_test_frame(*server, server->max_frame_payload(), 4);
    EXPECT_TRUE(fits) << fits.error().message();
    if (!fits) {
        (void)write_test_frame(*server, 0, 4);  // spare the reader its timeout
    }
    const auto read = finish(reader, "catching-up reader");
    EXPECT_FALSE(read) << read.message();
}

TEST_P(RingChannelTest, shouldReleaseHeldFramesInOrderWhenPaddingLiesBetweenThem) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t size = client->read_capacity();
    const std::size_t payload = size * 3 / 8 - frame_header_size;  // footprint 3/8 of the ring
    auto& right = shared_control().right;

    // Frame 1 at 0, read and released: the reader is at 3/8.
    ASSERT_TRUE(write_test_frame(*server, payload, 1));
    auto first = client->try_read_frame();
    ASSERT_TRUE(first && *first);
    ASSERT_TRUE(client->release(*first));
    // Frame 2 at 3/8; frame 3 does not fit in the last 1/4: padding, then frame 3 at 0.
    ASSERT_TRUE(write_test_frame(*server, payload, 2));
    ASSERT_TRUE(write_test_frame(*server, payload, 3));
    EXPECT_EQ(index_of(right.prod), size * 3 / 8 * 3 + size / 4) << "one padding frame of 1/4";

    auto second = client->try_read_frame();
    auto third = client->try_read_frame();
    ASSERT_TRUE(second && *second);
    ASSERT_TRUE(third && *third);
    EXPECT_TRUE(frame_matches(second->payload, 2));
    EXPECT_TRUE(frame_matches(third->payload, 3));
    auto none = client->try_read_frame();
    ASSERT_TRUE(none);
    EXPECT_FALSE(static_cast<bool>(*none));
    EXPECT_EQ(index_of(right.cons), size * 3 / 8) << "held frames keep their space";

    ASSERT_TRUE(client->release(*second));
    EXPECT_EQ(index_of(right.cons), size * 6 / 8) << "up to the padding";
    EXPECT_TRUE(frame_matches(third->payload, 3)) << "the held frame is intact";
    ASSERT_TRUE(client->release(*third));
    EXPECT_EQ(index_of(right.cons), index_of(right.prod)) << "padding and frame 3 released";
}

TEST_P(RingChannelTest, shouldLoseNothingWhenTryReserveFindsTheRingFull) {
    ASSERT_NO_FATAL_FAILURE(connect());
    constexpr std::size_t payload = 100;
    std::uint32_t written = 0;
    std::uint32_t received = 0;
    for (int round = 0; round < 3; ++round) {
        for (;;) {
            auto frame = server->try_reserve(payload);
            ASSERT_TRUE(frame) << frame.error().message();
            if (!*frame) {
                EXPECT_TRUE(frame->payload.empty());
                break;
            }
            fill_frame(frame->payload, written);
            ASSERT_TRUE(server->commit(*frame, payload));
            ++written;
        }
        EXPECT_GE(written, received + server->write_capacity() / frame_footprint(payload) - 1);
        for (;;) {
            auto frame = client->try_read_frame();
            ASSERT_TRUE(frame) << frame.error().message();
            if (!*frame) {
                break;
            }
            EXPECT_EQ(frame->payload.size(), payload);
            EXPECT_TRUE(frame_matches(frame->payload, received)) << "frame " << received;
            ASSERT_TRUE(client->release(*frame));
            ++received;
        }
        EXPECT_EQ(received, written) << "round " << round;
    }
}

TEST_P(RingChannelTest, shouldDeliverEverythingWhenNotificationsAreBatched) {
    // No periodic re-check: a notification held back and never delivered would be a timeout.
    ASSERT_NO_FATAL_FAILURE(connect_without_recheck());
    constexpr std::uint32_t per_batch = 5;
    constexpr std::uint32_t batches = 40;
    constexpr std::size_t payload = 24;
    auto reader = std::async(std::launch::async, [&]() -> std::error_code {
        for (std::uint32_t i = 0; i < per_batch * batches; ++i) {
            auto frame = client->read_frame(operation_timeout);
            if (!frame) {
                return frame.error();
            }
            if (!frame_matches(frame->payload, i) || frame->payload.size() != payload) {
                return errc::protocol_error;
            }
            if (auto released = client->release(*frame); !released) {
                return released.error();
            }
        }
        return {};
    });
    std::uint32_t sequence = 0;
    for (std::uint32_t batch = 0; batch < batches; ++batch) {
        if (batch % 2 == 0) {
            batch_scope<channel_type> scope(*server);
            for (std::uint32_t i = 0; i < per_batch; ++i) {
                ASSERT_TRUE(write_test_frame(*server, payload, sequence++));
            }
        } else {
            server->begin_batch();
            for (std::uint32_t i = 0; i < per_batch; ++i) {
                ASSERT_TRUE(write_test_frame(*server, payload, sequence++));
            }
            ASSERT_TRUE(server->end_batch());
        }
    }
    const auto read = finish(reader, "batch reader");
    EXPECT_FALSE(read) << read.message();
}

// --- back-pressure -----------------------------------------------------------------------------

TEST_P(RingChannelTest, shouldBlockTheWriterUntilTheReaderDrainsWhenTheReaderSleeps) {
    ASSERT_NO_FATAL_FAILURE(connect());
    // Write on the smaller ring so that a message of more than half of it is allowed.
    channel_type& writer = server->write_capacity() <= client->write_capacity() ? *server : *client;
    channel_type& reader = &writer == &*server ? *client : *server;
    const std::size_t length = writer.write_capacity() / 2 + 1;  // never two in the ring
    ASSERT_LE(length, writer.max_message_size());
    constexpr std::uint32_t messages = 16;

    std::atomic<std::uint32_t> sent{0};
    auto sender = std::async(std::launch::async, [&]() -> std::error_code {
        for (std::uint32_t i = 0; i < messages; ++i) {
            const auto message = pattern_bytes(length, i + 1);
            if (auto done = writer.send(message, operation_timeout); !done) {
                return done.error();
            }
            sent.fetch_add(1);
        }
        return {};
    });
    std::vector<std::byte> buffer(length);
    for (std::uint32_t received = 0; received < messages;) {
        std::this_thread::sleep_for(2ms);  // a slow reader
        auto got = reader.recv(buffer, operation_timeout);
        ASSERT_TRUE(got) << got.error().message();
        EXPECT_TRUE(std::ranges::equal(buffer, pattern_bytes(length, received + 1)))
            << "message " << received;
        ++received;
        // The ring holds one message: the writer cannot be more than one ahead.
        EXPECT_LE(sent.load(), received + 1) << "writer ran ahead of a full ring";
    }
    const auto result = finish(sender, "blocked writer");
    EXPECT_FALSE(result) << result.message();
    EXPECT_EQ(sent.load(), messages);
}

// --- hostile peer --------------------------------------------------------------------------------

/// The first operation a reader might run when the peer has published a bad producer index.
enum class first_read { read_some, try_read_frame, read_exact };

[[nodiscard]] std::error_code run_first_read(channel_type& reader, first_read operation) {
    std::array<std::byte, 16> buffer{};
    switch (operation) {
        case first_read::read_some:
            return error_of(reader.read_some(buffer));
        case first_read::try_read_frame:
            return error_of(reader.try_read_frame());
        case first_read::read_exact:
            return error_of(reader.read_exact(buffer, operation_timeout));
    }
    return {};
}

TEST_P(RingChannelTest, shouldFailWithRingCorruptWhenThePeerPublishesProdBeyondTheRing) {
    for (auto operation :
         {first_read::read_some, first_read::try_read_frame, first_read::read_exact}) {
        SCOPED_TRACE(static_cast<int>(operation));
        ASSERT_NO_FATAL_FAILURE(reconnect(GetParam().orders, wait_policy{.mode = GetParam().mode}));
        const auto before = pattern_bytes(5, 9);
        ASSERT_EQ(server->write_some(before).value_or(0), before.size());

        // Play a hostile client: claim more bytes in the left ring than it can hold.
        auto& left = shared_control().left;
        left.prod = left.cons + static_cast<std::uint32_t>(server->read_capacity()) + 1;

        EXPECT_EQ(run_first_read(*server, operation), errc::ring_corrupt);
        // Every later operation keeps failing.
        std::array<std::byte, 16> buffer{};
        EXPECT_EQ(error_of(server->read_some(buffer)), errc::ring_corrupt);
        EXPECT_EQ(error_of(server->try_read_frame()), errc::ring_corrupt);
        EXPECT_EQ(error_of(server->read(buffer, operation_timeout)), errc::ring_corrupt);
        EXPECT_EQ(error_of(server->write_some(before)), errc::ring_corrupt);
        EXPECT_EQ(error_of(server->try_reserve(8)), errc::ring_corrupt);

        // The corrupt side closed: the peer sees it gone once it has read what was sent.
        EXPECT_FALSE(client->peer_alive());
        EXPECT_EQ(client->read_some(buffer).value_or(0), before.size());
        EXPECT_EQ(error_of(client->read_some(buffer)), errc::peer_gone);
        EXPECT_EQ(error_of(client->read(buffer, operation_timeout)), errc::peer_gone);
    }
}

// A producer index never moves backwards. One that retreats behind frames the reader has
// taken but not released (between its consumer index and its read position) is impossible too.
TEST_P(RingChannelTest, shouldFailWithRingCorruptWhenThePeerMovesProdBackBehindHeldFrames) {
    ASSERT_NO_FATAL_FAILURE(connect());
    ASSERT_TRUE(write_test_frame(*client, 0, 1));
    ASSERT_TRUE(write_test_frame(*client, 0, 2));
    auto first = server->try_read_frame();
    auto second = server->try_read_frame();
    ASSERT_TRUE(first && *first);
    ASSERT_TRUE(second && *second);  // both held: consumer index 0, read position 16

    auto& left = shared_control().left;
    ASSERT_EQ(index_of(left.prod), 2 * frame_footprint(0));
    left.prod = frame_footprint(0);  // back to the end of the first frame

    auto phantom = server->try_read_frame();
    EXPECT_EQ(error_of(phantom), errc::ring_corrupt)
        << "got " << (phantom && *phantom ? "a frame the peer never published" : "no frame");
}

TEST_P(RingChannelTest, shouldFailWithRingCorruptWhenThePeerMovesItsConsumerIndexImpossibly) {
    const auto capacity = static_cast<std::uint32_t>(GetParam().orders.right.size());
    struct tampering {
        const char* name;
        std::uint32_t offset_from_prod;  // the hostile cons, relative to the server's prod
    };
    for (auto [name, offset] : {tampering{"ahead of prod", 8},
                                tampering{"behind by more than the ring", 0u - capacity - 8}}) {
        SCOPED_TRACE(name);
        ASSERT_NO_FATAL_FAILURE(reconnect(GetParam().orders, wait_policy{.mode = GetParam().mode}));
        // Fill the ring so that the writer must look at the consumer index again.
        const auto data = pattern_bytes(capacity, 10);
        ASSERT_EQ(server->write_some(data).value_or(0), capacity);
        auto& right = shared_control().right;
        right.cons = right.prod + offset;

        EXPECT_EQ(error_of(server->write_some(std::span(data).first(1))), errc::ring_corrupt);
        EXPECT_EQ(error_of(server->send(std::span(data).first(1), operation_timeout)),
                  errc::ring_corrupt);
        EXPECT_EQ(error_of(server->try_reserve(8)), errc::ring_corrupt);
        std::array<std::byte, 16> buffer{};
        EXPECT_EQ(error_of(server->read_some(buffer)), errc::ring_corrupt);
        EXPECT_FALSE(client->peer_alive());
    }
}

// A consumer index that moves backwards but stays within a ring of the producer index looks
// plausible on its own; only the writer's memory of what it saw before shows it impossible.
TEST_P(RingChannelTest, shouldFailWithRingCorruptWhenThePeerMovesItsConsumerIndexBackwards) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const std::size_t capacity = server->write_capacity();
    const auto data = pattern_bytes(capacity, 14);
    ASSERT_EQ(server->write_some(data).value_or(0), capacity);
    std::vector<std::byte> half(capacity / 2);
    ASSERT_EQ(client->read_some(half).value_or(0), half.size());
    // The writer looks at the consumer index again (the ring was full) and sees half free.
    ASSERT_EQ(server->write_some(std::span(data).first(1)).value_or(0), 1u);

    auto& right = shared_control().right;
    right.cons -= static_cast<std::uint32_t>(capacity / 4);  // a quarter back: 3/4 + 1 "used"

    // Half a ring does not fit by the hostile index: the writer must look at it again.
    EXPECT_EQ(error_of(server->send(std::span(data).first(capacity / 2), 50ms)),
              errc::ring_corrupt);
    EXPECT_FALSE(client->peer_alive());
}

// In the byte stream a retreating producer index is caught at the latest when the reader has
// consumed what was published before: it never reads past what was published.
TEST_P(RingChannelTest, shouldFailWithRingCorruptWhenThePeerMovesProdBackwardsInTheStream) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const auto data = pattern_bytes(100, 15);
    ASSERT_EQ(client->write_some(data).value_or(0), data.size());
    std::array<std::byte, 50> first{};
    ASSERT_EQ(server->read_some(first).value_or(0), first.size());

    shared_control().left.prod = 60;  // was 100; the reader is at 50

    std::array<std::byte, 64> buffer{};
    std::size_t delivered = 0;
    std::error_code error;
    for (int attempt = 0; attempt < 4 && !error; ++attempt) {
        auto got = server->read_some(buffer);
        if (!got) {
            error = got.error();
        } else {
            EXPECT_TRUE(std::ranges::equal(std::span(buffer).first(*got),
                                           std::span(data).subspan(first.size() + delivered, *got)))
                << "only bytes that were published";
            delivered += *got;
        }
    }
    EXPECT_EQ(error, errc::ring_corrupt);
    EXPECT_LE(delivered, data.size() - first.size());
}

/// Play a hostile writer of an in-page ring: put `bytes` at its producer position and publish
/// `advance` more bytes.
void inject(vchan_page page, ring_geometry ring, ring_shared& indices,
            std::span<const std::byte> bytes, std::uint32_t advance) {
    const std::uint32_t prod = index_of(indices.prod);
    const std::size_t position = prod & (ring.size() - 1);
    std::memcpy(page.in_page_ring(ring) + position, bytes.data(), bytes.size());
    std::atomic_ref<std::uint32_t>(indices.prod).store(prod + advance, std::memory_order_release);
}

[[nodiscard]] std::array<std::byte, 8> header_bytes(std::uint32_t length, std::uint32_t kind) {
    std::array<std::byte, 8> bytes{};
    std::memcpy(bytes.data(), &length, 4);
    std::memcpy(bytes.data() + 4, &kind, 4);
    return bytes;
}

TEST_F(RingChannelTest, shouldFailWithRingCorruptWhenAFrameHeaderIsHostile) {
    // Orders 10/11: both rings live in the control page, where a test can write raw frames.
    const ring_orders in_page = orders(10, 11);
    struct hostile_frame {
        const char* name;
        std::uint32_t length;
        std::uint32_t kind;
        std::uint32_t advance;  // bytes the hostile writer publishes
        std::uint32_t skip;     // valid 8-byte frames written first, to move off offset 0
    };
    const hostile_frame cases[] = {
        {"huge length", 0xfffffff0u, frame_kind_data, 8, 0},
        {"length past the ring's end", 1024 - 8 + 1, frame_kind_data, 1024, 0},
        {"length past the ring's end after a frame", 1024 - 16 + 1, frame_kind_data, 1016, 1},
        {"unknown kind", 0, 7, 8, 0},
        {"padding shorter than the rest of the ring", 100, frame_kind_padding, 108, 0},
        {"padding longer than the rest of the ring", 1024 - 8, frame_kind_padding, 1016, 1},
        {"padding not fully published", 1024 - 8, frame_kind_padding, 8, 0},
    };
    for (const auto& hostile : cases) {
        SCOPED_TRACE(hostile.name);
        ASSERT_NO_FATAL_FAILURE(reconnect(in_page, wait_policy{.mode = wait_mode::block}));
        for (std::uint32_t i = 0; i < hostile.skip; ++i) {
            ASSERT_TRUE(write_test_frame(*client, 0, i));
            auto frame = server->try_read_frame();
            ASSERT_TRUE(frame && *frame);
            ASSERT_TRUE(server->release(*frame));
        }
        // The client's writes go to the left ring (order 10, at offset 1024 of the page).
        inject(server->control_page(), in_page.left, shared_control().left,
               header_bytes(hostile.length, hostile.kind), hostile.advance);
        EXPECT_EQ(error_of(server->try_read_frame()), errc::ring_corrupt);
        EXPECT_EQ(error_of(server->read_frame(operation_timeout)), errc::ring_corrupt);
        EXPECT_FALSE(client->peer_alive());
    }
}

TEST_F(RingChannelTest, shouldFailWithRingCorruptWhenTheServerWritesAHostileFrameHeader) {
    const ring_orders in_page = orders(10, 11);
    ASSERT_NO_FATAL_FAILURE(connect(in_page, wait_policy{.mode = wait_mode::block}));
    // The server's writes go to the right ring (order 11, at offset 2048 of the page).
    inject(client->control_page(), in_page.right, shared_control().right,
           header_bytes(0x7fffffffu, frame_kind_data), 8);
    EXPECT_EQ(error_of(client->try_read_frame()), errc::ring_corrupt);
    EXPECT_EQ(error_of(client->try_read_frame()), errc::ring_corrupt);
    EXPECT_FALSE(server->peer_alive());
}

TEST_F(RingChannelTest, shouldRefuseTheControlPageWhenItsOrdersAreInvalid) {
    struct hostile_orders {
        const char* name;
        std::uint16_t left;
        std::uint16_t right;
    };
    for (auto [name, left, right] :
         {hostile_orders{"left order 9", 9, 11}, hostile_orders{"left order 21", 21, 11},
          hostile_orders{"right order 9", 10, 9}, hostile_orders{"right order 21", 10, 21},
          hostile_orders{"equal in-page orders", 10, 10},
          hostile_orders{"grants overlapping the order-10 ring", 10, 20},
          hostile_orders{"shift count out of range", 0xffff, 11}}) {
        SCOPED_TRACE(name);
        auto made = vchan_server(world.server_domain(), address, orders(10, 11), wait_policy{});
        ASSERT_TRUE(made) << made.error().message();
        server.emplace(std::move(*made));
        auto& control = shared_control();
        control.left_order = left;
        control.right_order = right;

        auto refused =
            vchan_client(world.client_domain(), address, wait_policy{}, operation_timeout);
        EXPECT_EQ(error_of(refused), errc::invalid_order);
        server.reset();
    }
    EXPECT_TRUE(world.released()) << "a refused client releases what it mapped";
}

TEST_F(RingChannelTest, shouldRefuseTheControlPageWhenAGrantRefIsInvalid) {
    for (grant_ref hostile : {grant_ref{0}, grant_ref{0xdeadbeef}}) {
        SCOPED_TRACE(hostile);
        auto made = vchan_server(world.server_domain(), address, orders(12, 12), wait_policy{});
        ASSERT_TRUE(made) << made.error().message();
        server.emplace(std::move(*made));
        server->control_page().grant(1).store(hostile);

        auto refused =
            vchan_client(world.client_domain(), address, wait_policy{}, operation_timeout);
        EXPECT_EQ(error_of(refused), errc::invalid_grant);
        server.reset();
    }
    EXPECT_TRUE(world.released()) << "a refused client releases what it mapped";
}

// --- close ---------------------------------------------------------------------------------------

TEST_P(RingChannelTest, shouldReadEverythingWrittenBeforeCloseThenPeerGoneWhenTheClientCloses) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const auto data = pattern_bytes(client->write_capacity(), 11);
    ASSERT_TRUE(client->write_all(data, operation_timeout));
    client->close();
    EXPECT_FALSE(server->peer_alive());

    std::vector<std::byte> received(data.size());
    auto got = server->read_exact(received, operation_timeout);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_TRUE(std::ranges::equal(received, data));

    std::array<std::byte, 16> buffer{};
    EXPECT_EQ(error_of(server->read(buffer, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(server->read_some(buffer)), errc::peer_gone);
    EXPECT_EQ(error_of(server->read_exact(buffer, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(server->recv(buffer, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(server->try_read_frame()), errc::peer_gone);
    EXPECT_EQ(error_of(server->read_frame(operation_timeout)), errc::peer_gone);
}

// A write to a closed peer is not checked against its live byte at once: the ring only looks
// when its cached view of the free space runs out. What is documented, and tested: writes fail
// with peer_gone at the latest once a ring's worth has been accepted.
TEST_P(RingChannelTest, shouldFailWritesWithPeerGoneAtTheLatestWhenTheRingIsFull) {
    ASSERT_NO_FATAL_FAILURE(connect());
    client->close();
    const auto data = pattern_bytes(97, 12);
    std::size_t accepted = 0;
    std::error_code error;
    for (std::size_t attempt = 0; attempt <= server->write_capacity(); ++attempt) {
        auto written = server->write_some(data);
        if (!written) {
            error = written.error();
            break;
        }
        accepted += *written;
    }
    EXPECT_EQ(error, errc::peer_gone);
    EXPECT_LE(accepted, server->write_capacity());
    EXPECT_EQ(error_of(server->write_some(data)), errc::peer_gone);
    EXPECT_EQ(error_of(server->write(data, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(server->write_all(data, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(server->send(data, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(server->try_send(data)), errc::peer_gone);
}

TEST_P(RingChannelTest, shouldFailWithPeerGoneWhenOperatingOnTheClosedEnd) {
    ASSERT_NO_FATAL_FAILURE(connect());
    const auto data = pattern_bytes(16, 13);
    ASSERT_TRUE(server->write_all(data, operation_timeout));  // readable, yet closed
    client->close();
    client->close();  // idempotent

    std::array<std::byte, 16> buffer{};
    EXPECT_EQ(error_of(client->write_some(data)), errc::peer_gone);
    EXPECT_EQ(error_of(client->write(data, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->write_all(data, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->try_send(data)), errc::peer_gone);
    EXPECT_EQ(error_of(client->send(data, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->read_some(buffer)), errc::peer_gone);
    EXPECT_EQ(error_of(client->read(buffer, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->read_exact(buffer, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->try_recv(buffer)), errc::peer_gone);
    EXPECT_EQ(error_of(client->recv(buffer, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->try_reserve(8)), errc::peer_gone);
    EXPECT_EQ(error_of(client->reserve(8, operation_timeout)), errc::peer_gone);
    EXPECT_EQ(error_of(client->try_read_frame()), errc::peer_gone);
    EXPECT_EQ(error_of(client->read_frame(operation_timeout)), errc::peer_gone);
}

TEST_P(RingChannelTest, shouldWakeABlockedReaderWithPeerGoneWhenThePeerCloses) {
    ASSERT_NO_FATAL_FAILURE(connect_without_recheck());
    auto reader = std::async(std::launch::async, [&] {
        std::array<std::byte, 16> buffer{};
        return error_of(server->read(buffer, operation_timeout));
    });
    std::this_thread::sleep_for(20ms);  // most likely asleep by now; correct either way
    client->close();
    EXPECT_EQ(finish(reader, "blocked reader"), errc::peer_gone);
}

// --- unmap notification ------------------------------------------------------------------------

TEST_P(RingChannelTest, shouldWakeABlockedServerWithPeerGoneWhenTheClientIsDestroyed) {
    ASSERT_NO_FATAL_FAILURE(connect_without_recheck());
    auto reader = std::async(std::launch::async, [&] {
        std::array<std::byte, 16> buffer{};
        return error_of(server->read(buffer, operation_timeout));
    });
    std::this_thread::sleep_for(20ms);
    client.reset();  // unmaps the control page: the unmap notification zeroes cli_live and
                     // signals the port (loopback's, or on Xen the gntdev driver's)
    EXPECT_EQ(finish(reader, "blocked server"), errc::peer_gone);
    EXPECT_EQ(std::atomic_ref<std::uint8_t>(shared_control().cli_live).load(), live_exited);
    EXPECT_FALSE(server->peer_alive());

    server.reset();
    EXPECT_TRUE(world.released());
}

TEST_P(RingChannelTest, shouldWakeABlockedClientWithPeerGoneWhenTheServerIsDestroyed) {
    ASSERT_NO_FATAL_FAILURE(connect_without_recheck());
    auto reader = std::async(std::launch::async, [&] {
        std::array<std::byte, 16> buffer{};
        return error_of(client->read(buffer, operation_timeout));
    });
    std::this_thread::sleep_for(20ms);
    server.reset();
    EXPECT_EQ(finish(reader, "blocked client"), errc::peer_gone);
    EXPECT_FALSE(client->peer_alive());

    client.reset();
    EXPECT_TRUE(world.released());
}

// --- release -----------------------------------------------------------------------------------

// The worlds' leak check must see a live channel, or its passing elsewhere would prove nothing.
TEST_F(RingChannelTest, shouldReportResourcesHeldUntilBothEndsAreDestroyedWhenConnected) {
    ASSERT_NO_FATAL_FAILURE(connect(orders(12, 16), wait_policy{}));
    EXPECT_FALSE(world.released()) << "a connected vchan holds pages, ports and its offer";
    client.reset();
    EXPECT_FALSE(world.released()) << "the server still shares its pages and publishes its offer";
    server.reset();
    EXPECT_TRUE(world.released());
}

// --- generation --------------------------------------------------------------------------------

TEST_F(RingChannelTest, shouldFailOldHandlesWithStaleGenerationWhenTheChannelIsReattached) {
    ASSERT_NO_FATAL_FAILURE(connect(orders(10, 11), wait_policy{}));
    channel_handle<channel_type> handle(*server);
    const auto first_generation = server->generation();
    EXPECT_EQ(handle.generation(), first_generation);
    auto current = handle.get();
    ASSERT_TRUE(current) << current.error().message();
    EXPECT_EQ(*current, &*server);

    auto fresh =
        vchan_server(world.server_domain(), world.address("test2"), orders(12, 12), wait_policy{});
    ASSERT_TRUE(fresh) << fresh.error().message();
    server->reattach(std::move(*fresh));

    EXPECT_EQ(error_of(handle.get()), errc::stale_generation);
    EXPECT_EQ(server->generation(), first_generation + 1);
    EXPECT_EQ(server->write_capacity(), 4096u) << "the channel is the fresh one";
    channel_handle<channel_type> renewed(*server);
    EXPECT_TRUE(renewed.get());
    EXPECT_FALSE(client->peer_alive()) << "the old server end was closed";
}

// --- lossy notifications -------------------------------------------------------------------------

TEST_F(RingChannelTest, shouldDeliverEverythingInOrderWhenNotificationsAreDroppedAndDuplicated) {
    using faulty = faulty_backend<ring_world::backend_type>;
    faulty lossy_server(
        world.server_domain(),
        notification_faults{.drop_probability = 0.3, .duplicate_probability = 0.2, .seed = 41});
    faulty lossy_client(
        world.client_domain(),
        notification_faults{.drop_probability = 0.3, .duplicate_probability = 0.2, .seed = 42});
    const wait_policy policy{.mode = wait_mode::block, .recheck = 2ms};
    auto made_server = vchan_server(lossy_server, address, orders(12, 12), policy);
    ASSERT_TRUE(made_server) << made_server.error().message();
    auto made_client = vchan_client(lossy_client, address, policy, operation_timeout);
    ASSERT_TRUE(made_client) << made_client.error().message();
    ASSERT_TRUE(made_server->wait_connected(operation_timeout));
    ring_channel<faulty>& lossy_server_end = *made_server;
    ring_channel<faulty>& lossy_client_end = *made_client;

    // A 2 MB stream client -> server...
    constexpr std::size_t stream_bytes = 2'000'000;
    auto sender = std::async(std::launch::async, [&]() -> std::error_code {
        test::pattern source(stream_seed);
        std::vector<std::byte> chunk(1000);
        for (std::size_t sent = 0; sent < stream_bytes; sent += chunk.size()) {
            source.fill(chunk);
            if (auto done = lossy_client_end.write_all(chunk, operation_timeout); !done) {
                return done.error();
            }
        }
        return {};
    });
    {
        test::pattern expected_source(stream_seed);
        std::vector<std::byte> expected(1000);
        std::vector<std::byte> chunk(1000);
        for (std::size_t received = 0; received < stream_bytes; received += chunk.size()) {
            auto got = lossy_server_end.read_exact(chunk, operation_timeout);
            ASSERT_TRUE(got) << "at byte " << received << ": " << got.error().message();
            expected_source.fill(expected);
            ASSERT_TRUE(std::ranges::equal(chunk, expected)) << "at byte " << received;
        }
    }
    const auto stream_error = finish(sender, "lossy stream writer");
    EXPECT_FALSE(stream_error) << stream_error.message();

    // ...and a few thousand frames server -> client.
    constexpr std::uint32_t frames = 4000;
    const std::array<std::size_t, 4> sizes{0, 9, 200, 1000};
    auto frame_writer = std::async(std::launch::async, [&]() -> std::error_code {
        for (std::uint32_t i = 0; i < frames; ++i) {
            const std::size_t n = sizes[i % sizes.size()];
            auto frame = lossy_server_end.reserve(n, operation_timeout);
            if (!frame) {
                return frame.error();
            }
            fill_frame(frame->payload, i);
            if (auto done = lossy_server_end.commit(*frame, n); !done) {
                return done.error();
            }
        }
        return {};
    });
    for (std::uint32_t i = 0; i < frames; ++i) {
        auto frame = lossy_client_end.read_frame(operation_timeout);
        ASSERT_TRUE(frame) << "frame " << i << ": " << frame.error().message();
        ASSERT_EQ(frame->payload.size(), sizes[i % sizes.size()]) << "frame " << i;
        ASSERT_TRUE(frame_matches(frame->payload, i)) << "frame " << i;
        ASSERT_TRUE(lossy_client_end.release(*frame));
    }
    const auto frame_error = finish(frame_writer, "lossy frame writer");
    EXPECT_FALSE(frame_error) << frame_error.message();

    // The faults really happened, on both sides.
    EXPECT_GT(lossy_server.counts().dropped.load(), 0u);
    EXPECT_GT(lossy_server.counts().duplicated.load(), 0u);
    EXPECT_GT(lossy_client.counts().dropped.load(), 0u);
    EXPECT_GT(lossy_client.counts().duplicated.load(), 0u);
}

// --- lost wake-ups -------------------------------------------------------------------------------

// A channel is used by one thread at a time (channel.hpp), and both directions share its one
// event port: each end's thread writes and reads in turn while data flows both ways at once.
// Chunks of up to a ring are written before the peer has read the previous ones, so both
// ends block on full rings and empty rings, waking on the same port for either direction.
TEST_F(RingChannelTest, shouldDeliverBothStreamsWhenOneThreadPerEndWritesAndReadsInTurn) {
    ASSERT_NO_FATAL_FAILURE(
        connect(orders(10, 11), wait_policy{.mode = wait_mode::block, .recheck = forever}));
    const std::array<std::size_t, 4> chunks{1, 333, 1000, 1024};  // up to the smaller ring
    constexpr std::uint32_t turns = 3000;
    auto run_end = [&](channel_type& end, std::uint64_t out_seed,
                       std::uint64_t in_seed) -> std::error_code {
        test::pattern out(out_seed);
        test::pattern in(in_seed);
        std::vector<std::byte> buffer(1024);
        std::vector<std::byte> expected(1024);
        for (std::uint32_t turn = 0; turn < turns; ++turn) {
            const auto piece = std::span(buffer).first(chunks[turn % chunks.size()]);
            out.fill(piece);
            if (auto written = end.write_all(piece, operation_timeout); !written) {
                return written.error();
            }
            if (auto got = end.read_exact(piece, operation_timeout); !got) {
                return got.error();
            }
            const auto wanted = std::span(expected).first(piece.size());
            in.fill(wanted);
            if (!std::ranges::equal(piece, wanted)) {
                return errc::protocol_error;
            }
        }
        return {};
    };
    auto server_end = std::async(std::launch::async, run_end, std::ref(*server), 1, 2);
    const auto client_error = run_end(*client, 2, 1);
    const auto server_error = finish(server_end, "server end");
    EXPECT_FALSE(server_error) << "server: " << server_error.message();
    EXPECT_FALSE(client_error) << "client: " << client_error.message();
}

TEST_F(RingChannelTest, shouldCompleteEveryRoundTripWhenNoPeriodicRecheckCoversLostWakeUps) {
    // Without a periodic re-check a single lost notification would leave a side asleep until
    // operation_timeout: the ping-pong then fails with timed_out.
    ASSERT_NO_FATAL_FAILURE(
        connect(orders(10, 11), wait_policy{.mode = wait_mode::block, .recheck = forever}));
    constexpr std::uint32_t round_trips = 20000;
    auto echo = std::async(std::launch::async, [&]() -> std::error_code {
        std::array<std::byte, 4> ball{};
        for (std::uint32_t i = 0; i < round_trips; ++i) {
            if (auto got = server->recv(ball, operation_timeout); !got) {
                return got.error();
            }
            if (auto sent = server->send(ball, operation_timeout); !sent) {
                return sent.error();
            }
        }
        return {};
    });
    std::uint32_t completed = 0;
    for (; completed < round_trips; ++completed) {
        std::array<std::byte, 4> ball{};
        std::memcpy(ball.data(), &completed, sizeof completed);
        auto sent = client->send(ball, operation_timeout);
        ASSERT_TRUE(sent) << "round trip " << completed << ": " << sent.error().message();
        std::array<std::byte, 4> back{};
        auto got = client->recv(back, operation_timeout);
        ASSERT_TRUE(got) << "round trip " << completed << ": " << got.error().message();
        ASSERT_EQ(back, ball);
    }
    const auto echo_error = finish(echo, "echo server");
    EXPECT_FALSE(echo_error) << echo_error.message();
    EXPECT_EQ(completed, round_trips);
}

}  // namespace
}  // namespace vdist::transport
