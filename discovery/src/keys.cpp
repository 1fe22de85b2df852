#include "vdist/discovery/keys.hpp"

namespace vdist::discovery {

namespace {

constexpr std::string_view hex_digits = "0123456789abcdef";

bool passes_through(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '@' ||
           c == '-';
}

std::optional<unsigned> hex_value(char c) {
    const auto at = hex_digits.find(c);
    if (at == std::string_view::npos) {
        return std::nullopt;
    }
    return static_cast<unsigned>(at);
}

}  // namespace

std::string encode_component(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (passes_through(c)) {
            out.push_back(c);
            continue;
        }
        const auto byte = static_cast<unsigned char>(c);
        out.push_back('_');
        out.push_back(hex_digits[byte >> 4U]);
        out.push_back(hex_digits[byte & 0xfU]);
    }
    return out;
}

std::optional<std::string> decode_component(std::string_view component) {
    std::string out;
    out.reserve(component.size());
    for (std::size_t i = 0; i < component.size(); ++i) {
        const char c = component[i];
        if (passes_through(c)) {
            out.push_back(c);
            continue;
        }
        if (c != '_' || component.size() - i < 3) {
            return std::nullopt;
        }
        const auto high = hex_value(component[i + 1]);
        const auto low = hex_value(component[i + 2]);
        if (!high || !low) {
            return std::nullopt;
        }
        const char decoded = static_cast<char>((*high << 4U) | *low);
        // One encoding per text: a byte that passes through must not arrive escaped.
        if (passes_through(decoded)) {
            return std::nullopt;
        }
        out.push_back(decoded);
        i += 2;
    }
    return out;
}

std::string domain_path(store_domid domid) {
    return "/local/domain/" + std::to_string(domid);
}

std::string node_entry_path(std::string_view name) {
    return "/vdist/nodes/" + encode_component(name);
}

std::string node_record_path(store_domid domid) {
    return domain_path(domid) + "/data/vdist/node";
}

std::string connect_inbox_path(store_domid domid) {
    return domain_path(domid) + "/data/vdist/connect";
}

}  // namespace vdist::discovery
