// libFuzzer target for what a connected peer sends (`make fuzz`): the bytes of a handshake to
// an acceptor or an initiator, and the packet stream after it (both framings). The first byte
// picks the target and how the rest is cut into reads. Properties: no crash, leak or undefined
// behaviour (ASan, UBSan); a handshake ends done, failed or waiting, never consumes more than it
// was given; every message the packet reader accepts is written again by the packet writer,
// and that packet reads back as one message.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "vdist/dist/control.hpp"
#include "vdist/dist/handshake.hpp"

namespace {

using namespace vdist::dist;

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "dist_stream_fuzz: %s\n", what);
    std::abort();
}

handshake_config config() {
    handshake_config c;
    c.this_node = "fuzz@127.0.0.1";
    c.creation = 7;
    c.cookie = "cookie";
    c.random_challenge = [] { return 1200541992u; };
    return c;
}

void fuzz_handshake(bool initiate, std::span<const std::byte> input, std::size_t chunk) {
    auto hs =
        initiate ? handshake::initiate(config(), "peer@127.0.0.1") : handshake::accept(config());
    (void)hs.take_output();
    while (!input.empty()) {
        const auto piece = input.first(std::min(chunk, input.size()));
        const std::size_t used = hs.feed(piece);
        if (used > piece.size()) {
            violated("handshake consumed more than it was given");
        }
        (void)hs.take_output();
        switch (hs.state()) {
            case handshake_state::in_progress:
                if (used != piece.size()) {
                    violated("an in-progress handshake left bytes unconsumed");
                }
                break;
            case handshake_state::needs_status:
                hs.set_status(handshake_status::ok);
                break;
            case handshake_state::needs_alive_answer:
                hs.set_alive_answer(true);
                break;
            case handshake_state::done:
            case handshake_state::failed:
                return;
        }
        input = input.subspan(used);
    }
}

void fuzz_packets(std::uint64_t flags, std::span<const std::byte> input, std::size_t chunk) {
    atom_table atoms(4096);
    packet_limits limits;
    limits.max_packet_bytes = 1 << 20;
    limits.max_fragment_bytes = 1 << 20;
    limits.max_open_sequences = 16;
    limits.terms.max_depth = 200;
    limits.terms.max_terms = 100'000;
    limits.terms.max_new_atoms = 256;
    limits.terms.max_decompressed_bytes = 1 << 20;
    packet_reader reader(flags, atoms, limits);
    packet_writer writer(flags);
    while (!input.empty()) {
        const auto piece = input.first(std::min(chunk, input.size()));
        reader.feed(piece);
        input = input.subspan(piece.size());
        for (;;) {
            auto next = reader.next();
            if (!next) {
                return;  // refused: the connection would end here
            }
            if (!*next) {
                break;
            }
            std::vector<std::byte> again;
            if (!writer.write(again, **next)) {
                continue;  // a term the writer cannot carry (e.g. from a legacy encoding)
            }
            if (again.empty()) {
                continue;  // an unlink ack to a peer without UNLINK_ID: nothing to send
            }
            packet_reader check(flags, atoms, limits);
            check.feed(again);
            auto back = check.next();
            if (!back || !*back) {
                violated("a packet written by packet_writer does not read back");
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    const auto selector = data[0];
    const auto input = std::as_bytes(std::span(data + 1, size - 1));
    const std::size_t chunk = std::size_t{1} + (selector >> 2);  // 1..64 bytes per read
    switch (selector & 3u) {
        case 0:
            fuzz_handshake(false, input, chunk);
            break;
        case 1:
            fuzz_handshake(true, input, chunk);
            break;
        case 2:
            fuzz_packets(vdist_flags, input, chunk);  // distribution header, atom cache, fragments
            break;
        default:
            fuzz_packets(mandatory_flags_26, input, chunk);  // pass-through
            break;
    }
    return 0;
}
