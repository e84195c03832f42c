// The sliding-window rate limiter of the batch scheduler: at most N starts in any window.
#include <cmath>

#include "src/batch/scheduler.hpp"

namespace batman::runner {

RateLimiter::RateLimiter(double rate) {
  if (!(rate > 0)) return;  // 0 (or NaN) = no limit
  if (rate >= 1) {
    limit_ = static_cast<std::size_t>(std::floor(rate));
  } else {
    limit_ = 1;
    window_ = Duration(static_cast<Duration::rep>(std::llround(1e9 / rate)));
  }
}

TimePoint RateLimiter::next_allowed(TimePoint now) {
  if (limit_ == 0) return now;
  // A start at s is inside the window (now - window, now] while s > now - window.
  while (!starts_.empty() && starts_.front() + window_ <= now) starts_.pop_front();
  if (starts_.size() < limit_) return now;
  return starts_[starts_.size() - limit_] + window_;
}

void RateLimiter::record(TimePoint start) {
  if (limit_ == 0) return;
  starts_.push_back(start);
  // Only the last `limit_` starts can ever decide the next one.
  while (starts_.size() > limit_) starts_.pop_front();
}

}  // namespace batman::runner
