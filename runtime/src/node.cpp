#include "vdist/runtime/node.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <string>
#include <thread>
#include <utility>

namespace vdist::runtime {
namespace {

// A pid's process number: serial in the high half, id in the low half.
[[nodiscard]] std::uint64_t number_of(const pid& p) noexcept {
    return (std::uint64_t{p.serial} << 32) | p.id;
}

[[nodiscard]] term binary_text(std::string_view text) {
    return dist::binary(text);
}

// The exit reason of a process whose behavior or handler threw. Called inside a catch block.
[[nodiscard]] term exception_reason(node& host) {
    try {
        throw;
    } catch (const std::exception& error) {
        return dist::tuple{host.a("cpp_exception"), binary_text(error.what())};
    } catch (...) {
        return dist::tuple{host.a("cpp_exception"), host.a("unknown")};
    }
}

}  // namespace

std::uint64_t reference_key(const reference& ref) noexcept {
    std::uint64_t key = 0;
    for (std::size_t i = 0; i < ref.words.size() && i < 2; ++i) {
        key |= std::uint64_t{ref.words[i]} << (32 * i);
    }
    return key;
}

bool is_atom(const term& t, std::string_view name) noexcept {
    const auto* a = t.get_if<atom>();
    return a != nullptr && a->text() == name;
}

const std::vector<term>* tagged(const term& t, std::string_view tag, std::size_t size) noexcept {
    const auto* elements = t.get_if<dist::tuple>();
    if (elements == nullptr || elements->elements.size() != size ||
        !is_atom(elements->elements[0], tag)) {
        return nullptr;
    }
    return &elements->elements;
}

// ---------------------------------------------------------------------------------------------
// process: what actor code calls; each forwards to the node.

process::process(node& host, pid self) : node_(&host), self_(std::move(self)) {}

void process::send(const pid& to, term message) {
    if (node_->is_local(to) && to.creation == node_->config_.creation) {
        node_->deliver(number_of(to), std::move(message));  // node::send's local case, inline
        return;
    }
    if (!node_->is_local(to) && node_->router_ != nullptr) {
        node_->router_->send(self_, to, std::move(message));
        return;
    }
    node_->send(to, std::move(message));
}

void process::send(atom name, term message) {
    node_->send(name, std::move(message));
}

void process::send(atom name, atom node_name, term message) {
    if (node_name == node_->name()) {
        node_->send(name, std::move(message));
    } else if (node_->router_ != nullptr) {
        node_->router_->send_named(self_, name, node_name, std::move(message));
    } else {
        ++node_->stats_.dropped_no_process;
    }
}

void process::send(const reference& alias, term message) {
    if (alias.node != node_->name()) {
        if (node_->router_ != nullptr) {
            node_->router_->send_alias(self_, alias, std::move(message));
        } else {
            ++node_->stats_.dropped_no_process;
        }
        return;
    }
    const auto owner = node_->aliases_.find(reference_key(alias));
    if (alias.node != node_->name() || owner == node_->aliases_.end()) {
        ++node_->stats_.dropped_no_process;
        return;
    }
    node_->deliver(owner->second, std::move(message));
}

void process::receive(std::vector<clause> clauses, std::optional<clock::duration> after,
                      std::function<void(process&)> on_timeout) {
    if (receive_ && receive_->timeout_timer) {
        node_->cancel_timer_id(*receive_->timeout_timer);
    }
    receive_.emplace();
    receive_->clauses = std::move(clauses);
    receive_->on_timeout = std::move(on_timeout);
    if (after) {
        node::timer_action action;
        action.process = number_of(self_);
        receive_->timeout_timer = node_->start_timer(*after, std::move(action));
    }
    scanned_ = 0;
    if (!mailbox_.empty()) {
        node_->make_runnable(*this);
    }
}

void process::receive(std::function<void(process&, term)> handler) {
    receive({}, std::nullopt, {});
    receive_->any = std::move(handler);
}

void process::become(std::function<void(process&, term)> handler) {
    receive(std::move(handler));
    receive_->persistent = true;
}

pid process::spawn(behavior body) {
    return node_->spawn_process(std::move(body), this, false);
}

pid process::spawn_link(behavior body) {
    return node_->spawn_process(std::move(body), this, true);
}

std::pair<pid, reference> process::spawn_monitor(behavior body) {
    pid child = node_->spawn_process(std::move(body), this, false);
    reference ref = monitor(child);
    return {std::move(child), std::move(ref)};
}

void process::link(const pid& other) {
    if (other == self_) {
        return;
    }
    if (node_->is_local(other)) {
        if (process* target = node_->find_local(other)) {
            links_local_.insert(number_of(other));
            target->links_local_.insert(number_of(self_));
        } else {
            // Linking to a process that does not exist: an exit signal `noproc` from it.
            node_->queue_signal({other, number_of(self_), node_->noproc_, true});
        }
        return;
    }
    if (node_->router_ != nullptr && node_->router_->reachable(other.node)) {
        if (std::ranges::find(links_remote_, other) == links_remote_.end()) {
            links_remote_.push_back(other);
            node_->router_->link(self_, other);
        }
        return;
    }
    node_->queue_signal({other, number_of(self_), node_->noconnection_, true});
}

void process::unlink(const pid& other) {
    if (node_->is_local(other)) {
        links_local_.erase(number_of(other));
        if (process* target = node_->find_local(other)) {
            target->links_local_.erase(number_of(self_));
        }
        return;
    }
    if (const auto found = std::ranges::find(links_remote_, other); found != links_remote_.end()) {
        links_remote_.erase(found);
        if (node_->router_ != nullptr) {
            node_->router_->unlink(self_, other);
        }
    }
}

reference process::monitor(const pid& target) {
    reference ref = node_->new_ref();
    if (node_->is_local(target)) {
        if (process* watched = node_->find_local(target)) {
            monitors_held_.push_back({ref, target, std::nullopt});
            watched->watchers_.push_back({ref, self_, std::nullopt});
        } else {
            node_->send_down(self_, ref, target, node_->noproc_);
        }
        return ref;
    }
    if (node_->router_ != nullptr && node_->router_->reachable(target.node)) {
        monitors_held_.push_back({ref, target, std::nullopt});
        node_->router_->monitor(self_, target, std::nullopt, ref);
    } else {
        node_->send_down(self_, ref, target, node_->noconnection_);
    }
    return ref;
}

reference process::monitor(atom name) {
    reference ref = node_->new_ref();
    const auto target = node_->whereis(name);
    if (!target) {
        node_->send_down(self_, ref, dist::tuple{name, node_->name()}, node_->noproc_);
        return ref;
    }
    process* watched = node_->find_local(*target);
    monitors_held_.push_back({ref, *target, name});
    watched->watchers_.push_back({ref, self_, name});
    return ref;
}

reference process::monitor(atom name, atom node_name) {
    if (node_name == node_->name()) {
        return monitor(name);
    }
    reference ref = node_->new_ref();
    if (node_->router_ != nullptr && node_->router_->reachable(node_name)) {
        const pid somewhere{node_name, 0, 0, 0};  // the process behind the name is not known here
        monitors_held_.push_back({ref, somewhere, name});
        node_->router_->monitor(self_, somewhere, name, ref);
    } else {
        node_->send_down(self_, ref, dist::tuple{name, node_name}, node_->noconnection_);
    }
    return ref;
}

bool process::demonitor(const reference& ref, bool flush) {
    bool active = false;
    const auto held = std::ranges::find(monitors_held_, ref, &held_monitor::ref);
    if (held != monitors_held_.end()) {
        active = true;
        const pid target = held->target;
        const auto name = held->name;
        monitors_held_.erase(held);
        if (process* watched = node_->find_local(target)) {
            std::erase_if(watched->watchers_, [&](const watcher& w) { return w.ref == ref; });
        } else if (!node_->is_local(target) && node_->router_ != nullptr) {
            node_->router_->demonitor(self_, target, name, ref);
        }
    }
    if (flush) {
        // {'DOWN', Ref, _, _, _}
        std::erase_if(mailbox_, [&](const term& message) {
            const auto* down = message.get_if<dist::tuple>();
            return down != nullptr && down->elements.size() == 5 &&
                   is_atom(down->elements[0], "DOWN") && down->elements[1] == term(ref);
        });
        scanned_ = std::min(scanned_, mailbox_.size());
    }
    return active;
}

void process::exit(const pid& target, term reason) {
    // The signal comes from this process: a target that traps exits gets
    // {'EXIT', self(), Reason} (a supervised gen_server must see its parent in it).
    if (!node_->is_local(target)) {
        if (node_->router_ != nullptr) {
            node_->router_->exit(self_, target, std::move(reason), false);
        }
        return;
    }
    if (target.creation != node_->config_.creation) {
        return;
    }
    node_->queue_signal({self_, number_of(target), std::move(reason), false});
    // Drained when the current handler returns (finish_handler): the target's death can signal
    // this process back through a link, and a running process must not take it then.
    if (!running_) {
        node_->drain_signals();
    }
}

void process::exit(term reason) {
    exit_reason_ = std::move(reason);
}

bool process::register_name(atom name) {
    if (registered_ || node_->registry_.contains(name.text())) {
        return false;
    }
    node_->registry_.emplace(std::string(name.text()), number_of(self_));
    registered_ = name;
    return true;
}

reference process::make_ref() {
    return node_->new_ref();
}

reference process::alias() {
    reference ref = node_->new_ref();
    node_->aliases_[reference_key(ref)] = number_of(self_);
    aliases_.push_back(ref);
    return ref;
}

void process::unalias(const reference& alias) {
    node_->aliases_.erase(reference_key(alias));
    std::erase(aliases_, alias);
}

reference process::send_after(clock::duration delay, const pid& to, term message) {
    reference ref = node_->new_ref();
    node::timer_action action;
    action.to = to;
    action.message = std::move(message);
    const auto id = node_->start_timer(delay, std::move(action));
    node_->timer_by_ref_[reference_key(ref)] = id;
    return ref;
}

bool process::cancel_timer(const reference& timer) {
    const auto found = node_->timer_by_ref_.find(reference_key(timer));
    if (found == node_->timer_by_ref_.end()) {
        return false;
    }
    const auto id = found->second;
    node_->timer_by_ref_.erase(found);
    return node_->cancel_timer_id(id);
}

// ---------------------------------------------------------------------------------------------
// node

node::node(node_config config)
    : config_(std::move(config)),
      name_(atoms_(config_.name)),
      owned_clock_(config_.time == nullptr ? std::make_unique<steady_clock_source>() : nullptr),
      clock_(config_.time != nullptr ? config_.time : owned_clock_.get()),
      normal_(atoms_("normal")),
      kill_(atoms_("kill")),
      killed_(atoms_("killed")),
      noproc_(atoms_("noproc")),
      noconnection_(atoms_("noconnection")),
      exit_tag_(atoms_("EXIT")),
      down_tag_(atoms_("DOWN")),
      process_atom_(atoms_("process")) {}

node::~node() {
    if (epoll_fd_ >= 0) {
        ::close(epoll_fd_);
    }
}

bool node::is_local(const pid& p) const noexcept {
    return p.node == name_;
}

process* node::find(std::uint64_t id) const {
    const auto found = processes_.find(id);
    return found == processes_.end() || found->second->dead_ ? nullptr : found->second.get();
}

process* node::find_local(const pid& p) const {
    if (!is_local(p) || p.creation != config_.creation) {
        return nullptr;
    }
    return find(number_of(p));
}

bool node::alive(const pid& p) const {
    return find_local(p) != nullptr;
}

std::optional<pid> node::whereis(atom name) const {
    const auto found = registry_.find(name.text());
    if (found == registry_.end()) {
        return std::nullopt;
    }
    const process* p = find(found->second);
    return p != nullptr ? std::optional<pid>(p->self()) : std::nullopt;
}

pid node::make_pid() {
    const std::uint64_t n = next_process_++;
    return pid{name_, static_cast<std::uint32_t>(n & 0xffffffffu),
               static_cast<std::uint32_t>(n >> 32), config_.creation};
}

reference node::new_ref() {
    const std::uint64_t n = next_ref_++;
    return reference{
        name_,
        config_.creation,
        {static_cast<std::uint32_t>(n & 0xffffffffu), static_cast<std::uint32_t>(n >> 32), 0}};
}

pid node::spawn(behavior body) {
    pid child = spawn_process(std::move(body), nullptr, false);
    drain_signals();
    return child;
}

pid node::spawn_process(behavior body, process* parent, bool link_parent) {
    pid self = make_pid();
    auto made = std::unique_ptr<process>(new process(*this, self));
    process& child = *made;
    processes_.emplace(number_of(self), std::move(made));
    ++stats_.spawned;
    if (link_parent && parent != nullptr) {
        child.links_local_.insert(number_of(parent->self()));
        parent->links_local_.insert(number_of(self));
    }
    // The body runs on a later step, as a spawned Erlang process runs after spawn returns.
    starting_.emplace_back(number_of(self), std::move(body));
    return self;
}

void node::send(const pid& to, term message) {
    if (is_local(to)) {
        if (to.creation != config_.creation) {
            ++stats_.dropped_no_process;  // a pid of an earlier incarnation of this node
            return;
        }
        deliver(number_of(to), std::move(message));
    } else if (router_ != nullptr) {
        router_->send(std::nullopt, to, std::move(message));
    } else {
        ++stats_.dropped_no_process;
    }
}

void node::send(atom name, term message) {
    const auto found = registry_.find(name.text());
    if (found == registry_.end()) {
        ++stats_.dropped_no_process;
        return;
    }
    deliver(found->second, std::move(message));
}

void node::deliver_from_remote(const pid& to, term&& message) {
    if (is_local(to) && to.creation == config_.creation) {
        deliver(number_of(to), std::move(message));  // send()'s usual case, without its hop
        return;
    }
    send(to, std::move(message));
}

void node::deliver_named_from_remote(atom name, term&& message) {
    send(name, std::move(message));
}

void node::deliver_alias_from_remote(const reference& alias, term&& message) {
    const auto owner = aliases_.find(reference_key(alias));
    if (alias.node != name_ || alias.creation != config_.creation || owner == aliases_.end()) {
        ++stats_.dropped_no_process;
        return;
    }
    deliver(owner->second, std::move(message));
}

void node::deliver(std::uint64_t to, term&& message) {
    process* p = find(to);
    if (p == nullptr) {
        ++stats_.dropped_no_process;
        return;
    }
    if (p->mailbox_.size() >= config_.mailbox_limit) {
        ++stats_.dropped_overflow;
        if (config_.overflow == mailbox_overflow::exit_process) {
            queue_signal({p->self(), to,
                          dist::tuple{a("mailbox_overflow"),
                                      static_cast<std::int64_t>(config_.mailbox_limit)},
                          false});
            if (!p->running_) {
                drain_signals();
            }
        }
        return;
    }
    p->mailbox_.push_back(std::move(message));
    ++stats_.delivered;
    if (p->receive_) {
        make_runnable(*p);
    }
}

void node::make_runnable(process& p) {
    if (!p.queued_ && !p.dead_) {
        p.queued_ = true;
        run_queue_.push_back(number_of(p.self()));
    }
}

void node::exit(const pid& target, term reason) {
    if (!is_local(target)) {
        if (router_ != nullptr) {
            // The sender is the node itself here; processes call process::exit.
            router_->exit(pid{name_, 0, 0, config_.creation}, target, std::move(reason), false);
        }
        return;
    }
    if (target.creation != config_.creation) {
        return;
    }
    queue_signal({pid{name_, 0, 0, config_.creation}, number_of(target), std::move(reason), false});
    drain_signals();
}

// A handler or behavior of `p`, with exceptions turned into the process's exit reason.
void node::run_behavior(process& p, const std::function<void(process&)>& body) {
    p.running_ = true;
    try {
        body(p);
    } catch (...) {
        p.exit_reason_ = exception_reason(*this);
    }
    p.running_ = false;
}

bool node::try_receive(process& p) {
    if (!p.receive_ || p.dead_) {
        return false;
    }
    auto& pending = *p.receive_;
    for (std::size_t i = p.scanned_; i < p.mailbox_.size(); ++i) {
        const term& message = p.mailbox_[i];
        std::function<void(process&, term)> handler;
        if (pending.any) {
            // Moved out for the call, also when persistent (moved back below), not copied: a
            // copy per message costs a heap allocation for any capture over 16 bytes or not
            // trivially copyable (a shared_ptr, as gen_server's loop holds). So a persistent
            // handler is one object for all its messages (a `mutable` lambda keeps its state).
            handler = std::move(pending.any);
            pending.any = nullptr;
        } else {
            for (auto& c : pending.clauses) {
                if (c.matches(message)) {
                    handler = std::move(c.handle);
                    break;
                }
            }
        }
        if (!handler) {
            continue;
        }
        term taken = std::move(p.mailbox_[i]);
        if (i == 0) {
            p.mailbox_.pop_front();  // the usual case; deque::erase takes a slow general path
        } else {
            p.mailbox_.erase(p.mailbox_.begin() + static_cast<std::ptrdiff_t>(i));
        }
        p.scanned_ = 0;
        ++stats_.handled;
        const bool persistent = pending.persistent;
        if (!persistent) {
            if (pending.timeout_timer) {
                cancel_timer_id(*pending.timeout_timer);
            }
            p.receive_.reset();  // the handler arms the next receive, if any
        }
        // run_behavior's work, without wrapping the call in one more std::function per message.
        p.running_ = true;
        try {
            handler(p, std::move(taken));
        } catch (...) {
            p.exit_reason_ = exception_reason(*this);
        }
        p.running_ = false;
        if (persistent && p.receive_ && p.receive_->persistent && !p.receive_->any) {
            // It armed no other receive (an empty become() counts as none): it stays.
            p.receive_->any = std::move(handler);
        }
        finish_handler(p);
        return true;
    }
    p.scanned_ = p.mailbox_.size();
    return false;
}

void node::finish_handler(process& p) {
    if (p.dead_) {
        return;
    }
    if (p.exit_reason_) {
        term reason = std::move(*p.exit_reason_);
        p.exit_reason_.reset();
        terminate(p, std::move(reason));
    } else if (!p.receive_) {
        terminate(p, normal_);  // the behavior returned without receiving again
    }
    if (!signals_.empty()) {
        drain_signals();
    }
}

bool node::step() {
    graveyard_.clear();
    if (!starting_.empty()) {
        auto [id, body] = std::move(starting_.front());
        starting_.pop_front();
        if (process* p = find(id)) {
            run_behavior(*p, body);
            finish_handler(*p);
        }
        return true;
    }
    while (!run_queue_.empty()) {
        const std::uint64_t id = run_queue_.front();
        run_queue_.pop_front();
        process* p = find(id);
        if (p == nullptr) {
            continue;
        }
        p->queued_ = false;
        std::size_t handled = 0;
        while (handled < config_.messages_per_turn && !p->dead_ && try_receive(*p)) {
            ++handled;
        }
        if (!p->dead_ && p->receive_ && p->scanned_ < p->mailbox_.size()) {
            make_runnable(*p);  // its turn ended with messages still to try
        }
        if (handled > 0) {
            return true;
        }
    }
    return false;
}

std::size_t node::run_until_idle() {
    std::size_t steps = 0;
    for (;;) {
        while (step()) {
            ++steps;
        }
        if (fire_due_timers() == 0) {
            graveyard_.clear();
            return steps;
        }
    }
}

// -- signals ---------------------------------------------------------------------------------

void node::queue_signal(exit_signal signal) {
    signals_.push_back(std::move(signal));
}

void node::drain_signals() {
    if (draining_) {
        return;
    }
    draining_ = true;
    while (!signals_.empty()) {
        exit_signal signal = std::move(signals_.front());
        signals_.pop_front();
        handle_signal(signal);
    }
    draining_ = false;
}

term node::exit_message(const pid& from, term reason) {
    return dist::tuple{exit_tag_, from, std::move(reason)};
}

void node::handle_signal(const exit_signal& signal) {
    process* target = find(signal.to);
    if (target == nullptr) {
        return;
    }
    if (target->running_) {
        // Only a mailbox overflow can signal a running process; it takes effect after the
        // handler.
        target->exit_reason_ = signal.reason;
        return;
    }
    const bool is_kill = !signal.is_link && is_atom(signal.reason, "kill");
    if (is_kill) {
        terminate(*target, killed_);  // exit(Pid, kill) cannot be trapped
    } else if (target->trap_exit_) {
        deliver(signal.to, exit_message(signal.from, signal.reason));
    } else if (is_atom(signal.reason, "normal")) {
        if (!signal.is_link && signal.from == target->self()) {
            terminate(*target, normal_);  // exit(self(), normal)
        }
    } else {
        terminate(*target, signal.reason);
    }
}

void node::send_down(const pid& owner, const reference& ref, term target, term reason) {
    term message = dist::tuple{down_tag_, ref, process_atom_, std::move(target), std::move(reason)};
    if (is_local(owner)) {
        send(owner, std::move(message));
    } else if (router_ != nullptr) {
        // A remote owner's monitor of a local process ended.
        const auto* down = message.get_if<dist::tuple>();
        if (const auto* from = down->elements[3].get_if<pid>()) {
            router_->down(*from, std::nullopt, owner, ref, down->elements[4]);
        } else if (const auto* named = down->elements[3].get_if<dist::tuple>()) {
            // {Name, Node}: the owner monitored a registered name.
            if (const auto* name = named->elements[0].get_if<atom>()) {
                router_->down(pid{name_, 0, 0, config_.creation}, *name, owner, ref,
                              down->elements[4]);
            }
        }
    }
}

void node::terminate(process& p, term reason) {
    if (p.dead_) {
        return;
    }
    p.dead_ = true;
    ++stats_.exited;
    const std::uint64_t id = number_of(p.self());
    if (p.receive_ && p.receive_->timeout_timer) {
        cancel_timer_id(*p.receive_->timeout_timer);
    }
    p.receive_.reset();
    if (p.registered_) {
        registry_.erase(std::string(p.registered_->text()));
    }
    for (const auto& alias : p.aliases_) {
        aliases_.erase(reference_key(alias));
    }
    // Links: each linked process gets the reason (a killed process's links get `killed`).
    for (const std::uint64_t linked : p.links_local_) {
        if (process* other = find(linked)) {
            other->links_local_.erase(id);
            queue_signal({p.self(), linked, reason, true});
        }
    }
    for (const auto& remote : p.links_remote_) {
        if (router_ != nullptr) {
            router_->exit(p.self(), remote, reason, true);
        }
    }
    // Monitors it held end silently.
    for (const auto& held : p.monitors_held_) {
        if (process* watched = find_local(held.target)) {
            std::erase_if(watched->watchers_, [&](const auto& w) { return w.ref == held.ref; });
        } else if (!is_local(held.target) && router_ != nullptr) {
            router_->demonitor(p.self(), held.target, held.name, held.ref);
        }
    }
    // Monitors on it fire.
    for (const auto& w : p.watchers_) {
        if (process* owner = find_local(w.owner)) {
            std::erase_if(owner->monitors_held_, [&](const auto& h) { return h.ref == w.ref; });
        }
        term who = w.name ? term(dist::tuple{*w.name, name_}) : term(p.self());
        send_down(w.owner, w.ref, std::move(who), reason);
    }
    auto owned = processes_.find(id);
    graveyard_.push_back(std::move(owned->second));  // freed between steps, never mid-handler
    processes_.erase(owned);
}

// -- remote ------------------------------------------------------------------------------------

void node::exit_from_remote(const pid& from, const pid& to, term reason, bool is_link) {
    process* target = find_local(to);
    if (target == nullptr) {
        return;
    }
    if (is_link) {
        std::erase(target->links_remote_, from);
    }
    queue_signal({from, number_of(to), std::move(reason), is_link});
    drain_signals();
}

void node::down_from_remote(const pid& from, const pid& to, const reference& ref, term reason) {
    process* owner = find_local(to);
    if (owner == nullptr) {
        return;
    }
    const auto held = std::ranges::find(owner->monitors_held_, ref, &process::held_monitor::ref);
    if (held == owner->monitors_held_.end()) {
        return;
    }
    term who = held->name ? term(dist::tuple{*held->name, from.node}) : term(from);
    owner->monitors_held_.erase(held);
    send_down(to, ref, std::move(who), std::move(reason));
}

void node::link_from_remote(const pid& from, const pid& to) {
    process* target = find_local(to);
    if (target == nullptr) {
        if (router_ != nullptr) {
            router_->exit(to, from, noproc_, true);
        }
        return;
    }
    if (std::ranges::find(target->links_remote_, from) == target->links_remote_.end()) {
        target->links_remote_.push_back(from);
    }
}

void node::unlink_from_remote(const pid& from, const pid& to) {
    if (process* target = find_local(to)) {
        std::erase(target->links_remote_, from);
    }
}

void node::monitor_from_remote(const pid& from, const pid& to, const reference& ref) {
    process* target = find_local(to);
    if (target == nullptr) {
        if (router_ != nullptr) {
            router_->down(to, std::nullopt, from, ref, noproc_);
        }
        return;
    }
    target->watchers_.push_back({ref, from, std::nullopt});
}

void node::demonitor_from_remote(const pid&, const pid& to, const reference& ref) {
    if (process* target = find_local(to)) {
        std::erase_if(target->watchers_, [&](const auto& w) { return w.ref == ref; });
    }
}

void node::monitor_name_from_remote(const pid& from, atom name, const reference& ref) {
    const auto target = whereis(name);
    if (!target) {
        if (router_ != nullptr) {
            router_->down(pid{name_, 0, 0, config_.creation}, name, from, ref, noproc_);
        }
        return;
    }
    find_local(*target)->watchers_.push_back({ref, from, name});
}

void node::demonitor_name_from_remote(const pid& from, atom name, const reference& ref) {
    if (const auto target = whereis(name)) {
        demonitor_from_remote(from, *target, ref);
    }
}

void node::node_down(atom node_name) {
    for (auto& [id, p] : processes_) {
        if (p->dead_) {
            continue;
        }
        for (const auto& remote : p->links_remote_) {
            if (remote.node == node_name) {
                queue_signal({remote, id, noconnection_, true});
            }
        }
        std::erase_if(p->links_remote_, [&](const pid& r) { return r.node == node_name; });
        std::vector<process::held_monitor> lost;
        std::erase_if(p->monitors_held_, [&](const auto& h) {
            if (h.target.node == node_name) {
                lost.push_back(h);
                return true;
            }
            return false;
        });
        for (const auto& h : lost) {
            term who = h.name ? term(dist::tuple{*h.name, node_name}) : term(h.target);
            send_down(p->self(), h.ref, std::move(who), noconnection_);
        }
        std::erase_if(p->watchers_, [&](const auto& w) { return w.owner.node == node_name; });
    }
    drain_signals();
}

// -- timers ------------------------------------------------------------------------------------

std::uint64_t node::start_timer(clock::duration delay, timer_action action) {
    const std::uint64_t id = next_timer_++;
    timers_.emplace(id, std::move(action));
    timer_heap_.push({clock_->now() + std::max(delay, clock::duration::zero()), id});
    return id;
}

bool node::cancel_timer_id(std::uint64_t id) {
    return timers_.erase(id) > 0;  // the heap entry is skipped when it comes up
}

std::optional<clock::time_point> node::next_timer() const {
    if (timer_heap_.empty()) {
        return std::nullopt;
    }
    return timer_heap_.top().due;
}

std::size_t node::fire_due_timers() {
    std::size_t fired = 0;
    const auto now = clock_->now();
    while (!timer_heap_.empty() && timer_heap_.top().due <= now) {
        const std::uint64_t id = timer_heap_.top().id;
        timer_heap_.pop();
        auto found = timers_.find(id);
        if (found == timers_.end()) {
            continue;  // cancelled
        }
        timer_action action = std::move(found->second);
        timers_.erase(found);
        ++fired;
        ++stats_.timers_fired;
        if (action.callback) {
            action.callback();
            continue;
        }
        if (action.to) {
            std::erase_if(timer_by_ref_, [id](const auto& entry) { return entry.second == id; });
            send(*action.to, std::move(*action.message));
            continue;
        }
        process* p = find(action.process);
        if (p == nullptr || !p->receive_ || p->receive_->timeout_timer != id) {
            continue;
        }
        // Erlang's receive tries the mailbox before it takes the timeout: `after 0` armed by a
        // timeout handler (a call's last look for its reply), or a message sent by an earlier
        // timer of this batch, must not be passed over.
        if (p->scanned_ < p->mailbox_.size() && try_receive(*p)) {
            continue;
        }
        auto on_timeout = std::move(p->receive_->on_timeout);
        p->receive_.reset();
        if (on_timeout) {
            run_behavior(*p, on_timeout);
        }
        finish_handler(*p);
    }
    return fired;
}

// -- the loop -----------------------------------------------------------------------------------

void node::watch_fd(int fd, std::function<void()> on_ready) {
    if (epoll_fd_ < 0) {
        epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    }
    epoll_event interest{};
    interest.events = EPOLLIN;
    interest.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &interest);
    watched_[fd] = std::move(on_ready);
}

void node::watch_writable(int fd, bool on) {
    if (epoll_fd_ < 0 || !watched_.contains(fd)) {
        return;
    }
    epoll_event interest{};
    interest.events = on ? EPOLLIN | EPOLLOUT : EPOLLIN;
    interest.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &interest);
}

void node::unwatch_fd(int fd) {
    if (epoll_fd_ >= 0) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    }
    watched_.erase(fd);
}

void node::poll_fds(clock::duration timeout) {
    if (timeout == clock::duration::zero() && !pollers_.empty()) {
        // A node with pollers (rings) checks them on every turn without a system call; its fds
        // (sockets, notifications of rings it also polls) can wait a few microseconds. Measured:
        // a 16 B round trip over rings between two busy-polling nodes, 8.6 -> 2.5 us p50.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_fd_poll_ < fd_poll_interval) {
            return;
        }
        last_fd_poll_ = now;
    }
    epoll_event ready[16];
    // To the nanosecond: a timer due in less than a millisecond must not turn a blocking wait
    // into a loop of zero-timeout polls until it is due.
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    const timespec wait{
        .tv_sec = static_cast<time_t>(seconds.count()),
        .tv_nsec = static_cast<long>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(timeout - seconds).count()),
    };
    const int n = ::epoll_pwait2(epoll_fd_, ready, 16, &wait, nullptr);
    for (int i = 0; i < n; ++i) {
        // A callback may unwatch (and close) other fds of this batch: look each one up again.
        if (auto found = watched_.find(ready[i].data.fd); found != watched_.end()) {
            auto callback = found->second;
            callback();
        }
    }
}

std::uint64_t node::add_poller(std::function<bool()> poll, std::function<bool()> prepare_to_block) {
    const std::uint64_t id = next_poller_++;
    pollers_.push_back({id, std::move(poll), std::move(prepare_to_block)});
    return id;
}

void node::remove_poller(std::uint64_t id) {
    std::erase_if(pollers_, [id](const poller& p) { return p.id == id; });
}

bool node::run_pollers() {
    bool worked = false;
    // By index: a poller may remove pollers (then one may be skipped this turn, not run twice).
    for (std::size_t i = 0; i < pollers_.size(); ++i) {
        worked = pollers_[i].poll() || worked;
    }
    return worked;
}

bool node::prepare_pollers_to_block() {
    bool ready = false;
    for (std::size_t i = 0; i < pollers_.size(); ++i) {
        if (pollers_[i].prepare_to_block) {
            ready = pollers_[i].prepare_to_block() || ready;
        }
    }
    return ready;
}

std::uint64_t node::call_after(clock::duration delay, std::function<void()> callback) {
    timer_action action;
    action.callback = std::move(callback);
    return start_timer(delay, std::move(action));
}

bool node::cancel_callback(std::uint64_t id) {
    return cancel_timer_id(id);
}

void node::idle_wait() {
    using namespace std::chrono;
    const auto until_timer = [this]() -> std::optional<clock::duration> {
        const auto next = next_timer();
        if (!next) {
            return std::nullopt;
        }
        return std::max(*next - clock_->now(), clock::duration::zero());
    };
    const auto poll_sources = [this](clock::duration timeout) {
        if (epoll_fd_ < 0) {
            std::this_thread::sleep_for(timeout);
            return;
        }
        poll_fds(timeout);
    };
    switch (config_.idle.mode) {
        case transport::wait_mode::busy_poll:
            poll_sources(clock::duration::zero());
            // Idle for a while (no work in busy_idle_turns_before_yield turns, tens of
            // microseconds): offer the CPU to whoever waits for it, which on a shared core is
            // often the peer this node waits for. Without it a busy-polling node holds the core
            // for its whole time slice (dist_bench, ring->ring busy under a neighbour's load:
            // p90 round trip 4-8 ms, 16 B stream 35 k instead of millions of msgs/s). A hot
            // exchange never gets here, and yield() returns at once when nobody waits.
            if (++idle_turns_ >= busy_idle_turns_before_yield) {
                std::this_thread::yield();
            }
            return;
        case transport::wait_mode::spin_then_block:
        case transport::wait_mode::block: {
            // Spin only right after work: a node that woke up to nothing (its recheck) is
            // idle, and hundreds of idle nodes spinning on two cores cost the ones at work
            // (300 idle nodes took 28% of both cores, at 50 us of spinning per recheck).
            if (config_.idle.mode == transport::wait_mode::spin_then_block && idle_turns_ == 0) {
                const auto spin_until = steady_clock::now() + config_.idle.spin;
                while (steady_clock::now() < spin_until) {
                    poll_sources(clock::duration::zero());
                    if (run_pollers() || !run_queue_.empty() || !starting_.empty()) {
                        return;
                    }
                    if (const auto due = until_timer(); due && *due == clock::duration::zero()) {
                        return;  // a timer (maybe set by a callback just now) is due
                    }
                    // On a shared core the peer we wait for may need this CPU: spinning out
                    // the whole window would cost it (dist_bench: 16 B round trip between two
                    // nodes on one vCPU 132 us -> 33 us; on separate vCPUs 20 -> 22 us).
                    std::this_thread::yield();
                }
            }
            // Block until a source is readable or the next timer is due; without either,
            // wake up at the wait policy's recheck period (stop() may have been called by a
            // source callback on another path).
            // The next timer is read now: a callback run while spinning may have set one.
            // Each wake-up to nothing doubles the recheck period, up to idle_recheck_limit: it
            // is a safety net, and an idle node should cost nothing.
            const auto wait = until_timer();
            const auto base = config_.idle.recheck == transport::forever
                                  ? clock::duration(milliseconds(100))
                                  : clock::duration(config_.idle.recheck);
            const auto doublings = static_cast<int>(std::min(idle_turns_, std::size_t{10}));
            const auto cap =
                std::max(base, std::min<clock::duration>(base * (1 << doublings),
                                                         clock::duration(idle_recheck_limit)));
            ++idle_turns_;
            const auto limit = wait ? std::min(*wait, cap) : cap;
            if (prepare_pollers_to_block()) {
                // A ring already has data (or room): no sleeping on it.
                poll_sources(clock::duration::zero());
                return;
            }
            ++stats_.sleeps;
            poll_sources(limit);
            return;
        }
    }
}

void node::run() {
    stopping_ = false;
    while (!stopping_) {
        std::size_t work = 0;
        while (!stopping_ && step()) {
            ++work;
            // Between turns, not only once every runnable process had its turn: what a turn
            // sent leaves now (distribution flushes from a zero-delay callback) and what the
            // rings hold comes in, so that a peer works on this turn's output while this node
            // runs the next one, instead of the two taking turns.
            work += fire_due_timers();
            if (!pollers_.empty()) {
                (void)run_pollers();
            }
        }
        work += fire_due_timers();
        if (!pollers_.empty() && run_pollers()) {
            ++work;
        }
        if (stopping_) {
            break;
        }
        if (work == 0) {
            idle_wait();
        } else {
            idle_turns_ = 0;
            if (epoll_fd_ >= 0) {
                poll_fds(clock::duration::zero());
            }
        }
    }
    graveyard_.clear();
}

}  // namespace vdist::runtime
