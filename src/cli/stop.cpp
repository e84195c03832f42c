// `batman stop PROJECT [RUN-ID | --all] [--signal SIG] [--grace DURATION]`: the stop
// sequence, run by the run's own batman (signal, wait, SIGKILL to the whole tree).
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>

#include "common/duration.hpp"
#include "common/names.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "isolation/cgroups.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"
#include "src/cli/runs.hpp"

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

// Whether `pid` runs this very batman binary (its aliases are symlinks to it): the inode of
// /proc/PID/exe against /proc/self/exe, which no process can fake. Only when the link cannot
// be followed (another user's process) is it judged by its name, which it can set itself.
bool is_batman_process(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/exe", pid);
  struct stat self{}, other{};
  if (::stat("/proc/self/exe", &self) == 0 && ::stat(path, &other) == 0)
    return self.st_dev == other.st_dev && self.st_ino == other.st_ino;
  if (errno == ENOENT || errno == ESRCH) return false;  // gone
  std::snprintf(path, sizeof path, "/proc/%d/comm", pid);
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[32] = {};
  if (::read(fd.get(), buf, sizeof buf - 1) <= 0) return false;
  const std::string_view comm(buf);
  return comm.starts_with("batman") || comm.starts_with("taskmaster");
}

// The processes of a lost run, each held by a pidfd opened while it was still the process
// that was found (same start time): a pid that exits and is reused meanwhile is never hit.
class HeldProcesses {
 public:
  void hold(const LostRun& found) {
    for (const auto& p : found.processes) {
      if (held_.contains(p.pid)) continue;
      const int fd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
      if (fd < 0) continue;
      UniqueFd owner(fd);
      if (runner::process_start_time(p.pid) != p.start_time) continue;  // gone, or reused
      held_.emplace(p.pid, std::move(owner));
    }
  }
  void signal(int sig) {
    for (auto& [pid, fd] : held_) (void)::syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0);
  }
  // Wait, without polling, until every held process has exited or `deadline` passes.
  void wait_all(std::chrono::steady_clock::time_point deadline) {
    while (!held_.empty()) {
      std::vector<pollfd> fds;
      std::vector<pid_t> pids;
      for (auto& [pid, fd] : held_) {
        fds.push_back({fd.get(), POLLIN, 0});
        pids.push_back(pid);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
      if (n < 0 && errno != EINTR) return;
      for (std::size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents) held_.erase(pids[i]);
    }
  }
  bool empty() const { return held_.empty(); }

 private:
  std::map<pid_t, UniqueFd> held_;
};

// Stop what is left of a run whose batman is gone. False (with a line on stderr) when the
// run's record names a process that is not provably its job's, and nothing else was found.
bool stop_lost_run(const runner::RunState& s, std::optional<int> sig, std::optional<Duration> grace) {
  LostRun found = find_lost_run(s);
  if (found.empty()) {
    if (!found.distrusted.empty()) {
      error(s.project + " " + s.run_id + ": nothing of the run is left that can be shown to be its job (" +
            found.distrusted + "): nothing signalled");
      return false;
    }
    for (const auto& left : isolation::remove_empty_cgroup_dirs(found.cgroup_dirs)) error("cgroup " + left);
    return true;
  }
  auto cgroup = isolation::open_job_cgroup(found.cgroup_dirs);
  HeldProcesses held;
  held.hold(found);
  const int first = sig.value_or(SIGTERM);
  if (first != SIGKILL) {
    held.signal(first);
    if (cgroup) cgroup->signal_all(first);
    // Cgroup members that are not held were found to be the job's by the kernel: hold
    // them too, so the wait covers them.
    if (cgroup) {
      LostRun members;
      for (pid_t pid : cgroup->members())
        if (auto t = runner::process_start_time(pid)) members.processes.push_back({pid, t});
      held.hold(members);
    }
    held.wait_all(std::chrono::steady_clock::now() + grace.value_or(std::chrono::seconds(10)));
  }
  // SIGKILL, then look again for what forked meanwhile (bounded: the cgroup's freezer or
  // the pids limit stop a fork bomb; without either, a few rounds catch a well-behaved tree).
  for (int round = 0; round < 5; ++round) {
    if (cgroup) cgroup->kill_all();
    held.signal(SIGKILL);
    held.wait_all(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    found = find_lost_run(s);
    if (found.processes.empty() && !found.cgroup_members) break;
    held.hold(found);
  }
  if (cgroup) cgroup->remove();
  if (!found.processes.empty()) {
    error(s.project + " " + s.run_id + ": " + std::to_string(found.processes.size()) +
          " process(es) of the job are still alive after SIGKILL");
    return false;
  }
  return true;
}

// Ask the run's batman to stop it; fall back to killing the job's tree ourselves when that
// batman is gone (lost) or does not finish in time.
bool stop_run(const ProjectTree& tree, const runner::RunState& s, std::optional<int> sig,
              std::optional<Duration> grace) {
  // Without --grace the run's own batman applies the job's stoptime and SIGKILL: wait for it.
  Duration wait = grace ? *grace + std::chrono::seconds(5) : Duration(std::chrono::hours(24 * 365));
  if (runner::process_matches(s.batman_pid, s.batman_start_time)) {
    if (!is_batman_process(s.batman_pid)) {
      error(s.project + " " + s.run_id + ": its batman pid " + std::to_string(s.batman_pid) +
            " is not a batman process: not signalling it (is the state file genuine?)");
      return false;
    }
    sigval value{};
    value.sival_int = encode_stop_request(StopRequest{sig, grace});
    if (::sigqueue(s.batman_pid, SIGTERM, value) != 0) {
      error("cannot signal batman pid " + std::to_string(s.batman_pid) + " of " + s.run_id + ": " +
            std::strerror(errno));
      return false;
    }
    if (wait_gone(s.batman_pid, s.batman_start_time, wait)) return true;
    error(s.run_id + ": batman pid " + std::to_string(s.batman_pid) + " did not finish in time; killing it and the job");
    if (int fd = static_cast<int>(::syscall(SYS_pidfd_open, s.batman_pid, 0)); fd >= 0) {
      UniqueFd owner(fd);
      if (runner::process_matches(s.batman_pid, s.batman_start_time))
        (void)::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    }
  }
  // Lost run: its batman is gone, but the job may not be.
  if (!stop_lost_run(s, sig, grace)) return false;
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
      // A record that names a live process which is not provably the job's: say so, and
      // leave that process alone.
      if (targets.front().status == "lost") {
        if (auto left = find_lost_run(targets.front()); !left.distrusted.empty()) {
          error(project + " " + run_id + " is lost and " + left.distrusted + ": nothing signalled");
          return 1;
        }
      }
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
