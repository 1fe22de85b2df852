#include "vdist/dist/atom.hpp"

#include <cstdio>
#include <cstdlib>

#include "vdist/dist/etf.hpp"

namespace vdist::dist {

const std::string atom::empty_text;

bool is_valid_atom_text(std::string_view utf8) noexcept {
    std::size_t characters = 0;
    for (std::size_t i = 0; i < utf8.size(); ++characters) {
        const auto lead = static_cast<unsigned char>(utf8[i]);
        std::size_t length = 0;
        char32_t code = 0;
        if (lead < 0x80) {
            length = 1;
            code = lead;
        } else if (lead >= 0xc2 && lead <= 0xdf) {
            length = 2;
            code = lead & 0x1fu;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            length = 3;
            code = lead & 0x0fu;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            length = 4;
            code = lead & 0x07u;
        } else {
            return false;  // a continuation byte, or a lead byte of an overlong or too large form
        }
        if (utf8.size() - i < length) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(utf8[i + k]);
            if ((next & 0xc0u) != 0x80u) {
                return false;
            }
            code = (code << 6) | (next & 0x3fu);
        }
        const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
        if (overlong || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
            return false;
        }
        i += length;
    }
    return characters <= etf::max_atom_characters;
}

std::expected<atom, etf_errc> atom_table::intern(std::string_view utf8) {
    if (auto found = index_.find(utf8); found != index_.end()) {
        return atom(found->second);
    }
    if (!is_valid_atom_text(utf8)) {
        return std::unexpected(etf_errc::invalid_atom);
    }
    if (texts_.size() >= capacity_) {
        return std::unexpected(etf_errc::atom_table_full);
    }
    const std::string& text = texts_.emplace_back(utf8);
    index_.emplace(text, &text);
    return atom(&text);
}

std::optional<atom> atom_table::find(std::string_view utf8) const {
    if (auto found = index_.find(utf8); found != index_.end()) {
        return atom(found->second);
    }
    return std::nullopt;
}

atom atom_table::operator()(std::string_view utf8) {
    auto made = intern(utf8);
    if (!made) {
        std::fprintf(stderr, "vdist: cannot intern the atom '%.*s': %s\n",
                     static_cast<int>(utf8.size()), utf8.data(),
                     make_error_code(made.error()).message().c_str());
        std::abort();
    }
    return *made;
}

atom_table& default_atom_table() {
    static atom_table table;
    return table;
}

}  // namespace vdist::dist
