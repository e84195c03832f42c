// Starting a child without namespaces (env tier; firejail and systemd-run wrap the argv),
// and finding/signalling the processes of a tree by session.
#pragma once
#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "isolation/backend.hpp"

namespace batman::isolation {

// fork+exec `argv` with the request's env, cwd, stdio fds, umask and user; the child calls
// setsid() (its own session and process group), sets PDEATHSIG when the profile asks for
// die_with_parent, and resets signal mask and dispositions. A failure before execve comes
// back as an Error "step: strerror" (exec failures map to exit 126/127 by the shell).
// `cgroup_procs`: cgroup.procs files open for writing; the child joins each (writes "0")
// right after setsid, so the job and all it forks start inside the job's cgroup.
// `shell_argv` (LaunchRequest::shell_argv): run when `argv` cannot be: argv[0] found nowhere on
// PATH (then it is not tried at all), or its execve fails.
Result<Child> spawn_plain(const LaunchRequest& request, const std::vector<std::string>& argv,
                          std::span<const int> cgroup_procs = {},
                          const std::vector<std::string>& shell_argv = {});

// PATH search as execvp does it, before the clone: the first directory of `env`'s PATH (else
// kDefaultPath) where `name` is executable. A name with a '/' is returned as it is, and so is
// one found nowhere (execve then fails with ENOENT, reported as usual).
inline constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
std::string find_in_path(const std::string& name, const std::vector<std::string>& env);

// PWD as /bin/sh sets it for what it runs, for a job exec'd without the shell: the inherited
// PWD when it names the job's directory (it may go through a symlink), else that directory.
// `host_cwd` is the directory as batman sees it, `job_cwd` as the job will (a mount
// namespace may show it elsewhere).
void set_shell_pwd(std::vector<std::string>& env, const std::string& host_cwd, const std::string& job_cwd);

// The fds a child dup2s onto 0, 1 and 2, made in the parent: -1 becomes /dev/null, and a
// source below 3 is lifted above 2 (a close-on-exec dup), so that no dup2 overwrites a
// source still to be used.
struct StdioSources {
  int fds[3] = {-1, -1, -1};
  UniqueFd devnull, lifted[3];  // what fds[] may point at
};
Result<StdioSources> stdio_sources(int in, int out, int err);

// The child's side, between clone and execve: system calls only, no allocation, safe in a
// vfork-style child that shares the parent's memory.
// Every signal back to its default disposition (the parent's handlers must not run in the
// child) and an empty signal mask, as a freshly exec'd program expects.
void reset_signals_in_child();
// dup2 each of `fds` onto 0, 1, 2; false (errno set) when one fails.
bool dup_stdio_in_child(const int (&fds)[3]);

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
// Send `sig` to the job's whole tree: the process group `sid`, the session leader `sid` and
// its descendants, and batman's own children still in that session (orphans reparented to
// batman, the subreaper) with theirs — a descendant that left the session (setsid) is still
// reached through its parent. When batman is not the leader's parent (`batman stop` of a lost
// run), every process of the session and their descendants, from a /proc scan. The tree is
// read whole before the first signal. The env tier's "whole tree".
void signal_session(pid_t sid, int sig);
// While one lives (on this thread), signal_session reads batman's own children and their
// sessions once, at its first call, instead of at every call: a supervisor that stops many
// programs at once (quit, `stop all`) then pays one walk of its children, not one per program
// (with 2000 programs, 2000 walks of 2000 children and 4 million getsid calls). Only around
// signals sent together in one go: an orphan reparented meanwhile waits for the next signal.
class SignalBatch {
 public:
  SignalBatch();
  ~SignalBatch();
  SignalBatch(const SignalBatch&) = delete;
  SignalBatch& operator=(const SignalBatch&) = delete;

 private:
  bool outermost_ = false;  // a batch inside another leaves the outer one's in force
};
// For a batman that runs one job: SIGKILL every descendant of this process (the subreaper
// catches daemonized grandchildren) and reap them, until none is left.
void kill_all_descendants();
// Reap exited children of this process that `keep` does not claim (orphans reparented to
// the subreaper), without touching the ones it does.
void reap_strays(const std::vector<pid_t>& keep);

}  // namespace batman::isolation
