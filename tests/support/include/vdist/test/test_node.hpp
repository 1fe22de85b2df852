#pragma once
/// \file
/// A deterministic node for runtime tests: a manual clock, one message per step, probes that
/// record what they receive, and exits injected from outside.
///
/// ```
///  test_node t;
///  auto probe = t.probe();                       // a process that keeps every message
///  auto p = t.node().spawn([&](process& self) { self.link(probe); ... });
///  t.run();                                      // everything runnable, timers due now
///  t.advance(5s);                                // time moves; due timers fire
///  EXPECT_EQ(t.received(probe).size(), 1u);
/// ```

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vdist/runtime/node.hpp"

namespace vdist::test {

class test_node {
  public:
    explicit test_node(std::string name = "test@localhost", runtime::node_config config = {}) {
        config.name = std::move(name);
        config.time = &clock_;
        config.messages_per_turn = 1;
        node_ = std::make_unique<runtime::node>(std::move(config));
    }

    [[nodiscard]] runtime::node& node() noexcept { return *node_; }
    [[nodiscard]] runtime::manual_clock& clock() noexcept { return clock_; }
    [[nodiscard]] dist::atom a(std::string_view text) { return node_->a(text); }

    /// Handles one message (or starts one process). False when nothing is runnable.
    bool step() { return node_->step(); }
    /// Runs everything runnable and every timer due now; returns the steps taken.
    std::size_t run() { return node_->run_until_idle(); }
    /// Moves the clock forward by `by`, firing timers in order of their due time, and runs.
    void advance(runtime::clock::duration by) {
        const auto until = clock_.now() + by;
        run();
        while (auto next = node_->next_timer()) {
            if (*next > until) {
                break;
            }
            clock_.advance(*next - clock_.now());
            run();
        }
        clock_.advance(until - clock_.now());
        run();
    }
    /// exit(Pid, Reason) from outside any process.
    void inject_exit(const dist::pid& target, dist::term reason) {
        node_->exit(target, std::move(reason));
    }

    /// A process that traps exits and keeps every message it receives, in order.
    dist::pid probe() {
        auto log = std::make_shared<std::vector<dist::term>>();
        const dist::pid p = node_->spawn([log](runtime::process& self) {
            self.trap_exit(true);
            self.become([log](runtime::process&, dist::term message) {
                log->push_back(std::move(message));
            });
        });
        logs_[key(p)] = log;
        run();
        return p;
    }
    /// What `probe` has received so far.
    [[nodiscard]] const std::vector<dist::term>& received(const dist::pid& probe) const {
        return *logs_.at(key(probe));
    }

  private:
    [[nodiscard]] static std::uint64_t key(const dist::pid& p) noexcept {
        return (std::uint64_t{p.serial} << 32) | p.id;
    }

    runtime::manual_clock clock_;
    std::unique_ptr<runtime::node> node_;
    std::map<std::uint64_t, std::shared_ptr<std::vector<dist::term>>> logs_;
};

}  // namespace vdist::test
