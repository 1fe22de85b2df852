#include "vdist/dist/etf_errc.hpp"

#include <string>

namespace vdist::dist {
namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.etf"; }

    std::string message(int value) const override {
        switch (static_cast<etf_errc>(value)) {
            case etf_errc::truncated:
                return "truncated term: the input ends inside it";
            case etf_errc::bad_version:
                return "not an external term: the first byte is not 131";
            case etf_errc::unknown_tag:
                return "unknown or misplaced tag";
            case etf_errc::trailing_bytes:
                return "bytes left after the term";
            case etf_errc::depth_exceeded:
                return "term nested deeper than the limit";
            case etf_errc::too_many_terms:
                return "more terms than the limit";
            case etf_errc::bignum_too_large:
                return "bignum larger than the limit";
            case etf_errc::too_many_new_atoms:
                return "term creates more new atoms than the limit";
            case etf_errc::atom_table_full:
                return "atom table full";
            case etf_errc::invalid_atom:
                return "invalid atom: not UTF-8 or longer than 255 characters";
            case etf_errc::invalid_float:
                return "invalid float: not finite, or unreadable";
            case etf_errc::invalid_length:
                return "invalid length or count";
            case etf_errc::invalid_field:
                return "field of the wrong type";
            case etf_errc::duplicate_map_key:
                return "map with a duplicate key";
            case etf_errc::atom_cache_miss:
                return "atom cache reference without a cached atom";
            case etf_errc::compressed_too_large:
                return "compressed term declares a size over the limit";
            case etf_errc::decompression_failed:
                return "decompression failed or gave the wrong size";
            case etf_errc::not_encodable:
                return "value not encodable as ETF";
            case etf_errc::integer_out_of_range:
                return "integer out of range (larger than 64 bits)";
        }
        return "unknown ETF error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& etf_category() noexcept {
    static const category instance;
    return instance;
}

std::string decode_error::message() const {
    return make_error_code(code).message() + " at byte " + std::to_string(offset);
}

}  // namespace vdist::dist
