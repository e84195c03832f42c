// The batch health loop's AIMD rule: halve on a high failure rate, add one on a low one.
#include <algorithm>
#include <cstdio>
#include <utility>

#include "src/batch/scheduler.hpp"

namespace batman::runner {

void HealthMonitor::record(bool failed) {
  ++completed_;
  if (failed) ++failed_;
}

std::optional<Adjustment> HealthMonitor::evaluate(int current) {
  const int completed = std::exchange(completed_, 0);
  const int failed = std::exchange(failed_, 0);
  if (!policy_.adjust || completed == 0) return std::nullopt;
  const double rate = static_cast<double>(failed) / completed;
  int to = current;
  const char* rule = "";
  if (rate > 0.5) {
    to = std::max({policy_.min_concurrency, current / 2, 1});
    rule = "above 50%: halving";
  } else if (rate < 0.1 && current < policy_.max_concurrency) {
    to = current + 1;
    rule = "below 10%: adding one";
  }
  if (to == current || (rate > 0.5 && to > current)) return std::nullopt;
  char percent[16];
  std::snprintf(percent, sizeof percent, "%.0f%%", rate * 100);
  return Adjustment{current, to,
                    "concurrency " + std::to_string(current) + " -> " + std::to_string(to) +
                        ": failure rate " + percent + " (" + std::to_string(failed) + " of " +
                        std::to_string(completed) + " recent attempts) is " + rule};
}

}  // namespace batman::runner
