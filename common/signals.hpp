// Signal names: "TERM", "SIGTERM", "15" <-> numbers; the stop request `batman stop` queues.
#pragma once
#include <chrono>
#include <cstdint>
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

// `batman stop PROJECT TASK` on one task of a running batch: a real-time signal (queued, so
// two requests in a row are both delivered, unlike SIGTERM's) sent with sigqueue to the
// batch's batman. Its 64-bit value carries the request above in its low half and, in its
// high half, the task's selector: a hash of the task's state-file name (never 0). The batch
// stops the one task whose selector matches, and ignores a request that matches none or
// several (the sender sees the task still running and says so).
int task_stop_signal();  // SIGRTMIN + 2
std::uint32_t task_selector(std::string_view state_name);
std::uint64_t encode_task_stop(const StopRequest& request, std::uint32_t selector);
struct TaskStopRequest {
  StopRequest stop;
  std::uint32_t selector = 0;
};
TaskStopRequest decode_task_stop(std::uint64_t value);

}  // namespace batman
