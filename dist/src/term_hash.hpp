#pragma once
/// \file
/// A hash of terms consistent with term equality (==), for duplicate map keys and large-map
/// comparison. Not Erlang's phash2: only vdist uses it, never the wire.

#include <cstdint>

#include "vdist/dist/term.hpp"

namespace vdist::dist::internal {

/// Equal terms hash equal; maps hash independently of entry order.
[[nodiscard]] std::uint64_t hash(const term& t) noexcept;

}  // namespace vdist::dist::internal
