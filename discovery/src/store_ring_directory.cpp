#include "vdist/discovery/store_ring_directory.hpp"

#include <poll.h>

#include <charconv>
#include <limits>
#include <utility>

#include "vdist/discovery/keys.hpp"

namespace vdist::discovery {

namespace {

constexpr std::string_view inbox_token = "vdist-ring-offers";

template <class Number>
std::optional<Number> parse_decimal(std::string_view text) {
    Number value{};
    // One spelling per number: no sign, no leading zeros (except "0" itself).
    if (text.empty() || text.size() > 10 || (text.size() > 1 && text.front() == '0')) {
        return std::nullopt;
    }
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

store_ring_directory::store_ring_directory(store_client client, transport::domid_t self)
    : client_(std::move(client)), self_(self), inbox_(connect_inbox_path(self)) {}

std::expected<std::unique_ptr<store_ring_directory>, std::error_code> store_ring_directory::open(
    store_client client, transport::domid_t self) {
    std::unique_ptr<store_ring_directory> directory(
        new store_ring_directory(std::move(client), self));
    if (auto watched = directory->client_.watch(directory->inbox_, inbox_token); !watched) {
        return std::unexpected(watched.error());
    }
    // The store fires a watch once when it is set: taken here, so that the node's loop does
    // not spend a listing on it later (a domain made ahead of its node opens this long before
    // anyone offers). Offers already there are listed at the first take_offers().
    pollfd readable{directory->client_.fileno(), POLLIN, 0};
    for (int waited = 0; waited < 100 && ::poll(&readable, 1, 10) >= 0; ++waited) {
        if (auto event = directory->client_.next_event();
            event && event->path == directory->inbox_) {
            break;
        }
    }
    auto entries = directory->client_.directory(directory->inbox_);
    directory->list_next_ = !entries || !entries->empty();
    return directory;
}

std::string store_ring_directory::offer_entry(transport::domid_t from, std::uint32_t port) {
    return std::to_string(from) + "-" + std::to_string(port);
}

std::optional<runtime::ring_offer> store_ring_directory::parse_offer_entry(std::string_view entry) {
    const auto dash = entry.find('-');
    if (dash == std::string_view::npos) {
        return std::nullopt;
    }
    const auto from = parse_decimal<std::uint32_t>(entry.substr(0, dash));
    const auto port = parse_decimal<std::uint32_t>(entry.substr(dash + 1));
    if (!from || !port || *from > std::numeric_limits<transport::domid_t>::max()) {
        return std::nullopt;
    }
    return runtime::ring_offer{static_cast<transport::domid_t>(*from), *port};
}

std::optional<transport::domid_t> store_ring_directory::locate(std::string_view name) {
    auto text = client_.read(node_entry_path(name) + "/domid");
    if (!text) {
        return std::nullopt;
    }
    const auto domid = parse_decimal<std::uint32_t>(*text);
    if (!domid || *domid > std::numeric_limits<transport::domid_t>::max()) {
        return std::nullopt;  // a record that is not a domid: not reachable over a ring
    }
    return static_cast<transport::domid_t>(*domid);
}

std::vector<permission> store_ring_directory::inbox_permissions(store_domid owner) {
    return {{owner, access::write}, {owner, access::both}};
}

bool store_ring_directory::offer(transport::domid_t peer, std::uint32_t port) {
    // One write: the entry inherits the inbox's permissions (inbox_permissions), so the peer
    // may read and remove it and its watch fires once, with the entry readable.
    return client_.write(connect_inbox_path(peer) + "/" + offer_entry(self_, port), "").has_value();
}

int store_ring_directory::native_handle() const {
    return client_.fileno();
}

std::vector<runtime::ring_offer> store_ring_directory::take_offers() {
    // An event for an entry taken already is its removal by its offerer: nothing to list. Any
    // other (a new entry, the inbox itself on registration) means: list the inbox.
    bool list = std::exchange(list_next_, false);
    while (auto event = client_.next_event()) {
        const std::string_view path = event->path;
        if (path.size() > inbox_.size() && path.starts_with(inbox_) && path[inbox_.size()] == '/' &&
            taken_.erase(std::string(path.substr(inbox_.size() + 1))) > 0) {
            continue;
        }
        list = true;
    }
    std::vector<runtime::ring_offer> offers;
    if (!list) {
        return offers;
    }
    auto entries = client_.directory(inbox_);
    if (!entries) {
        return offers;  // no inbox (yet): nothing offered
    }
    for (const auto& entry : *entries) {
        if (!taken_.insert(entry).second) {
            continue;
        }
        if (const auto offer = parse_offer_entry(entry)) {
            offers.push_back(*offer);
        } else {
            (void)client_.rm(inbox_ + "/" + entry);  // junk: nobody withdraws it
        }
    }
    return offers;
}

void store_ring_directory::withdraw(transport::domid_t peer, std::uint32_t port) {
    // Gone already (taken by the peer) is fine: rm of a missing key succeeds.
    (void)client_.rm(connect_inbox_path(peer) + "/" + offer_entry(self_, port));
}

}  // namespace vdist::discovery
