// EventLoop: epoll + one timerfd (a deadline map) + one signalfd.
#include "runner/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>

namespace batman::runner {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  loop->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!loop->epoll_) return sys_error("epoll_create1");
  loop->timerfd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!loop->timerfd_) return sys_error("timerfd_create");
  EventLoop* self = loop.get();
  if (auto w = loop->watch(loop->timerfd_.get(), EPOLLIN, [self](std::uint32_t) {
        std::uint64_t expirations = 0;
        (void)!::read(self->timerfd_.get(), &expirations, sizeof expirations);
        self->fire_timers();
      });
      !w)
    return std::unexpected(w.error());
  return loop;
}

EventLoop::~EventLoop() = default;

Result<void> EventLoop::watch(int fd, std::uint32_t events, FdCallback callback) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  bool existing = callbacks_.count(fd) > 0;
  if (::epoll_ctl(epoll_.get(), existing ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
    return sys_error("epoll_ctl add fd " + std::to_string(fd));
  callbacks_[fd] = std::make_shared<FdCallback>(std::move(callback));
  return {};
}

void EventLoop::unwatch(int fd) {
  if (callbacks_.erase(fd) > 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

Result<void> EventLoop::watch_exit(int pidfd, std::function<void()> callback) {
  auto cb = std::make_shared<std::function<void()>>(std::move(callback));
  return watch(pidfd, EPOLLIN, [this, pidfd, cb](std::uint32_t) {
    unwatch(pidfd);
    (*cb)();
  });
}

EventLoop::TimerId EventLoop::add_timer(TimePoint deadline, TimerCallback callback) {
  TimerId id = next_timer_++;
  timers_.emplace(id, std::make_pair(deadline, std::move(callback)));
  deadlines_.emplace(deadline, id);
  if (deadlines_.begin()->second == id) rearm_timerfd();
  return id;
}

EventLoop::TimerId EventLoop::add_timer_after(Duration delay, TimerCallback callback) {
  return add_timer(SteadyClock::now() + delay, std::move(callback));
}

void EventLoop::cancel_timer(TimerId id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  auto range = deadlines_.equal_range(it->second.first);
  for (auto d = range.first; d != range.second; ++d) {
    if (d->second == id) {
      deadlines_.erase(d);
      break;
    }
  }
  timers_.erase(it);
}

void EventLoop::rearm_timerfd() {
  itimerspec spec{};
  if (!deadlines_.empty()) {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  deadlines_.begin()->first.time_since_epoch())
                  .count();
    if (ns <= 0) ns = 1;
    spec.it_value.tv_sec = ns / 1'000'000'000;
    spec.it_value.tv_nsec = ns % 1'000'000'000;
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  }
  ::timerfd_settime(timerfd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

void EventLoop::fire_timers() {
  auto now = SteadyClock::now();
  // Collect first: callbacks may add or cancel timers.
  std::vector<TimerId> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now; ++it)
    due.push_back(it->second);
  for (TimerId id : due) {
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled by an earlier callback
    TimerCallback cb = std::move(it->second.second);
    cancel_timer(id);
    if (cb) cb();
  }
  rearm_timerfd();
}

Result<void> EventLoop::handle_signals(const std::vector<int>& signals, SignalCallback callback) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  if (signalfd_) {
    // Extend the existing set.
    sigset_t old;
    ::sigprocmask(SIG_BLOCK, nullptr, &old);
    for (int s = 1; s < NSIG; ++s)
      if (sigismember(&old, s) == 1 && s != SIGKILL && s != SIGSTOP) sigaddset(&set, s);
  }
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return sys_error("sigprocmask");
  int fd = ::signalfd(signalfd_ ? signalfd_.get() : -1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return sys_error("signalfd");
  signal_callback_ = std::move(callback);
  if (!signalfd_) {
    signalfd_.reset(fd);
    return watch(fd, EPOLLIN, [this](std::uint32_t) { read_signals(); });
  }
  return {};
}

void EventLoop::read_signals() {
  signalfd_siginfo info;
  for (;;) {
    ssize_t n = ::read(signalfd_.get(), &info, sizeof info);
    if (n != static_cast<ssize_t>(sizeof info)) break;
    if (signal_callback_) signal_callback_(info);
  }
}

EventLoop::TimerId EventLoop::defer(TimerCallback callback) {
  TimerId id = next_timer_++;
  deferred_.emplace(id, std::move(callback));
  return id;
}

void EventLoop::cancel_deferred(TimerId id) { deferred_.erase(id); }

void EventLoop::run_deferred() {
  while (!deferred_.empty()) {
    auto first = deferred_.begin();
    TimerCallback callback = std::move(first->second);
    deferred_.erase(first);
    callback();
  }
}

Result<void> EventLoop::run_once(std::optional<Duration> timeout) {
  // Work deferred outside a round (before the loop ran) comes first.
  const bool deferred = !deferred_.empty();
  run_deferred();
  if (deferred && stopped_) return {};
  epoll_event events[64];
  int ms = -1;
  if (timeout) ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(*timeout).count());
  int n = ::epoll_wait(epoll_.get(), events, 64, ms);
  if (n < 0) {
    if (errno == EINTR) return {};
    return sys_error("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    auto it = callbacks_.find(events[i].data.fd);
    if (it == callbacks_.end()) continue;  // unwatched by an earlier callback this round
    auto cb = it->second;                  // keep alive while it runs
    (*cb)(events[i].events);
  }
  run_deferred();
  return {};
}

Result<void> EventLoop::run() {
  stopped_ = false;
  while (!stopped_) {
    if (auto r = run_once(std::nullopt); !r) return r;
  }
  return {};
}

}  // namespace batman::runner
