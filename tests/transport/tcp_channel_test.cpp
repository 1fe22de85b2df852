#include "vdist/transport/tcp_channel.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vdist/test/pattern.hpp"

namespace {

namespace vt = vdist::transport;
using namespace std::chrono_literals;
using steady_clock = std::chrono::steady_clock;

// Bounds for calls that should succeed quickly; they only turn a bug into a failure instead of
// a hang, and are never a performance assertion.
constexpr auto io_timeout = std::chrono::nanoseconds(10s);
constexpr auto short_timeout = std::chrono::nanoseconds(30ms);

template <class T>
T must(vt::result<T> outcome, std::string_view what) {
    if (!outcome) {
        throw std::runtime_error(std::string(what) + ": " + outcome.error().message());
    }
    return std::move(*outcome);
}

/// The byte at position `index` of every test stream: cheap, and a lost, repeated or
/// reordered byte shows up as a mismatch.
std::byte stream_byte(std::uint64_t index) {
    return static_cast<std::byte>((index * 0x9E3779B97F4A7C15ULL) >> 56);
}

void fill_stream(std::span<std::byte> bytes, std::uint64_t first_index) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = stream_byte(first_index + i);
    }
}

/// Index of the first byte of `bytes` that is not the stream at `first_index`, or size().
std::size_t first_mismatch(std::span<const std::byte> bytes, std::uint64_t first_index) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != stream_byte(first_index + i)) {
            return i;
        }
    }
    return bytes.size();
}

/// The error of a result, or no error: comparing `.error()` of a success would be UB.
template <class T>
std::error_code error_of(const vt::result<T>& outcome) {
    return outcome ? std::error_code() : outcome.error();
}

std::span<const std::byte> bytes_of(std::string_view text) {
    return std::as_bytes(std::span(text));
}

struct channel_pair {
    vt::tcp_channel client;
    vt::tcp_channel server;
};

/// Two channels connected over 127.0.0.1 through an ephemeral port.
channel_pair connect_pair(vt::tcp_options options = {}) {
    auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0, options), "listen");
    auto client =
        must(vt::tcp_channel::connect("127.0.0.1", listener.local_port(), io_timeout, options),
             "connect");
    auto server = must(listener.accept(io_timeout), "accept");
    return {std::move(client), std::move(server)};
}

/// Fill the kernel's buffers between `writer` and a `reader` that does not read, until the
/// kernel has taken nothing for 200 ms. Loopback keeps absorbing a little for a while after it
/// first refuses (it compacts the receiver's queue), so a test that needs a socket that stays
/// full waits for it to settle. Small socket buffers keep that quick.
void fill_until_stable(vt::tcp_channel& writer, vt::tcp_channel& reader) {
    const int small = 64 * 1024;
    ::setsockopt(writer.native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(reader.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const std::vector<std::byte> chunk(64 * 1024);
    const auto give_up = steady_clock::now() + 20s;
    auto last_progress = steady_clock::now();
    while (steady_clock::now() - last_progress < 200ms) {
        if (steady_clock::now() > give_up) {
            throw std::runtime_error("the socket never stayed full");
        }
        const auto written = writer.write(chunk, 20ms);
        if (written) {
            last_progress = steady_clock::now();
        } else if (written.error() != vt::errc::timed_out) {
            throw std::runtime_error("fill: " + written.error().message());
        }
    }
}

/// A plain blocking socket playing a peer that does not follow the rules.
class raw_peer {
  public:
    explicit raw_peer(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        if (fd_ < 0) {
            throw std::runtime_error("socket failed");
        }
        // Blocking calls on the raw side must not hang a failing test either.
        const timeval limit{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            throw std::runtime_error("connect failed");
        }
    }
    raw_peer(const raw_peer&) = delete;
    raw_peer& operator=(const raw_peer&) = delete;
    ~raw_peer() { close(); }

    void send_all(std::span<const std::byte> bytes) const {
        while (!bytes.empty()) {
            const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent <= 0) {
                throw std::runtime_error("raw send failed");
            }
            bytes = bytes.subspan(static_cast<std::size_t>(sent));
        }
    }

    /// Receive exactly `count` bytes (fewer when the stream ends first).
    std::vector<std::byte> receive(std::size_t count) const {
        std::vector<std::byte> bytes(count);
        std::size_t have = 0;
        while (have < count) {
            const auto got = ::recv(fd_, bytes.data() + have, count - have, 0);
            if (got <= 0) {
                break;
            }
            have += static_cast<std::size_t>(got);
        }
        bytes.resize(have);
        return bytes;
    }

    void close() {
        if (fd_ >= 0) {
            ::close(std::exchange(fd_, -1));
        }
    }

  private:
    int fd_;
};

std::array<std::byte, 8> frame_header(std::uint32_t length, std::uint32_t kind) {
    std::array<std::byte, 8> header{};
    for (std::size_t i = 0; i < 4; ++i) {
        header[i] = static_cast<std::byte>(length >> (8 * i));
        header[4 + i] = static_cast<std::byte>(kind >> (8 * i));
    }
    return header;
}

/// Runs every job on its own thread. If they have not all finished within `limit`, the test
/// fails and `unstick` runs (closing the channels wakes every blocked call); if even that does
/// not end them, the process aborts rather than hang the suite.
void run_with_watchdog(std::vector<std::function<void()>> jobs,
                       const std::function<void()>& unstick, std::chrono::seconds limit = 30s) {
    std::vector<std::future<void>> running;
    for (auto& job : jobs) {
        running.push_back(std::async(std::launch::async, std::move(job)));
    }
    const auto deadline = steady_clock::now() + limit;
    bool expired = false;
    for (auto& job : running) {
        if (job.wait_until(deadline) != std::future_status::ready) {
            expired = true;
        }
    }
    if (expired) {
        ADD_FAILURE() << "watchdog: jobs still running after " << limit.count() << " s";
        unstick();
        for (auto& job : running) {
            if (job.wait_for(5s) != std::future_status::ready) {
                std::fprintf(stderr, "watchdog: jobs stuck even after unstick; aborting\n");
                std::abort();
            }
        }
    }
    for (auto& job : running) {
        job.get();
    }
}

// ---- byte stream ----

TEST(TcpChannelTest, shouldDeliverTenMegabytesIntactWhenStreamedBetweenThreads) {
    auto [client, server] = connect_pair();
    constexpr std::size_t total = 10 * 1024 * 1024;
    std::vector<std::byte> sent(total);
    fill_stream(sent, 0);
    std::vector<std::byte> received(total);

    auto writer = [&] {
        std::mt19937 random(1);
        std::uniform_int_distribution<std::size_t> chunk(1, 256 * 1024);
        for (std::size_t offset = 0; offset < total;) {
            const auto size = std::min(chunk(random), total - offset);
            const auto written =
                client.write_all(std::span(sent).subspan(offset, size), io_timeout);
            ASSERT_TRUE(written) << written.error().message();
            offset += size;
        }
    };
    auto reader = [&] {
        std::mt19937 random(2);
        std::uniform_int_distribution<std::size_t> chunk(1, 128 * 1024);
        for (std::size_t offset = 0; offset < total;) {
            const auto size = std::min(chunk(random), total - offset);
            const auto got = server.read(std::span(received).subspan(offset, size), io_timeout);
            ASSERT_TRUE(got) << got.error().message();
            offset += *got;
        }
    };
    run_with_watchdog({writer, reader}, [&] {
        client.close();
        server.close();
    });

    vdist::test::fnv1a sent_checksum;
    vdist::test::fnv1a received_checksum;
    sent_checksum.update(sent);
    received_checksum.update(received);
    EXPECT_EQ(received_checksum.value(), sent_checksum.value());
    EXPECT_EQ(first_mismatch(received, 0), total);
    EXPECT_EQ(client.statistics().bytes_sent, total);
    EXPECT_EQ(server.statistics().bytes_received, total);
}

TEST(TcpChannelTest, shouldQueueWholeMessagesButNoPartialBytesWhenKernelBufferIsFull) {
    auto [client, server] = connect_pair();
    std::uint64_t position = 0;

    // Fill the kernel's buffers: the server does not read yet.
    std::vector<std::byte> chunk(64 * 1024);
    bool kernel_full = false;
    for (int attempt = 0; attempt < 100000 && !kernel_full; ++attempt) {
        fill_stream(chunk, position);
        const auto written = client.write_some(chunk);
        ASSERT_TRUE(written) << written.error().message();
        position += *written;
        kernel_full = *written == 0;
    }
    ASSERT_TRUE(kernel_full);
    EXPECT_EQ(client.pending_bytes(), 0U) << "a partial write must not leave bytes queued";

    // All-or-nothing writes are queued whole until the queue has no room for one more.
    std::vector<std::byte> message(1000);
    std::size_t queued_messages = 0;
    bool queue_full = false;
    for (int attempt = 0; attempt < 100000 && !queue_full; ++attempt) {
        fill_stream(message, position);
        const auto status = client.try_send(message);
        ASSERT_TRUE(status) << status.error().message();
        if (*status == vt::write_status::sent) {
            position += message.size();
            ++queued_messages;
        } else {
            queue_full = true;
        }
    }
    ASSERT_TRUE(queue_full);
    EXPECT_GT(queued_messages, 0U);
    EXPECT_GT(client.pending_bytes() + message.size(),
              vt::frame_footprint(client.max_message_size()));
    EXPECT_LE(client.pending_bytes(), vt::frame_footprint(client.max_message_size()));

    // A partial write may never overtake queued bytes.
    const auto pending_before = client.pending_bytes();
    const auto overtaking = client.write_some(chunk);
    ASSERT_TRUE(overtaking);
    if (client.pending_bytes() != 0) {
        EXPECT_EQ(*overtaking, 0U);
    }
    EXPECT_LE(client.pending_bytes(), pending_before);
    position += *overtaking;

    const auto total = position;
    std::vector<std::byte> received(total);
    run_with_watchdog({[&] {
                           const auto flushed = client.flush(io_timeout);
                           EXPECT_TRUE(flushed) << flushed.error().message();
                       },
                       [&] {
                           const auto got = server.read_exact(received, io_timeout);
                           EXPECT_TRUE(got) << got.error().message();
                       }},
                      [&] {
                          client.close();
                          server.close();
                      });
    EXPECT_EQ(first_mismatch(received, 0), total);
    EXPECT_EQ(client.pending_bytes(), 0U);
}

TEST(TcpChannelTest,
     shouldReportEmptyFromTryRecvButReturnBytesFromReadSomeWhenMessageIsIncomplete) {
    auto [client, server] = connect_pair();
    ASSERT_TRUE(client.write_all(bytes_of("abc"), io_timeout));
    pollfd readable{server.native_handle(), POLLIN, 0};
    ASSERT_EQ(::poll(&readable, 1, 10000), 1);

    std::array<std::byte, 8> message{};
    const auto incomplete = server.try_recv(message);
    ASSERT_TRUE(incomplete) << incomplete.error().message();
    EXPECT_EQ(*incomplete, vt::read_status::empty);

    ASSERT_TRUE(client.write_all(bytes_of("defgh"), io_timeout));
    const auto whole = server.recv(message, io_timeout);
    ASSERT_TRUE(whole) << whole.error().message();
    EXPECT_EQ(std::memcmp(message.data(), "abcdefgh", 8), 0);

    ASSERT_TRUE(client.write_all(bytes_of("xyz"), io_timeout));
    std::array<std::byte, 8> partial{};
    const auto got = server.read(partial, io_timeout);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_GE(*got, 1U);
    ASSERT_LE(*got, 3U);
    EXPECT_EQ(std::memcmp(partial.data(), "xyz", *got), 0);

    const auto nothing = server.read_some(partial);
    if (*got == 3) {
        ASSERT_TRUE(nothing);
        EXPECT_EQ(*nothing, 0U);
    }
}

TEST(TcpChannelTest, shouldRefuseOversizedMessagesAndFramesWhenTheyCanNeverFit) {
    auto [client, server] = connect_pair({.max_message_size = 4096});
    EXPECT_EQ(client.max_message_size(), 4096U);
    EXPECT_EQ(client.max_frame_payload(), 4096U);
    std::vector<std::byte> oversized(4097);

    EXPECT_EQ(error_of(client.try_send(oversized)), vt::errc::frame_too_large);
    EXPECT_EQ(error_of(client.send(oversized, io_timeout)), vt::errc::frame_too_large);
    EXPECT_EQ(error_of(client.try_reserve(4097)), vt::errc::frame_too_large);
    EXPECT_EQ(error_of(server.try_recv(oversized)), vt::errc::frame_too_large);
    EXPECT_EQ(error_of(server.recv(oversized, io_timeout)), vt::errc::frame_too_large);

    // The limit itself fits, as a message and as a frame.
    const std::span<const std::byte> largest(oversized.data(), 4096);
    ASSERT_TRUE(client.send(largest, io_timeout));
    auto frame = must(client.reserve(4096, io_timeout), "reserve");
    ASSERT_TRUE(client.commit(frame, 4096));
    std::vector<std::byte> message(4096);
    ASSERT_TRUE(server.recv(message, io_timeout));
    auto read = must(server.read_frame(io_timeout), "read_frame");
    EXPECT_EQ(read.payload.size(), 4096U);
    EXPECT_TRUE(server.release(read));
}

// ---- back-pressure ----

TEST(TcpChannelTest, shouldReportFullWithoutLosingMessagesWhenPeerDoesNotRead) {
    auto [client, server] = connect_pair({.max_message_size = 64 * 1024});
    constexpr std::size_t message_size = 4096;
    auto make_message = [](std::uint64_t sequence) {
        std::vector<std::byte> message(message_size);
        fill_stream(message, sequence * message_size);
        return message;
    };

    std::uint64_t sent = 0;
    bool full = false;
    for (int attempt = 0; attempt < 1000000 && !full; ++attempt) {
        const auto status = client.try_send(make_message(sent));
        ASSERT_TRUE(status) << status.error().message();
        full = *status == vt::write_status::full;
        if (!full) {
            ++sent;
        }
    }
    ASSERT_TRUE(full);
    EXPECT_GT(client.pending_bytes(), 0U);

    std::uint64_t received = 0;
    run_with_watchdog(
        {[&] {
             const auto flushed = client.flush(io_timeout);
             EXPECT_TRUE(flushed) << flushed.error().message();
         },
         [&] {
             std::vector<std::byte> message(message_size);
             for (; received < sent; ++received) {
                 const auto got = server.recv(message, io_timeout);
                 ASSERT_TRUE(got) << got.error().message();
                 ASSERT_EQ(first_mismatch(message, received * message_size), message_size)
                     << "message " << received;
             }
         }},
        [&] {
            client.close();
            server.close();
        });
    EXPECT_EQ(received, sent);

    // Nothing beyond what was reported sent arrived, and the channel takes messages again.
    std::vector<std::byte> message(message_size);
    EXPECT_EQ(server.try_recv(message).value(), vt::read_status::empty);
    ASSERT_EQ(client.try_send(make_message(sent)).value(), vt::write_status::sent);
    ASSERT_TRUE(client.flush(io_timeout));
    ASSERT_TRUE(server.recv(message, io_timeout));
    EXPECT_EQ(first_mismatch(message, sent * message_size), message_size);
}

TEST(TcpChannelTest, shouldReturnNoFrameFromTryReserveWhenQueueIsFull) {
    auto [client, server] = connect_pair({.max_message_size = 64 * 1024});
    fill_until_stable(client, server);

    // Largest frames: the second fits only once the kernel has taken all of the first, which
    // a peer that does not read never allows.
    const auto largest = client.max_frame_payload();
    auto first = must(client.try_reserve(largest), "try_reserve");
    ASSERT_TRUE(first);
    ASSERT_TRUE(client.commit(first, largest));
    EXPECT_FALSE(must(client.try_reserve(largest), "try_reserve"));
    EXPECT_EQ(error_of(client.reserve(largest, short_timeout)), vt::errc::timed_out);
    EXPECT_GT(client.pending_bytes(), 0U);
}

// ---- frames ----

TEST(TcpChannelTest, shouldDeliverShrunkFrameWhenCommittedWithFewerBytes) {
    auto [client, server] = connect_pair();
    auto frame = must(client.reserve(100, io_timeout), "reserve");
    ASSERT_EQ(frame.payload.size(), 100U);
    EXPECT_EQ(frame.footprint, vt::frame_footprint(100));
    std::memcpy(frame.payload.data(), "hello", 5);
    ASSERT_TRUE(client.commit(frame, 5));

    auto read = must(server.read_frame(io_timeout), "read_frame");
    ASSERT_EQ(read.payload.size(), 5U);
    EXPECT_EQ(read.footprint, 16U);
    EXPECT_EQ(std::memcmp(read.payload.data(), "hello", 5), 0);
    ASSERT_TRUE(server.release(read));

    EXPECT_EQ(client.statistics().frames_sent, 1U);
    EXPECT_EQ(client.statistics().bytes_sent, 16U);
    EXPECT_EQ(server.statistics().frames_received, 1U);
}

TEST(TcpChannelTest, shouldSpeakChannelWireFormatWhenPeerIsAnotherImplementation) {
    auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0), "listen");
    raw_peer raw(listener.local_port());
    auto channel = must(listener.accept(io_timeout), "accept");

    auto frame = must(channel.reserve(64, io_timeout), "reserve");
    std::memset(frame.payload.data(), 0xAA, frame.payload.size());
    std::memcpy(frame.payload.data(), "hello", 5);
    ASSERT_TRUE(channel.commit(frame, 5));
    const std::vector<std::byte> expected = {
        std::byte{5},   std::byte{0},   std::byte{0},   std::byte{0},
        std::byte{0},   std::byte{0},   std::byte{0},   std::byte{0},
        std::byte{'h'}, std::byte{'e'}, std::byte{'l'}, std::byte{'l'},
        std::byte{'o'}, std::byte{0},   std::byte{0},   std::byte{0}};
    EXPECT_EQ(raw.receive(expected.size()), expected);

    // Two frames in one segment, then a zero-length frame.
    std::vector<std::byte> wire;
    for (const auto& [payload, padding] :
         {std::pair<std::string_view, std::size_t>{"abc", 5}, {"12345678", 0}, {"", 0}}) {
        const auto header = frame_header(static_cast<std::uint32_t>(payload.size()), 0);
        wire.insert(wire.end(), header.begin(), header.end());
        const auto bytes = bytes_of(payload);
        wire.insert(wire.end(), bytes.begin(), bytes.end());
        wire.insert(wire.end(), padding, std::byte{0});
    }
    raw.send_all(wire);
    for (const std::string_view payload : {"abc", "12345678", ""}) {
        auto read = must(channel.read_frame(io_timeout), "read_frame");
        EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(read.payload.data()),
                                   read.payload.size()),
                  payload);
        EXPECT_EQ(read.footprint, vt::frame_footprint(payload.size()));
        ASSERT_TRUE(channel.release(read));
    }
}

TEST(TcpChannelTest, shouldDeliverEveryFrameWhenManyAreCommittedInOneBatch) {
    auto [client, server] = connect_pair();
    constexpr std::size_t frame_count = 2000;
    auto payload_size = [](std::size_t index) { return (index * 37) % 301; };

    std::size_t queued_bytes = 0;
    client.begin_batch();
    for (std::size_t i = 0; i < frame_count; ++i) {
        auto frame = must(client.try_reserve(300), "try_reserve");
        ASSERT_TRUE(frame) << "frame " << i;
        fill_stream(frame.payload, i * 1000);
        ASSERT_TRUE(client.commit(frame, payload_size(i)));
        queued_bytes += vt::frame_footprint(payload_size(i));
    }
    // Everything fits in the queue, so nothing may have been sent inside the batch.
    EXPECT_EQ(client.statistics().bytes_sent, 0U);
    EXPECT_EQ(client.pending_bytes(), queued_bytes);

    run_with_watchdog({[&] {
                           const auto ended = client.end_batch();
                           EXPECT_TRUE(ended) << ended.error().message();
                           const auto flushed = client.flush(io_timeout);
                           EXPECT_TRUE(flushed) << flushed.error().message();
                       },
                       [&] {
                           for (std::size_t i = 0; i < frame_count; ++i) {
                               auto frame = server.read_frame(io_timeout);
                               ASSERT_TRUE(frame) << frame.error().message();
                               ASSERT_EQ(frame->payload.size(), payload_size(i)) << "frame " << i;
                               ASSERT_EQ(first_mismatch(frame->payload, i * 1000), payload_size(i));
                               ASSERT_TRUE(server.release(*frame));
                           }
                       }},
                      [&] {
                          client.close();
                          server.close();
                      });
    EXPECT_EQ(client.statistics().frames_sent, frame_count);
    EXPECT_EQ(server.statistics().frames_received, frame_count);
    EXPECT_EQ(server.statistics().bytes_received, queued_bytes);
}

TEST(TcpChannelTest, shouldFailWithMisalignedFrameWhenFramesAreNotReleasedOrCommittedInOrder) {
    auto [client, server] = connect_pair();
    for (int i = 0; i < 2; ++i) {
        auto frame = must(client.reserve(8, io_timeout), "reserve");
        EXPECT_EQ(error_of(client.try_reserve(8)), vt::errc::misaligned_frame);
        EXPECT_EQ(error_of(client.write_some(bytes_of("x"))), vt::errc::misaligned_frame);
        ASSERT_TRUE(client.commit(frame, 8));
        EXPECT_EQ(error_of(client.commit(frame, 8)), vt::errc::misaligned_frame);
    }

    auto first = must(server.read_frame(io_timeout), "read_frame");
    EXPECT_EQ(error_of(server.try_read_frame()), vt::errc::misaligned_frame);
    std::array<std::byte, 4> bytes{};
    EXPECT_EQ(error_of(server.read_some(bytes)), vt::errc::misaligned_frame);
    ASSERT_TRUE(server.release(first));
    EXPECT_EQ(error_of(server.release(first)), vt::errc::misaligned_frame);
    auto second = must(server.read_frame(io_timeout), "read_frame");
    EXPECT_TRUE(server.release(second));
}

// ---- hostile peer ----

/// The channel's answer to a raw peer that sends `wire` and then waits.
void expect_ring_corrupt_and_closed_when_peer_sends(std::span<const std::byte> wire,
                                                    vt::tcp_options options = {}) {
    auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0, options), "listen");
    raw_peer raw(listener.local_port());
    auto channel = must(listener.accept(io_timeout), "accept");
    raw.send_all(wire);

    const auto frame = channel.read_frame(io_timeout);
    ASSERT_FALSE(frame);
    EXPECT_EQ(error_of(frame), vt::errc::ring_corrupt);
    std::array<std::byte, 8> bytes{};
    EXPECT_EQ(error_of(channel.read_some(bytes)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(channel.write_some(bytes)), vt::errc::peer_gone);
    EXPECT_TRUE(raw.receive(1).empty()) << "the channel must close the connection";
}

TEST(TcpChannelTest, shouldFailWithRingCorruptWhenFrameLengthIsImpossible) {
    const auto header = frame_header(0xFFFFFFF0, vt::frame_kind_data);
    expect_ring_corrupt_and_closed_when_peer_sends(header);
}

TEST(TcpChannelTest, shouldFailWithRingCorruptWhenFrameIsLargerThanReceiverAllows) {
    const auto header = frame_header(4097, vt::frame_kind_data);
    expect_ring_corrupt_and_closed_when_peer_sends(header, {.max_message_size = 4096});
}

TEST(TcpChannelTest, shouldFailWithRingCorruptWhenFrameKindIsUnknown) {
    std::vector<std::byte> wire(16);
    const auto header = frame_header(8, 7);
    std::copy(header.begin(), header.end(), wire.begin());
    expect_ring_corrupt_and_closed_when_peer_sends(wire);
}

TEST(TcpChannelTest, shouldFailWithRingCorruptWhenPeerSendsPaddingFrame) {
    const auto header = frame_header(0, vt::frame_kind_padding);
    expect_ring_corrupt_and_closed_when_peer_sends(header);
}

TEST(TcpChannelTest, shouldReportPeerGoneWhenPeerClosesInsideFrame) {
    auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0), "listen");
    raw_peer raw(listener.local_port());
    auto channel = must(listener.accept(io_timeout), "accept");
    const auto header = frame_header(100, vt::frame_kind_data);
    raw.send_all(header);
    raw.send_all(std::vector<std::byte>(10));
    raw.close();

    EXPECT_EQ(error_of(channel.read_frame(io_timeout)), vt::errc::peer_gone);
}

// ---- peer going away ----

TEST(TcpChannelTest, shouldDeliverRemainingBytesThenPeerGoneWhenPeerClosesMidStream) {
    auto [client, server] = connect_pair();
    constexpr std::size_t total = 60000;
    std::vector<std::byte> sent(total);
    fill_stream(sent, 0);
    ASSERT_TRUE(client.write_all(sent, io_timeout));
    client.close();

    std::vector<std::byte> received(total);
    ASSERT_TRUE(server.read_exact(received, io_timeout));
    EXPECT_EQ(first_mismatch(received, 0), total);
    std::array<std::byte, 8> more{};
    EXPECT_EQ(error_of(server.read(more, io_timeout)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(server.read_some(more)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(server.try_recv(more)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(server.read_frame(io_timeout)), vt::errc::peer_gone);
}

TEST(TcpChannelTest, shouldReportPeerGoneWhenWritingAfterPeerClosed) {
    auto [client, server] = connect_pair();
    server.close();

    // The first writes may still be accepted locally; the peer's reset then fails the next.
    const auto give_up = steady_clock::now() + 5s;
    vt::result<std::size_t> written = 0;
    while (written && steady_clock::now() < give_up) {
        written = client.write(bytes_of("ping"), short_timeout);
        if (!written && written.error() == vt::errc::timed_out) {
            written = 0;
        }
        std::this_thread::sleep_for(1ms);
    }
    ASSERT_FALSE(written);
    EXPECT_EQ(error_of(written), vt::errc::peer_gone);
}

TEST(TcpChannelTest, shouldReportPeerGoneWhenPeerProcessIsKilled) {
    auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0), "listen");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(listener.local_port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // Only async-signal-safe calls between fork() and _exit(): the parent may have threads.
        const int peer = ::socket(AF_INET, SOCK_STREAM, 0);
        if (peer < 0 ||
            ::connect(peer, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            ::_exit(1);
        }
        for (;;) {
            ::pause();
        }
    }
    struct reaper {
        pid_t pid;
        ~reaper() {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    } reap_child{child};

    auto server = must(listener.accept(io_timeout), "accept");
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    const auto killed_at = steady_clock::now();
    std::array<std::byte, 8> bytes{};
    // A liveness bound, not a performance assertion: the kernel closes a dead process's
    // sockets at once, so this normally takes well under a millisecond.
    const auto got = server.read(bytes, 2s);
    const auto detection = steady_clock::now() - killed_at;
    ASSERT_FALSE(got);
    EXPECT_EQ(error_of(got), vt::errc::peer_gone);
    const auto detection_us =
        std::chrono::duration_cast<std::chrono::microseconds>(detection).count();
    RecordProperty("peer_gone_after_kill_us", std::to_string(detection_us));
    std::printf("peer_gone %lld us after SIGKILL\n", static_cast<long long>(detection_us));
}

// ---- close, timeouts, setup ----

TEST(TcpChannelTest, shouldFailWithPeerGoneWhenUsedAfterClose) {
    auto [client, server] = connect_pair();
    client.close();
    client.close();
    std::array<std::byte, 8> bytes{};
    EXPECT_EQ(error_of(client.write_some(bytes)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.write_all(bytes, io_timeout)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.try_send(bytes)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.try_reserve(8)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.flush()), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.read_some(bytes)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.recv(bytes, io_timeout)), vt::errc::peer_gone);
    EXPECT_EQ(error_of(client.try_read_frame()), vt::errc::peer_gone);
    EXPECT_EQ(error_of(server.read(bytes, io_timeout)), vt::errc::peer_gone);
}

TEST(TcpChannelTest, shouldWakeBlockedReaderWhenChannelIsClosedFromAnotherThread) {
    auto [client, server] = connect_pair();
    vt::result<std::size_t> got = 0;
    run_with_watchdog({[&] {
                           std::array<std::byte, 8> bytes{};
                           got = server.read(bytes, std::chrono::nanoseconds::max());
                       },
                       [&] {
                           std::this_thread::sleep_for(50ms);
                           server.close();
                       }},
                      [&] { server.close(); });
    ASSERT_FALSE(got);
    EXPECT_EQ(error_of(got), vt::errc::peer_gone);
}

TEST(TcpChannelTest, shouldFailWithTimedOutWhenNothingArrives) {
    auto [client, server] = connect_pair();
    std::array<std::byte, 8> bytes{};
    EXPECT_EQ(error_of(server.read(bytes, short_timeout)), vt::errc::timed_out);
    EXPECT_EQ(error_of(server.read_exact(bytes, short_timeout)), vt::errc::timed_out);
    EXPECT_EQ(error_of(server.recv(bytes, short_timeout)), vt::errc::timed_out);
    EXPECT_EQ(error_of(server.read_frame(short_timeout)), vt::errc::timed_out);
    EXPECT_EQ(error_of(server.read(bytes, 0ns)), vt::errc::timed_out);
    EXPECT_EQ(must(server.read_some(bytes), "read_some"), 0U);
    EXPECT_EQ(must(server.try_recv(bytes), "try_recv"), vt::read_status::empty);
    EXPECT_FALSE(must(server.try_read_frame(), "try_read_frame"));
}

TEST(TcpChannelTest, shouldFailWithTimedOutWhenPeerDoesNotRead) {
    auto [client, server] = connect_pair({.max_message_size = 64 * 1024});
    fill_until_stable(client, server);
    const std::vector<std::byte> message(64 * 1024);
    EXPECT_EQ(error_of(client.write_all(message, short_timeout)), vt::errc::timed_out);

    // The first message is accepted into the queue; the next one finds no room.
    EXPECT_TRUE(client.send(message, short_timeout));
    EXPECT_EQ(error_of(client.send(message, short_timeout)), vt::errc::timed_out);
    EXPECT_EQ(error_of(client.flush(short_timeout)), vt::errc::timed_out);
    EXPECT_EQ(error_of(client.write(message, short_timeout)), vt::errc::timed_out);
}

TEST(TcpChannelTest, shouldFailWithTimedOutWhenNobodyConnects) {
    auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0), "listen");
    EXPECT_NE(listener.local_port(), 0);
    EXPECT_EQ(error_of(listener.accept(short_timeout)), vt::errc::timed_out);
}

TEST(TcpChannelTest, shouldFailWithConnectionRefusedWhenNobodyListens) {
    std::uint16_t port = 0;
    {
        auto listener = must(vt::tcp_listener::listen("127.0.0.1", 0), "listen");
        port = listener.local_port();
    }
    const auto channel = vt::tcp_channel::connect("127.0.0.1", port, io_timeout);
    ASSERT_FALSE(channel);
    EXPECT_EQ(error_of(channel), std::errc::connection_refused);
}

TEST(TcpChannelTest, shouldRejectOptionsWhenMaxMessageSizeIsOutOfRange) {
    EXPECT_EQ(error_of(vt::tcp_listener::listen("127.0.0.1", 0, {.max_message_size = 0})),
              std::errc::invalid_argument);
    EXPECT_EQ(error_of(vt::tcp_channel::connect(
                  "127.0.0.1", 1, io_timeout, {.max_message_size = vt::tcp_max_message_limit + 1})),
              std::errc::invalid_argument);
}

TEST(TcpChannelTest, shouldExposeSocketWithNoDelayAndGenerationOneWhenConnected) {
    auto [client, server] = connect_pair();
    for (const auto* channel : {&client, &server}) {
        EXPECT_EQ(channel->generation(), 1U);
        EXPECT_EQ(channel->max_message_size(), std::size_t{1} << 20);
        int no_delay = 0;
        socklen_t length = sizeof no_delay;
        ASSERT_EQ(
            ::getsockopt(channel->native_handle(), IPPROTO_TCP, TCP_NODELAY, &no_delay, &length),
            0);
        EXPECT_NE(no_delay, 0);
    }
}

}  // namespace
