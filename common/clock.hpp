// Clock: injected time, so state machines, schedulers and the state writer's thread are
// tested with a fake clock and no sleeps.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace batman {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;
using Duration = std::chrono::nanoseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // For a thread that sleeps until a due time: wait on `cv` (with `lock` held, as
  // condition_variable::wait_until) until notified or until now() reaches `deadline`
  // (TimePoint::max(): until notified). May return early; callers look again and loop.
  virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          TimePoint deadline) const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return SteadyClock::now(); }
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) const override {
    if (deadline == TimePoint::max()) cv.wait(lock);
    else cv.wait_until(lock, deadline);
  }
};

// The real clock, for defaults (StateWriter's).
const Clock& system_clock();

// A clock that moves only when told to: for unit tests. advance() and set() wake the threads
// waiting in wait_until, which then look at the new time. Safe to read and wait on from
// other threads; a waiter's cv and mutex must outlive the advance() calls made while it
// waits (in tests: the writer is destroyed after the last advance).
class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_.load(); }
  void advance(Duration d) { set(now() + std::chrono::duration_cast<SteadyClock::duration>(d)); }
  void set(TimePoint t);
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) const override;

 private:
  struct Waiter {
    std::condition_variable* cv;
    std::mutex* mutex;
  };
  std::atomic<TimePoint> now_{TimePoint{}};
  mutable std::mutex waiters_mutex_;
  mutable std::vector<Waiter> waiters_;
};

}  // namespace batman
