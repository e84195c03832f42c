// The supervised-process state machine of SPEC §8, after supervisord's process.py, with
// the polling loop replaced by events: on_exit from the pidfd, on_timer from the timerfd.
#include "runner/process.hpp"

#include "common/signals.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <csignal>

namespace batman::runner {

std::string_view state_name(ProcState s) {
  switch (s) {
    case ProcState::Stopped: return "STOPPED";
    case ProcState::Starting: return "STARTING";
    case ProcState::Running: return "RUNNING";
    case ProcState::Backoff: return "BACKOFF";
    case ProcState::Stopping: return "STOPPING";
    case ProcState::Exited: return "EXITED";
    case ProcState::Fatal: return "FATAL";
  }
  return "?";
}

Result<AutoRestart> parse_autorestart(std::string_view text) {
  if (text == "always" || text == "true") return AutoRestart::Always;
  if (text == "never" || text == "false") return AutoRestart::Never;
  if (text == "unexpected") return AutoRestart::Unexpected;
  return fail("invalid restart policy '" + std::string(text) + "': use always, never or unexpected");
}

std::string_view autorestart_name(AutoRestart a) {
  switch (a) {
    case AutoRestart::Always: return "always";
    case AutoRestart::Never: return "never";
    case AutoRestart::Unexpected: return "unexpected";
  }
  return "never";
}

bool RestartRules::expected(int exit_code) const {
  return std::find(exitcodes.begin(), exitcodes.end(), exit_code) != exitcodes.end();
}

ExitInfo ExitInfo::from_wait_status(int status) {
  ExitInfo info;
  if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    info.code = WEXITSTATUS(status);
  }
  return info;
}

SupervisedProcess::SupervisedProcess(ProcessHost& host, RestartRules rules)
    : host_(host), rules_(std::move(rules)) {}

bool SupervisedProcess::settled() const {
  return state_ == ProcState::Stopped || state_ == ProcState::Exited || state_ == ProcState::Fatal;
}

void SupervisedProcess::transition(ProcState to, std::string why) {
  ProcState from = state_;
  state_ = to;
  reason_ = why;
  host_.on_transition(from, to, why);
}

void SupervisedProcess::arm(Pending what, std::optional<TimePoint> deadline) {
  pending_ = what;
  host_.set_timer(deadline);
}

std::unexpected<Error> SupervisedProcess::refuse(std::string_view event, std::string_view why, bool host_event) {
  std::string what = std::string(event) + " in " + std::string(state_name(state_)) + ": " + std::string(why);
  if (host_event) {
    illegal_.push_back(what);
    host_.on_illegal_event(state_, what);
  }
  return fail(std::move(what));
}

Result<void> SupervisedProcess::start() {
  if (state_ == ProcState::Starting || state_ == ProcState::Running)
    return refuse("start", "already started", false);
  if (state_ == ProcState::Stopping) return refuse("start", "still stopping", false);
  arm(Pending::None, std::nullopt);
  backoff_ = 0;
  spawn_attempt();
  return {};
}

void SupervisedProcess::spawn_attempt() {
  if (started_once_) ++restarts_;
  started_once_ = true;
  auto pid = host_.spawn();
  if (!pid) {
    // A spawn failure counts as a failed start, as an exec failure does in supervisord:
    // STARTING, then BACKOFF or FATAL.
    pid_ = 0;
    transition(ProcState::Starting, "spawning");
    fail_start("could not start: " + pid.error().message);
    return;
  }
  pid_ = *pid;
  started_at_ = host_.now();
  last_exit_.reset();
  if (rules_.starttime <= Duration::zero()) {
    arm(Pending::None, std::nullopt);
    transition(ProcState::Starting, "pid " + std::to_string(pid_));
    backoff_ = 0;
    transition(ProcState::Running, "pid " + std::to_string(pid_));
    return;
  }
  arm(Pending::Running, started_at_ + rules_.starttime);
  transition(ProcState::Starting, "pid " + std::to_string(pid_));
}

void SupervisedProcess::fail_start(const std::string& why) {
  pid_ = 0;
  ++backoff_;
  if (backoff_ > rules_.startretries) {
    arm(Pending::None, std::nullopt);
    transition(ProcState::Fatal, why + "; gave up after " + std::to_string(backoff_) + " attempts");
    return;
  }
  // supervisord's backoff: 1 s after the first failed start, 2 s after the second...
  arm(Pending::Retry, host_.now() + std::chrono::seconds(backoff_));
  const std::string n = std::to_string(backoff_);
  transition(ProcState::Backoff, why + "; retry " + n + " in " + n + "s");
}

Result<void> SupervisedProcess::stop(std::optional<int> sig, std::optional<Duration> grace) {
  switch (state_) {
    case ProcState::Backoff:
      arm(Pending::None, std::nullopt);
      transition(ProcState::Stopped, "stopped while waiting to retry");
      return {};
    case ProcState::Starting:
    case ProcState::Running: {
      int s = sig.value_or(rules_.stopsignal);
      Duration g = grace.value_or(rules_.stoptime);
      arm(Pending::Kill, host_.now() + std::max(g, Duration::zero()));
      transition(ProcState::Stopping, "sent SIG" + signal_name(s));
      host_.signal_tree(s);
      return {};
    }
    case ProcState::Stopping:
      return refuse("stop", "a stop is under way", false);
    case ProcState::Stopped:
    case ProcState::Exited:
    case ProcState::Fatal:
      return refuse("stop", "not running", false);
  }
  return refuse("stop", "not running", false);
}

Result<void> SupervisedProcess::on_timer() {
  const Pending what = pending_;
  // Each pending kind belongs to one state; the host disarms the timer with every change.
  const bool armed = (what == Pending::Running && state_ == ProcState::Starting) ||
                     (what == Pending::Retry && state_ == ProcState::Backoff) ||
                     (what == Pending::Kill && state_ == ProcState::Stopping);
  if (!armed) return refuse("on_timer", what == Pending::None ? "no timer is armed" : "the timer belongs to another state", true);
  pending_ = Pending::None;
  switch (what) {
    case Pending::Running:
      backoff_ = 0;
      transition(ProcState::Running, "pid " + std::to_string(pid_) + ", up for starttime");
      break;
    case Pending::Retry:
      spawn_attempt();
      break;
    case Pending::Kill:
      reason_ = "killed with SIGKILL after stoptime";
      host_.on_transition(state_, state_, reason_);
      host_.signal_tree(SIGKILL);
      break;
    case Pending::None:
      break;
  }
  return {};
}

Result<void> SupervisedProcess::on_start_failed(const std::string& why) {
  switch (state_) {
    case ProcState::Stopping:
      arm(Pending::None, std::nullopt);
      pid_ = 0;
      last_exit_.reset();
      transition(ProcState::Stopped, "could not start: " + why);
      return {};
    case ProcState::Starting:
    case ProcState::Running:  // starttime 0: RUNNING at once, yet the start failed
      last_exit_.reset();
      fail_start("could not start: " + why);
      return {};
    case ProcState::Stopped:
    case ProcState::Backoff:
    case ProcState::Exited:
    case ProcState::Fatal:
      break;
  }
  return refuse("on_start_failed", "no attempt is under way", true);
}

Result<void> SupervisedProcess::on_exit(int wait_status) {
  if (state_ != ProcState::Starting && state_ != ProcState::Running && state_ != ProcState::Stopping)
    return refuse("on_exit", "no process is running", true);
  ExitInfo info = ExitInfo::from_wait_status(wait_status);
  info.expected = info.signal == 0 && rules_.expected(info.code);
  last_exit_ = info;
  std::string how = info.signal ? "killed by SIG" + signal_name(info.signal)
                                : "exit status " + std::to_string(info.code);
  pid_ = 0;
  if (state_ == ProcState::Stopping) {
    arm(Pending::None, std::nullopt);
    transition(ProcState::Stopped, how);
  } else if (state_ == ProcState::Starting) {
    fail_start("exited too quickly (" + how + ")");
  } else {
    arm(Pending::None, std::nullopt);
    transition(ProcState::Exited, how + (info.expected ? " (expected)" : " (not expected)"));
    bool again = rules_.autorestart == AutoRestart::Always ||
                 (rules_.autorestart == AutoRestart::Unexpected && !info.expected);
    if (again) spawn_attempt();
  }
  return {};
}

}  // namespace batman::runner
