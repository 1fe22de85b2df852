#include "vdist/transport/errc.hpp"

#include <cerrno>
#include <string>

namespace vdist::transport {
namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "vdist.transport"; }

    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::ring_corrupt:
                return "ring corrupt: the peer published impossible indices or frames";
            case errc::peer_gone:
                return "peer gone";
            case errc::stale_generation:
                return "stale channel generation";
            case errc::frame_too_large:
                return "frame larger than the ring";
            case errc::invalid_order:
                return "invalid ring order";
            case errc::invalid_grant:
                return "invalid grant reference";
            case errc::rendezvous_failed:
                return "rendezvous failed";
            case errc::timed_out:
                return "timed out";
            case errc::not_connected:
                return "peer not connected yet";
            case errc::misaligned_frame:
                return "ring is not at a frame boundary";
            case errc::protocol_error:
                return "peer broke the setup protocol";
        }
        return "unknown transport error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& transport_category() noexcept {
    static const category instance;
    return instance;
}

std::unexpected<std::error_code> fail_errno() noexcept {
    return std::unexpected(std::error_code(errno, std::system_category()));
}

}  // namespace vdist::transport
