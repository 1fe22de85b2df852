#pragma once
/// \file
/// A hash of terms consistent with term equality (==), for duplicate map keys and large-map
/// comparison. Not Erlang's phash2: only vdist uses it, never the wire.

#include <cstddef>
#include <cstdint>

#include "vdist/dist/term.hpp"

namespace vdist::dist::internal {

/// Maps up to this size are compared and checked pairwise; larger ones through hashes.
inline constexpr std::size_t small_map_entries = 32;

/// Equal terms hash equal; maps hash independently of entry order.
[[nodiscard]] std::uint64_t hash(const term& t) noexcept;

/// Whether two entries of `m` have equal keys (pairwise for small maps, through hashes for
/// large ones).
[[nodiscard]] bool has_duplicate_key(const map& m);

}  // namespace vdist::dist::internal
