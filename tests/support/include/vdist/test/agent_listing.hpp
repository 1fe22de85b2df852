#pragma once
/// What tests read from a host agent's control answers (discovery/agent_control.hpp).

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace vdist::test {

/// The domids of the domain shells (`shell <domid> <pid>`) in an `ls` answer.
[[nodiscard]] inline std::set<std::uint32_t> shells_in(const std::vector<std::string>& ls_lines) {
    std::set<std::uint32_t> domids;
    for (const auto& line : ls_lines) {
        if (line.starts_with("shell ")) {
            domids.insert(static_cast<std::uint32_t>(std::stoul(line.substr(6))));
        }
    }
    return domids;
}

/// Store paths without what domain shells own: their domains' subtrees, and `/local` and
/// `/local/domain` when no other domain is left. What remains is what nodes left behind.
[[nodiscard]] inline std::vector<std::string> without_shells(
    std::vector<std::string> paths, const std::set<std::uint32_t>& shells) {
    auto of_shell = [&](const std::string& path) {
        for (const auto domid : shells) {
            const std::string home = "/local/domain/" + std::to_string(domid);
            if (path == home || path.starts_with(home + "/")) {
                return true;
            }
        }
        return false;
    };
    std::erase_if(paths, of_shell);
    const bool other_domains = std::ranges::any_of(
        paths, [](const std::string& p) { return p.starts_with("/local/domain/"); });
    if (!other_domains) {
        std::erase_if(paths,
                      [](const std::string& p) { return p == "/local" || p == "/local/domain"; });
    }
    return paths;
}

}  // namespace vdist::test
