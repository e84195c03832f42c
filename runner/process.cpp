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
    case ProcState::Unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
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

void SupervisedProcess::start() {
  if (state_ == ProcState::Starting || state_ == ProcState::Running || state_ == ProcState::Stopping)
    return;
  pending_ = Pending::None;
  host_.set_timer(std::nullopt);
  backoff_ = 0;
  spawn_attempt();
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
    ++backoff_;
    if (backoff_ > rules_.startretries) {
      pending_ = Pending::None;
      host_.set_timer(std::nullopt);
      transition(ProcState::Fatal, "could not start: " + pid.error().message);
    } else {
      pending_ = Pending::Retry;
      host_.set_timer(host_.now() + std::chrono::seconds(backoff_));
      transition(ProcState::Backoff, "could not start: " + pid.error().message);
    }
    return;
  }
  pid_ = *pid;
  started_at_ = host_.now();
  last_exit_.reset();
  if (rules_.starttime <= Duration::zero()) {
    pending_ = Pending::None;
    host_.set_timer(std::nullopt);
    transition(ProcState::Starting, "pid " + std::to_string(pid_));
    backoff_ = 0;
    transition(ProcState::Running, "pid " + std::to_string(pid_));
    return;
  }
  pending_ = Pending::Running;
  host_.set_timer(started_at_ + rules_.starttime);
  transition(ProcState::Starting, "pid " + std::to_string(pid_));
}

void SupervisedProcess::stop(std::optional<int> sig, std::optional<Duration> grace) {
  switch (state_) {
    case ProcState::Backoff:
      pending_ = Pending::None;
      host_.set_timer(std::nullopt);
      transition(ProcState::Stopped, "stopped while waiting to retry");
      return;
    case ProcState::Starting:
    case ProcState::Running: {
      int s = sig.value_or(rules_.stopsignal);
      Duration g = grace.value_or(rules_.stoptime);
      pending_ = Pending::Kill;
      host_.set_timer(host_.now() + std::max(g, Duration::zero()));
      transition(ProcState::Stopping, "sent SIG" + signal_name(s));
      host_.signal_tree(s);
      return;
    }
    default:
      return;
  }
}

void SupervisedProcess::on_timer() {
  Pending what = pending_;
  pending_ = Pending::None;
  switch (what) {
    case Pending::Running:
      if (state_ == ProcState::Starting) {
        backoff_ = 0;
        transition(ProcState::Running, "pid " + std::to_string(pid_) + ", up for starttime");
      }
      break;
    case Pending::Retry:
      if (state_ == ProcState::Backoff) spawn_attempt();
      break;
    case Pending::Kill:
      if (state_ == ProcState::Stopping) {
        reason_ = "killed with SIGKILL after stoptime";
        host_.on_transition(state_, state_, reason_);
        host_.signal_tree(SIGKILL);
      }
      break;
    case Pending::None:
      break;
  }
}

void SupervisedProcess::on_start_failed(const std::string& why) {
  pid_ = 0;
  last_exit_.reset();
  if (state_ == ProcState::Stopping) {
    pending_ = Pending::None;
    host_.set_timer(std::nullopt);
    transition(ProcState::Stopped, "could not start: " + why);
    return;
  }
  ++backoff_;
  if (backoff_ > rules_.startretries) {
    pending_ = Pending::None;
    host_.set_timer(std::nullopt);
    transition(ProcState::Fatal, "could not start: " + why);
  } else {
    pending_ = Pending::Retry;
    host_.set_timer(host_.now() + std::chrono::seconds(backoff_));
    transition(ProcState::Backoff, "could not start: " + why);
  }
}

void SupervisedProcess::on_exit(int wait_status) {
  ExitInfo info = ExitInfo::from_wait_status(wait_status);
  info.expected = info.signal == 0 && rules_.expected(info.code);
  last_exit_ = info;
  std::string how = info.signal ? "killed by SIG" + signal_name(info.signal)
                                : "exit status " + std::to_string(info.code);
  switch (state_) {
    case ProcState::Stopping:
      pending_ = Pending::None;
      host_.set_timer(std::nullopt);
      pid_ = 0;
      transition(ProcState::Stopped, how);
      return;
    case ProcState::Starting:
      pid_ = 0;
      ++backoff_;
      if (backoff_ > rules_.startretries) {
        pending_ = Pending::None;
        host_.set_timer(std::nullopt);
        transition(ProcState::Fatal, "exited too quickly (" + how + "); gave up after " +
                                         std::to_string(backoff_) + " attempts");
      } else {
        pending_ = Pending::Retry;
        host_.set_timer(host_.now() + std::chrono::seconds(backoff_));
        transition(ProcState::Backoff, "exited too quickly (" + how + "); retry " +
                                           std::to_string(backoff_) + " in " +
                                           std::to_string(backoff_) + "s");
      }
      return;
    case ProcState::Running: {
      pending_ = Pending::None;
      host_.set_timer(std::nullopt);
      pid_ = 0;
      transition(ProcState::Exited, how + (info.expected ? " (expected)" : " (not expected)"));
      bool again = rules_.autorestart == AutoRestart::Always ||
                   (rules_.autorestart == AutoRestart::Unexpected && !info.expected);
      if (again) spawn_attempt();
      return;
    }
    default:
      pid_ = 0;
      return;
  }
}

}  // namespace batman::runner
