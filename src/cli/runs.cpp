// Loading state files across projects, and finding what is left of a lost run.
#include "src/cli/runs.hpp"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "common/fs.hpp"
#include "common/proc_stat.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/spawn.hpp"
#include "src/cli/project.hpp"

namespace batman::cli {

std::vector<runner::RunState> load_runs(const std::optional<std::string>& project) {
  std::vector<runner::RunState> runs;
  std::vector<std::string> projects = project ? std::vector<std::string>{*project} : list_projects();
  for (const auto& name : projects) {
    auto tree = open_project(name, false);
    if (!tree) continue;
    auto files = list_dir(tree->state_fd.get());
    if (!files) continue;
    for (const auto& f : *files) {
      if (f.size() < 6 || f[0] == '.' || f.substr(f.size() - 5) != ".json") continue;
      const std::string stem = f.substr(0, f.size() - 5);
      auto s = runner::read_state(tree->state_fd.get(), stem);
      if (!s || s->run_id.empty()) continue;
      // Where the file is says whose run it is, not what it says (a job may have written
      // it): `stop` and `clean` go by these names for cgroups and environments.
      s->project = name;
      s->run_id = stem;
      runs.push_back(std::move(*s));
    }
  }
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    return std::tie(a.started_at, a.run_id) < std::tie(b.started_at, b.run_id);
  });
  return runs;
}

bool run_is_live(const runner::RunState& s) {
  if (s.live_status()) return true;
  return s.status == "lost" && !find_lost_run(s).empty();
}

std::string state_name(std::string name) {
  if (auto colon = name.find(':'); colon != std::string::npos && name.find(':', colon + 1) == std::string::npos)
    name[colon] = '_';
  return name;
}

std::optional<std::pair<std::string, std::string>> split_instance(const std::string& stem) {
  const auto us = stem.rfind('_');
  if (us == std::string::npos || us == 0 || stem.size() - us < 3) return std::nullopt;
  const std::string digits = stem.substr(us + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::pair{stem.substr(0, us), digits};
}

std::optional<std::string> batch_task_name(const runner::RunState& s) {
  if (s.kind != "batch") return std::nullopt;
  const auto dot = s.run_id.find('.');
  if (dot == std::string::npos) return std::nullopt;
  return s.run_id.substr(dot + 1);
}

std::vector<std::string> job_cgroup_units(const runner::RunState& s) {
  if (s.project.empty() || s.run_id.empty()) return {};
  const std::string tag = ":" + isolation::home_tag(batman_home());
  if (s.kind == "batch") {
    // A batch task's attempt N (restarts N-1) and its health check (src/batch/batch.cpp);
    // then the names of before the home tag, which only this batch's unique run-id makes.
    const std::string attempt = isolation::job_unit_name({s.project, s.run_id, std::to_string(s.restarts + 1)});
    return {attempt + tag, attempt + ":check" + tag, attempt, attempt + ":check"};
  }
  const std::string unit = isolation::job_unit_name({s.project, s.run_id});
  std::vector<std::string> units{unit + tag};
  // A run's name of before the home tag is its unique run-id's; a program's (<program>_NN)
  // or a multi instance's (its ID) could be another home's, and is left alone.
  if (s.kind != "program" && s.kind != "multi") units.push_back(unit);
  // Before 0.x names were "batman-<project>-<run-id>": such a name is still looked for only
  // when it can be no other run's, with neither part holding a '-' (a batch attempt's old
  // name always held three).
  if (s.project.find('-') == std::string::npos && s.run_id.find('-') == std::string::npos)
    units.push_back("batman-" + s.project + "-" + s.run_id);
  return units;
}

namespace {

bool environ_names_run(pid_t pid, const runner::RunState& s) {
  const auto env = process_environment(pid, {"BATMAN_PROJECT", "BATMAN_RUN_ID"});
  auto project = env.find("BATMAN_PROJECT");
  auto run = env.find("BATMAN_RUN_ID");
  return project != env.end() && run != env.end() && project->second == s.project && run->second == s.run_id;
}

using Proc = isolation::ProcInfo;

}  // namespace

LostRun find_lost_run(const runner::RunState& s) {
  LostRun out;
  out.cgroup_dirs = isolation::find_job_cgroup_dirs(job_cgroup_units(s));
  for (const auto& dir : out.cgroup_dirs) {
    const std::string procs = read_file(dir + "/cgroup.procs", 1 << 20).value_or("");
    if (procs.find_first_not_of(" \n") != std::string::npos) out.cgroup_members = true;
  }
  const unsigned long long since = s.pid_start_time;
  if (s.pid <= 1 || since == 0) {
    if (s.pid > 0) out.distrusted = "pid " + std::to_string(s.pid) + " has no recorded start time";
    return out;
  }
  // The leader as the walk saw it: the pid can be freed and taken by a new process (setsid:
  // a session and group of the same number) between any earlier look and the walk.
  const auto procs = isolation::read_processes();
  unsigned long long leader_now = 0;
  for (const auto& p : procs)
    if (p.pid == s.pid) leader_now = p.start;
  const bool leader_reused = leader_now != 0 && leader_now != since;
  // A pid and its start time are anyone's to read, and to write into a forged record: the
  // leader, and its session and group, only when its environment names this run (batman put
  // BATMAN_PROJECT and BATMAN_RUN_ID there, which no process outside the job has). Without a
  // leader to vouch for them, only what names the run itself is the job's (and what it forked).
  const bool leader_vouched = leader_now == since && environ_names_run(s.pid, s);
  if (leader_reused)
    out.distrusted = "pid " + std::to_string(s.pid) + " is another process now (started at tick " +
                     std::to_string(leader_now) + ", the job's leader at " + std::to_string(since) + ")";
  else if (leader_now == since && !leader_vouched)
    out.distrusted = "pid " + std::to_string(s.pid) + " does not name run " + s.run_id + " of project " + s.project +
                     " in its environment";
  std::map<pid_t, std::vector<const Proc*>> children;
  for (const auto& p : procs) children[p.ppid].push_back(&p);
  const pid_t self = ::getpid();
  std::vector<const Proc*> stack;
  for (const auto& p : procs) {
    if (p.start < since || p.pid == self) continue;  // older than the job: not of it
    // A reused leader pid means its session and group are gone (the kernel does not hand
    // out a pid still used as one), so they can only name someone else's processes now.
    if (leader_vouched && ((p.pid == s.pid && p.start == since) || p.sid == s.pid || p.pgid == s.pid)) {
      stack.push_back(&p);
    } else if (environ_names_run(p.pid, s)) {
      stack.push_back(&p);
    }
  }
  std::set<pid_t> seen;
  while (!stack.empty()) {
    const Proc* p = stack.back();
    stack.pop_back();
    if (p->start < since || p->pid == self || !seen.insert(p->pid).second) continue;
    out.processes.push_back({p->pid, p->start});
    for (const Proc* c : children[p->pid]) stack.push_back(c);
  }
  return out;
}

}  // namespace batman::cli
