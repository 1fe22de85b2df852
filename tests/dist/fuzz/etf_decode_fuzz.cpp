// libFuzzer target for the ETF decoder (`make fuzz`): any bytes go in; the decoder must either
// refuse them with a decode_error or return a term that survives decode -> encode -> decode
// unchanged, with the second encoding identical to the first. ASan and UBSan (enabled by the
// fuzz build) catch every out-of-bounds read, leak and undefined behaviour on the way.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_encoder.hpp"

namespace {

// Tighter than the defaults, so that the fuzzer spends its time on structure, not size.
constexpr vdist::dist::decode_limits fuzz_limits{
    .max_depth = 200,
    .max_terms = 100'000,
    .max_bignum_bytes = 4096,
    .max_new_atoms = 256,
    .max_decompressed_bytes = 1 << 20,
};

[[noreturn]] void violated(const char* what) {
    std::fprintf(stderr, "etf_decode_fuzz: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace vdist::dist;
    atom_table atoms(4096);
    const etf_decoder decoder(atoms, fuzz_limits);
    const auto input = std::as_bytes(std::span(data, size));
    const auto first = decoder.decode(input);
    if (!first) {
        if (first.error().offset > size) {
            violated("error offset beyond the input");
        }
        return 0;
    }
    const auto encoded = encode(*first);
    if (!encoded) {
        violated("a decoded term does not encode");
    }
    const auto second = decoder.decode(*encoded);
    if (!second) {
        violated("vdist's own encoding does not decode");
    }
    if (!(*second == *first)) {
        violated("decode -> encode -> decode changed the term");
    }
    const auto again = encode(*second);
    if (!again || *again != *encoded) {
        violated("encoding is not stable");
    }
    return 0;
}
