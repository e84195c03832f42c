// Retry waits of the batch scheduler: exponential, capped, with downward jitter.
#include <algorithm>
#include <cmath>

#include "src/batch/scheduler.hpp"

namespace batman::runner {

Duration backoff_delay(const Backoff& backoff, int retry, double unit) {
  // In double nanoseconds, so factor^n cannot overflow an integer before the cap applies.
  double wait = static_cast<double>(backoff.initial.count()) *
                std::pow(backoff.factor, std::max(0, retry - 1));
  wait = std::min(wait, static_cast<double>(backoff.max.count()));
  wait = std::max(wait, 0.0);
  if (backoff.jitter) wait *= 1.0 - 0.25 * std::clamp(unit, 0.0, 1.0);
  return Duration(static_cast<Duration::rep>(std::llround(wait)));
}

}  // namespace batman::runner
