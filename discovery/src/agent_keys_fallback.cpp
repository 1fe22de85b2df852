// keys.hpp's functions until discovery/src/keys.cpp lands (CMakeLists.txt compiles this file
// only while that one is missing): the same layout, written from keys.hpp's comment.
#include <string>

#include "vdist/discovery/keys.hpp"

namespace vdist::discovery {
namespace {
bool plain(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '@' ||
           c == '-';
}
int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
}  // namespace

std::string encode_component(std::string_view text) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : text) {
        if (plain(c)) {
            out += c;
        } else {
            const auto byte = static_cast<unsigned char>(c);
            out += '_';
            out += digits[byte >> 4];
            out += digits[byte & 15];
        }
    }
    return out;
}

std::optional<std::string> decode_component(std::string_view component) {
    std::string out;
    for (std::size_t i = 0; i < component.size(); ++i) {
        const char c = component[i];
        if (c == '_') {
            if (i + 2 >= component.size()) {
                return std::nullopt;
            }
            const int high = hex_value(component[i + 1]), low = hex_value(component[i + 2]);
            if (high < 0 || low < 0) {
                return std::nullopt;
            }
            out += static_cast<char>(high * 16 + low);
            i += 2;
        } else if (plain(c)) {
            out += c;
        } else {
            return std::nullopt;
        }
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
