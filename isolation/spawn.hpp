// Starting a child without namespaces (env tier; firejail and systemd-run wrap the argv),
// and finding/signalling the processes of a tree by session.
#pragma once
#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "isolation/backend.hpp"

namespace batman::isolation {

// fork+exec `argv` with the request's env, cwd, stdio fds, umask and user; the child calls
// setsid() (its own session and process group), sets PDEATHSIG when the profile asks for
// die_with_parent, and resets signal mask and dispositions. A failure before execve comes
// back as an Error "step: strerror" (exec failures map to exit 126/127 by the shell).
// `cgroup_procs`: cgroup.procs files open for writing; the child joins each (writes "0")
// right after setsid, so the job and all it forks start inside the job's cgroup.
Result<Child> spawn_plain(const LaunchRequest& request, const std::vector<std::string>& argv,
                          std::span<const int> cgroup_procs = {});

// One live (not zombie) process of the /proc walk, with its start time (clock ticks).
struct ProcInfo {
  pid_t pid, ppid, pgid, sid;
  unsigned long long start;
};
std::vector<ProcInfo> read_processes();

// Processes whose session id is `sid` (the job's session), live ones only.
std::vector<pid_t> session_members(pid_t sid);
// Processes whose parent is `parent` (orphans reparented to batman, the subreaper).
std::vector<pid_t> children_of(pid_t parent);
// Send `sig` to the session's process group, every member of the session, and, when
// `include_orphans`, every child of this process except `exclude` (the job's own pids
// already signalled) — the env tier's "whole tree".
void signal_session(pid_t sid, int sig);
// For a batman that runs one job: SIGKILL every descendant of this process (the subreaper
// catches daemonized grandchildren) and reap them, until none is left.
void kill_all_descendants();
// Reap exited children of this process that `keep` does not claim (orphans reparented to
// the subreaper), without touching the ones it does.
void reap_strays(const std::vector<pid_t>& keep);

}  // namespace batman::isolation
