// Cgroups behind one interface with two drivers (v2 unified, v1 per-controller hierarchies),
// after crun's cgroup-*.c: a job's cgroup enforces --memory/--cpus/--pids and lets any tier
// signal or kill every process of the job.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "isolation/profile.hpp"

namespace batman::isolation {

// --cpus is enforced as a CFS quota per 100 ms period, and the kernel refuses a quota below
// 1 ms: 0.01 CPU is the smallest limit that can be held.
inline constexpr long kCpuPeriodUs = 100000;
inline constexpr double kMinCpus = 0.01;

class Cgroup {
 public:
  virtual ~Cgroup() = default;
  // Move `pid` into the job's cgroup (in every hierarchy).
  virtual Result<void> add(pid_t pid) = 0;
  virtual std::vector<pid_t> members() const = 0;
  // cgroup.procs of every hierarchy, open for writing: a child writes "0" to each before
  // execve and so starts inside the cgroup, before it can fork anything that would not be.
  virtual Result<std::vector<UniqueFd>> open_procs() const = 0;
  virtual void signal_all(int sig) = 0;
  // SIGKILL every member so that none can fork away meanwhile (cgroup.kill, or freeze first).
  virtual void kill_all() = 0;
  // Remove the cgroup directories (after its processes are gone) without waiting: true once
  // none is left to try (removed, or refused for a reason other than EBUSY, which waiting
  // does not cure: then left behind); false while a directory still holds processes, which is brief after
  // kill_all() (a killed process leaves its cgroup as it exits): call it again later, from a
  // timer on the event loop. Safe to call again once done.
  virtual bool try_remove() = 0;
  // try_remove() until done, sleeping 2 ms between tries, for 100 ms at most: for callers
  // with no event loop (`batman stop`, a backend destroyed before its cgroup was released).
  void remove();
  virtual std::string describe() const = 0;  // "v1 /sys/fs/cgroup/freezer/.../batman/UNIT"
  // The directories it is made of: one on v2; on v1 one per hierarchy it uses.
  virtual const std::vector<std::string>& directories() const = 0;

  // Which limits the cgroup holds; the caller covers the others another way (rlimits).
  struct Enforced {
    bool memory = false, cpu = false, pids = false;
  } enforced;
};

// A backend's release of its job cgroup: removed and reset, waiting (Cgroup::remove) or not
// (try_remove: false while it still holds processes, `cgroup` then kept for the next try).
// True once nothing is left; a null `cgroup` is released already.
bool release_cgroup(std::unique_ptr<Cgroup>& cgroup, bool wait);

// What this machine offers, for `batman doctor` and for choosing a driver.
struct CgroupSupport {
  int version = 0;                       // 2, 1, or 0 for none usable
  std::string mount;                     // v2: the cgroup2 mount; v1: the parent of hierarchies
  std::vector<std::string> controllers;  // usable: memory, cpu, pids, freezer
  bool writable = false;                 // can this process create a cgroup for a job?
  std::string note;                      // why not, or where jobs' cgroups go
};
CgroupSupport detect_cgroups();

// The name of a job's cgroup (and systemd unit): "batman:<project>:<id>[:<more>...]:<home
// tag>" (the callers add home_tag as the last part). ':' is
// outside the name alphabet [A-Za-z0-9._-] (and allowed in systemd unit names), so no two
// runs share one: project "a" run "b-1" is "batman:a:b-1", project "a-b" run "1" "batman:a-b:1".
std::string job_unit_name(std::initializer_list<std::string_view> parts);
// The last part of every job's unit name: which $BATMAN_HOME it belongs to, 8 hex digits of
// a hash of the home directory's device and inode (the same home under any spelling). Job
// cgroups live under batman's own cgroup, which every home of a user (and, as root, every
// home) shares: without it, two supervisors of project `ci` in two homes both named a
// program's cgroup "batman:ci:web_00", and stopping `web` in one killed the other's.
std::string home_tag(const std::string& batman_home);

// Create the job's cgroup `unit` under this process's own cgroup (".../batman/<unit>") and
// apply the limits. Only the hierarchies it needs are used: on v1 the freezer (to find and
// kill the job without a race; pids where there is no freezer) plus the controller of each
// limit asked for; on v2 one directory, with controllers enabled only for limits. Limits it
// cannot enforce are appended to `unenforced` with the reason.
// Returns nullptr (not an error) when no writable cgroup exists.
std::unique_ptr<Cgroup> create_job_cgroup(const std::string& unit, const Limits& limits,
                                          std::vector<std::string>& unenforced);

// How many times the kernel's OOM killer killed a process of the job cgroup `unit` (made by
// create_job_cgroup from this process, and not yet removed): v2 `memory.events` oom_kill, v1
// `memory.oom_control` oom_kill. 0 when the job had no memory cgroup or it cannot be read.
std::uint64_t job_oom_kills(const std::string& unit);

// The cgroup directories batman made for the job `unit` ("<any parent>/batman/<unit>" in
// every mounted hierarchy), found by walking the cgroup mounts: a run whose batman was
// killed can still be stopped and cleaned from any cgroup. Only batman's own naming is
// looked at; nothing the job could write says where they are.
std::vector<std::string> find_job_cgroup_dirs(const std::vector<std::string>& units);
// The job cgroup made of `dirs` (from find_job_cgroup_dirs), to kill and remove what a lost
// run left; nullptr when `dirs` is empty.
std::unique_ptr<Cgroup> open_job_cgroup(const std::vector<std::string>& dirs);
// rmdir each of `dirs` that holds no process (a cgroup with one cannot be removed).
// Returns the ones that stay, with why.
std::vector<std::string> remove_empty_cgroup_dirs(const std::vector<std::string>& dirs);

}  // namespace batman::isolation
