// `batman stop PROJECT [RUN-ID | --all] [--signal SIG] [--grace DURATION]`: the stop
// sequence, run by the run's own batman (signal, wait, SIGKILL to the whole tree).
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "common/duration.hpp"
#include "common/names.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "isolation/spawn.hpp"
#include "src/cli.hpp"
#include "src/project.hpp"
#include "src/runs.hpp"

namespace batman::cli {
namespace {

// Wait until `pid` exits, up to `timeout`. True when it is gone.
bool wait_gone(pid_t pid, unsigned long long start_time, Duration timeout) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return !runner::process_matches(pid, start_time);
  UniqueFd owner(pidfd);
  if (!runner::process_matches(pid, start_time)) return true;
  pollfd p{pidfd, POLLIN, 0};
  int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  return ::poll(&p, 1, ms) == 1;
}

// Ask the run's batman to stop it; fall back to killing the job's tree ourselves when that
// batman is gone (lost) or does not finish in time.
bool stop_run(const ProjectTree& tree, const runner::RunState& s, std::optional<int> sig,
              std::optional<Duration> grace) {
  // Without --grace the run's own batman applies the job's stoptime and SIGKILL: wait for it.
  Duration wait = grace ? *grace + std::chrono::seconds(5) : Duration(std::chrono::hours(24 * 365));
  if (runner::process_matches(s.batman_pid, s.batman_start_time)) {
    unsigned packed = static_cast<unsigned>(sig.value_or(0));
    if (grace) {
      auto tenths = std::chrono::duration_cast<std::chrono::milliseconds>(*grace).count() / 100;
      packed |= static_cast<unsigned>(std::min<long long>(tenths + 1, 0xffffff)) << 8;
    }
    sigval value{};
    value.sival_int = static_cast<int>(packed);
    if (::sigqueue(s.batman_pid, SIGTERM, value) != 0) {
      error("cannot signal batman pid " + std::to_string(s.batman_pid) + " of " + s.run_id + ": " +
            std::strerror(errno));
      return false;
    }
    if (wait_gone(s.batman_pid, s.batman_start_time, wait)) return true;
    error(s.run_id + ": batman pid " + std::to_string(s.batman_pid) + " did not finish in time; killing it and the job");
    ::kill(s.batman_pid, SIGKILL);
  }
  // Lost run: its batman is gone, but the job may not be.
  if (s.pid > 1 && !isolation::session_members(s.pid).empty()) {
    isolation::signal_session(s.pid, sig.value_or(SIGTERM));
    auto deadline = std::chrono::steady_clock::now() + grace.value_or(std::chrono::seconds(10));
    while (!isolation::session_members(s.pid).empty() && std::chrono::steady_clock::now() < deadline)
      ::usleep(20'000);  // another process's session: no pidfd covers all of it
    isolation::signal_session(s.pid, SIGKILL);
  }
  runner::RunState final_state = s;
  if (final_state.status == "lost" || final_state.live_status()) {
    final_state.status = "killed";
    final_state.ended_at = format_rfc3339(std::chrono::system_clock::now());
    (void)runner::write_state(tree.state_fd.get(), final_state);
  }
  return true;
}

}  // namespace

int command_stop(const std::vector<std::string>& args) {
  std::string project, run_id, signal_text, grace_text;
  bool all = false;
  CLI::App app{"Stop runs of PROJECT: signal, wait, then SIGKILL to the whole tree.", "batman stop"};
  app.add_option("PROJECT", project, "project (or batman-multi ID)")->required();
  app.add_option("RUN-ID", run_id, "the run to stop (default: the project's only live run)");
  app.add_flag("--all", all, "every live run of the project");
  app.add_option("--signal", signal_text, "signal to send first (default: the job's stopsignal)");
  app.add_option("--grace", grace_text, "wait before SIGKILL (default: the job's stoptime)");
  if (auto rc = parse(app, args)) return *rc;
  // The project's name is validated by open_project below.
  if (!run_id.empty()) {
    if (auto v = validate_name(run_id, "run-id"); !v) {
      error(v.error().message);
      return kExitBatmanError;
    }
  }
  if (all && !run_id.empty()) {
    error("give RUN-ID or --all, not both");
    return kExitBatmanError;
  }
  std::optional<int> sig;
  if (!signal_text.empty()) {
    auto s = parse_signal(signal_text);
    if (!s) {
      error(s.error().wrap("--signal").message);
      return kExitBatmanError;
    }
    sig = *s;
  }
  std::optional<Duration> grace;
  if (!grace_text.empty()) {
    auto g = parse_duration(grace_text);
    if (!g) {
      error(g.error().wrap("--grace").message);
      return kExitBatmanError;
    }
    grace = *g;
  }
  auto tree = open_project(project, false);
  if (!tree) {
    error(tree.error().message);
    return kExitBatmanError;
  }
  std::vector<runner::RunState> targets;
  for (auto& s : load_runs(project)) {
    if (!run_id.empty() ? s.run_id == run_id : run_is_live(s)) targets.push_back(s);
  }
  if (!run_id.empty()) {
    if (targets.empty()) {
      error("no run '" + run_id + "' in project '" + project + "': see 'batman ps --all --project " + project + "'");
      return kExitBatmanError;
    }
    if (!run_is_live(targets.front())) {
      info(run_id + " is not running (" + targets.front().status + ")");
      return 0;
    }
  }
  if (targets.empty()) {
    info("project '" + project + "' has no live runs");
    return 0;
  }
  if (targets.size() > 1 && !all && run_id.empty()) {
    std::string ids;
    for (const auto& t : targets) ids += " " + t.run_id;
    error("project '" + project + "' has " + std::to_string(targets.size()) + " live runs (" + ids.substr(1) +
          "): give a RUN-ID or --all");
    return kExitBatmanError;
  }
  int rc = 0;
  for (const auto& t : targets) {
    if (stop_run(*tree, t, sig, grace)) {
      info("stopped " + project + " " + t.run_id);
    } else {
      rc = 1;
    }
  }
  return rc;
}

}  // namespace batman::cli
