// Reading runs back: every state file of a project (or of all), newest last, with `lost`
// applied. Shared by ps, logs, stop and clean.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runner/state_store.hpp"

namespace batman::cli {

// All runs of `project` (nullopt: every project), sorted by started_at then run-id.
std::vector<runner::RunState> load_runs(const std::optional<std::string>& project);
// True when the run's batman is alive, or (lost) something of its job still is.
bool run_is_live(const runner::RunState& s);

// Names a user gives a run, as state files name it. An instance may be named as ctl names
// it (web:01): its state file is web_01; anything else is returned as it is.
std::string state_name(std::string name);
// A supervised instance's state file is <program>_<NN>: "web_01" -> {"web", "01"}.
std::optional<std::pair<std::string, std::string>> split_instance(const std::string& stem);
// A batch task's name (docs) when `s` is the state of one (<batch-run-id>.docs); nullopt for
// anything else, the batch's own record included (its run-id has no dot).
std::optional<std::string> batch_task_name(const runner::RunState& s);

// The names batman gives the run's job cgroups ("batman-<project>-<run-id>", a batch task's
// with its attempt): the only cgroups `stop` and `clean` act on for it.
std::vector<std::string> job_cgroup_units(const runner::RunState& s);

// What is left of a lost run (its batman gone): the processes that can be shown to be its
// job's, each with the start time it had when found, and the job's cgroup directories.
// A process counts when it is in the job's cgroup, or started no earlier than the recorded
// job leader and is in the leader's session or process group (while the leader is alive,
// only if its start time is the recorded one), or carries the run's BATMAN_PROJECT and
// BATMAN_RUN_ID in its environment (a setsid child without a cgroup), or descends from one
// of those. A pid without a recorded start time is never trusted.
struct LostRun {
  struct Process {
    pid_t pid;
    unsigned long long start_time;
  };
  std::vector<Process> processes;
  std::vector<std::string> cgroup_dirs;  // may be empty dirs: `clean` removes those
  bool cgroup_members = false;           // some process is still in one of them
  std::string distrusted;                // why the recorded pid was not used, if it was not
  bool empty() const { return processes.empty() && !cgroup_members; }
};
LostRun find_lost_run(const runner::RunState& s);

}  // namespace batman::cli
