// EventLoop: one thread, epoll over fds (pipes, pidfds, sockets), a signalfd and a timerfd.
// No sleeps, no polling: every wake-up is an event.
#pragma once
#include <sys/signalfd.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace batman::runner {

class EventLoop {
 public:
  using FdCallback = std::function<void(std::uint32_t events)>;  // EPOLLIN, EPOLLHUP, ...
  using TimerCallback = std::function<void()>;
  using SignalCallback = std::function<void(const signalfd_siginfo&)>;
  using TimerId = std::uint64_t;

  static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();

  // Watch `fd` (not owned). Replaces an existing watch of the same fd.
  Result<void> watch(int fd, std::uint32_t events, FdCallback callback);
  void unwatch(int fd);
  // Watch a child through its pidfd: `callback` runs once when it has exited (not reaped).
  Result<void> watch_exit(int pidfd, std::function<void()> callback);

  // Timers on the steady clock; callbacks run from the loop. Cancelling an unknown id is fine.
  TimerId add_timer(TimePoint deadline, TimerCallback callback);
  TimerId add_timer_after(Duration delay, TimerCallback callback);
  void cancel_timer(TimerId id);

  // Run `callback` once the current round of events is over (at the end of this run_once, or
  // at the start of the next), outside every fd and timer callback: the one way work is
  // moved out of a callback (a Job that must not be destroyed inside its own method). In the
  // order deferred; cancelling an unknown or finished id is fine.
  TimerId defer(TimerCallback callback);
  void cancel_deferred(TimerId id);

  // Block these signals in the calling thread and deliver them through a signalfd.
  Result<void> handle_signals(const std::vector<int>& signals, SignalCallback callback);

  // Run until stop() is called; returns the first error from epoll itself.
  Result<void> run();
  // Run one round of events, waiting at most `timeout` (for tests and nested waits).
  Result<void> run_once(std::optional<Duration> timeout);
  void stop() { stopped_ = true; }
  bool stopped() const { return stopped_; }
  TimePoint now() const { return SteadyClock::now(); }

 private:
  EventLoop() = default;
  void rearm_timerfd();
  void fire_timers();
  void read_signals();
  void run_deferred();

  UniqueFd epoll_;
  UniqueFd timerfd_;
  UniqueFd signalfd_;
  SignalCallback signal_callback_;
  std::unordered_map<int, std::shared_ptr<FdCallback>> callbacks_;
  std::multimap<TimePoint, TimerId> deadlines_;
  std::unordered_map<TimerId, std::pair<TimePoint, TimerCallback>> timers_;
  std::map<TimerId, TimerCallback> deferred_;  // by id: first deferred, first run
  TimerId next_timer_ = 1;
  bool stopped_ = false;
};

}  // namespace batman::runner
