#pragma once
/// \file
/// The single-core node: one thread, one loop, many processes that share nothing and only
/// exchange messages, with Erlang's semantics.
///
/// ```
///  node ── run queue ──> process ── mailbox (terms, selective receive)
///   │                      │── links, monitors (both directions), trap_exit, aliases
///   │── registry (name -> pid)          timers (send_after, receive ... after)
///   │── timers on an injected clock     exit signals: a queue drained in order, never recursion
///   └── I/O sources (fds: transport channels), idle per transport::wait_policy
/// ```
///
/// A process is a C++ object driven by callbacks: its body runs once when it is spawned and
/// arms a receive (clauses, each a predicate and a handler, and an optional `after` timeout).
/// When a message in the mailbox matches a clause, in mailbox order as Erlang's receive, the
/// clause's handler runs; a handler that arms no new receive ends the process with `normal`
/// (as a function that returns), unless it armed a persistent receive with `become`.
///
/// Exit signals follow Erlang exactly: a process that ends sends its reason to every linked
/// process and a 'DOWN' to every monitor; a linked process that traps exits gets
/// {'EXIT', Pid, Reason}, one that does not dies with the same reason unless it is `normal`;
/// exit(Pid, kill) cannot be trapped and ends Pid with `killed`; monitoring a process that
/// does not exist gives 'DOWN' with `noproc`; a lost node gives `noconnection`. Sends to
/// unknown pids or names are dropped, as in Erlang, and counted.
///
/// Threads: everything here runs on the node's thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "vdist/dist/atom.hpp"
#include "vdist/dist/term.hpp"
#include "vdist/runtime/clock.hpp"
#include "vdist/transport/channel.hpp"
#include "vdist/transport/seams.hpp"

namespace vdist::runtime {

using dist::atom;
using dist::pid;
using dist::reference;
using dist::term;

class node;
class process;

/// What a process runs when it starts: it arms its first receive (or does its work and
/// returns, which ends it with `normal`).
using behavior = std::function<void(process&)>;

/// One clause of a receive: the first message (in mailbox order) for which `matches` is true
/// is removed from the mailbox and given to `handle`.
struct clause {
    std::function<bool(const term&)> matches;
    std::function<void(process&, term)> handle;
};

/// What happens when a message arrives at a full mailbox (node_config::mailbox_limit).
enum class mailbox_overflow {
    exit_process,  ///< the receiver exits with {mailbox_overflow, Limit} (its links fire)
    drop_message,  ///< the message is dropped and counted (node_stats::dropped_overflow)
};

/// How a node is set up.
struct node_config {
    std::string name = "nonode@nohost";   ///< the node's name (an atom)
    std::uint32_t creation = 0;           ///< the node's creation, in every pid and ref it makes
    clock* time = nullptr;                ///< the clock (null: the steady clock)
    std::size_t mailbox_limit = 1 << 20;  ///< messages one mailbox may hold
    mailbox_overflow overflow = mailbox_overflow::exit_process;
    transport::wait_policy idle{};  ///< how run() waits when nothing is runnable
    /// Messages one process handles before the next runnable one gets a turn (fairness).
    std::size_t messages_per_turn = 64;
};

/// Counters of a node.
struct node_stats {
    std::uint64_t spawned = 0;
    std::uint64_t exited = 0;
    std::uint64_t delivered = 0;           ///< messages put into a mailbox
    std::uint64_t handled = 0;             ///< messages taken out by a receive
    std::uint64_t dropped_no_process = 0;  ///< sends to a dead pid, unknown name or alias
    std::uint64_t dropped_overflow = 0;    ///< messages refused by a full mailbox
    std::uint64_t timers_fired = 0;
    std::uint64_t sleeps = 0;  ///< waits that blocked (spin_then_block, block), for any time
};

/// Sends and signals to processes of other nodes go through a router (the distribution layer).
/// Without one, a remote process is unreachable: links and monitors to it fire `noconnection`
/// at once and sends are dropped. Every call comes from the node's thread.
class remote_router {
  public:
    virtual ~remote_router() = default;
    /// `to ! message`; `from` is the sending process when there is one (SEND_SENDER).
    virtual void send(const std::optional<pid>& from, const pid& to, term message) = 0;
    /// `{name, node_name} ! message`.
    virtual void send_named(const pid& from, atom name, atom node_name, term message) = 0;
    /// `alias ! message` for an alias of another node (ALIAS_SEND).
    virtual void send_alias(const pid& from, const reference& alias, term message) = 0;
    /// Whether `node_name` is (or can be) connected. False makes link/monitor fire
    /// `noconnection` at once.
    [[nodiscard]] virtual bool reachable(atom node_name) = 0;
    virtual void link(const pid& from, const pid& to) = 0;
    virtual void unlink(const pid& from, const pid& to) = 0;
    /// A monitor of `to`: a pid, or a process registered as `*name` on node `to.node` (then
    /// `to` holds only the node).
    virtual void monitor(const pid& from, const pid& to, const std::optional<atom>& name,
                         const reference& ref) = 0;
    virtual void demonitor(const pid& from, const pid& to, const std::optional<atom>& name,
                           const reference& ref) = 0;
    /// An exit signal: from a link when `is_link` (EXIT), else exit/2 (EXIT2).
    virtual void exit(const pid& from, const pid& to, term reason, bool is_link) = 0;
    /// A monitored local process ended: 'DOWN' for a remote owner (MONITOR_P_EXIT). `name` is
    /// set when the owner monitored the name.
    virtual void down(const pid& from, const std::optional<atom>& name, const pid& to,
                      const reference& ref, term reason) = 0;
};

/// A process: what actor code sees of itself. Obtained only inside behaviors and handlers.
class process {
  public:
    process(const process&) = delete;
    process& operator=(const process&) = delete;

    [[nodiscard]] const pid& self() const noexcept { return self_; }
    [[nodiscard]] node& host() noexcept { return *node_; }

    // -- sending -----------------------------------------------------------------------------

    /// `to ! message`. Unknown or dead pids: dropped.
    void send(const pid& to, term message);
    /// `name ! message` for a locally registered name. Unknown: dropped.
    void send(atom name, term message);
    /// `{name, node_name} ! message`.
    void send(atom name, atom node_name, term message);
    /// `alias ! message` (aliases, OTP 24): delivered while the owner keeps the alias active.
    void send(const reference& alias, term message);

    // -- receiving ---------------------------------------------------------------------------

    /// Arms a receive: the first message matching one of `clauses` (mailbox order, then clause
    /// order) is handed to its handler, once. With `after`, `on_timeout` runs instead if no
    /// message matched in time (after 0: only what is already in the mailbox). Replaces any
    /// receive armed before.
    void receive(std::vector<clause> clauses, std::optional<clock::duration> after = std::nullopt,
                 std::function<void(process&)> on_timeout = {});
    /// Arms a receive of any message.
    void receive(std::function<void(process&, term)> handler);
    /// Makes `handler` the receive of every future message until the process changes it or
    /// exits (a gen_server's loop), instead of arming it again in each handler.
    void become(std::function<void(process&, term)> handler);
    /// Messages waiting in the mailbox.
    [[nodiscard]] std::size_t mailbox_size() const noexcept { return mailbox_.size(); }

    // -- processes -----------------------------------------------------------------------------

    [[nodiscard]] pid spawn(behavior body);
    [[nodiscard]] pid spawn_link(behavior body);
    /// Spawns and monitors: the pid and the monitor reference.
    [[nodiscard]] std::pair<pid, reference> spawn_monitor(behavior body);

    void link(const pid& other);
    void unlink(const pid& other);
    /// Monitors `target`; 'DOWN' with `noproc` if it does not exist.
    [[nodiscard]] reference monitor(const pid& target);
    /// Monitors the process registered as `name` ('DOWN' carries {Name, Node}).
    [[nodiscard]] reference monitor(atom name);
    /// erlang:monitor(process, {Name, Node}); on this node the same as monitor(name).
    [[nodiscard]] reference monitor(atom name, atom node_name);
    /// Removes a monitor; with `flush`, also a 'DOWN' of it already in the mailbox. False if
    /// the monitor was not active (it had fired or was never this process's).
    bool demonitor(const reference& ref, bool flush = false);

    /// exit(Pid, Reason): sends an exit signal (see the file comment).
    void exit(const pid& target, term reason);
    /// exit(Reason): ends this process once the current handler returns.
    void exit(term reason);
    /// process_flag(trap_exit, On).
    void trap_exit(bool on) noexcept { trap_exit_ = on; }
    [[nodiscard]] bool traps_exit() const noexcept { return trap_exit_; }

    /// register(Name, self()). False if the name is taken or this process has a name.
    bool register_name(atom name);

    /// make_ref().
    [[nodiscard]] reference make_ref();
    /// alias(): a reference that routes messages to this process until unalias.
    [[nodiscard]] reference alias();
    void unalias(const reference& alias);

    /// erlang:send_after(Delay, Dest, Msg): a timer reference for cancel_timer.
    reference send_after(clock::duration delay, const pid& to, term message);
    /// erlang:cancel_timer(Ref): true if the timer was still pending.
    bool cancel_timer(const reference& timer);

  private:
    friend class node;
    process(node& host, pid self);

    struct pending_receive {
        std::vector<clause> clauses;
        std::function<void(process&, term)> any;  // set by become() or receive(handler)
        bool persistent = false;
        std::optional<std::uint64_t> timeout_timer;
        std::function<void(process&)> on_timeout;
    };

    node* node_;
    pid self_;
    std::deque<term> mailbox_;
    std::size_t scanned_ = 0;  // mailbox entries already tried against the current receive
    std::optional<pending_receive> receive_;
    bool trap_exit_ = false;
    bool queued_ = false;              // in the node's run queue
    bool running_ = false;             // a behavior or handler of it is on the stack
    std::optional<term> exit_reason_;  // set by exit/1 while running
    bool dead_ = false;
    std::optional<atom> registered_;
    std::unordered_set<std::uint64_t> links_local_;  // ids of linked local processes
    std::vector<pid> links_remote_;                  // linked pids of other nodes
    // Monitors this process holds: ref word -> target (pid, or name for a name monitor).
    struct held_monitor {
        reference ref;
        pid target;
        std::optional<atom> name;
    };
    std::vector<held_monitor> monitors_held_;
    // Monitors on this process: ref -> owner.
    struct watcher {
        reference ref;
        pid owner;
        std::optional<atom> name;
    };
    std::vector<watcher> watchers_;
    std::vector<reference> aliases_;
};

/// A node: processes, registry, timers, the loop.
class node {
  public:
    explicit node(node_config config = {});
    node(const node&) = delete;
    node& operator=(const node&) = delete;
    ~node();

    /// The node's name as an atom, its creation, its atom table.
    [[nodiscard]] atom name() const noexcept { return name_; }
    [[nodiscard]] std::uint32_t creation() const noexcept { return config_.creation; }
    /// Sets the creation (distribution takes it from EPMD when it starts). Pids and refs made
    /// before belong to the earlier incarnation: sends to them are dropped.
    void set_creation(std::uint32_t creation) noexcept { config_.creation = creation; }
    /// How run() waits when nothing is runnable from now on (a benchmark busy-polls only while
    /// it measures).
    void set_idle(transport::wait_policy policy) noexcept { config_.idle = policy; }
    [[nodiscard]] const transport::wait_policy& idle() const noexcept { return config_.idle; }
    [[nodiscard]] dist::atom_table& atoms() noexcept { return atoms_; }
    /// An atom of this node's table (for literals in code).
    [[nodiscard]] atom a(std::string_view text) { return atoms_(text); }
    [[nodiscard]] clock& time() noexcept { return *clock_; }
    [[nodiscard]] const node_stats& stats() const noexcept { return stats_; }

    /// Spawns a process from outside any process (the node's first processes).
    pid spawn(behavior body);
    /// Sends from outside any process.
    void send(const pid& to, term message);
    void send(atom name, term message);
    /// exit(Pid, Reason) from outside any process (a supervisor's parent, a test).
    void exit(const pid& target, term reason);

    /// The pid registered as `name`.
    [[nodiscard]] std::optional<pid> whereis(atom name) const;
    /// Whether `p` is a live process of this node.
    [[nodiscard]] bool alive(const pid& p) const;
    /// Live processes.
    [[nodiscard]] std::size_t process_count() const noexcept { return processes_.size(); }

    // -- the loop --------------------------------------------------------------------------------

    /// Handles one message of the next runnable process (or starts one spawned process).
    /// False when nothing is runnable. Deterministic: the same inputs give the same order.
    bool step();
    /// step() until nothing is runnable; fires due timers in between. Returns steps taken.
    std::size_t run_until_idle();
    /// Fires every timer due at the clock's now (receive timeouts, send_after).
    std::size_t fire_due_timers();
    /// When the next timer is due, if any.
    [[nodiscard]] std::optional<clock::time_point> next_timer() const;
    /// Runs the loop until stop(): processes, timers, I/O sources, idling per the config's
    /// wait policy (blocking in epoll until the next timer or a readable source).
    void run();
    /// Makes run() return after the current step (callable from handlers).
    void stop() noexcept { stopping_ = true; }
    /// Calls `on_ready` from the loop whenever `fd` is readable, or has an error or hang-up (a
    /// transport channel's native_handle, a socket). One callback per fd.
    void watch_fd(int fd, std::function<void()> on_ready);
    /// Also calls it when `fd` is writable, while `on` (a socket with bytes queued).
    void watch_writable(int fd, bool on);
    void unwatch_fd(int fd);
    /// Calls `poll` from the loop on every iteration: after each batch of steps, while spinning
    /// and on every busy-poll turn. For sources that fire no fd unless armed (transport rings).
    /// `poll` returns true when it did work. `prepare_to_block`, if given, is called before
    /// the loop blocks in epoll: it arms the source's notification (then a watched fd turns
    /// readable) and returns true when the source is ready already, so the loop must not block.
    /// Returns an id for remove_poller. Loop thread only.
    std::uint64_t add_poller(std::function<bool()> poll,
                             std::function<bool()> prepare_to_block = {});
    /// Stops calling the poller `id`.
    void remove_poller(std::uint64_t id);
    /// Calls `callback` from the loop after `delay` (the distribution layer's ticks and
    /// set-up deadlines). Returns an id for cancel_callback.
    std::uint64_t call_after(clock::duration delay, std::function<void()> callback);
    /// False if the callback had run or was cancelled.
    bool cancel_callback(std::uint64_t id);

    // -- other nodes -----------------------------------------------------------------------------

    /// Routes signals to other nodes (the distribution layer). Not owned.
    void set_router(remote_router* router) noexcept { router_ = router; }
    /// A message or signal from another node, for a local process (called by the router). The
    /// messages are taken by rvalue reference: each by-value hop of a `term` on the way to the
    /// mailbox is a move and a destruction of the variant.
    void deliver_from_remote(const pid& to, term&& message);
    void deliver_named_from_remote(atom name, term&& message);
    void deliver_alias_from_remote(const reference& alias, term&& message);
    void exit_from_remote(const pid& from, const pid& to, term reason, bool is_link);
    void down_from_remote(const pid& from, const pid& to, const reference& ref, term reason);
    void link_from_remote(const pid& from, const pid& to);
    void unlink_from_remote(const pid& from, const pid& to);
    void monitor_from_remote(const pid& from, const pid& to, const reference& ref);
    /// MONITOR_P of a registered name: 'DOWN' with `noproc` at once if nothing has the name.
    void monitor_name_from_remote(const pid& from, atom name, const reference& ref);
    void demonitor_from_remote(const pid& from, const pid& to, const reference& ref);
    /// DEMONITOR_P of a monitor taken by name.
    void demonitor_name_from_remote(const pid& from, atom name, const reference& ref);
    /// The connection to `node_name` is gone: every link to its processes delivers
    /// `noconnection`, every monitor 'DOWN' with `noconnection`.
    void node_down(atom node_name);

  private:
    friend class process;

    struct exit_signal {
        pid from;
        std::uint64_t to;
        term reason;
        bool is_link;
    };
    struct timer {
        clock::time_point due;
        std::uint64_t id;
        friend bool operator>(const timer& a, const timer& b) noexcept {
            return a.due != b.due ? a.due > b.due : a.id > b.id;
        }
    };
    struct timer_action {
        std::uint64_t process = 0;  // receive timeout of this process, or
        std::optional<pid> to;      // send_after destination
        std::optional<term> message;
        std::uint32_t ref_word = 0;      // the timer's reference (send_after)
        std::function<void()> callback;  // call_after
    };

    [[nodiscard]] process* find(std::uint64_t id) const;
    [[nodiscard]] process* find_local(const pid& p) const;
    [[nodiscard]] bool is_local(const pid& p) const noexcept;
    [[nodiscard]] pid make_pid();
    [[nodiscard]] reference new_ref();
    pid spawn_process(behavior body, process* parent, bool link_parent);
    void deliver(std::uint64_t to, term&& message);
    void make_runnable(process& p);
    void run_behavior(process& p, const std::function<void(process&)>& body);
    bool try_receive(process& p);
    void finish_handler(process& p);
    void terminate(process& p, term reason);
    void queue_signal(exit_signal signal);
    void drain_signals();
    void handle_signal(const exit_signal& signal);
    void send_down(const pid& owner, const reference& ref, term target, term reason);
    std::uint64_t start_timer(clock::duration delay, timer_action action);
    bool cancel_timer_id(std::uint64_t id);
    [[nodiscard]] term exit_message(const pid& from, term reason);
    void idle_wait();
    bool run_pollers();
    bool prepare_pollers_to_block();

    node_config config_;
    dist::atom_table atoms_;
    atom name_;
    std::unique_ptr<clock> owned_clock_;
    clock* clock_;
    node_stats stats_;
    remote_router* router_ = nullptr;

    std::unordered_map<std::uint64_t, std::unique_ptr<process>> processes_;
    /// Hashes std::string keys and string_view lookups alike (no key built per lookup).
    struct text_hash {
        using is_transparent = void;
        [[nodiscard]] std::size_t operator()(std::string_view text) const noexcept {
            return std::hash<std::string_view>{}(text);
        }
    };
    // name -> process number
    std::unordered_map<std::string, std::uint64_t, text_hash, std::equal_to<>> registry_;
    std::unordered_map<std::uint64_t, std::uint64_t> aliases_;  // alias word key -> process
    std::deque<std::uint64_t> run_queue_;
    std::deque<std::pair<std::uint64_t, behavior>> starting_;
    std::deque<exit_signal> signals_;
    bool draining_ = false;
    std::vector<std::unique_ptr<process>> graveyard_;  // ended processes, freed between steps

    std::priority_queue<timer, std::vector<timer>, std::greater<>> timer_heap_;
    std::unordered_map<std::uint64_t, timer_action> timers_;
    std::unordered_map<std::uint64_t, std::uint64_t> timer_by_ref_;  // ref key -> timer id

    std::uint64_t next_process_ = 1;
    std::uint64_t next_timer_ = 1;
    std::uint64_t next_ref_ = 1;
    bool stopping_ = false;
    int epoll_fd_ = -1;
    std::unordered_map<int, std::function<void()>> watched_;
    struct poller {
        std::uint64_t id;
        std::function<bool()> poll;
        std::function<bool()> prepare_to_block;
    };
    std::vector<poller> pollers_;
    std::uint64_t next_poller_ = 1;
    void poll_fds(clock::duration timeout);
    /// How often a non-blocking poll of the fds really asks the kernel while pollers run.
    static constexpr std::chrono::microseconds fd_poll_interval{20};
    std::chrono::steady_clock::time_point last_fd_poll_{};
    /// busy_poll: idle turns in a row after which each idle turn yields the CPU (idle_wait).
    static constexpr std::size_t busy_idle_turns_before_yield = 256;
    /// spin_then_block, block: the longest recheck period of a node that keeps waking up to
    /// nothing (the period doubles from wait_policy::recheck on each such wake-up).
    static constexpr std::chrono::milliseconds idle_recheck_limit{1000};
    /// Loop iterations without work, in a row: busy_poll yields after
    /// busy_idle_turns_before_yield; spin_then_block spins only on the first, and the recheck
    /// period doubles with each (idle_wait).
    std::size_t idle_turns_ = 0;

    // Atoms used in signals.
    atom normal_, kill_, killed_, noproc_, noconnection_, exit_tag_, down_tag_, process_atom_;
};

/// The key of a reference made by this runtime (its words), for maps.
[[nodiscard]] std::uint64_t reference_key(const reference& ref) noexcept;

/// Whether `t` is the atom `name`.
[[nodiscard]] bool is_atom(const term& t, std::string_view name) noexcept;

/// The elements of `t` if it is a tuple of `size` elements whose first is the atom `tag`
/// (a message's shape, as a receive pattern `{tag, _, ...}` checks it), or null.
[[nodiscard]] const std::vector<term>* tagged(const term& t, std::string_view tag,
                                              std::size_t size) noexcept;

}  // namespace vdist::runtime
