// The `namespaces` tier: clone into the profile's user and pid namespaces, then one ordered
// child pipeline (cgroup → id maps → unshare the rest → mounts → uts → net → cgroup namespace
// → the job: ids → capabilities → no_new_privs → seccomp → execve; then PID 1 execs
// batman-init), after nsjail's contain.cc. The parent prepares everything; the child makes
// system calls only and reports a failure as (step, errno).
//
// The child is vfork-style (CLONE_VM | CLONE_VFORK): it builds the sandbox in batman's memory
// while batman waits, and batman goes on once PID 1 has exec'd batman-init. A fork would copy
// batman's page tables and mark its memory copy-on-write for as long as PID 1 lives, and
// every page batman then wrote cost it a fault and a TLB flush: 8 ms of batman's CPU per task
// in a `batch -` of `true` (scripts/bench/batch-cpu; perf: do_wp_page).
//
// A run's first start may instead be made ahead (prestart_namespaces): the same child is
// cloned as soon as the arguments are read and makes the namespaces beside batman once the
// profile is known (commit_prestart; raw system calls only until the plan is handed over: it
// shares batman's thread pointer, so glibc's errno, and its lazily bound PLT, are batman's),
// then takes the plan and does the rest as above. It keeps what batman's process had at that clone (signal
// dispositions, umask, cwd, rlimits, cgroup); the job's own are set from the plan as always,
// and its CPUs are batman's at the handoff.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/futex.h>
#include <linux/openat2.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <optional>

#include "batman_config.h"
#include "common/executables.hpp"
#include "common/fs.hpp"
#include "isolation/backends.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/ns_plan.hpp"
#include "isolation/raw_syscall.hpp"
#include "isolation/rlimits.hpp"
#include "isolation/spawn.hpp"

namespace batman::isolation {

namespace ns {

std::string_view step_name(Step step) {
  switch (step) {
    case Step::DieWithParent: return "prctl PR_SET_PDEATHSIG";
    case Step::Session: return "setsid";
    case Step::Stdio: return "dup2 stdio";
    case Step::MountPrivate: return "make / private";
    case Step::MountBase: return "mount staging tmpfs";
    case Step::PivotBase: return "pivot_root into the staging tmpfs";
    case Step::MakeMountPoint: return "create mount point";
    case Step::Bind: return "bind mount";
    case Step::ReadOnly: return "make read-only";
    case Step::Tmpfs: return "mount tmpfs";
    case Step::Hide: return "hide";
    case Step::Proc: return "mount";
    case Step::DevShm: return "mount tmpfs";
    case Step::DetachOldRoot: return "detach the old root";
    case Step::PivotRoot: return "pivot_root into the new root";
    case Step::Hostname: return "sethostname";
    case Step::Loopback: return "bring up lo";
    case Step::CgroupNamespace: return "unshare the cgroup namespace";
    case Step::Groups: return "setgroups";
    case Step::Gid: return "setresgid";
    case Step::Uid: return "setresuid";
    case Step::Umask: return "umask";
    case Step::Rlimits: return "setrlimit";
    case Step::Bounding: return "drop the capability bounding set";
    case Step::Capabilities: return "capset";
    case Step::NoNewPrivs: return "prctl PR_SET_NO_NEW_PRIVS";
    case Step::Seccomp: return "load the seccomp filter";
    case Step::Chdir: return "chdir";
    case Step::ForkJob: return "start the job under PID 1";
    case Step::Exec: return "execve";
    case Step::Unshare: return "unshare the namespaces";
    case Step::Chown: return "chown";
    case Step::IdMaps: return "write the user namespace's id maps";
    case Step::Cgroup: return "join the job's cgroup";
    case Step::ExecInit: return "execute batman-init";
    case Step::CloseFds: return "mark batman's file descriptors close-on-exec (close_range, Linux 5.11)";
    case Step::Affinity: return "take batman's CPUs (sched_setaffinity)";
  }
  return "setup";
}

const char* init_program_problem(const struct stat& st, uid_t euid) {
  if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR)) return "not an executable file";
  if ((st.st_uid != 0 && st.st_uid != euid) || (st.st_mode & (S_IWGRP | S_IWOTH))) return "another user could change it";
  return nullptr;
}

UniqueFd open_init_program(std::string* looked) {
  std::vector<std::string> candidates;
  if (std::string dir = launcher_executable(); !dir.empty()) {  // `batman`'s, also from batman-services
    dir.resize(dir.rfind('/') + 1);
    candidates.push_back(dir + "../libexec/batman/batman-init");
  }
  candidates.emplace_back(BATMAN_LIBEXECDIR "/batman-init");
  if (*BATMAN_BUILD_INIT) candidates.emplace_back(BATMAN_BUILD_INIT);  // none in a package
  std::string passed;
  for (const auto& path : candidates) {
    // The file opened is the file checked and, later, the file executed (execveat).
    UniqueFd fd(open(path.c_str(), O_PATH | O_CLOEXEC));
    struct stat st{};
    const char* why = !fd || fstat(fd.get(), &st) != 0 ? "missing" : init_program_problem(st, geteuid());
    if (!why) return fd;
    passed += (passed.empty() ? "" : ", ") + path + " (" + why + ")";
  }
  if (looked) *looked += passed;
  return {};
}

namespace {

[[noreturn]] void report(const ChildPlan& plan, Step step, int err, int index = -1) {
  Failure failure{static_cast<int>(step), index, err};
  // Nothing else can be done if this write fails: the parent then sees the child die.
  [[maybe_unused]] auto n = write(plan.error_fd, &failure, sizeof failure);
  _exit(125);
}

[[noreturn]] void exec_job(ChildPlan& plan);

// The job under PID 1 starts vfork-style: it shares PID 1's memory (no page tables copied)
// on a stack of its own (plan.job_stack_top), and PID 1 sleeps until the job's execve (or
// _exit). The job makes system calls only until then, so sharing is safe.
int job_entry(void* plan) { exec_job(*static_cast<ChildPlan*>(plan)); }

pid_t spawn_job(ChildPlan& plan) {
  return clone(job_entry, plan.job_stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
}

// The job's last steps: stdio, signals, ids, capabilities, no_new_privs, seccomp, execve.
[[noreturn]] void exec_job(ChildPlan& plan) {
  reset_signals_in_child();
  if (setsid() < 0 && errno != EPERM) report(plan, Step::Session, errno);
  if (!dup_stdio_in_child(plan.stdio)) report(plan, Step::Stdio, errno);
  if (int rc = drop_bounding_set(plan.caps)) report(plan, Step::Bounding, rc);
  if (plan.set_ids) {
    // Raw system calls: glibc's wrappers broadcast the change to every thread it knows of
    // (__nptl_setxid), and a child cloned from a batman with threads (its state writer)
    // would wait forever for threads it does not have.
    if (syscall(SYS_setgroups, 0, nullptr) != 0) report(plan, Step::Groups, errno);
    if (syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) report(plan, Step::Gid, errno);
    if (syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) report(plan, Step::Uid, errno);
  }
  if (int rc = set_capability_sets(plan.caps)) report(plan, Step::Capabilities, rc);
  if (plan.set_umask) umask(plan.umask);
  if (int rc = apply_rlimits(plan.rlimits)) report(plan, Step::Rlimits, rc);
  if (chdir(plan.cwd.c_str()) != 0) report(plan, Step::Chdir, errno);
  // Nothing of batman's leaks into the job: every fd above stdio closes on execve, the error
  // pipe included, which is how the parent learns that execve happened.
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) report(plan, Step::CloseFds, errno);
  if (plan.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    report(plan, Step::NoNewPrivs, errno);
  // Last before execve, so that nothing batman itself does is filtered.
  if (int rc = load_seccomp(plan.seccomp)) report(plan, Step::Seccomp, rc);
  if (plan.direct) execve(plan.exec_path.c_str(), plan.argv.data(), plan.envp.data());
  // A direct exec that failed (not found in this mount namespace, not executable, no #!
  // line): the shell runs the same command, and fails or succeeds exactly as `sh -c` would.
  if (plan.shell_argv.size() > 1) execve(plan.shell_argv[0], plan.shell_argv.data(), plan.envp.data());
  report(plan, Step::Exec, errno);
}

// PID 1, once the job runs: exec batman-init with the job's pid and the status pipe, so that
// PID 1 holds none of batman's memory; this also lets batman go on (CLONE_VFORK). Only the
// status pipe stays open. The digits are written on this stack: no allocation here.
[[noreturn]] void exec_init(ChildPlan& plan, pid_t job) {
  const int keep = plan.status_fd;
  auto cloexec = [&](unsigned first, unsigned last) {
    if (syscall(SYS_close_range, first, last, CLOSE_RANGE_CLOEXEC) != 0) report(plan, Step::CloseFds, errno);
  };
  if (keep < 0) {
    cloexec(0U, ~0U);
  } else {
    // Close-on-exec rather than closed: init_fd must stay open until the execveat.
    if (keep > 0) cloexec(0U, static_cast<unsigned>(keep - 1));
    cloexec(static_cast<unsigned>(keep + 1), ~0U);
    fcntl(keep, F_SETFD, 0);  // the one fd batman-init inherits
  }
  char job_text[16], fd_text[16];
  auto format = [](char* out, long value) {
    char digits[16];
    int n = 0;
    const bool negative = value < 0;
    unsigned long v = negative ? static_cast<unsigned long>(-value) : static_cast<unsigned long>(value);
    do digits[n++] = static_cast<char>('0' + v % 10); while ((v /= 10) && n < 15);
    if (negative) *out++ = '-';
    while (n) *out++ = digits[--n];
    *out = 0;
  };
  format(job_text, job);
  format(fd_text, keep);
  char name[] = "batman-init";
  char* argv[] = {name, job_text, fd_text, nullptr};
  char* envp[] = {nullptr};
  syscall(SYS_execveat, plan.init_fd, "", argv, envp, AT_EMPTY_PATH);
  // No PID 1, no job: the namespace goes down with us (the job is killed as we exit).
  report(plan, Step::ExecInit, errno);
}

// From the new namespaces on: mounts, hostname, lo, the cgroup namespace, then the job and
// PID 1 (below). Runs while batman waits for our exec (CLONE_VFORK, or the early child's
// handoff): glibc's wrappers and their errno are ours alone here.
[[noreturn]] void build_sandbox(ChildPlan& plan) {
  Failure failure;
  if (plan.mount_namespace && !plan.mounted && apply_mounts(plan, failure) != 0)
    report(plan, static_cast<Step>(failure.step), failure.err, failure.index);
  if (!plan.hostname.empty() && sethostname(plan.hostname.data(), plan.hostname.size()) != 0)
    report(plan, Step::Hostname, errno);
  if (plan.loopback_up) {
    if (int rc = bring_loopback_up()) report(plan, Step::Loopback, rc);
  }
  // After joining the job's cgroup, so that it is the namespace's root.
  if (plan.cgroup_namespace && unshare(CLONE_NEWCGROUP) != 0)
    report(plan, Step::CgroupNamespace, errno);
  // The job's own TMPDIR belongs to the user it runs as (batman is root here: set_ids).
  if (!plan.chown_path.empty() && chown(plan.chown_path.c_str(), plan.uid, plan.gid) != 0 &&
      errno != ENOENT)
    report(plan, Step::Chown, errno);
  if (!plan.pid_namespace) exec_job(plan);

  // PID 1: every signal is blocked already (before the job exists, so none meant for it is
  // lost; batman-init takes them once it runs). Not dumpable from here to the exec of
  // batman-init: between the job's execve and ours, PID 1 runs on batman's memory, and a job
  // with CAP_SYS_PTRACE in its user namespace must not reach it through ptrace or
  // process_vm_writev (after the id maps: a non-dumpable process's /proc/self is root's).
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const pid_t job = spawn_job(plan);
  if (job < 0) report(plan, Step::ForkJob, errno);
  exec_init(plan, job);
}

// Runs on its own stack in batman's memory while batman waits (CLONE_VFORK): system calls
// only, every signal blocked (by the parent, before the clone).
int child_main(void* arg) {
  ChildPlan& plan = *static_cast<ChildPlan*>(arg);
  for (int fd : plan.cgroup_procs)
    if (write(fd, "0", 1) != 1) report(plan, Step::Cgroup, errno);
  if (plan.die_with_parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) report(plan, Step::DieWithParent, errno);
    // A parent that died before PDEATHSIG was armed shows as a readable pidfd (getppid
    // cannot tell from inside a new pid namespace).
    pollfd dead{plan.parent_pidfd, POLLIN, 0};
    if (plan.parent_pidfd >= 0 && poll(&dead, 1, 0) != 0) _exit(125);
  }
  if (plan.user_namespace) {
    if (int rc = write_own_id_maps(plan)) report(plan, Step::IdMaps, rc);
  }
  // After the id maps (a user namespace owns what is created in it from here).
  if (plan.unshare_flags && unshare(static_cast<int>(plan.unshare_flags)) != 0)
    report(plan, Step::Unshare, errno);
  if (setsid() < 0) report(plan, Step::Session, errno);
  build_sandbox(plan);
}

// ---- The early child -------------------------------------------------------------------
// System calls that never touch errno: the early child runs its first steps beside batman's
// thread, in batman's memory and with its thread pointer, and glibc's wrappers would write
// batman's errno behind its back.
// (isolation/raw_syscall.hpp). Elsewhere than x86-64 and arm64 there is no early child.
constexpr bool kEarlyChild = raw::kRaw;

// What the early child may make ahead of the profile, guessing from its hint (the namespaces
// the last start with the same options had): the ones made by unshare(2).
constexpr unsigned long kAhead = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;

struct Early {
  pid_t pid = -1;
  UniqueFd pidfd, self, error_read, error_write;
  unsigned long clone_flags = 0, unshare_flags = 0;
  // The hint (read by batman before the clone: the child never touches a file before the
  // plan), what the child makes of it at once, and where to write it back.
  std::optional<unsigned long> hint;  // none: no hint file (or one not to be trusted)
  unsigned long guess = 0;            // *hint & kAhead
  int guess_set = 0;                  // futex: 1 = guess is there (0: none), -1 = not wanted
  std::string hint_home, hint_name;
  bool user_namespace = false;
  std::string gid_map, uid_map;
  // All of batman's CPUs but the one it runs on: a new child starts on its parent's CPU and
  // would take it from batman, where the point is to run beside it.
  cpu_set_t away{};
  bool move_away = false;
  // batman's CPUs at the handoff, which the child takes back for itself and the job.
  cpu_set_t cpus{};
  int flags_set = 0;   // futex: 1 = unshare_flags are there, -1 = not wanted
  // The mounts, made ahead too once batman has planned them (NamespacesBackend::prepare),
  // while it writes the run's files: 1 = mount_plan is there, 2 = none to make ahead, -1 =
  // not wanted.
  int mounts_set = 0;                     // futex
  std::unique_ptr<ChildPlan> mount_plan;  // its base and mounts; the child's until its exec
  int go = 0;          // futex: 1 = the plan is there, -1 = not wanted
  int taken = 0;       // 1 once the child has the plan (else it died before)
  int alive = 1;       // futex (CLONE_CHILD_CLEARTID): 0 once the child has exec'd or exited
  ChildPlan* plan = nullptr;
};
Early* early_child = nullptr;
// How long the early child polls for the profile's namespaces before it sleeps on a futex
// (waking a sleeping CPU costs 45 µs on this VM): about what reading the profile takes.
constexpr long kEarlyPoll = 300'000;  // ns

// batman's side of a futex word the early child waits on: 1, go on; -1, not wanted.
void set_word(int& word, int value) {
  __atomic_store_n(&word, value, __ATOMIC_RELEASE);
  raw::call(SYS_futex, reinterpret_cast<long>(&word), FUTEX_WAKE_PRIVATE, 1);
}

// The child's side: back once WORD is set, after polling it for POLL_NS (yielding to anything
// else runnable) and then sleeping on it; gone at once if it is not wanted.
void await_word(const int& word, long poll_ns) {
  timespec start{}, now{};
  if (poll_ns > 0) raw::call(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&start));
  for (;;) {
    const int value = __atomic_load_n(&word, __ATOMIC_ACQUIRE);
    if (value < 0) raw::call(SYS_exit_group, 0);
    if (value > 0) return;
    bool polling = false;
    if (poll_ns > 0) {
      raw::call(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&now));
      polling = (now.tv_sec - start.tv_sec) * 1'000'000'000L + (now.tv_nsec - start.tv_nsec) < poll_ns;
    }
    if (polling)
      raw::call(SYS_sched_yield);
    else
      raw::call(SYS_futex, reinterpret_cast<long>(&word), FUTEX_WAIT_PRIVATE, 0, 0);
  }
}

[[noreturn]] void early_report(const Early& e, Step step, long err, int index = -1) {
  Failure failure{static_cast<int>(step), index, static_cast<int>(err)};
  raw::call(SYS_write, e.error_write.get(), reinterpret_cast<long>(&failure), sizeof failure);
  raw::call(SYS_exit_group, 125);
  __builtin_unreachable();
}

// 0, or -errno.
long early_write_file(const char* path, const char* text, std::size_t size) {
  const long fd = raw::call(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fd;
  const long n = raw::call(SYS_write, fd, reinterpret_cast<long>(text), static_cast<long>(size));
  raw::call(SYS_close, fd);
  return n == static_cast<long>(size) ? 0 : n < 0 ? n : -EIO;
}

int early_main(void* arg) {
  Early& e = *static_cast<Early*>(arg);
  // PDEATHSIG, then a check that batman is not gone already (a profile whose job may outlive
  // batman is not served: commit_prestart takes this child down).
  if (long rc = raw::call(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL); rc < 0) early_report(e, Step::DieWithParent, -rc);
  pollfd dead{e.self.get(), POLLIN, 0};
  const timespec no_wait{0, 0};
  if (raw::call(SYS_ppoll, reinterpret_cast<long>(&dead), 1, reinterpret_cast<long>(&no_wait), 0, 8) != 0)
    raw::call(SYS_exit_group, 125);
  if (e.user_namespace) {
    long rc = early_write_file("/proc/self/setgroups", "deny", 4);
    if (rc == 0) rc = early_write_file("/proc/self/gid_map", e.gid_map.data(), e.gid_map.size());
    if (rc == 0) rc = early_write_file("/proc/self/uid_map", e.uid_map.data(), e.uid_map.size());
    if (rc < 0) early_report(e, Step::IdMaps, -rc);
  }
  // The namespaces the hint names, made while batman reads the profile (a network namespace
  // is the dearest step of the launch): the hint is read once batman has the arguments.
  await_word(e.guess_set, kEarlyPoll);
  if (e.guess) {
    if (long rc = raw::call(SYS_unshare, static_cast<long>(e.guess)); rc < 0) early_report(e, Step::Unshare, -rc);
  }
  // The rest of the profile's namespaces once batman has it (being read as we get here).
  await_word(e.flags_set, kEarlyPoll);
  if (const unsigned long rest = e.unshare_flags & ~e.guess) {
    if (long rc = raw::call(SYS_unshare, static_cast<long>(rest)); rc < 0) early_report(e, Step::Unshare, -rc);
  }
  if (long rc = raw::call(SYS_setsid); rc < 0) early_report(e, Step::Session, -rc);
  // The mounts, once planned (apply_mounts makes raw system calls only).
  await_word(e.mounts_set, kEarlyPoll);
  if (__atomic_load_n(&e.mounts_set, __ATOMIC_ACQUIRE) == 1) {
    Failure failure;
    if (apply_mounts(*e.mount_plan, failure) != 0)
      early_report(e, static_cast<Step>(failure.step), failure.err, failure.index);
  }
  // On a CPU of its own, it polls for the plan too: waking a sleeping CPU is slower.
  await_word(e.go, e.move_away ? kEarlyPoll : 0);
  __atomic_store_n(&e.taken, 1, __ATOMIC_RELAXED);
  // batman waits for our exec from here: glibc's wrappers again. The descriptors batman made
  // since the clone are in the table we shared; the job and PID 1 get a copy of their own.
  ChildPlan& plan = *e.plan;
  if (unshare(CLONE_FILES) != 0) report(plan, Step::Unshare, errno);
  if (sched_setaffinity(0, sizeof e.cpus, &e.cpus) != 0) report(plan, Step::Affinity, errno);
  build_sandbox(plan);
}

}  // namespace
}  // namespace ns

using ns::ChildPlan;
using ns::MountOp;

namespace {

// The stacks of the child and of the job it starts, kept for the next spawn: one child at a
// time runs on them (an early child until its exec; else while this thread waits, as for
// CLONE_VFORK), and unmapping a stack the child touched on another CPU would cost a TLB
// shootdown at every spawn. Each has a guard page below it:
// an overflow faults instead of writing over the other or over batman. Null (errno) if
// they cannot be mapped.
constexpr std::size_t kGuard = 4096, kJobStack = 64 * 1024, kStack = 512 * 1024;
char* child_stacks() {
  static char* stacks = nullptr;
  if (!stacks) {
    void* mapped = mmap(nullptr, kGuard + kJobStack + kGuard + kStack, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapped == MAP_FAILED) return nullptr;
    char* base = static_cast<char*>(mapped);
    if (mprotect(base, kGuard, PROT_NONE) != 0 || mprotect(base + kGuard + kJobStack, kGuard, PROT_NONE) != 0) {
      const int err = errno;
      munmap(mapped, kGuard + kJobStack + kGuard + kStack);
      errno = err;
      return nullptr;
    }
    stacks = base;
  }
  return stacks;
}
char* job_stack_top(char* stacks) { return stacks + kGuard + kJobStack; }
char* child_stack_top(char* stacks) { return stacks + kGuard + kJobStack + kGuard + kStack; }

// Which namespaces a profile gets, and how: all but user and pid by the child's unshare(2).
struct NamespaceFlags {
  unsigned long clone_flags = 0, unshare_flags = 0;
  bool user_namespace = false;
  std::string gid_map, uid_map;
};
NamespaceFlags namespace_flags(const Profile& profile) {
  NamespaceFlags f;
  const bool root = geteuid() == 0;
  const auto want = [&](std::string_view name) { return profile.has_namespace(name); };
  if (want("mount")) f.clone_flags |= CLONE_NEWNS;
  if (want("pid")) f.clone_flags |= CLONE_NEWPID;
  if (want("ipc")) f.clone_flags |= CLONE_NEWIPC;
  if (want("uts")) f.clone_flags |= CLONE_NEWUTS;
  if (profile.network != Network::Host) f.clone_flags |= CLONE_NEWNET;
  // Without root, a user namespace is what makes every other namespace possible.
  f.user_namespace = !root && (f.clone_flags != 0 || want("user") || want("cgroup"));
  if (f.user_namespace) {
    f.clone_flags |= CLONE_NEWUSER;
    f.gid_map = std::to_string(getegid()) + " " + std::to_string(getegid()) + " 1\n";
    f.uid_map = std::to_string(geteuid()) + " " + std::to_string(geteuid()) + " 1\n";
  }
  f.unshare_flags = f.clone_flags & ~static_cast<unsigned long>(CLONE_NEWUSER | CLONE_NEWPID);
  return f;
}

// A job gets a cgroup of its own for limits, or to hold its tree without a pid namespace (a
// cgroup costs a few milliseconds per run; with a pid namespace PID 1 holds the tree).
bool needs_cgroup(const Limits& limits, bool pid_namespace) {
  return limits.memory_bytes || limits.cpus || limits.pids || !pid_namespace;
}

// The early child, no longer batman's to hand out (deleted with the returned pointer).
std::unique_ptr<ns::Early> take_early_child() {
  std::unique_ptr<ns::Early> e(ns::early_child);
  ns::early_child = nullptr;
  return e;
}

// The early child's hint file for one set of options: $BATMAN_HOME/.cache/launch/<hash>.
constexpr std::string_view kHintDir = "launch";
std::string hint_name(std::string_view options) {
  char name[24];
  std::snprintf(name, sizeof name, "%016zx", std::hash<std::string_view>{}(options));
  return name;
}

// The hint for `name`, if there is one to trust: a private_file (as the profile cache's
// entries), reached from the home without a symlink (openat2 with
// RESOLVE_NO_SYMLINKS: SPEC §3); its decimal flags (garbage reads as none). Read by batman
// before the clone, so the early child never waits on a file system.
std::optional<unsigned long> read_hint(const std::string& batman_home, const std::string& name) {
  UniqueFd home(open(batman_home.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!home) return std::nullopt;
  const std::string path = ".cache/" + std::string(kHintDir) + "/" + name;
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(syscall(SYS_openat2, home.get(), path.c_str(), &how, sizeof how)));
  struct stat st{};
  if (!fd || fstat(fd.get(), &st) != 0 || !private_file(st)) return std::nullopt;
  char text[24];
  const ssize_t n = read(fd.get(), text, sizeof text);
  if (n <= 0 || text[0] < '0' || text[0] > '9') return std::nullopt;
  unsigned long flags = 0;
  for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; ++i) flags = flags * 10 + static_cast<unsigned long>(text[i] - '0');
  return flags;
}

// The hint rewritten when it was stale: in the cache's own directories (never through a
// symlink, nor one another user may write to), into a private_file (never through a hard
// link). Only a hint: nothing is said if it fails.
void write_hint(const std::string& batman_home, const std::string& name, unsigned long flags) {
  auto home = open_dir_path(batman_home, false);
  if (!home) return;
  auto cache = open_dir_at(home->get(), ".cache", true);
  if (!cache || !private_dir(cache->get())) return;
  auto dir = open_dir_at(cache->get(), kHintDir, true);
  if (!dir || !private_dir(dir->get())) return;
  UniqueFd fd(openat(dir->get(), name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600));
  struct stat st{};
  if (!fd || fstat(fd.get(), &st) != 0 || !private_file(st)) return;
  const std::string text = std::to_string(flags) + "\n";
  if (ftruncate(fd.get(), 0) != 0) return;
  [[maybe_unused]] const auto n = pwrite(fd.get(), text.data(), text.size(), 0);
}

// PID's wait status once it has exited (it is reaped).
int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
  return status;
}

// The early child is taken down (it has nothing to undo: killed, not left to finish a mount
// on a slow file system) and reaped (its stack is free again after).
void abort_early_child() {
  const auto e = take_early_child();
  if (!e) return;
  if (syscall(SYS_pidfd_send_signal, e->pidfd.get(), SIGKILL, nullptr, 0) != 0) {
    ns::set_word(e->guess_set, -1);
    ns::set_word(e->flags_set, -1);
    ns::set_word(e->mounts_set, -1);
    ns::set_word(e->go, -1);
  }
  reap(e->pid);
}

class NamespacesBackend final : public Backend {
 public:
  Tier tier() const override { return Tier::Namespaces; }

  Result<std::vector<std::string>> prepare(const LaunchRequest& request) override {
    std::vector<std::string> unenforced;
    auto plan = build_plan(request, unenforced);
    if (!plan) return std::unexpected(plan.error().wrap("namespaces"));
    if (!cgroup_ && needs_cgroup(request.limits, plan->pid_namespace))
      cgroup_ = create_job_cgroup(request.unit_name, request.limits, unenforced);
    plan->rlimits = plan_rlimits(request.limits, cgroup_.get(), unenforced);
    plan_ = std::move(*plan);
    prepared_ = true;
    // The early child that will serve this start makes the mounts now, beside us (the run
    // has made its TMPDIR, the one source that was not there before).
    if (ns::Early* e = ns::early_child; e && plan_.mount_namespace && serves(*e) &&
                                        __atomic_load_n(&e->mounts_set, __ATOMIC_RELAXED) == 0) {
      e->mount_plan = std::make_unique<ChildPlan>();
      e->mount_plan->base = plan_.base;
      e->mount_plan->mounts = plan_.mounts;
      ns::set_word(e->mounts_set, 1);
    }
    return unenforced;
  }

  // The early child serves this start if it was given these very namespaces.
  bool serves(const ns::Early& early) const {
    return __atomic_load_n(&early.flags_set, __ATOMIC_RELAXED) > 0 &&
           (early.clone_flags | early.unshare_flags) == plan_.clone_flags && early.unshare_flags == plan_.unshare_flags &&
           early.user_namespace == plan_.user_namespace && !cgroup_;
  }

  Result<Child> spawn(const LaunchRequest& request) override {
    if (!prepared_) {
      if (auto ok = prepare(request); !ok) return std::unexpected(ok.error());
    }
    ChildPlan plan = plan_;  // the child edits mount paths in place (mkdir -p)
    auto stdio = stdio_sources(request.stdin_fd, request.stdout_fd, request.stderr_fd);
    if (!stdio) return std::unexpected(stdio.error().wrap("namespaces"));
    for (int i = 0; i < 3; ++i) plan.stdio[i] = stdio->fds[i];
    plan.argv.clear();
    for (auto& a : plan.argv_storage) plan.argv.push_back(a.data());
    plan.argv.push_back(nullptr);
    plan.shell_argv.clear();
    for (auto& a : plan.shell_storage) plan.shell_argv.push_back(a.data());
    plan.shell_argv.push_back(nullptr);
    plan.envp.clear();
    for (auto& e : plan.env_storage) plan.envp.push_back(e.data());
    plan.envp.push_back(nullptr);

    ns::Early* early = ns::early_child;
    if (early && !serves(*early)) {
      abort_early_child();
      early = nullptr;
    }
    // A start that fails before the handoff takes the early child down with it.
    struct AbortOnError {
      bool armed;
      ~AbortOnError() {
        if (armed) abort_early_child();
      }
    } abort_on_error{early != nullptr};
    UniqueFd error_read, error_write, self;
    if (!early) {
      int errors[2];
      if (pipe2(errors, O_CLOEXEC) != 0) return sys_error("namespaces: pipe");
      error_read.reset(errors[0]);
      error_write.reset(errors[1]);
      self.reset(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
    }
    plan.parent_pidfd = early ? early->self.get() : self.get();
    plan.error_fd = early ? early->error_write.get() : error_write.get();
    // PID 1 reports the job's status here, ahead of its own exit (see run_init).
    UniqueFd status_read, status_write;
    if (plan.pid_namespace) {
      int status[2];
      if (pipe2(status, O_CLOEXEC) != 0) return sys_error("namespaces: pipe");
      status_read.reset(status[0]);
      status_write.reset(status[1]);
      plan.status_fd = status_write.get();
      if (!init_fd_) {
        std::string looked;
        init_fd_ = ns::open_init_program(&looked);
        if (!init_fd_) return fail("namespaces: no usable batman-init (" + looked + "): reinstall batman");
      }
      plan.init_fd = init_fd_.get();
    }
    std::vector<UniqueFd> procs;
    if (cgroup_) {
      auto fds = cgroup_->open_procs();
      if (!fds) return std::unexpected(fds.error().wrap("namespaces"));
      procs = std::move(*fds);
      for (const auto& fd : procs) plan.cgroup_procs.push_back(fd.get());
    }

    char* const stacks = child_stacks();
    if (!stacks) return sys_error("namespaces: mmap the child's stack");
    plan.job_stack_top = job_stack_top(stacks);
    if (early) {
      // The early child made the namespaces meanwhile: it gets the plan and builds the rest
      // while we wait, as for CLONE_VFORK, until its exec (CLONE_CHILD_CLEARTID).
      if (sched_getaffinity(0, sizeof early->cpus, &early->cpus) != 0) return sys_error("namespaces: sched_getaffinity");
      const int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
      // Its mounts made already, or left to the steps below.
      if (__atomic_load_n(&early->mounts_set, __ATOMIC_RELAXED) == 0) ns::set_word(early->mounts_set, 2);
      plan.mounted = __atomic_load_n(&early->mounts_set, __ATOMIC_RELAXED) == 1;
      early->plan = &plan;
      abort_on_error.armed = false;
      const auto owned = take_early_child();
      ns::set_word(early->go, 1);
      for (int alive; (alive = __atomic_load_n(&early->alive, __ATOMIC_ACQUIRE)) != 0;)
        raw::call(SYS_futex, reinterpret_cast<long>(&early->alive), FUTEX_WAIT, alive, 0);
      if (dumpable >= 0) prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
      if (!__atomic_load_n(&early->taken, __ATOMIC_RELAXED)) {
        // Gone before it had the plan (killed, or a report of its own steps): no job ran.
        early->error_write.reset();  // ours: the report, if any, is all there is to read
        Child gone;
        gone.report_fd = std::move(early->error_read);
        const std::optional<Error> report = read_report(gone);
        const int status = reap(early->pid);
        if (report) return std::unexpected(*report);
        return fail("namespaces: the child making the namespaces died before the start (" +
                    (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                         : "exit " + std::to_string(WEXITSTATUS(status))) + ")");
      }
      Child child;
      child.pid = early->pid;
      child.pidfd = std::move(early->pidfd);
      child.status_fd = std::move(status_read);
      child.report_fd = std::move(early->error_read);
      return child;
    }
    char* const stack_top = child_stack_top(stacks);
    // Every signal blocked across the clone: no handler of batman's may run in the child
    // (it shares our memory), and PID 1 must have them all blocked before the job exists.
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    // The child shares our memory, and the dumpable flag is the memory's: the job's id
    // changes (setresuid to a program's user) and PID 1's PR_SET_DUMPABLE would leave batman
    // itself non-dumpable. Put back once the child has exec'd.
    const int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    int pidfd = -1;
    const pid_t pid = clone(ns::child_main, stack_top,
                            static_cast<int>(plan.clone_flags & ~plan.unshare_flags) | CLONE_VM | CLONE_VFORK |
                                CLONE_PIDFD | SIGCHLD,
                            &plan, &pidfd);
    const int clone_errno = errno;
    if (dumpable >= 0) prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) return sys_error("namespaces: clone", clone_errno);

    // The child has exec'd batman-init (or the job, without a pid namespace), or exited
    // after a report; the report (or EOF once the job reached execve) is read from the loop.
    Child child;
    child.pid = pid;
    child.pidfd.reset(pidfd);
    child.status_fd = std::move(status_read);
    child.report_fd = std::move(error_read);
    return child;
  }


  std::optional<Error> read_report(const Child& child) override {
    if (!child.report_fd) return std::nullopt;
    ns::Failure failure;
    ssize_t n;
    do {
      n = read(child.report_fd.get(), &failure, sizeof failure);
    } while (n < 0 && errno == EINTR);
    if (n == 0) return std::nullopt;  // EOF: the job reached execve
    if (n != sizeof failure) return Error{"namespaces: the child died during setup"};
    return Error{"namespaces: " + describe(plan_, failure), failure.err};
  }

  void signal_tree(const Child& child, int sig) override {
    if (child.pid <= 0) return;
    if (cgroup_ && sig == SIGKILL) cgroup_->kill_all();
    if (plan_.pid_namespace) {
      // PID 1 forwards it to every process of the namespace; SIGKILL takes the namespace down.
      kill(child.pid, sig);
    } else {
      signal_session(child.pid, sig);
    }
    if (cgroup_ && sig != SIGKILL) cgroup_->signal_all(sig);
  }

  void kill_leftovers(const Child& child) override {
    // With a pid namespace, its processes died with PID 1; the cgroup or session catch the
    // rest (a job that escaped neither cannot exist under this tier).
    if (cgroup_) cgroup_->kill_all();
    if (!plan_.pid_namespace && child.pid > 0) signal_session(child.pid, SIGKILL);
  }

  void release() override { release_cgroup(cgroup_, true); }
  bool try_release() override { return release_cgroup(cgroup_, false); }

  ~NamespacesBackend() override { release(); }

 private:
  static std::string describe(const ChildPlan& plan, const ns::Failure& failure) {
    const auto step = static_cast<ns::Step>(failure.step);
    std::string what(ns::step_name(step));
    if (failure.index >= 0 && static_cast<std::size_t>(failure.index) < plan.mounts.size()) {
      const MountOp& op = plan.mounts[static_cast<std::size_t>(failure.index)];
      what += " " + (step == ns::Step::Proc ? std::string("proc on /proc") : op.shown);
    }
    if (step == ns::Step::Chdir) what += " " + plan.cwd;
    if (step == ns::Step::Chown) what += " " + plan.chown_path;
    if (step == ns::Step::Exec) what += " " + (plan.shell_storage.empty() ? plan.exec_path : plan.shell_storage.front());
    return what + ": " + std::strerror(failure.err);
  }

  static Result<ChildPlan> build_plan(const LaunchRequest& request,
                                      std::vector<std::string>& unenforced) {
    const Profile& profile = request.profile;
    ChildPlan plan;
    const bool root = geteuid() == 0;
    const auto want = [&](std::string_view name) { return profile.has_namespace(name); };
    NamespaceFlags flags = namespace_flags(profile);
    plan.clone_flags = flags.clone_flags;
    plan.unshare_flags = flags.unshare_flags;
    plan.user_namespace = flags.user_namespace;
    plan.gid_map = std::move(flags.gid_map);
    plan.uid_map = std::move(flags.uid_map);
    plan.mount_namespace = want("mount");
    plan.pid_namespace = want("pid");
    plan.cgroup_namespace = want("cgroup");
    plan.loopback_up = profile.network == Network::Loopback;
    if (want("uts")) plan.hostname = profile.hostname;
    else if (!profile.hostname.empty()) unenforced.push_back("hostname (needs the uts namespace)");
    plan.base = "/tmp";
    // The job sees batman's paths in their canonical form (a symlink in $BATMAN_HOME's path
    // need not exist in its root): its work dir, and TMPDIR and BATMAN_* in its environment.
    const BatmanTree tree = batman_tree(request, false);
    if (plan.mount_namespace) {
      auto mounts = ns::plan_mounts(request, tree, unenforced);
      if (!mounts) return std::unexpected(mounts.error());
      plan.mounts = std::move(*mounts);
    } else if (!profile.filesystem.read_only.empty() || !profile.filesystem.tmpfs.empty() ||
               !profile.filesystem.hide.empty()) {
      unenforced.push_back("filesystem (needs the mount namespace)");
    }
    plan.cwd = request.cwd.empty() ? "/" : tree.cwd;
    plan.die_with_parent = profile.die_with_parent;
    if (request.uid && !root) return fail("running as another user needs root");
    if (const auto ids = job_ids(request)) {
      plan.set_ids = true;
      plan.uid = ids->uid;
      plan.gid = ids->gid;
      plan.chown_path = tree.tmp_dir;
    }
    if (request.umask) {
      plan.set_umask = true;
      plan.umask = *request.umask;
    }
    auto caps = plan_capabilities(profile.capabilities);
    if (!caps) return std::unexpected(caps.error());
    plan.caps = *caps;
    // The kernel takes a seccomp filter from an unprivileged process only with no_new_privs.
    plan.no_new_privs = profile.no_new_privs || profile.seccomp.enabled;
    auto seccomp = compile_seccomp(profile.seccomp);
    if (!seccomp) return std::unexpected(seccomp.error());
    plan.seccomp = std::move(*seccomp);
    if (request.argv.empty()) return fail("nothing to run: empty command");
    plan.argv_storage = request.argv;
    plan.exec_path = find_in_path(request.argv.front(), request.env);
    plan.shell_storage = request.shell_argv;
    plan.direct = plan.shell_storage.empty() || plan.exec_path.find('/') != std::string::npos;
    plan.env_storage = request.env;
    if (plan.direct && !plan.shell_storage.empty()) set_shell_pwd(plan.env_storage, request.cwd.empty() ? "/" : request.cwd, plan.cwd);
    if (plan.mount_namespace) {
      const std::string home = request.batman_home;
      for (auto& kv : plan.env_storage) {
        const auto eq = kv.find('=');
        const std::string_view name(kv.data(), eq == std::string::npos ? 0 : eq);
        if (name != "TMPDIR" && name != "BATMAN_HOME" && name != "BATMAN_PROJECT_DIR") continue;
        const std::string value = kv.substr(eq + 1);
        if (!home.empty() && !tree.home.empty() && path_within(value, home))
          kv = std::string(name) + "=" + tree.home + value.substr(home.size());
      }
    }
    return plan;
  }

  ChildPlan plan_;
  bool prepared_ = false;
  std::unique_ptr<Cgroup> cgroup_;
  UniqueFd init_fd_;  // batman-init (O_PATH), opened at the first spawn with a pid namespace
};

}  // namespace

std::unique_ptr<Backend> make_namespaces_backend() { return std::make_unique<NamespacesBackend>(); }

bool prestart_namespaces(const std::string& batman_home, std::string_view options) {
  if (!prestart_clone()) return false;
  prestart_hint(batman_home, options);
  return true;
}

void prestart_hint(const std::string& batman_home, std::string_view options) {
  ns::Early* e = ns::early_child;
  if (!e || __atomic_load_n(&e->guess_set, __ATOMIC_RELAXED) != 0) return;
  if (!batman_home.empty()) {
    e->hint_home = batman_home;
    e->hint_name = hint_name(options);
    e->hint = read_hint(batman_home, e->hint_name);
    e->guess = e->hint.value_or(0) & ns::kAhead;
  }
  ns::set_word(e->guess_set, 1);
}

bool prestart_clone() {
  if (!ns::kEarlyChild || ns::early_child) return false;
  char* const stacks = child_stacks();
  if (!stacks) return false;
  // Every profile the early child can serve has a pid namespace; without root, a user
  // namespace too (commit_prestart checks both against the profile).
  Profile any;
  any.namespaces = {"pid"};
  NamespaceFlags flags = namespace_flags(any);
  auto e = std::make_unique<ns::Early>();
  e->clone_flags = flags.clone_flags;
  e->user_namespace = flags.user_namespace;
  e->gid_map = std::move(flags.gid_map);
  e->uid_map = std::move(flags.uid_map);
  if (sched_getaffinity(0, sizeof e->cpus, &e->cpus) == 0 && CPU_COUNT(&e->cpus) > 1) {
    const int cpu = sched_getcpu();
    e->away = e->cpus;
    if (cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &e->away)) {
      CPU_CLR(cpu, &e->away);
      e->move_away = true;
    }
  }
  int errors[2];
  if (pipe2(errors, O_CLOEXEC) != 0) return false;
  e->error_read.reset(errors[0]);
  e->error_write.reset(errors[1]);
  e->self.reset(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  if (!e->self) return false;
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  const pid_t pid = clone(ns::early_main, child_stack_top(stacks),
                          static_cast<int>(e->clone_flags) | CLONE_VM | CLONE_FILES | CLONE_PIDFD |
                              CLONE_CHILD_CLEARTID | SIGCHLD,
                          e.get(), &pidfd, nullptr, &e->alive);
  // Off batman's CPU before it runs there: a new child waits on its parent's CPU, and would
  // start only when batman next sleeps or is preempted.
  if (pid > 0 && e->move_away) sched_setaffinity(pid, sizeof e->away, &e->away);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return false;
  e->pid = pid;
  e->pidfd.reset(pidfd);
  ns::early_child = e.release();
  return true;
}

bool commit_prestart(const Profile& profile, const Limits& limits) {
  ns::Early* e = ns::early_child;
  if (!e) return false;
  const NamespaceFlags flags = namespace_flags(profile);
  const unsigned long cloned = static_cast<unsigned long>(CLONE_NEWPID | CLONE_NEWUSER);
  if (!profile.die_with_parent || needs_cgroup(limits, profile.has_namespace("pid")) ||
      (flags.clone_flags & cloned) != e->clone_flags || flags.user_namespace != e->user_namespace) {
    abort_early_child();
    return false;
  }
  if (__atomic_load_n(&e->guess_set, __ATOMIC_RELAXED) == 0) ns::set_word(e->guess_set, 1);  // no hint read: no guess
  // The next start with these options guesses what this one needed.
  const std::string home = e->hint_home, name = e->hint_name;
  const unsigned long needed = flags.unshare_flags & ns::kAhead;
  const bool stale = e->hint != needed;
  bool served = true;
  if (e->guess & ~flags.unshare_flags) {
    abort_early_child();  // a namespace the profile does not want: never the job's
    served = false;
  } else {
    e->unshare_flags = flags.unshare_flags;
    ns::set_word(e->flags_set, 1);
  }
  if (stale && !name.empty()) write_hint(home, name, needed);
  return served;
}

unsigned long prestart_guess() { return ns::early_child ? ns::early_child->guess : 0; }

void abort_prestart() { abort_early_child(); }

Availability probe_namespaces() {
  Availability a{Tier::Namespaces, false, {}};
  if (std::string looked; !ns::open_init_program(&looked)) {
    a.reason = "no usable batman-init (PID 1 of each job): " + looked + "; reinstall batman";
    return a;
  }
  // Nothing of batman's may reach the job: every descriptor is marked close-on-exec with
  // close_range(CLOSE_RANGE_CLOEXEC), which an older kernel refuses (EINVAL, ENOSYS).
  if (syscall(SYS_close_range, 1U << 30, 1U << 30, CLOSE_RANGE_CLOEXEC) != 0) {
    a.reason = std::string("this kernel cannot mark descriptors close-on-exec in one call (close_range: ") +
               std::strerror(errno) + "; Linux 5.11 can)";
    return a;
  }
  const bool root = geteuid() == 0;
  if (root) {
    // Root needs CAP_SYS_ADMIN (absent in some containers); no clone needed to know.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (syscall(SYS_capget, &header, data) == 0 && (data[0].effective & (1U << CAP_SYS_ADMIN))) {
      a.available = true;
      a.reason = "as root: mount, pid, ipc, uts, net and cgroup namespaces";
    } else {
      a.reason = "running as root without CAP_SYS_ADMIN (a container?): cannot create namespaces";
    }
    return a;
  }
  // A user namespace is the one an unprivileged user may be refused; the others follow
  // from it. The early child, made in one, shows it is allowed; else a child makes just that
  // one (cheap: a network namespace is not), sharing our memory and exiting at once (a fork
  // copied batman's page tables: 0.3 ms of a rootless launch).
  if (ns::early_child && ns::early_child->user_namespace) {
    a.available = true;
    a.reason = "unprivileged user namespaces";
    return a;
  }
  alignas(16) char probe_stack[16 * 1024];  // ours until the child exits (CLONE_VFORK)
  const pid_t pid = clone([](void*) -> int { _exit(0); }, probe_stack + sizeof probe_stack,
                          CLONE_VM | CLONE_VFORK | CLONE_NEWUSER | SIGCHLD, nullptr);
  if (pid > 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    a.available = true;
    a.reason = "unprivileged user namespaces";
    return a;
  }
  const int err = errno;
  auto number = [](const char* path) -> long {
    auto text = read_file(path);
    return text ? std::strtol(text->c_str(), nullptr, 10) : -1;
  };
  if (!root && number("/proc/sys/user/max_user_namespaces") == 0)
    a.reason = "unprivileged user namespaces are disabled (user.max_user_namespaces is 0)";
  else if (!root && number("/proc/sys/kernel/unprivileged_userns_clone") == 0)
    a.reason = "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone is 0)";
  else if (!root && number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
    a.reason = "AppArmor restricts unprivileged user namespaces "
               "(kernel.apparmor_restrict_unprivileged_userns is 1)";
  else
    a.reason = std::string("cannot create namespaces: clone: ") + std::strerror(err);
  return a;
}

}  // namespace batman::isolation
