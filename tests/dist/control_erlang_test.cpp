// packet_writer against a real Erlang: tests/dist/erlang/control.escript builds every control
// tuple of control_cases.hpp (and its message term) with the same values in erl and prints
// what term_to_binary makes of them; vdist's pass-through packet must be exactly that, for
// every opcode, and must read back. The trace-token forms, which vdist never writes, are read
// from OTP's bytes and must give the message of their plain form.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include "control_cases.hpp"
#include "vdist/dist/control.hpp"
#include "vdist/test/child_process.hpp"

namespace vdist::dist {
namespace {

using namespace std::chrono_literals;
using namespace test_cases;

const std::filesystem::path control_script = VDIST_CONTROL_SCRIPT;

using test::on_path;

[[nodiscard]] bytes from_hex(const std::string& hex) {
    bytes out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<std::byte>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

class ControlErlangTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const std::string escript = on_path("escript");
        if (escript.empty()) {
            GTEST_SKIP() << "escript (Debian erlang-nox) is not installed";
        }
        test::child_process erlang(escript, {control_script.string()});
        const std::string output = erlang.output(120s);
        const auto exited = erlang.wait(120s);
        ASSERT_TRUE(exited && WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << output;
        std::istringstream lines(output);
        for (std::string word, name, hex; lines >> word >> name >> hex;) {
            ASSERT_EQ(word, "CASE") << output;
            erlang_payloads[name] = hex == "-" ? std::nullopt : std::optional(from_hex(hex));
        }
    }

    /// OTP's pass-through payload, framed as a packet.
    [[nodiscard]] std::optional<bytes> erlang_packet(const std::string& name) const {
        const auto found = erlang_payloads.find(name);
        if (found == erlang_payloads.end() || !found->second) {
            return std::nullopt;
        }
        return framed(*found->second);
    }

    /// `message` written under `flags` (pass-through).
    [[nodiscard]] bytes written(const control_message& message, std::uint64_t flags) {
        bytes out;
        auto result = packet_writer(flags).write(out, message);
        EXPECT_TRUE(result) << (result ? "" : result.error().detail);
        return out;
    }

    [[nodiscard]] std::optional<control_message> read(const bytes& packet) {
        packet_reader reader(0, atoms);
        reader.feed(packet);
        auto next = reader.next();
        if (!next || !next->has_value()) {
            ADD_FAILURE() << (next ? "no message" : next.error().detail);
            return std::nullopt;
        }
        return std::move(**next);
    }

    atom_table atoms;
    std::map<std::string, std::optional<bytes>> erlang_payloads;
};

TEST_F(ControlErlangTest, shouldWriteWhatTermToBinaryGivesWhenWritingEveryOpcode) {
    const auto cases = all_cases(atoms);
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        ASSERT_TRUE(erlang_payloads.contains(c.name)) << "control.escript lacks the case";
        const auto expected = erlang_packet(c.name);
        EXPECT_EQ(c.control.has_value(), expected.has_value());
        const bytes ours = written(c.message, c.flags);
        EXPECT_EQ(ours, expected.value_or(bytes{}));
    }
    EXPECT_EQ(erlang_payloads.size(), cases.size() + 10) << "10 trace-token cases besides";
}

TEST_F(ControlErlangTest, shouldReadOtpsBytesBackWhenGivenEveryOpcode) {
    for (const auto& c : all_cases(atoms)) {
        SCOPED_TRACE(c.name);
        const auto packet = erlang_packet(c.name);
        if (!packet) {
            continue;
        }
        const auto message = read(*packet);
        ASSERT_TRUE(message);
        EXPECT_EQ(written(*message, c.flags), *packet);
    }
}

TEST_F(ControlErlangTest, shouldReadTheTraceTokenFormsAsTheirPlainFormsWhenOtpSendsThem) {
    const auto cases = all_cases(atoms);
    std::size_t checked = 0;
    for (const auto& [name, payload] : erlang_payloads) {
        const auto suffix = name.find("__tt");
        if (suffix == std::string::npos) {
            continue;
        }
        SCOPED_TRACE(name);
        const std::string base = name.substr(0, suffix);
        const auto plain = std::find_if(cases.begin(), cases.end(),
                                        [&](const control_case& c) { return c.name == base; });
        ASSERT_NE(plain, cases.end());
        ASSERT_TRUE(payload);
        const auto message = read(framed(*payload));
        ASSERT_TRUE(message);
        EXPECT_EQ(written(*message, plain->flags), erlang_packet(base).value());
        ++checked;
    }
    EXPECT_EQ(checked, 10u);
}

}  // namespace
}  // namespace vdist::dist
