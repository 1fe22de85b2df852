#include "vdist/runtime/traffic.hpp"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace vdist::runtime {
namespace {

using dist::binary;
using dist::list;
using dist::tuple;

[[nodiscard]] std::int64_t integer_or(const term& t, std::int64_t fallback) {
    const auto* value = t.get_if<std::int64_t>();
    return value == nullptr ? fallback : *value;
}

// One peer this node sends to.
struct peer_stream {
    atom node;
    bool up = false;  // monitored and not seen down
    std::int64_t stream = 0;
    std::int64_t next_seq = 1;
    std::int64_t acked = 0;  // highest Seq acknowledged in the current stream
    std::int64_t sent = 0;   // in the current run (PerPeer counts against this)
    std::optional<reference> monitor;
    std::optional<pid> to;  // the peer's vdist_traffic, once it welcomed the current stream
};

// What one (sender, stream) has delivered so far.
struct incoming_stream {
    std::int64_t expected = 1;
};

class traffic {
  public:
    explicit traffic(traffic_config config) : config_(config) {}

    void handle(process& self, term message) {
        if (const auto* seq = tagged(message, "vdist_seq", 5)) {
            receive_seq(self, *seq);
        } else if (const auto* ack = tagged(message, "vdist_ack", 4)) {
            receive_ack(self, *ack);
        } else if (const auto* hello = tagged(message, "vdist_hello", 3)) {
            if (const auto* from = (*hello)[1].get_if<pid>()) {
                self.send(*from, tuple{self.host().a("vdist_welcome"), self.host().name(),
                                       (*hello)[2], self.self()});
            }
        } else if (const auto* welcome = tagged(message, "vdist_welcome", 4)) {
            receive_welcome(self, *welcome);
        } else if (const auto* start = tagged(message, "start", 4)) {
            begin(self, *start);
        } else if (is_atom(message, "stop")) {
            sending_ = false;
        } else if (const auto* report = tagged(message, "report", 2)) {
            if (const auto* to = (*report)[1].get_if<pid>()) {
                self.send(*to, report_term(self));
            }
        } else if (const auto* down = tagged(message, "DOWN", 5)) {
            peer_down(self, *down);
        } else if (const auto* retry = tagged(message, "retry", 2)) {
            if (const auto* peer = (*retry)[1].get_if<atom>()) {
                watch_peer(self, *peer);
            }
        } else if (is_atom(message, "send_more")) {
            more_scheduled_ = false;
            send_some(self);
        }
    }

  private:
    void begin(process& self, const std::vector<term>& start) {
        const auto* peers = start[1].get_if<list>();
        if (peers == nullptr) {
            return;
        }
        per_peer_ = integer_or(start[2], 0);
        payload_ = binary(std::string(
            static_cast<std::size_t>(std::max<std::int64_t>(integer_or(start[3], 0), 0)), 'x'));
        for (const term& entry : peers->elements) {
            const auto* name = entry.get_if<atom>();
            if (name == nullptr || *name == self.host().name()) {
                continue;
            }
            auto [found, inserted] = peers_.try_emplace(std::string(name->text()));
            found->second.sent = 0;
            if (inserted) {
                found->second.node = *name;
                watch_peer(self, *name);
            }
        }
        sending_ = true;
        send_some(self);
    }

    void watch_peer(process& self, atom name) {
        auto found = peers_.find(std::string(name.text()));
        if (found == peers_.end()) {
            return;
        }
        peer_stream& peer = found->second;
        peer.monitor = self.monitor(traffic_name(self), name);
        peer.up = false;
        peer.to.reset();
        peer.stream = next_stream_++;
        peer.next_seq = 1;
        peer.acked = 0;
        // A stream goes to one incarnation of the peer: its pid, learnt from the welcome.
        // Sent by name, it could reach a restarted peer that never saw its start.
        self.send(traffic_name(self), name,
                  tuple{self.host().a("vdist_hello"), self.self(), peer.stream});
    }

    void receive_welcome(process& self, const std::vector<term>& welcome) {
        const auto* from = welcome[1].get_if<atom>();
        const auto* receiver = welcome[3].get_if<pid>();
        if (from == nullptr || receiver == nullptr) {
            return;
        }
        auto found = peers_.find(std::string(from->text()));
        if (found == peers_.end() || integer_or(welcome[2], -1) != found->second.stream ||
            !found->second.monitor) {
            return;  // an old stream's welcome
        }
        found->second.to = *receiver;
        found->second.up = true;
        send_some(self);
    }

    void peer_down(process& self, const std::vector<term>& down) {
        const auto* ref = down[1].get_if<reference>();
        for (auto& [name, peer] : peers_) {
            if (ref != nullptr && peer.monitor && *peer.monitor == *ref) {
                peer.up = false;
                peer.to.reset();
                peer.monitor.reset();
                ++peers_lost_;
                self.send_after(config_.retry, self.self(),
                                tuple{self.host().a("retry"), peer.node});
            }
        }
    }

    // Sends up to `burst` messages per peer that has window left, then yields to other
    // processes (a message to itself) if there is more to send.
    void send_some(process& self) {
        if (!sending_) {
            return;
        }
        bool more = false;
        const atom tag = self.host().a("vdist_seq");
        for (auto& [name, peer] : peers_) {
            for (std::size_t n = 0; n < config_.burst && can_send(peer); ++n) {
                self.send(*peer.to, tuple{tag, self.self(), peer.stream, peer.next_seq, payload_});
                ++peer.next_seq;
                ++peer.sent;
                ++sent_;
            }
            more = more || can_send(peer);
        }
        if (more && !more_scheduled_) {
            more_scheduled_ = true;
            self.send(self.self(), self.host().a("send_more"));
        }
    }

    [[nodiscard]] bool can_send(const peer_stream& peer) const {
        const auto in_flight = static_cast<std::size_t>(peer.next_seq - 1 - peer.acked);
        return peer.up && in_flight < config_.window && (per_peer_ == 0 || peer.sent < per_peer_);
    }

    void receive_seq(process& self, const std::vector<term>& seq) {
        const auto* sender = seq[1].get_if<pid>();
        const std::int64_t stream = integer_or(seq[2], -1);
        const std::int64_t number = integer_or(seq[3], -1);
        if (sender == nullptr || stream < 0 || number < 1) {
            ++malformed_;
            return;
        }
        ++received_;
        incoming_stream& in = incoming_[stream_key(*sender, stream)];
        if (number > in.expected) {
            lost_ += number - in.expected;
            in.expected = number + 1;
        } else if (number < in.expected) {
            ++backwards_;
        } else {
            ++in.expected;
        }
        if (number % static_cast<std::int64_t>(config_.ack_every) == 0) {
            self.send(*sender,
                      tuple{self.host().a("vdist_ack"), self.host().name(), stream, number});
        }
    }

    void receive_ack(process& self, const std::vector<term>& ack) {
        const auto* from = ack[1].get_if<atom>();
        if (from == nullptr) {
            return;
        }
        auto found = peers_.find(std::string(from->text()));
        if (found == peers_.end() || integer_or(ack[2], -1) != found->second.stream) {
            return;  // an old stream's ack
        }
        found->second.acked = std::max(found->second.acked, integer_or(ack[3], 0));
        send_some(self);
    }

    [[nodiscard]] term report_term(process& self) const {
        return tuple{self.host().a("traffic_report"),
                     self.host().name(),
                     sent_,
                     received_,
                     lost_,
                     backwards_,
                     static_cast<std::int64_t>(incoming_.size()),
                     peers_lost_};
    }

    [[nodiscard]] static std::string stream_key(const pid& sender, std::int64_t stream) {
        return std::string(sender.node.text()) + "/" + std::to_string(sender.creation) + "/" +
               std::to_string(sender.id) + "/" + std::to_string(sender.serial) + "/" +
               std::to_string(stream);
    }

    [[nodiscard]] static atom traffic_name(process& self) { return self.host().a("vdist_traffic"); }

    traffic_config config_;
    std::map<std::string, peer_stream> peers_;
    std::map<std::string, incoming_stream> incoming_;
    bool sending_ = false;
    bool more_scheduled_ = false;
    std::int64_t per_peer_ = 0;
    binary payload_;
    std::int64_t next_stream_ = 1;
    std::int64_t sent_ = 0;
    std::int64_t received_ = 0;
    std::int64_t lost_ = 0;
    std::int64_t backwards_ = 0;
    std::int64_t malformed_ = 0;  // vdist_seq messages with bad fields (not counted)
    std::int64_t peers_lost_ = 0;
};

}  // namespace

pid start_traffic(node& host, traffic_config config) {
    auto state = std::make_shared<traffic>(config);
    return host.spawn([state](process& self) {
        (void)self.register_name(self.host().a("vdist_traffic"));
        // The receive loop keeps the state alive as long as the process lives.
        self.become([state](process& p, term message) { state->handle(p, std::move(message)); });
    });
}

}  // namespace vdist::runtime
