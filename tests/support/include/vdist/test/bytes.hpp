#pragma once
/// \file
/// Writing wire bytes in tests: `wire({131, 97, 1})`, `concat(a, b)`, `text("abc")`.

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace vdist::test {

using bytes = std::vector<std::byte>;

/// The bytes of `values` (each 0..255).
[[nodiscard]] inline bytes wire(std::initializer_list<int> values) {
    bytes out;
    out.reserve(values.size());
    for (const int v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

/// `a` followed by `b`.
[[nodiscard]] inline bytes concat(bytes a, const bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

/// The characters of `s` as bytes.
[[nodiscard]] inline bytes text(std::string_view s) {
    const auto raw = std::as_bytes(std::span(s));
    return {raw.begin(), raw.end()};
}

}  // namespace vdist::test
