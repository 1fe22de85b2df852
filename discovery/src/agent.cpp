#include "vdist/discovery/agent.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>
#include <variant>

#include "unix_address.hpp"
#include "vdist/discovery/agent_control.hpp"
#include "vdist/discovery/agent_protocol.hpp"
#include "vdist/discovery/store_ring_directory.hpp"
#include "zygote.hpp"

namespace vdist::discovery {
namespace {

using steady = std::chrono::steady_clock;

std::error_code last_error() {
    return {errno, std::system_category()};
}

/// Who waits for a node to be ready.
struct control_waiter {
    int fd = -1;
};
struct node_waiter {
    store_domid requester = 0;
    dist::reference ref;
};
using ready_waiter = std::variant<control_waiter, node_waiter>;

enum class slot_state { starting, running, stopping, given_up, exited };

std::string_view state_name(slot_state s) {
    switch (s) {
        case slot_state::starting:
            return "starting";
        case slot_state::running:
            return "running";
        case slot_state::stopping:
            return "stopping";
        case slot_state::given_up:
            return "given_up";
        case slot_state::exited:
            return "exited";
    }
    return "?";
}

/// A supervised node: the name survives restarts, the domain does not.
struct slot {
    std::string name;
    restart_policy policy = restart_policy::temporary;
    std::uint32_t generation = 0;
    std::deque<steady::time_point> restarts;
    slot_state state = slot_state::starting;
    store_domid domid = 0;  // 0: no domain
    bool stop_requested = false;
};

/// One running domain (node process).
struct domain {
    store_domid domid = 0;
    std::string slot_name;
    pid_t os_pid = -1;
    int channel = -1;
    std::unique_ptr<dist::atom_table> atoms = std::make_unique<dist::atom_table>(4096);
    std::unique_ptr<frame_reader> reader;
    steady::time_point started;
    std::optional<steady::time_point> ready_at;
    std::optional<dist::pid> echo;
    std::vector<ready_waiter> waiters;
    bool exiting = false;  ///< its channel closed: about to be reaped

    /// A domain kept ready for the next spawn: no node assigned yet, alive.
    [[nodiscard]] bool shell() const { return slot_name.empty() && !exiting; }
};

/// An `ls` in progress: the answers still missing.
struct listing {
    int fd = -1;
    std::map<store_domid, std::vector<connection_row>> rows;
    std::size_t missing = 0;
    steady::time_point deadline;
    std::uint32_t ref_word = 0;
};

}  // namespace

struct host_agent::impl {
    agent_config config;
    std::unique_ptr<agent_store> store;
    std::filesystem::path run_dir;
    std::filesystem::path control_path;
    int epoll = -1;
    int control = -1;
    int signal_fd = -1;
    bool stopping = false;
    store_domid next_domid = 1;
    steady::time_point next_shell_at;
    std::optional<zygote> forks;
    std::deque<store_domid> forking;  // asked of the zygote, pid not yet answered
    std::vector<zygote::event> zygote_exits;
    std::vector<std::pair<store_domid, int>> failed_forks;  // domid, errno
    bool zygote_lost = false;
    unsigned next_core = 0;
    std::uint32_t next_ref = 1;
    dist::atom_table atoms{4096};
    dist::atom self_atom;
    std::map<std::string, slot, std::less<>> slots;
    std::map<store_domid, domain> domains;
    /// The domids of the domains that are shells (domain::shell()): looked up on every turn of
    /// the loop, which with hundreds of nodes must not walk them all.
    std::set<store_domid> shells;
    /// The domain of each domain process, by its pid (SO_PEERCRED of a store connection, the
    /// zygote's exit reports): found without walking hundreds of domains.
    std::unordered_map<pid_t, store_domid> domid_by_pid;
    /// The domain of each first channel, by its fd (the loop's events).
    std::unordered_map<int, store_domid> domid_by_channel;
    std::map<int, std::string> control_clients;  // fd -> bytes of the request line so far
    std::vector<listing> listings;
    // A scheduled restart of a slot (a slot that exits is restarted from the loop).
    std::vector<std::string> restart_queue;

    void log(const std::string& line) const {
        if (config.log) {
            config.log(line);
        } else {
            std::fprintf(stderr, "vdist host %s: %s\n", config.host_name.c_str(), line.c_str());
        }
    }

    void watch(int fd) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    }
    void unwatch_close(int fd) {
        if (fd >= 0) {
            ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
            ::close(fd);
        }
    }

    /// A signal to a domain's process, once the zygote said which it is.
    static void signal_domain(const domain& d, int signal) {
        if (d.os_pid > 0) {
            ::kill(d.os_pid, signal);
        }
    }

    dist::reference make_ref() { return dist::reference{self_atom, 0, {next_ref++, 0, 0}}; }

    // -- control answers ------------------------------------------------------------------------

    void answer(int fd, const std::string& text) {
        // Answers are short; the client reads them at once. A client that does not read loses
        // its answer rather than blocking the agent.
        std::size_t written = 0;
        while (written < text.size()) {
            const auto n = ::send(fd, text.data() + written, text.size() - written,
                                  MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0) {
                break;
            }
            written += static_cast<std::size_t>(n);
        }
        unwatch_close(fd);
        control_clients.erase(fd);
    }

    // -- the store records of a domain ----------------------------------------------------------

    void check(const std::expected<void, std::error_code>& r, std::string_view what) const {
        if (!r) {
            log("store: " + std::string(what) + ": " + r.error().message());
        }
    }

    /// What a domain has from its creation: its home (its own), its ring inbox.
    void write_domain_records(store_domid domid) {
        const std::string dom = domain_path(domid);
        check(store->mkdir(dom), dom);
        check(store->set_permissions(dom, {{domid, access::none}}), dom);
        const std::string inbox = connect_inbox_path(domid);
        check(store->mkdir(inbox), inbox);
        check(store->set_permissions(inbox, store_ring_directory::inbox_permissions(domid)), inbox);
    }

    /// What a domain gets when a node is assigned to it: its record, the name's entry.
    void write_node_records(store_domid domid, const slot& s) {
        const std::string generation = std::to_string(s.generation);
        const std::string record = node_record_path(domid);
        check(store->write(record + "/name", s.name), record);
        check(store->write(record + "/host", config.host_name), record);
        check(store->write(record + "/generation", generation), record);
        const std::string entry = node_entry_path(s.name);
        check(store->write(entry + "/domid", std::to_string(domid)), entry);
        check(store->write(entry + "/host", config.host_name), entry);
        check(store->write(entry + "/generation", generation), entry);
        check(store->set_permissions(entry, {{0, access::read}}), entry);
        for (const char* key : {"/domid", "/host", "/generation"}) {
            check(store->set_permissions(entry + key, {{0, access::read}}), entry);
        }
    }

    void remove_records(store_domid domid, const std::string& name) {
        (void)store->rm(domain_path(domid));
        const std::string entry = node_entry_path(name);
        if (!name.empty() && store->read(entry + "/domid") == std::to_string(domid)) {
            (void)store->rm(entry);
        }
        // Offers the dead domain wrote into other inboxes: `<domid>-<port>`.
        const std::string prefix = std::to_string(domid) + "-";
        if (auto others = store->directory("/local/domain")) {
            for (const auto& other : *others) {
                const std::string inbox = "/local/domain/" + other + "/data/vdist/connect";
                if (auto offers = store->directory(inbox)) {
                    for (const auto& offer : *offers) {
                        if (offer.starts_with(prefix)) {
                            (void)store->rm(inbox + "/" + offer);
                        }
                    }
                }
            }
        }
        // Empty parents the agent created.
        for (const char* parent : {"/local/domain", "/local", "/vdist/nodes", "/vdist"}) {
            if (auto children = store->directory(parent); children && children->empty()) {
                (void)store->rm(parent);
            }
        }
        store->release_domain(domid);
        // Rendezvous sockets of the host backend: vchan.<domid>.*.sock.
        std::error_code ignored;
        const std::string socket_prefix = "vchan." + std::to_string(domid) + ".";
        for (const auto& entry_path : std::filesystem::directory_iterator(run_dir, ignored)) {
            const std::string file = entry_path.path().filename().string();
            if (file.starts_with(socket_prefix) && file.ends_with(".sock")) {
                std::filesystem::remove(entry_path.path(), ignored);
            }
        }
    }

    // -- spawning -------------------------------------------------------------------------------

    /// The domain process `pid` runs, for the store (SO_PEERCRED). A process forked a moment
    /// ago may connect before the zygote's answer was read: then it is read now.
    [[nodiscard]] std::optional<store_domid> domid_of(pid_t pid) {
        const auto deadline = steady::now() + std::chrono::milliseconds(200);
        do {
            if (const auto found = domid_by_pid.find(pid); found != domid_by_pid.end()) {
                return found->second;
            }
        } while (await_fork_answers(deadline));
        return std::nullopt;
    }

    /// Reads the zygote's answers when forks are waiting for theirs (pids not known yet), until
    /// `deadline`; false when there is nothing more to wait for.
    bool await_fork_answers(steady::time_point deadline) {
        if (forking.empty() || zygote_lost || steady::now() >= deadline) {
            return false;
        }
        take_zygote_events(std::chrono::milliseconds(50));
        return true;
    }

    /// A domain shell kept ready (the lowest domid), if any.
    [[nodiscard]] std::optional<store_domid> free_shell() const {
        if (shells.empty()) {
            return std::nullopt;
        }
        return *shells.begin();
    }
    [[nodiscard]] std::size_t shell_count() const { return shells.size(); }
    [[nodiscard]] store_domid next_free_domid() {
        while (domains.contains(next_domid) || next_domid == 0) {
            ++next_domid;
        }
        return next_domid;
    }

    /// Starts slot `s` in a domain: a shell made ahead (LightVM's split toolstack: the costly
    /// part of creating a domain is done before anyone asks), else a new domain. The caller
    /// then writes the node's records (write_node_records): the config goes first, so that the
    /// node boots while they are written. No store client sees the difference: the agent
    /// serves the store, and reads no request before it is done.
    std::expected<store_domid, std::string> start_domain(slot& s) {
        auto domid = free_shell();
        if (!domid) {
            auto created = create_domain();
            if (!created) {
                return std::unexpected(created.error());
            }
            domid = *created;
        }
        domain& d = domains.at(*domid);
        d.slot_name = s.name;
        shells.erase(d.domid);
        d.started = steady::now();
        s.domid = d.domid;
        s.state = slot_state::starting;
        node_config_message message{
            .name = s.name,
            .cookie = config.cookie,
            .domid = d.domid,
            .host = config.host_name,
            .store = store->socket_path(),
            .run_dir = run_dir.string(),
            .ticktime_ms = config.ticktime_ms,
            .wait = config.wait == "busy"   ? node_wait::busy
                    : config.wait == "spin" ? node_wait::spin
                                            : node_wait::block,
        };
        send_frame(d, to_term(agent_to_node{message}, atoms));
        return d.domid;
    }

    /// A new domain, without a node yet (a shell): a process forked by the zygote (and exec'd)
    /// with its first channel, its records in the store, and the `domain` message sent.
    std::expected<store_domid, std::string> create_domain() {
        const store_domid domid = next_free_domid();
        ++next_domid;
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
            return std::unexpected("socketpair: " + last_error().message());
        }
        domain d;
        d.domid = domid;
        d.reader = std::make_unique<frame_reader>(*d.atoms);
        write_domain_records(domid);

        const int cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
        const int core =
            config.pin
                ? static_cast<int>(next_core++ % static_cast<unsigned>(cores > 0 ? cores : 1))
                : -1;
        const bool asked = forks && !forks->gone() && forks->request(pair[1], core);
        ::close(pair[1]);
        if (!asked) {
            ::close(pair[0]);
            remove_records(domid, "");
            return std::unexpected(std::string("the zygote is gone"));
        }
        // The pid comes with the zygote's answer (take_zygote_events), before the process can
        // ask anything: it reads the `domain` message first.
        d.channel = pair[0];
        ::fcntl(d.channel, F_SETFL, ::fcntl(d.channel, F_GETFL) | O_NONBLOCK);
        watch(d.channel);
        domid_by_channel[d.channel] = domid;
        forking.push_back(domid);
        auto [it, inserted] = domains.emplace(domid, std::move(d));
        shells.insert(domid);
        send_frame(
            it->second,
            to_term(agent_to_node{domain_message{domid, store->socket_path(), run_dir.string()}},
                    atoms));
        return domid;
    }

    /// Keeps `config.shells` domain shells ready, one per call, when the agent has nothing else
    /// to do. A shell that dies unused delays the next one by a second (no fork loop).
    void refill_shells() {
        if (stopping || shell_count() >= config.shells || steady::now() < next_shell_at) {
            return;
        }
        if (auto created = create_domain(); !created) {
            log("domain shell: " + created.error());
            next_shell_at = steady::now() + std::chrono::seconds(1);
        }
    }

    void send_frame(domain& d, const dist::term& t) {
        auto bytes = frame(t);
        if (!bytes) {
            log("first channel: " + bytes.error().message());
            return;
        }
        // Frames are small and the socketpair's buffer large; a node that does not read its
        // channel for long is broken, and is killed.
        std::size_t written = 0;
        while (written < bytes->size()) {
            const auto n =
                ::send(d.channel, bytes->data() + written, bytes->size() - written, MSG_NOSIGNAL);
            if (n <= 0) {
                if (n < 0 && errno == EAGAIN) {
                    log("node " + d.slot_name + " does not read its first channel: killed");
                    signal_domain(d, SIGKILL);
                }
                return;
            }
            written += static_cast<std::size_t>(n);
        }
    }

    std::string default_name() {
        // The domid about to be assigned names the node: unique on this host; the host name
        // makes it unique across agents sharing an EPMD.
        const store_domid domid = free_shell().value_or(next_free_domid());
        const std::string suffix = "-" + config.host_name + "@localhost";
        std::string name = "n" + std::to_string(domid) + suffix;
        for (int again = 2; slots.contains(name); ++again) {
            name = "n" + std::to_string(domid) + "_" + std::to_string(again) + suffix;
        }
        return name;
    }

    /// Starts a new slot; `waiter` hears of it when the node is ready (or failed).
    void spawn(std::string name, restart_policy policy, ready_waiter waiter) {
        if (name.empty() || name == "-") {
            name = default_name();
        } else if (name.find('@') == std::string::npos) {
            name += "@localhost";
        }
        if (slots.contains(name)) {
            fail_waiter(waiter, "name taken: " + name);
            return;
        }
        slot& s = slots[name];
        s.name = name;
        s.policy = policy;
        s.generation = 1;
        auto started = start_domain(s);
        if (!started) {
            slots.erase(name);
            fail_waiter(waiter, started.error());
            return;
        }
        if (const auto* n = std::get_if<node_waiter>(&waiter)) {
            // The requester connects while the node starts.
            if (auto it = domains.find(n->requester); it != domains.end()) {
                send_frame(it->second,
                           to_term(agent_to_node{assigned_reply{n->ref, name, *started}}, atoms));
            }
        }
        write_node_records(*started, s);
        domains.at(*started).waiters.push_back(std::move(waiter));
    }

    void fail_waiter(const ready_waiter& waiter, const std::string& why) {
        if (const auto* c = std::get_if<control_waiter>(&waiter)) {
            answer(c->fd, "error " + why + "\n");
        } else {
            const auto& n = std::get<node_waiter>(waiter);
            if (auto it = domains.find(n.requester); it != domains.end()) {
                send_frame(it->second,
                           to_term(agent_to_node{spawn_failed_reply{n.ref, why}}, atoms));
            }
        }
    }

    void node_ready(domain& d, const dist::pid& echo) {
        d.ready_at = steady::now();
        d.echo = echo;
        if (auto it = slots.find(d.slot_name); it != slots.end()) {
            it->second.state = slot_state::running;
        }
        const auto micros =
            std::chrono::duration_cast<std::chrono::microseconds>(*d.ready_at - d.started).count();
        for (const auto& waiter : d.waiters) {
            if (const auto* c = std::get_if<control_waiter>(&waiter)) {
                answer(c->fd, "ok " + d.slot_name + " " + std::to_string(d.domid) + " " +
                                  std::to_string(d.os_pid) + " " + std::to_string(micros) + "\n");
            } else {
                const auto& n = std::get<node_waiter>(waiter);
                if (auto it = domains.find(n.requester); it != domains.end()) {
                    // The echo pid's node atom must live in the table of the frame's encoder.
                    dist::pid echo_copy = echo;
                    echo_copy.node = atoms.intern(echo.node.text()).value_or(dist::atom{});
                    send_frame(it->second,
                               to_term(agent_to_node{spawned_reply{n.ref, d.slot_name, echo_copy}},
                                       atoms));
                }
            }
        }
        d.waiters.clear();
    }

    // -- the first channel ----------------------------------------------------------------------

    void channel_ready(domain& d) {
        std::byte buffer[65536];
        for (;;) {
            const auto n = ::recv(d.channel, buffer, sizeof buffer, 0);
            if (n > 0) {
                d.reader->feed(std::span(buffer, static_cast<std::size_t>(n)));
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                break;
            }
            // EOF or error: the node is going; the zygote tells when it is gone.
            ::epoll_ctl(epoll, EPOLL_CTL_DEL, d.channel, nullptr);
            d.exiting = true;
            shells.erase(d.domid);
            break;
        }
        for (;;) {
            auto next = d.reader->next();
            if (!next) {
                log("node " + d.slot_name + ": " + next.error().message() + ": killed");
                signal_domain(d, SIGKILL);
                ::epoll_ctl(epoll, EPOLL_CTL_DEL, d.channel, nullptr);
                return;
            }
            if (!*next) {
                return;
            }
            auto message = node_to_agent_from(**next);
            if (!message) {
                log("node " + d.slot_name + ": " + message.error().message() + ": killed");
                signal_domain(d, SIGKILL);
                ::epoll_ctl(epoll, EPOLL_CTL_DEL, d.channel, nullptr);
                return;
            }
            handle(d, std::move(*message));
        }
    }

    void handle(domain& d, node_to_agent message) {
        if (auto* ready = std::get_if<ready_message>(&message)) {
            node_ready(d, ready->echo);
        } else if (auto* stats = std::get_if<stats_reply>(&message)) {
            for (auto& l : listings) {
                if (stats->ref.words.empty() || stats->ref.words[0] != l.ref_word) {
                    continue;
                }
                if (auto it = l.rows.find(d.domid); it != l.rows.end() && it->second.empty()) {
                    it->second = std::move(stats->connections);
                    if (l.missing > 0) {
                        --l.missing;
                    }
                }
            }
            finish_listings(false);
        } else if (auto* request = std::get_if<spawn_request>(&message)) {
            const auto policy =
                parse_restart_policy(request->restart).value_or(restart_policy::temporary);
            dist::reference ref = request->ref;
            ref.node = atoms.intern(ref.node.text()).value_or(dist::atom{});
            spawn("", policy, node_waiter{d.domid, std::move(ref)});
        }
    }

    // -- death and restarts ---------------------------------------------------------------------

    /// The zygote's events: pids of new domains (applied at once: the store identifies
    /// connections by them), spawn failures and exits (queued for the loop, which may be
    /// inside the store's poll now). Waits at most `wait` for the first.
    void take_zygote_events(std::chrono::milliseconds wait) {
        if (!forks) {
            return;
        }
        while (auto e = forks->next_event(wait)) {
            wait = std::chrono::milliseconds(0);
            if (e->what == zygote::event::kind::exited) {
                zygote_exits.push_back(*e);
                continue;
            }
            if (forking.empty()) {
                continue;
            }
            const store_domid domid = forking.front();
            forking.pop_front();
            if (e->what == zygote::event::kind::spawned) {
                if (auto it = domains.find(domid); it != domains.end()) {
                    it->second.os_pid = e->pid;
                    domid_by_pid[e->pid] = domid;
                }
            } else {
                failed_forks.emplace_back(domid, e->value);
            }
        }
        if (forks->gone() && !zygote_lost) {
            zygote_lost = true;
            log("the zygote died: its domains died with it");
            for (const auto& [domid, d] : domains) {
                failed_forks.emplace_back(domid, ECHILD);
            }
        }
    }

    void handle_zygote_exits() {
        for (const auto& [domid, error] : std::exchange(failed_forks, {})) {
            domain_exited(
                domid,
                error == ECHILD ? "vanished" : "not forked: " + std::string(::strerror(error)),
                false);
        }
        for (const auto& e : std::exchange(zygote_exits, {})) {
            if (const auto found = domid_by_pid.find(e.pid); found != domid_by_pid.end()) {
                const int status = e.value;
                domain_exited(found->second,
                              WIFSIGNALED(status)
                                  ? "killed by signal " + std::to_string(WTERMSIG(status))
                                  : "exited with status " + std::to_string(WEXITSTATUS(status)),
                              WIFEXITED(status) && WEXITSTATUS(status) == 0);
            }
        }
    }

    void domain_exited(store_domid domid, const std::string& how, bool normal) {
        auto it = domains.find(domid);
        if (it == domains.end()) {
            return;
        }
        domain& d = it->second;
        domid_by_channel.erase(d.channel);
        unwatch_close(d.channel);
        shells.erase(domid);
        domid_by_pid.erase(d.os_pid);
        if (d.slot_name.empty()) {
            if (!stopping) {
                log("domain shell " + std::to_string(domid) + " (pid " + std::to_string(d.os_pid) +
                    ") " + how + " unused");
                next_shell_at = steady::now() + std::chrono::seconds(1);
            }
            remove_records(domid, "");
            domains.erase(it);
            return;
        }
        log("node " + d.slot_name + " (domid " + std::to_string(domid) + ", pid " +
            std::to_string(d.os_pid) + ") " + how);
        for (const auto& waiter : d.waiters) {
            fail_waiter(waiter, "node exited before it was ready (" + how + ")");
        }
        const std::string name = d.slot_name;
        remove_records(domid, name);
        domains.erase(it);
        if (auto s = slots.find(name); s != slots.end()) {
            s->second.domid = 0;
            s->second.state = slot_state::exited;
        }
        for (auto& l : listings) {
            if (auto row = l.rows.find(domid); row != l.rows.end() && l.missing > 0) {
                --l.missing;
            }
        }
        finish_listings(false);

        auto s = slots.find(name);
        if (s == slots.end()) {
            return;
        }
        s->second.domid = 0;
        const bool restart = !stopping && !s->second.stop_requested &&
                             (s->second.policy == restart_policy::permanent ||
                              (s->second.policy == restart_policy::transient && !normal));
        if (!restart) {
            slots.erase(s);
            return;
        }
        const auto now = steady::now();
        auto& history = s->second.restarts;
        history.push_back(now);
        while (!history.empty() && now - history.front() > config.restart_period) {
            history.pop_front();
        }
        if (static_cast<int>(history.size()) > config.max_restarts) {
            log("node " + name + ": more than " + std::to_string(config.max_restarts) +
                " restarts in " + std::to_string(config.restart_period.count()) + " ms: given up");
            s->second.state = slot_state::given_up;
            return;
        }
        s->second.state = slot_state::exited;  // until run_restarts() starts it again
        restart_queue.push_back(name);
    }

    void run_restarts() {
        auto queue = std::move(restart_queue);
        restart_queue.clear();
        for (const auto& name : queue) {
            auto s = slots.find(name);
            if (s == slots.end() || stopping) {
                continue;
            }
            ++s->second.generation;
            auto started = start_domain(s->second);
            if (started) {
                write_node_records(*started, s->second);
                log("node " + name + " restarted as domid " + std::to_string(*started) +
                    ", generation " + std::to_string(s->second.generation));
            } else {
                log("node " + name + ": restart failed: " + started.error());
                s->second.state = slot_state::given_up;
            }
        }
    }

    // -- control commands -----------------------------------------------------------------------

    void control_line(int fd, const std::string& line) {
        std::vector<std::string> words;
        for (std::size_t at = 0; at < line.size();) {
            const auto end = line.find(' ', at);
            const auto word = line.substr(at, end == std::string::npos ? end : end - at);
            if (!word.empty()) {
                words.push_back(word);
            }
            at = end == std::string::npos ? line.size() : end + 1;
        }
        if (words.empty()) {
            answer(fd, "error empty request\n");
        } else if (words[0] == "spawn" && words.size() == 3) {
            const auto policy = parse_restart_policy(words[2]);
            if (!policy) {
                answer(fd, "error unknown restart policy " + words[2] + "\n");
                return;
            }
            if (stopping) {
                answer(fd, "error agent stopping\n");
                return;
            }
            spawn(words[1], *policy, control_waiter{fd});
        } else if (words[0] == "ls" && words.size() == 1) {
            start_listing(fd);
        } else if (words[0] == "kill" && words.size() == 3) {
            kill_node(fd, words[1], words[2]);
        } else if (words[0] == "store" && words.size() == 1) {
            std::string text;
            for (const auto& path : store->all_paths()) {
                text += "key " + path + "\n";
            }
            answer(fd, text + "end\n");
        } else if (words[0] == "stop" && words.size() == 1) {
            answer(fd, "ok\n");
            begin_stop();
        } else {
            answer(fd, "error unknown request: " + line + "\n");
        }
    }

    void kill_node(int fd, std::string name, const std::string& signal_text) {
        if (name.find('@') == std::string::npos) {
            name += "@localhost";
        }
        int signal = -1;
        try {
            signal = std::stoi(signal_text);
        } catch (...) {
            signal = -1;
        }
        auto s = slots.find(name);
        if (s == slots.end() || signal < 0 || signal > 64) {
            answer(fd, s == slots.end() ? "error no node " + name + "\n" : "error bad signal\n");
            return;
        }
        if (s->second.domid == 0) {
            // A given-up slot: forget it.
            slots.erase(s);
            answer(fd, "ok\n");
            return;
        }
        const auto found = domains.find(s->second.domid);
        if (found == domains.end()) {
            answer(fd, "error no domain for " + name + "\n");
            return;
        }
        domain& d = found->second;
        if (signal == 0) {
            s->second.stop_requested = true;
            s->second.state = slot_state::stopping;
            send_frame(d, to_term(agent_to_node{stop_message{}}, atoms));
        } else {
            signal_domain(d, signal);
        }
        answer(fd, "ok\n");
    }

    void start_listing(int fd) {
        // A domain forked a moment ago has its pid in the zygote's answer, maybe unread yet: read
        // it, so that the listing shows every process (a shell made just now included).
        const auto deadline = steady::now() + std::chrono::seconds(1);
        while (await_fork_answers(deadline)) {
        }
        listing l;
        l.fd = fd;
        l.ref_word = next_ref;
        l.deadline = steady::now() + std::chrono::seconds(1);
        const dist::reference ref = make_ref();
        for (auto& [domid, d] : domains) {
            if (d.ready_at) {
                l.rows[domid];
                ++l.missing;
                send_frame(d, to_term(agent_to_node{stats_request{ref}}, atoms));
            }
        }
        listings.push_back(std::move(l));
        finish_listings(false);
    }

    void finish_listings(bool timed_out) {
        const auto now = steady::now();
        for (auto it = listings.begin(); it != listings.end();) {
            if (it->missing > 0 && !(timed_out && now >= it->deadline)) {
                ++it;
                continue;
            }
            std::string text;
            for (const auto& [name, s] : slots) {
                const auto found = domains.find(s.domid);
                const domain* d = found != domains.end() ? &found->second : nullptr;
                text += "node " + name + " " + std::to_string(s.domid) + " " +
                        std::to_string(d != nullptr ? d->os_pid : 0) + " " +
                        std::to_string(s.generation) + " " + std::string(state_name(s.state)) +
                        " " + std::string(to_string(s.policy)) + "\n";
                if (d == nullptr) {
                    continue;
                }
                if (auto rows = it->rows.find(d->domid); rows != it->rows.end()) {
                    for (const auto& c : rows->second) {
                        text += "conn " + name + " " + c.peer + " " + c.carrier + " " +
                                std::to_string(c.messages_in) + " " +
                                std::to_string(c.messages_out) + " " + std::to_string(c.bytes_in) +
                                " " + std::to_string(c.bytes_out) + "\n";
                    }
                }
            }
            for (const auto& [domid, d] : domains) {
                if (d.shell()) {
                    text +=
                        "shell " + std::to_string(domid) + " " + std::to_string(d.os_pid) + "\n";
                }
            }
            answer(it->fd, text + "end\n");
            it = listings.erase(it);
        }
    }

    void control_ready(int fd) {
        char buffer[1024];
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) {
                return;
            }
            unwatch_close(fd);
            control_clients.erase(fd);
            return;
        }
        auto& line = control_clients[fd];
        line.append(buffer, static_cast<std::size_t>(n));
        if (const auto end = line.find('\n'); end != std::string::npos) {
            const std::string request = line.substr(0, end);
            ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);  // one request per connection
            control_line(fd, request);
        } else if (line.size() > max_control_line) {
            answer(fd, "error request too long\n");
        }
    }

    void accept_control() {
        for (;;) {
            const int fd = ::accept4(control, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0) {
                return;
            }
            control_clients[fd];
            watch(fd);
        }
    }

    // -- the loop -------------------------------------------------------------------------------

    void begin_stop() {
        if (stopping) {
            return;
        }
        stopping = true;
        log("stopping " + std::to_string(domains.size()) + " node(s)");
        for (auto& [domid, d] : domains) {
            send_frame(d, to_term(agent_to_node{stop_message{}}, atoms));
        }
    }

    int loop() {
        std::optional<steady::time_point> stop_deadline;
        for (;;) {
            run_restarts();
            if (stopping) {
                if (!stop_deadline) {
                    stop_deadline = steady::now() + config.stop_timeout;
                }
                if (domains.empty()) {
                    break;
                }
                if (steady::now() >= *stop_deadline) {
                    for (auto& [domid, d] : domains) {
                        log("node " + d.slot_name + " did not stop: SIGKILL");
                        signal_domain(d, SIGKILL);
                    }
                    stop_deadline = steady::now() + std::chrono::seconds(5);
                }
            }
            int timeout_ms = listings.empty() ? -1 : 100;
            if (stopping) {
                timeout_ms = 50;
            } else if (shell_count() < config.shells) {
                // Shells are made when the agent has been idle for a millisecond; the zygote
                // forks them, so the agent's loop is not held up.
                timeout_ms = 1;
            }
            epoll_event events[64];
            const int n = ::epoll_wait(epoll, events, 64, timeout_ms);
            if (n < 0 && errno != EINTR) {
                log("epoll_wait: " + last_error().message());
                return 1;
            }
            if (n == 0) {
                refill_shells();
            }
            for (int i = 0; i < n; ++i) {
                dispatch(events[i].data.fd);
            }
            handle_zygote_exits();
            finish_listings(true);
        }
        return 0;
    }

    void dispatch(int fd) {
        if (fd == control) {
            accept_control();
            return;
        }
        if (fd == signal_fd) {
            signalfd_siginfo info{};
            if (::read(signal_fd, &info, sizeof info) == sizeof info) {
                log(std::string(::strsignal(static_cast<int>(info.ssi_signo))));
                begin_stop();
            }
            return;
        }
        if (fd == store->native_handle()) {
            store->poll();
            return;
        }
        if (forks && fd == forks->native_handle()) {
            take_zygote_events(std::chrono::milliseconds(0));
            if (forks->gone()) {
                ::epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
            }
            return;
        }
        if (control_clients.contains(fd)) {
            control_ready(fd);
            return;
        }
        if (const auto found = domid_by_channel.find(fd); found != domid_by_channel.end()) {
            if (const auto d = domains.find(found->second); d != domains.end()) {
                channel_ready(d->second);
            }
        }
    }

    void shutdown() {
        for (auto& [fd, line] : control_clients) {
            ::close(fd);
        }
        control_clients.clear();
        if (auto paths = store->all_paths(); !paths.empty()) {
            for (const char* root : {"/local", "/vdist"}) {
                (void)store->rm(root);
            }
        }
        if (control >= 0) {
            ::close(control);
            std::error_code ignored;
            std::filesystem::remove(control_path, ignored);
        }
        store.reset();  // the server unlinks its socket
        std::error_code ignored;
        std::filesystem::remove(run_dir, ignored);  // only when empty: nodes' leftovers stay
        if (signal_fd >= 0) {
            ::close(signal_fd);
        }
        if (epoll >= 0) {
            ::close(epoll);
        }
    }
};

std::optional<restart_policy> parse_restart_policy(std::string_view text) {
    if (text == "permanent")
        return restart_policy::permanent;
    if (text == "transient")
        return restart_policy::transient;
    if (text == "temporary")
        return restart_policy::temporary;
    return std::nullopt;
}

std::string_view to_string(restart_policy policy) {
    switch (policy) {
        case restart_policy::permanent:
            return "permanent";
        case restart_policy::transient:
            return "transient";
        case restart_policy::temporary:
            return "temporary";
    }
    return "temporary";
}

void serve_as_zygote(int socket, std::function<int(int channel_fd)> node_main) {
    zygote::serve_exec(socket, std::move(node_main));
}

host_agent::host_agent(std::unique_ptr<impl> self) : self_(std::move(self)) {}

host_agent::~host_agent() {
    if (self_) {
        for (auto& [domid, d] : self_->domains) {
            impl::signal_domain(d, SIGKILL);
            ::close(d.channel);
        }
        self_->domains.clear();
        self_->shells.clear();
        self_->forks.reset();  // the zygote exits (and reaps) once its socket closes
        self_->shutdown();
    }
}

std::expected<std::unique_ptr<host_agent>, std::error_code> host_agent::create(
    agent_config config, std::unique_ptr<agent_store> store) {
    auto self = std::make_unique<impl>();
    if (config.host_name.empty()) {
        config.host_name = "agent" + std::to_string(::getpid());
    }
    std::error_code error;
    std::filesystem::create_directories(config.dir / "run", error);
    if (error) {
        return std::unexpected(error);
    }
    self->config = std::move(config);
    self->run_dir = self->config.dir / "run";
    self->control_path = self->config.dir / "agent.sock";
    self->self_atom = self->atoms.intern("agent@" + self->config.host_name).value_or(dist::atom{});
    // The zygote first, before the agent holds any socket of its own.
    auto forks = self->config.exec_zygote
                     ? zygote::start_exec(self->config.node_program)
                     : zygote::start(self->config.fork_node, self->config.node_program);
    if (!forks) {
        return std::unexpected(forks.error());
    }
    self->forks.emplace(std::move(*forks));
    impl* raw = self.get();
    if (!store) {
        auto served = serve_host_store(self->config.dir / "store.sock",
                                       [raw](pid_t pid) { return raw->domid_of(pid); });
        if (!served) {
            return std::unexpected(served.error());
        }
        store = std::move(*served);
    }
    self->store = std::move(store);

    self->epoll = ::epoll_create1(EPOLL_CLOEXEC);
    self->control = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const auto address = internal::unix_address(self->control_path);
    if (self->epoll < 0 || self->control < 0 || !address) {
        return std::unexpected(std::make_error_code(std::errc::invalid_argument));
    }
    ::unlink(self->control_path.c_str());
    if (::bind(self->control, reinterpret_cast<const sockaddr*>(&*address), sizeof *address) != 0 ||
        ::listen(self->control, 256) != 0) {
        return std::unexpected(last_error());
    }
    self->watch(self->control);
    self->watch(self->forks->native_handle());
    if (self->store->native_handle() >= 0) {
        self->watch(self->store->native_handle());
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    self->signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
    if (self->signal_fd >= 0) {
        self->watch(self->signal_fd);
    }
    return std::unique_ptr<host_agent>(new host_agent(std::move(self)));
}

int host_agent::run() {
    self_->log(
        "serving " + self_->control_path.string() +
        (host_store_available() ? "" : " (no host store in this build: nodes run TCP only)"));
    const int status = self_->loop();
    self_->log("stopped");
    return status;
}

void host_agent::stop() noexcept {
    self_->begin_stop();
}

}  // namespace vdist::discovery
