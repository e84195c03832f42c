// The isolation layer's interface: tiers, probing, and a Backend that launches one job's
// processes under a tier and can signal every process of it. Knows nothing of runner/.
#pragma once
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "isolation/profile.hpp"

namespace batman::isolation {

enum class Tier { Namespaces, Firejail, Systemd, Env };
constexpr Tier kAutoOrder[] = {Tier::Namespaces, Tier::Firejail, Tier::Systemd, Tier::Env};

std::string_view tier_name(Tier t);
// "namespaces" | "firejail" | "systemd" | "env"; "auto" gives nullopt with ok.
Result<std::optional<Tier>> parse_tier(std::string_view text);
// What parse_tier accepts, as a config's `isolation:` lists it.
constexpr std::string_view kTierWords[] = {"auto", "namespaces", "firejail", "systemd", "env"};

struct Availability {
  Tier tier;
  bool available = false;
  std::string reason;  // why not (or a short note on what it will use when available)
};

// Probe one tier on this machine for this user.
Availability probe_tier(Tier t);

struct TierChoice {
  Tier tier;
  std::vector<Availability> skipped;  // stronger tiers that were not available, with reasons
  std::string summary() const;        // "isolation: env (namespaces: ...; firejail: ...)"
};
// requested = nullopt means auto. A named tier that is unavailable is an error with the reason.
Result<TierChoice> choose_tier(std::optional<Tier> requested);

// Whether a job on `tier` under `profile` gets a pid namespace of its own: then no process of
// it outlives its PID 1 (the kernel kills the rest), and there is nothing left to look for.
bool has_own_pid_namespace(Tier tier, const Profile& profile);

// Everything a backend needs to start one attempt of a job. Built by the runner.
struct LaunchRequest {
  std::vector<std::string> argv;  // {"/bin/sh", "-c", COMMAND}, or COMMAND's words (below)
  // When `argv` is a COMMAND with no shell syntax split into words (runner::direct_argv), the
  // same COMMAND through the shell: {"/bin/sh", "-c", COMMAND}. The env and namespaces tiers
  // execve argv[0] found on PATH, and fall back to this when that fails (not found, not
  // executable, no #! line), so that what the job sees and its exit code (126/127, the
  // shell's message) are sh's. Backends that run the job through another program (firejail,
  // systemd-run) take this form.
  std::vector<std::string> shell_argv;
  std::vector<std::string> env;   // the job's full environment, "K=V"
  std::string cwd;                // absolute
  std::string project_dir;        // $BATMAN_HOME/<project>
  // batman's own tree ($BATMAN_HOME): never writable from inside a job's mount namespace,
  // whatever the profile says; only tmp_dir and worktree are (SPEC §7).
  std::string batman_home;
  std::string worktree;           // the job's own --worktree, or empty
  std::string tmp_dir;            // $BATMAN_HOME/<project>/tmp/<run-id>, exists
  std::string run_id;
  std::string unit_name;          // a unique name for cgroups / systemd units
  Profile profile;                // with --net/--no-net already applied
  Limits limits;                  // the profile's limits merged with the command line's
  int stdin_fd = -1;              // dup2'd to 0/1/2 in the child
  int stdout_fd = -1;
  int stderr_fd = -1;
  std::optional<uid_t> uid;       // run as this user (taskmaster `user:`), root only
  std::optional<gid_t> gid;
  std::optional<mode_t> umask;
};

// One started process tree.
struct Child {
  pid_t pid = -1;    // the process batman waits for (a direct child of batman)
  UniqueFd pidfd;    // pidfd_open(pid): becomes readable when it exits
  // Optional (namespaces with a pid namespace): readable when the attempt has ended, with
  // the job's wait status (an int), or EOF if PID 1 died without a report. PID 1 may still
  // be taking its namespaces down then; it is reaped later through the pidfd.
  UniqueFd status_fd;
  // Optional (namespaces): the child's setup report. EOF once the job reached execve, or a
  // failure; Backend::read_report reads it.
  UniqueFd report_fd;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Tier tier() const = 0;
  // Set up per-run resources (cgroup, ...). Returns what of the request this tier could not
  // apply (for isolation.unenforced and stderr), e.g. "memory limit: no writable cgroup".
  virtual Result<std::vector<std::string>> prepare(const LaunchRequest& request) = 0;
  // Start one attempt. The child is in its own session; batman is its subreaper's parent.
  virtual Result<Child> spawn(const LaunchRequest& request) = 0;
  // Send `sig` to every process of the attempt that `child` started (grandchildren too).
  virtual void signal_tree(const Child& child, int sig) = 0;
  // After the attempt has exited: SIGKILL whatever of its tree is still alive.
  virtual void kill_leftovers(const Child& child) = 0;
  // Remove per-run resources. Safe to call more than once. May wait (100 ms at most) for the
  // kernel to empty the job's cgroup: not for the event loop, which uses try_release.
  virtual void release() = 0;
  // release() without waiting: false while the job's cgroup still holds processes on their
  // way out (just killed); the caller tries again later from a loop timer (every few ms).
  virtual bool try_release() {
    release();
    return true;
  }
  // Read `child.report_fd` (readable, or its writers gone): nothing on EOF (the job reached
  // execve), else why it could not start.
  virtual std::optional<Error> read_report(const Child&) { return std::nullopt; }
};

std::unique_ptr<Backend> make_backend(Tier t);

}  // namespace batman::isolation
