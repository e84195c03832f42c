// The real clock's singleton, and the fake clock's waking of waiters.
#include "common/clock.hpp"

#include <algorithm>

namespace batman {

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

void FakeClock::set(TimePoint t) {
  std::vector<Waiter> waiting;
  {
    // The time changes under waiters_mutex_: a waiter registers under it too and then looks
    // at the time, so it either sees the new time or is in the list copied here.
    std::lock_guard guard(waiters_mutex_);
    now_.store(t);
    waiting = waiters_;
  }
  // Notified under the waiter's own mutex, which it holds from its look at the time until
  // the wait lets it go: the notification cannot fall between the two.
  for (const auto& w : waiting) {
    std::lock_guard guard(*w.mutex);
    w.cv->notify_all();
  }
}

void FakeClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                           TimePoint deadline) const {
  {
    std::lock_guard guard(waiters_mutex_);
    if (now_.load() >= deadline) return;
    waiters_.push_back(Waiter{&cv, lock.mutex()});
  }
  cv.wait(lock);
  std::lock_guard guard(waiters_mutex_);
  auto it = std::find_if(waiters_.begin(), waiters_.end(), [&](const Waiter& w) { return w.cv == &cv; });
  if (it != waiters_.end()) waiters_.erase(it);
}

}  // namespace batman
