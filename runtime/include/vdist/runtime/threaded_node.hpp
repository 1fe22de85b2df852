#pragma once
/// \file
/// A node with TCP distribution on a thread of its own, driven from other threads: it sends to
/// processes of other nodes and collects what they answer. What a program that is not a vdist
/// node uses to talk to a cluster (the demo, cluster tests, benchmarks): an operator's shell.
/// The node itself stays single-threaded; other threads only post work to it.
///
/// ```
///  threaded_node driver("driver@localhost", "cookie", epmd_port);
///  driver.send("vdist_traffic", "n1@localhost", tuple{...});   // {Name, Node} ! Msg
///  auto replies = driver.wait_for(1, 10s);                       // what came to driver.self()
/// ```

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "vdist/runtime/distribution.hpp"
#include "vdist/runtime/node.hpp"

namespace vdist::runtime {

class threaded_node {
  public:
    threaded_node(std::string name, std::string cookie, std::uint16_t epmd_port)
        : node_(node_config{.name = std::move(name)}) {
        auto started =
            distribution::start(node_, distribution_config{.cookie = std::move(cookie),
                                                           .start_epmd = false,
                                                           .epmd_port = epmd_port,
                                                           .log = [this](std::string_view line) {
                                                               std::lock_guard lock(mutex_);
                                                               log_.emplace_back(line);
                                                           }});
        if (!started) {
            throw std::runtime_error("threaded_node: distribution did not start: " +
                                     started.error().message());
        }
        dist_ = std::move(*started);
        self_ = node_.spawn([this](process& self) {
            self.become([this](process&, dist::term message) {
                {
                    std::lock_guard lock(mutex_);
                    received_.push_back(std::move(message));
                }
                arrived_.notify_all();
            });
        });
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        node_.watch_fd(wake_fd_, [this] { run_posted(); });
        thread_ = std::thread([this] { node_.run(); });
    }
    threaded_node(const threaded_node&) = delete;
    threaded_node& operator=(const threaded_node&) = delete;
    ~threaded_node() {
        post([](node& n) { n.stop(); });
        thread_.join();
        dist_.reset();
        ::close(wake_fd_);
    }

    /// The driver's collecting process (put it in messages as the reply address).
    [[nodiscard]] const dist::pid& self() const noexcept { return self_; }
    /// An atom of the driver node's table, for terms sent from the test thread.
    [[nodiscard]] dist::atom a(std::string_view text) {
        return call([text = std::string(text)](node& n) { return n.a(text); });
    }

    /// Runs `f` on the node's thread and returns its result.
    template <class F>
    auto call(F f) -> decltype(f(std::declval<node&>())) {
        using result = decltype(f(std::declval<node&>()));
        auto promise = std::make_shared<std::promise<result>>();
        auto future = promise->get_future();
        post([promise, f = std::move(f)](node& n) mutable {
            if constexpr (std::is_void_v<result>) {
                f(n);
                promise->set_value();
            } else {
                promise->set_value(f(n));
            }
        });
        return future.get();
    }

    /// `{name, node_name} ! message` from the collecting process.
    void send(std::string name, std::string node_name, dist::term message) {
        post([this, name = std::move(name), node_name = std::move(node_name),
              message = std::move(message)](node& n) mutable {
            n.spawn([this, to = n.a(name), at = n.a(node_name),
                     message = std::move(message)](process& p) mutable {
                // Sent from a short-lived process: replies go to self() because the message
                // names it.
                p.send(to, at, std::move(message));
            });
        });
    }

    /// Waits until at least `n` messages arrived (or `timeout`), then takes them all.
    [[nodiscard]] std::vector<dist::term> wait_for(std::size_t n,
                                                   std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        (void)arrived_.wait_for(lock, timeout, [&] { return received_.size() >= n; });
        std::vector<dist::term> out(std::make_move_iterator(received_.begin()),
                                    std::make_move_iterator(received_.end()));
        received_.clear();
        return out;
    }

    [[nodiscard]] std::vector<connection_info> connections() {
        return call([this](node&) { return dist_->connections(); });
    }
    [[nodiscard]] std::vector<std::string> log() {
        std::lock_guard lock(mutex_);
        return log_;
    }

  private:
    void post(std::function<void(node&)> f) {
        {
            std::lock_guard lock(mutex_);
            posted_.push_back(std::move(f));
        }
        const std::uint64_t one = 1;
        (void)::write(wake_fd_, &one, sizeof one);
    }
    void run_posted() {
        std::uint64_t count = 0;
        (void)::read(wake_fd_, &count, sizeof count);
        std::deque<std::function<void(node&)>> work;
        {
            std::lock_guard lock(mutex_);
            work.swap(posted_);
        }
        for (auto& f : work) {
            f(node_);
        }
    }

    node node_;
    std::unique_ptr<distribution> dist_;
    dist::pid self_;
    int wake_fd_ = -1;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable arrived_;  // received_ grew
    std::deque<std::function<void(node&)>> posted_;
    std::vector<dist::term> received_;
    std::vector<std::string> log_;
};

}  // namespace vdist::runtime
