// The namespaces tier's child plan: everything the child needs between clone and execve,
// built by the parent (paths, argv, envp, seccomp program), and the (step, errno) report a
// child sends back when a step fails. Shared by namespaces.cpp and the per-concern files.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "isolation/backend.hpp"
#include "isolation/backends.hpp"
#include "isolation/capabilities.hpp"
#include "isolation/rlimits.hpp"
#include "isolation/seccomp.hpp"

namespace batman::isolation::ns {

// Child-side steps, in pipeline order; the parent turns (step, index, errno) into a message.
enum class Step : int {
  DieWithParent, Session, Stdio, MountPrivate, MountBase, PivotBase, MakeMountPoint,
  Bind, ReadOnly, Tmpfs, Hide, Proc, DevShm, DetachOldRoot, PivotRoot, Hostname, Loopback,
  CgroupNamespace, Groups, Gid, Uid, Umask, Rlimits, Bounding, Capabilities, NoNewPrivs, Seccomp,
  Chdir, ForkJob, Exec, Unshare, Chown, IdMaps, Cgroup, ExecInit, CloseFds, Affinity,
};
std::string_view step_name(Step step);

struct Failure {
  int step = 0;
  int index = -1;  // the mount's index for mount steps
  int err = 0;
};

struct MountOp {
  enum class Kind { Bind, Tmpfs, Hide, Proc, DevShm };
  Kind kind = Kind::Bind;
  bool read_only = false;
  bool is_dir = true;        // a file bind needs a file as its mount point
  bool optional = false;     // a missing mount point is skipped, not an error
  bool seal_later = false;   // Hide of a directory: read-only only after the mounts below it
  std::string source;        // "/oldroot/..." for binds
  std::string target;        // "/newroot/..."; the child creates missing directories in it
  std::string shown;         // the path as the job sees it, for messages
};

struct ChildPlan {
  // Namespaces to create (CLONE_NEW* flags), and which half of them the child handles later.
  unsigned long clone_flags = 0;
  // The part of clone_flags the child creates itself with unshare(2) (all but user and pid):
  // the kernel's work for them (a network namespace costs about a millisecond) is then done
  // by the child, not by batman inside clone3, which matters when batman starts many jobs.
  unsigned long unshare_flags = 0;
  bool user_namespace = false;
  bool pid_namespace = false;
  bool cgroup_namespace = false;  // unshared by the child after the parent placed it
  bool mount_namespace = false;
  bool mounted = false;           // by the early child already, beside batman
  bool loopback_up = false;
  std::string hostname;           // empty: leave it
  std::string base;               // where the staging tmpfs goes before pivot_root
  std::vector<MountOp> mounts;    // sorted: parents before children
  std::string cwd;
  bool die_with_parent = true;
  int stdio[3] = {-1, -1, -1};
  bool set_ids = false;
  uid_t uid = 0;
  gid_t gid = 0;
  // The job's TMPDIR, given to the job's user (set_ids) before the ids change: else a job run
  // as another user (root_user: nobody) could not write its own TMPDIR.
  std::string chown_path;
  bool set_umask = false;
  mode_t umask = 022;
  CapabilityPlan caps;
  RlimitPlan rlimits;
  bool no_new_privs = false;
  SeccompProgram seccomp;
  std::vector<std::string> argv_storage, env_storage, shell_storage;
  std::vector<char*> argv, envp, shell_argv;  // null-terminated views of the storage
  std::string exec_path;  // argv[0] found on PATH (argv[0] itself stays as the user wrote it)
  bool direct = true;     // execve exec_path (else only shell_argv: argv[0] is nowhere on PATH)
  int parent_pidfd = -1;          // readable once the parent is gone
  int error_fd = -1;              // write end: a Failure, or EOF on execve
  int status_fd = -1;             // write end, kept by PID 1: the job's wait status
  // A user namespace: the child writes its own id maps (setgroups "deny", then one line
  // each mapping batman's uid and gid to themselves), as `unshare -r` does: the parent waits
  // in clone (CLONE_VFORK) and cannot write them.
  std::string gid_map, uid_map;
  // The job's cgroup (cgroup.procs of each hierarchy, open for writing): the child writes "0"
  // to each first thing, so the job and everything it forks start inside it.
  std::vector<int> cgroup_procs;
  // batman-init, open (O_PATH): PID 1 execs it once the job runs (execveat), so that PID 1
  // holds none of batman's memory. Its argv, made by the child: JOB-PID STATUS-FD.
  int init_fd = -1;
  // Where the job runs until its execve (vfork-style, sharing PID 1's memory): the top of a
  // stack of its own, with a guard page below it.
  char* job_stack_top = nullptr;
};

// batman-init, opened (O_PATH) for execveat: ../libexec/batman/ from the running executable
// (an install, wherever it was moved), the configured libexecdir, then the build tree of a
// source build. Only a regular executable file of root's or batman's own user that no one
// else may write: PID 1 keeps the sandbox's capabilities (all of root's, for root), so a
// program another user could replace must never be it. Not found: an empty fd, and `looked`
// gets the paths looked at and why each was passed over.
UniqueFd open_init_program(std::string* looked = nullptr);
// Why a batman-init candidate (its stat) is passed over by batman running as `euid`; null
// when it is usable.
const char* init_program_problem(const struct stat& st, uid_t euid);

// Parent side: the mount list for a request (mounts.cpp). Adds to `unenforced` what it must
// skip (e.g. a read_write path that does not exist).
Result<std::vector<MountOp>> plan_mounts(const LaunchRequest& request,
                                         std::vector<std::string>& unenforced);
// The same, with batman_tree(request, false) already made by the caller.
Result<std::vector<MountOp>> plan_mounts(const LaunchRequest& request, const BatmanTree& tree,
                                         std::vector<std::string>& unenforced);
// Child side (system calls only): build the new root and pivot into it (mounts.cpp).
// Returns 0 or fills `failure`.
int apply_mounts(ChildPlan& plan, Failure& failure);

// Child side, in its new user namespace: write setgroups "deny", then plan.gid_map and
// plan.uid_map into /proc/self (user_ns.cpp). 0 or errno.
int write_own_id_maps(const ChildPlan& plan);

// Child side: bring lo up in the new network namespace (net.cpp). 0 or errno.
int bring_loopback_up();

}  // namespace batman::isolation::ns
