#pragma once
/// \file
/// Deterministic test data and checksums shared by both ends of cross-process tests.

#include <cstddef>
#include <cstdint>
#include <span>

namespace vdist::test {

/// FNV-1a, 64 bit, streaming.
class fnv1a {
  public:
    void update(std::span<const std::byte> data) noexcept {
        for (std::byte b : data) {
            hash_ = (hash_ ^ static_cast<std::uint64_t>(b)) * 0x100000001b3ULL;
        }
    }
    [[nodiscard]] std::uint64_t value() const noexcept { return hash_; }

  private:
    std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

/// An endless pseudo-random byte stream (xorshift64*), identical for identical seeds.
class pattern {
  public:
    explicit pattern(std::uint64_t seed) noexcept : state_(seed | 1) {}
    void fill(std::span<std::byte> out) noexcept {
        for (std::byte& b : out) {
            state_ ^= state_ >> 12;
            state_ ^= state_ << 25;
            state_ ^= state_ >> 27;
            b = static_cast<std::byte>((state_ * 0x2545F4914F6CDD1DULL) >> 56);
        }
    }

  private:
    std::uint64_t state_;
};

}  // namespace vdist::test
