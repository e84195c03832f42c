// SupervisedProcess: one supervised program instance and the state machine of SPEC §8
// (supervisord's states but UNKNOWN: STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED,
// FATAL). It owns no fds and no time: a ProcessHost spawns, signals and arms its one timer, so
// the machine is unit-tested with a fake host and clock.
//
// supervisord enters UNKNOWN when kill() fails for a reason it cannot explain: it then no
// longer knows whether the process runs. batman's host learns of every exit from the
// process's pidfd whether or not a signal got through, so the state is always known: there is
// no UNKNOWN. A signal that could not be sent leaves the machine where it is (a STOPPING
// process still gets SIGKILL after stoptime).
//
// Every method is an event. One that the current state does not allow changes nothing and
// returns an error ("on_exit in STOPPED: no process is running"); the host's events (on_exit,
// on_start_failed, on_timer) that are illegal are a bug in the host, so they are also kept in
// illegal_events() and told to the host (on_illegal_event) to log.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"

namespace batman::runner {

enum class ProcState { Stopped, Starting, Running, Backoff, Stopping, Exited, Fatal };
std::string_view state_name(ProcState s);  // "RUNNING"

enum class AutoRestart { Never, Unexpected, Always };
Result<AutoRestart> parse_autorestart(std::string_view text);  // always|never|unexpected (also true/false)
std::string_view autorestart_name(AutoRestart a);

struct RestartRules {
  AutoRestart autorestart = AutoRestart::Unexpected;
  std::vector<int> exitcodes{0};
  int startretries = 3;
  Duration starttime = std::chrono::seconds(1);
  int stopsignal = 15;  // SIGTERM
  Duration stoptime = std::chrono::seconds(10);

  bool expected(int exit_code) const;
};

// How the process left: exit code or signal, from a wait status.
struct ExitInfo {
  int code = -1;    // exit code, or -1 when killed by a signal
  int signal = 0;   // the signal that killed it, or 0
  bool expected = false;
  static ExitInfo from_wait_status(int status);
  int shell_code() const { return signal ? 128 + signal : code; }  // 0, N, 128+N
};

class ProcessHost {
 public:
  virtual ~ProcessHost() = default;
  virtual TimePoint now() const = 0;
  // Start one attempt; the host watches it and calls on_exit() when it ends.
  virtual Result<pid_t> spawn() = 0;
  // Send `sig` to the whole process tree of the current attempt.
  virtual void signal_tree(int sig) = 0;
  // Arm the machine's single timer (replacing any previous one); nullopt disarms it.
  // When it fires the host calls on_timer().
  virtual void set_timer(std::optional<TimePoint> deadline) = 0;
  // Every transition, with a reason for logs and status ("exit status 1; not expected").
  // from == to is a note without a change of state (SIGKILL after stoptime).
  virtual void on_transition(ProcState from, ProcState to, const std::string& why) = 0;
  // An event of the host's that the state did not allow ("on_exit in STOPPED: ..."): nothing
  // changed. By default a note through on_transition(state, state, "ignored " + what), so it
  // reaches the host's log.
  virtual void on_illegal_event(ProcState state, const std::string& what) {
    on_transition(state, state, "ignored " + what);
  }
};

class SupervisedProcess {
 public:
  SupervisedProcess(ProcessHost& host, RestartRules rules);

  // Start from STOPPED, EXITED, FATAL or BACKOFF (a user's start resets the retry count).
  // An error, changing nothing, in STARTING, RUNNING or STOPPING.
  Result<void> start();
  // Stop: STOPPING with stopsignal (or `sig`), SIGKILL after stoptime (or `grace`), then STOPPED.
  // Cancels a pending BACKOFF retry. An error, changing nothing, when nothing runs (STOPPED,
  // EXITED, FATAL) or a stop is under way already (STOPPING).
  Result<void> stop(std::optional<int> sig = std::nullopt, std::optional<Duration> grace = std::nullopt);
  // The attempt's process has been reaped with this wait status (STARTING, RUNNING, STOPPING).
  Result<void> on_exit(int wait_status);
  // The attempt's process has been reaped, and it never reached execve: the host learned only
  // after spawn() that the start failed. Counts as a failed start (BACKOFF or FATAL), as a
  // spawn() failure does (STARTING, RUNNING, STOPPING).
  Result<void> on_start_failed(const std::string& why);
  // The timer armed through the host has expired (only while one is armed).
  Result<void> on_timer();
  // New rules (reload). Applies to the next start.
  void set_rules(RestartRules rules) { rules_ = std::move(rules); }

  ProcState state() const { return state_; }
  pid_t pid() const { return pid_; }
  const RestartRules& rules() const { return rules_; }
  int backoff_count() const { return backoff_; }
  int restarts() const { return restarts_; }  // starts after the first
  std::optional<ExitInfo> last_exit() const { return last_exit_; }
  TimePoint started_at() const { return started_at_; }
  const std::string& reason() const { return reason_; }  // for BACKOFF/FATAL/EXITED details
  // True once the machine will not start the process again by itself
  // (STOPPED, EXITED without restart, FATAL).
  bool settled() const;
  // The host's events the state did not allow, oldest first ("on_timer in RUNNING: no timer
  // is armed"); a correct host never causes one.
  const std::vector<std::string>& illegal_events() const { return illegal_; }

 private:
  // What the one timer is armed for.
  enum class Pending { None, Running, Retry, Kill };
  void spawn_attempt();
  // A start that failed (spawn error, exit before starttime, setup failure): BACKOFF with
  // the next retry armed, or FATAL once startretries are used up.
  void fail_start(const std::string& why);
  void arm(Pending what, std::optional<TimePoint> deadline);
  void transition(ProcState to, std::string why);
  // Refuse `event` in the current state; a host event is also recorded and told.
  std::unexpected<Error> refuse(std::string_view event, std::string_view why, bool host_event);

  ProcessHost& host_;
  RestartRules rules_;
  ProcState state_ = ProcState::Stopped;
  pid_t pid_ = 0;
  int backoff_ = 0;
  int restarts_ = 0;
  bool started_once_ = false;
  std::optional<ExitInfo> last_exit_;
  TimePoint started_at_{};
  std::string reason_;
  Pending pending_ = Pending::None;
  std::vector<std::string> illegal_;
};

}  // namespace batman::runner
