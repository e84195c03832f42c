// Signal names: "TERM", "SIGTERM", "15" <-> numbers; the stop request `batman stop` queues.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace batman {

Result<int> parse_signal(std::string_view text);
std::string signal_name(int sig);  // "TERM"

// What `batman stop --signal S --grace G` asks of a run's batman, sent as the value of a
// sigqueue(SIGTERM): the signal to send the job first (nullopt: the job's stopsignal) and
// the wait before SIGKILL (nullopt: the job's stoptime). The int carries the signal in its
// low byte (0: none) and the grace above it in tenths of a second plus one (0: none), so a
// grace is rounded down to 0.1 s and holds up to about 19 days.
struct StopRequest {
  std::optional<int> signal;
  std::optional<std::chrono::nanoseconds> grace;
};
int encode_stop_request(const StopRequest& request);
StopRequest decode_stop_request(int value);

}  // namespace batman
