// The one launch path of every front end (run, taskmaster, batch): what a job is
// (LaunchSpec) becomes the backend's LaunchRequest and the job's environment here, a finished
// job's outcome becomes its status here, and its state record (SPEC §5) is built here.
// Nothing of this is repeated in a front end.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/time_format.hpp"
#include "isolation/backend.hpp"
#include "runner/process.hpp"
#include "runner/state_store.hpp"

namespace batman::runner {

using EnvVars = std::vector<std::pair<std::string, std::string>>;

// One job, as every front end describes it.
struct LaunchSpec {
  // Where it lives in batman's tree.
  std::string project;      // BATMAN_PROJECT
  std::string home;         // BATMAN_HOME, absolute
  std::string project_dir;  // BATMAN_PROJECT_DIR: $BATMAN_HOME/<project>
  std::string run_id;       // BATMAN_RUN_ID; the name of its state file, log and TMPDIR
  std::string tmp_dir;      // its TMPDIR: $BATMAN_HOME/<project>/tmp/<...>, absolute
  std::string worktree;     // its own --worktree, or empty
  // The parts of its cgroup / systemd unit name after the project ({run_id} when empty):
  // "batman:<project>:<part>:...:<home tag>".
  std::vector<std::string> unit_parts;

  // What it runs, how and as whom.
  std::string command;      // run as /bin/sh -c COMMAND
  std::string cwd;          // absolute
  isolation::Tier tier = isolation::Tier::Env;
  isolation::Profile profile;   // with --net/--no-net applied
  isolation::Limits limits;     // the profile's, overridden by the command line's
  std::optional<uid_t> uid;     // taskmaster `user:`
  std::optional<gid_t> gid;
  std::optional<mode_t> umask;

  // Its environment: batman's own ("K=V", usually this process's environ), what the user
  // gave for this job (--env, a task's or a program's `env:`), and the front end's own
  // BATMAN_* variables (BATMAN_TASK, BATMAN_PROGRAM, ...).
  std::vector<std::string> base_env;
  EnvVars env;
  EnvVars batman_vars;
};

// This process's environment, "K=V" each (what a job inherits).
std::vector<std::string> current_environment();

// The job's environment (SPEC §4, §7): batman's own, or only PATH and the profile's `keep`
// list when the profile says `clear`; then the profile's `set`; then the user's env; then
// BATMAN_PROJECT, BATMAN_RUN_ID, BATMAN_HOME, BATMAN_PROJECT_DIR, BATMAN_ISOLATION, the front
// end's BATMAN_* and TMPDIR, which the user's env cannot override (they are batman's
// contract with the job). Sorted by key.
std::vector<std::string> job_environment(const LaunchSpec& spec);

// The backend's request for `spec` (argv, environment, paths, unit name, profile, limits,
// identity). The stdio fds are the Job's to fill in.
isolation::LaunchRequest launch_request(const LaunchSpec& spec);

// COMMAND's words when it has no shell syntax, so that it may be exec'd directly (SPEC §4):
// words of letters, digits and `_-./,:=+@%^` separated by spaces or tabs, the first not an
// assignment (A=1) and not a word the shell runs itself (keywords, and builtins such as
// echo, test, cd, kill, printf, pwd, whose programs differ; a bare `true` or `false` is the
// same either way). nullopt: COMMAND goes through /bin/sh -c.
std::optional<std::vector<std::string>> direct_argv(std::string_view command);
// Whether a job exec'd without the shell would see what `sh -c` passes on: every variable
// name a shell name (dash drops others), and a PATH of absolute directories only (relative
// or empty entries are the job's directory's, an unset PATH is dash's own default).
bool shell_passes_environment(const std::vector<std::string>& env);

// A job's status (SPEC §5 `status`), one enum for every front end.
// Oom: the kernel's OOM killer killed a process of the job at its memory limit, and the job
// did not succeed (its exit is then 137 or whatever its shell made of it).
enum class JobStatus { Starting, Running, Succeeded, Failed, Killed, Timeout, Oom };
std::string_view status_name(JobStatus s);  // "succeeded"

// How a job ended, as the front end saw it.
struct JobEnd {
  std::optional<ExitInfo> exit;  // nullopt: it never ran (the tier could not start it)
  bool timed_out = false;        // stopped by its timeout
  bool stopped = false;          // stopped on request (batman stop, Ctrl-C, ctl stop)
  bool oom_killed = false;       // its cgroup's OOM killer struck (isolation::job_oom_kills)
};
// timeout > never ran (failed) > OOM-killed and not exit 0 (oom) > killed by a signal >
// stopped on request (killed) > exit 0 (succeeded) > any other exit (failed).
JobStatus end_status(const JobEnd& end);
// The status of a supervised process in `state` (its last exit for EXITED).
JobStatus status_of(ProcState state, const std::optional<ExitInfo>& last);

// The exit code batman itself returns for a job that ended so (SPEC §3): the job's own, 128+N
// for signal N, 124 on timeout, 125 when it never ran.
int exit_code_of(const JobEnd& end);

// The state record of a job about to start (SPEC §5): project, run id, kind, command, cwd,
// batman's pid, isolation (tier, profile, skipped tiers), limits, log (relative to the
// project dir), status `starting`, started_at now.
RunState state_record(const LaunchSpec& spec, std::string kind, const std::vector<isolation::Availability>& skipped,
                      std::string log);
// The attempt's process `pid` exists: status running (or the front end's), pid, start time.
void record_started(RunState& state, pid_t pid, WallTime now);
// The job ended: status (end_status), ended_at, exit code or signal (125 when it never ran).
void record_ended(RunState& state, const JobEnd& end, WallTime now);

// A CPU limit as the state file shows it ("0.5", "2").
std::string format_cpus(double cpus);

}  // namespace batman::runner
