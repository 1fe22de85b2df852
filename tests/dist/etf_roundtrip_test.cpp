// A random round trip against a real Erlang: OTP 25 (escript, tests/dist/erlang/roundtrip.escript)
// generates thousands of random terms of every type with a fixed seed, in every encoding
// term_to_binary offers; vdist decodes and re-encodes each one; Erlang then checks that
// binary_to_term of vdist's bytes is exactly the original term and that the bytes are what
// term_to_binary(T, [{minor_version, 2}]) gives.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "vdist/dist/etf_decoder.hpp"
#include "vdist/dist/etf_encoder.hpp"
#include "vdist/test/child_process.hpp"

namespace vdist::dist {
namespace {

using namespace std::chrono_literals;

const std::filesystem::path roundtrip_script = VDIST_ROUNDTRIP_SCRIPT;
constexpr int seed = 20261127;
constexpr int term_count = 3000;

using test::on_path;

// Records of `<<Len:32/big, Etf:Len/binary>>`.
[[nodiscard]] std::vector<std::vector<std::byte>> read_records(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    const std::string content{std::istreambuf_iterator<char>(in), {}};
    std::vector<std::vector<std::byte>> records;
    for (std::size_t at = 0; at + 4 <= content.size();) {
        std::uint32_t length;
        std::memcpy(&length, content.data() + at, 4);
        length = __builtin_bswap32(length);
        at += 4;
        if (length > content.size() - at) {
            break;
        }
        const auto raw = std::as_bytes(std::span(content).subspan(at, length));
        records.emplace_back(raw.begin(), raw.end());
        at += length;
    }
    return records;
}

void write_records(const std::filesystem::path& file,
                   const std::vector<std::vector<std::byte>>& records) {
    std::ofstream out(file, std::ios::binary);
    for (const auto& record : records) {
        const std::uint32_t length = __builtin_bswap32(static_cast<std::uint32_t>(record.size()));
        out.write(reinterpret_cast<const char*>(&length), 4);
        out.write(reinterpret_cast<const char*>(record.data()),
                  static_cast<std::streamsize>(record.size()));
    }
}

class EtfRoundTripTest : public ::testing::Test {
  protected:
    void SetUp() override {
        escript_ = on_path("escript");
        if (escript_.empty()) {
            GTEST_SKIP() << "escript (Debian erlang-nox) is not installed";
        }
        std::string pattern = std::filesystem::temp_directory_path() / "vdist-etf-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override {
        // VDIST_KEEP_TEST_FILES=1 keeps both record files for debugging.
        if (!dir_.empty() && std::getenv("VDIST_KEEP_TEST_FILES") == nullptr) {
            std::filesystem::remove_all(dir_);
        }
    }

    /// Runs roundtrip.escript with `args`; returns its stdout, and its exit status in `status`.
    [[nodiscard]] std::string run_script(const std::vector<std::string>& args, int& status) {
        std::vector<std::string> all{roundtrip_script.string()};
        all.insert(all.end(), args.begin(), args.end());
        test::child_process erlang(escript_, all);
        std::string output = erlang.output(120s);
        const auto exited = erlang.wait(120s);
        status = exited && WIFEXITED(*exited) ? WEXITSTATUS(*exited) : -1;
        return output;
    }

    std::string escript_;
    std::filesystem::path dir_;
};

TEST_F(EtfRoundTripTest, shouldGiveErlangBackExactlyItsTermsWhenReencodingThousandsOfRandomOnes) {
    const auto original = dir_ / "original.bin";
    const auto reencoded = dir_ / "reencoded.bin";
    int status = 0;
    const std::string generated = run_script(
        {"generate", std::to_string(seed), std::to_string(term_count), original.string()}, status);
    ASSERT_EQ(status, 0) << generated;

    const auto records = read_records(original);
    ASSERT_EQ(records.size(), static_cast<std::size_t>(term_count));
    atom_table atoms;
    const etf_decoder decoder(atoms);
    std::vector<std::vector<std::byte>> ours;
    ours.reserve(records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto decoded = decoder.decode(records[i]);
        ASSERT_TRUE(decoded) << "record " << i << ": " << decoded.error().message();
        auto encoded = encode(*decoded);
        ASSERT_TRUE(encoded) << "record " << i << ": "
                             << make_error_code(encoded.error()).message();
        const auto again = decoder.decode(*encoded);
        ASSERT_TRUE(again) << "record " << i << ": " << again.error().message();
        EXPECT_EQ(*again, *decoded) << "record " << i << " changed through vdist's own encoding";
        ours.push_back(std::move(*encoded));
    }
    write_records(reencoded, ours);

    const std::string verdict =
        run_script({"check", original.string(), reencoded.string()}, status);
    EXPECT_EQ(status, 0) << verdict;
    EXPECT_NE(verdict.find("failures=0"), std::string::npos) << verdict;
    RecordProperty("erlang_verdict", verdict.substr(0, verdict.find('\n')));
    std::printf("%s", verdict.c_str());
}

}  // namespace
}  // namespace vdist::dist
