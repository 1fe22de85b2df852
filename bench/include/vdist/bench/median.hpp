#pragma once
/// \file
/// The median of repeated measurements (what every vdist benchmark reports, with same-run
/// ratios, on noisy machines).

#include <algorithm>
#include <cstddef>
#include <vector>

namespace vdist::bench {

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
[[nodiscard]] inline double median(std::vector<double> values) {
    if (values.empty()) {
        return 0;
    }
    std::ranges::sort(values);
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

}  // namespace vdist::bench
