/// \file
/// The C++ node of `dist_bench` (agent mode): a vdist::runtime node with TCP distribution, the
/// responder `dist_bench`, and drivers started by commands on standard input. It speaks the
/// protocol of bench/dist/dist_agent.escript (the erl node) and measures the same way: the
/// driver is a process of the node, timed with steady_clock from its own handlers.

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vdist/bench/dist_compare.hpp"
#include "vdist/discovery/keys.hpp"
#include "vdist/discovery/store_ring_directory.hpp"
#include "vdist/discovery/store_server.hpp"
#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"
#include "vdist/runtime/node_services.hpp"
#include "vdist/transport/channel.hpp"

namespace vdist::bench {
namespace {

namespace dist = vdist::dist;
using namespace vdist::runtime;
using steady = std::chrono::steady_clock;

/// A peer that says nothing for this long fails the command (as the escript's ?TIMEOUT).
constexpr auto peer_timeout = std::chrono::seconds(20);

void write_line(std::string line) {
    line.push_back('\n');
    std::string_view rest = line;
    while (!rest.empty()) {
        const ssize_t n = ::write(STDOUT_FILENO, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;  // the coordinator is gone; stdin's end of input stops the node
        }
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

[[nodiscard]] std::int64_t nanoseconds_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - start).count();
}

template <class T>
[[nodiscard]] std::optional<T> parse_number(std::string_view text) {
    T value{};
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

/// The element `index` of a tuple message if it has `size` elements and starts with `tag`.
[[nodiscard]] dist::tuple* tagged(term& message, atom tag, std::size_t size) {
    auto* t = std::get_if<dist::tuple>(&message.value());
    if (t == nullptr || t->elements.size() != size) {
        return nullptr;
    }
    const auto* first = t->elements[0].get_if<atom>();
    return first != nullptr && *first == tag ? t : nullptr;
}

/// Two-element tuple without copying the elements (an initializer_list would copy them).
[[nodiscard]] term pair_of(term first, term second) {
    std::vector<term> elements;
    elements.reserve(2);
    elements.push_back(std::move(first));
    elements.push_back(std::move(second));
    return dist::tuple(std::move(elements));
}

[[nodiscard]] term payload(std::size_t size) {
    return dist::binary(std::vector<std::byte>(size, std::byte{7}));
}

/// The node's side of the benchmark: the responder and the drivers.
class agent {
  public:
    explicit agent(node& host)
        : host_(host),
          bench_(host.a("dist_bench")),
          hello_(host.a("hello")),
          ping_(host.a("ping")),
          pong_(host.a("pong")),
          stream_(host.a("stream")),
          data_(host.a("data")),
          ack_(host.a("ack")) {
        (void)host_.spawn([this](process& self) {
            (void)self.register_name(bench_);
            self.become([this](process& me, term message) { respond(me, std::move(message)); });
        });
    }

    /// One command line; the reply line is written when the command is done.
    void command(std::string_view line) {
        std::vector<std::string> words;
        std::istringstream in{std::string(line)};
        for (std::string word; in >> word;) {
            words.push_back(std::move(word));
        }
        if (words.empty()) {
            return;
        }
        if (words[0] == "quit") {
            host_.stop();
            return;
        }
        if (words[0] == "idle" && words.size() == 2) {
            set_idle(words[1]);
            return;
        }
        std::vector<std::uint64_t> numbers;
        for (std::size_t i = 2; i < words.size(); ++i) {
            const auto number = parse_number<std::uint64_t>(words[i]);
            if (!number) {
                write_line("error bad number " + words[i]);
                return;
            }
            numbers.push_back(*number);
        }
        if (words[0] == "pingpong" && numbers.size() == 3) {
            pingpong(host_.a(words[1]), numbers[0], numbers[1], numbers[2]);
        } else if (words[0] == "stream" && numbers.size() == 4 && numbers[3] > 0 &&
                   numbers[1] % numbers[3] == 0 && numbers[3] <= numbers[2]) {
            stream(host_.a(words[1]), numbers[0], numbers[1], numbers[2], numbers[3]);
        } else {
            write_line("error unknown command " + std::string(line));
        }
    }

  private:
    /// `idle MODE`: busy-poll only while a pair measures (two busy nodes take both cores).
    void set_idle(const std::string& mode) {
        if (mode == "default") {
            host_.set_idle(default_idle_);
        } else if (const auto parsed = transport::parse_wait_mode(mode)) {
            auto policy = default_idle_;
            policy.mode = *parsed;
            host_.set_idle(policy);
        } else {
            write_line("error unknown idle mode " + mode);
            return;
        }
        write_line("ok");
    }

    // -- the responder ---------------------------------------------------------------------------

    void respond(process& me, term message) {
        if (tagged(message, data_, 2) != nullptr) {
            if (++count_ % ack_every_ == 0 && ack_to_) {
                me.send(*ack_to_, pair_of(ack_, static_cast<std::int64_t>(count_)));
            }
        } else if (auto* ping = tagged(message, ping_, 3)) {
            if (const auto* from = ping->elements[1].get_if<pid>()) {
                me.send(*from, pair_of(pong_, std::move(ping->elements[2])));
            }
        } else if (auto* begin = tagged(message, stream_, 3)) {
            const auto* from = begin->elements[1].get_if<pid>();
            const auto* every = begin->elements[2].get_if<std::int64_t>();
            if (from != nullptr && every != nullptr && *every > 0) {
                ack_to_ = *from;
                ack_every_ = static_cast<std::uint64_t>(*every);
                count_ = 0;
            }
        } else if (auto* hello = tagged(message, hello_, 2)) {
            if (const auto* from = hello->elements[1].get_if<pid>()) {
                me.send(*from, pair_of(hello_, me.self()));
            }
        }
    }

    // -- the drivers -----------------------------------------------------------------------------

    /// Waits for a {Tag, X} message, then calls `then(process, X)`; a silent peer fails the
    /// command.
    void await(process& self, atom tag, std::function<void(process&, term)> then) {
        std::vector<clause> clauses;
        clauses.push_back(clause{[tag](const term& message) {
                                     const auto* t = message.get_if<dist::tuple>();
                                     return t != nullptr && t->elements.size() == 2 &&
                                            t->elements[0] == term(tag);
                                 },
                                 [then = std::move(then)](process& me, term message) {
                                     auto& t = std::get<dist::tuple>(message.value());
                                     then(me, std::move(t.elements[1]));
                                 }});
        self.receive(std::move(clauses), peer_timeout, [tag](process&) {
            write_line("error timeout waiting for " + std::string(tag.text()));
        });
    }

    /// Learns the responder's pid on `peer` ({hello, self()} to {dist_bench, Peer}), then
    /// calls `then`.
    void resolve(process& self, atom peer, std::function<void(process&, pid)> then) {
        self.send(bench_, peer, pair_of(hello_, self.self()));
        await(self, hello_, [then = std::move(then)](process& me, term answer) {
            if (const auto* responder = answer.get_if<pid>()) {
                then(me, *responder);
            } else {
                write_line("error bad hello answer");
            }
        });
    }

    struct pingpong_run {
        pid to;
        term bin;
        std::uint64_t warmup = 0;
        std::uint64_t trips = 0;
        std::uint64_t done = 0;
        std::vector<std::int64_t> samples;
        steady::time_point start;
    };

    void pingpong(atom peer, std::size_t size, std::uint64_t warmup, std::uint64_t trips) {
        auto run = std::make_shared<pingpong_run>();
        run->bin = payload(size);
        run->warmup = warmup;
        run->trips = trips;
        run->samples.reserve(trips);
        (void)host_.spawn([this, peer, run](process& self) {
            resolve(self, peer, [this, run](process& me, pid responder) {
                run->to = responder;
                trip(me, run);
            });
        });
    }

    void trip(process& self, const std::shared_ptr<pingpong_run>& run) {
        run->start = steady::now();
        std::vector<term> ping;
        ping.reserve(3);
        ping.emplace_back(ping_);
        ping.emplace_back(self.self());
        ping.push_back(run->bin);
        self.send(run->to, dist::tuple(std::move(ping)));
        await(self, pong_, [this, run](process& me, term) {
            const std::int64_t elapsed = nanoseconds_since(run->start);
            if (run->done++ >= run->warmup) {
                run->samples.push_back(elapsed);
            }
            if (run->done < run->warmup + run->trips) {
                trip(me, run);
                return;
            }
            std::string line = "ok";
            for (const auto sample : run->samples) {
                line += ' ';
                line += std::to_string(sample);
            }
            write_line(std::move(line));
        });
    }

    struct stream_run {
        pid to;
        term bin;
        std::uint64_t count = 0;
        std::uint64_t window = 0;
        std::uint64_t ack_every = 0;
        std::uint64_t sent = 0;
        std::uint64_t acked = 0;
        steady::time_point start;
    };

    void stream(atom peer, std::size_t size, std::uint64_t count, std::uint64_t window,
                std::uint64_t ack_every) {
        auto run = std::make_shared<stream_run>();
        run->bin = payload(size);
        run->count = count;
        run->window = window;
        run->ack_every = ack_every;
        (void)host_.spawn([this, peer, run](process& self) {
            resolve(self, peer, [this, run](process& me, pid responder) {
                run->to = responder;
                run->start = steady::now();
                std::vector<term> begin;
                begin.reserve(3);
                begin.emplace_back(stream_);
                begin.emplace_back(me.self());
                begin.emplace_back(static_cast<std::int64_t>(run->ack_every));
                me.send(run->to, dist::tuple(std::move(begin)));
                fill_window(me, run);
            });
        });
    }

    /// Sends until the window is full or everything is sent, then waits for the next ack.
    void fill_window(process& self, const std::shared_ptr<stream_run>& run) {
        while (run->sent < run->count && run->sent - run->acked < run->window) {
            self.send(run->to, pair_of(data_, run->bin));
            ++run->sent;
        }
        await(self, ack_, [this, run](process& me, term acknowledged) {
            const auto* count = acknowledged.get_if<std::int64_t>();
            if (count == nullptr || *count < 0) {
                write_line("error bad ack");
                return;
            }
            run->acked = static_cast<std::uint64_t>(*count);
            if (run->acked >= run->count) {
                write_line("ok " + std::to_string(nanoseconds_since(run->start)));
                return;
            }
            fill_window(me, run);
        });
    }

    node& host_;
    transport::wait_policy default_idle_ = host_.idle();
    atom bench_, hello_, ping_, pong_, stream_, data_, ack_;
    // The responder's stream state.
    std::optional<pid> ack_to_;
    std::uint64_t ack_every_ = 1;
    std::uint64_t count_ = 0;
};

}  // namespace

int run_dist_agent(const std::string& name, const std::string& cookie, const std::string& idle,
                   const ring_agent_options& rings) {
    ::signal(SIGPIPE, SIG_IGN);
    node_config settings{.name = name};
    if (!idle.empty()) {
        const auto mode = transport::parse_wait_mode(idle);
        if (!mode) {
            write_line("error unknown idle mode " + idle);
            return 1;
        }
        settings.idle.mode = *mode;
    }
    node host(settings);
    distribution_config config{
        .cookie = cookie,
        .start_epmd = false,
        .log =
            [](std::string_view line) {
                std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
            },
    };
    std::unique_ptr<discovery::store_ring_directory> directory;
    if (rings.domid != 0) {
        const auto domid = static_cast<transport::domid_t>(rings.domid);
        auto backend = transport::host_backend::create(domid, rings.run_dir);
        auto client = discovery::store_client::open(rings.store);
        if (!backend || !client) {
            write_line("error rings: " + (backend ? client.error() : backend.error()).message());
            return 1;
        }
        auto opened = discovery::store_ring_directory::open(std::move(*client), domid);
        if (!opened) {
            write_line("error ring directory: " + opened.error().message());
            return 1;
        }
        directory = std::move(*opened);
        config.ring_backend = std::make_shared<transport::host_backend>(std::move(*backend));
        config.directory = directory.get();
    }
    auto started = distribution::start(host, config);
    if (!started) {
        write_line("error distribution did not start: " + started.error().message());
        return 1;
    }
    start_node_services(host, **started, rpc_functions::with_builtins(started->get()),
                        services_config{.echo = false});
    agent bench(host);

    std::string buffered;
    host.watch_fd(STDIN_FILENO, [&host, &bench, &buffered] {
        char chunk[4096];
        const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            return;
        }
        if (n <= 0) {
            host.stop();  // the coordinator is gone
            return;
        }
        buffered.append(chunk, static_cast<std::size_t>(n));
        for (auto end = buffered.find('\n'); end != std::string::npos; end = buffered.find('\n')) {
            const std::string line = buffered.substr(0, end);
            buffered.erase(0, end + 1);
            bench.command(line);
        }
    });
    const auto& policy = settings.idle;
    write_line("ready " + name + " port=" + std::to_string((*started)->listen_port()) +
               (rings.domid != 0 ? " rings=domid " + std::to_string(rings.domid) : "") +
               " idle=" + std::string(transport::wait_mode_name(policy.mode)) +
               (policy.mode == transport::wait_mode::spin_then_block
                    ? "(" + std::to_string(policy.spin.count() / 1000) + " us)"
                    : std::string()));
    host.run();
    host.unwatch_fd(STDIN_FILENO);
    started->reset();
    return 0;
}

int run_bench_store(const std::string& socket, const std::vector<std::string>& nodes) {
    auto server = discovery::store_server::listen(
        socket, [](pid_t, uid_t) -> std::optional<discovery::store_domid> { return 0; });
    if (!server) {
        write_line("error store: " + server.error().message());
        return 1;
    }
    auto& store = **server;
    for (const auto& entry : nodes) {
        const auto equals = entry.find('=');
        if (equals == std::string::npos) {
            write_line("error bad node " + entry);
            return 1;
        }
        const auto path = discovery::node_entry_path(entry.substr(0, equals));
        const bool written = store.write(path + "/domid", entry.substr(equals + 1)).has_value() &&
                             store.write(path + "/host", "bench").has_value() &&
                             store.write(path + "/generation", "1").has_value();
        if (!written) {
            write_line("error cannot write " + path);
            return 1;
        }
    }
    write_line("ready store " + socket);
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {store.native_handle(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
            return 1;
        }
        if (fds[1].revents != 0) {
            store.poll();
        }
        if (fds[0].revents != 0) {
            char chunk[256];
            if (::read(STDIN_FILENO, chunk, sizeof chunk) <= 0) {
                return 0;  // the coordinator is gone, or said quit and closed
            }
        }
    }
}

}  // namespace vdist::bench
