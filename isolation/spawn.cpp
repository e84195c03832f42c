// spawn_plain: clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) + execve, with everything the child
// needs (argv, envp, paths) built before the clone; the child makes system calls only and
// reports a failure as (step, errno) in memory it shares with the parent until execve.
// Process-tree helpers walk /proc for the env tier's "whole tree".
#include "isolation/spawn.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "common/proc_stat.hpp"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace batman::isolation {
namespace {

struct SpawnPlan {
  const char* path;  // null: argv[0] is nowhere on PATH, only the shell runs
  char* const* argv;
  char* const* shell_argv;  // null: no fallback
  char* const* envp;
  const char* cwd;
  int fds[3];
  bool set_umask;
  mode_t umask_value;
  bool set_ids;
  uid_t uid;
  gid_t gid;
  bool die_with_parent;
  const int* cgroup_procs;
  std::size_t cgroup_count;
  pid_t parent;
  sigset_t parent_mask;
  // Filled by the child on failure.
  const char* failed_step;
  int failed_errno;
};

int child_main(void* arg) {
  auto* plan = static_cast<SpawnPlan*>(arg);
  // Handlers of the parent must not run in the child (shared memory): reset them first.
  reset_signals_in_child();
  auto fail_at = [plan](const char* step) {
    plan->failed_step = step;
    plan->failed_errno = errno;
    ::_exit(127);
  };
  if (::setsid() < 0) fail_at("setsid");
  for (std::size_t i = 0; i < plan->cgroup_count; ++i) {
    if (::write(plan->cgroup_procs[i], "0", 1) != 1) fail_at("join the job's cgroup");
  }
  if (plan->die_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_at("prctl(PR_SET_PDEATHSIG)");
    // The parent may have died before the prctl: then nobody would ever kill us.
    if (::getppid() != plan->parent) ::_exit(127);
  }
  if (!dup_stdio_in_child(plan->fds)) fail_at("dup2");
  if (plan->set_umask) ::umask(plan->umask_value);
  if (plan->set_ids) {
    // Raw system calls: glibc's wrappers broadcast the change to every thread it knows of
    // (__nptl_setxid) and would wait forever in a child of a batman with threads.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) fail_at("setgroups");
    if (::syscall(SYS_setresgid, plan->gid, plan->gid, plan->gid) != 0) fail_at("setgid");
    if (::syscall(SYS_setresuid, plan->uid, plan->uid, plan->uid) != 0) fail_at("setuid");
  }
  if (plan->cwd && ::chdir(plan->cwd) != 0) fail_at("chdir");
  if (plan->path) ::execve(plan->path, plan->argv, plan->envp);
  // A direct exec that failed: the shell runs the same command and fails (or succeeds, a
  // script with no #! line) exactly as `sh -c` would have.
  if (plan->shell_argv) ::execve(plan->shell_argv[0], plan->shell_argv, plan->envp);
  fail_at("execve");
  return 127;
}

}  // namespace

std::string find_in_path(const std::string& name, const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string_view path = kDefaultPath;
  for (const auto& e : env)
    if (e.starts_with("PATH=")) path = std::string_view(e).substr(5);
  while (true) {
    const auto colon = path.find(':');
    const std::string_view dir = path.substr(0, colon);
    if (!dir.empty()) {
      std::string candidate = std::string(dir) + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    if (colon == std::string_view::npos) return name;
    path.remove_prefix(colon + 1);
  }
}

void set_shell_pwd(std::vector<std::string>& env, const std::string& host_cwd, const std::string& job_cwd) {
  if (job_cwd.empty()) return;
  auto pwd = std::find_if(env.begin(), env.end(), [](const std::string& e) { return e.starts_with("PWD="); });
  if (pwd != env.end() && host_cwd == job_cwd) {
    struct stat a{}, b{};
    if (::stat(pwd->c_str() + 4, &a) == 0 && ::stat(host_cwd.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
      return;
  }
  if (pwd != env.end()) {
    *pwd = "PWD=" + job_cwd;
  } else {
    env.push_back("PWD=" + job_cwd);
  }
}

Result<StdioSources> stdio_sources(int in, int out, int err) {
  StdioSources s;
  const int given[3] = {in, out, err};
  for (int i = 0; i < 3; ++i) {
    s.fds[i] = given[i];
    if (s.fds[i] < 0) {
      if (!s.devnull) s.devnull.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
      if (!s.devnull) return sys_error("open /dev/null");
      s.fds[i] = s.devnull.get();
    }
    if (s.fds[i] < 3) {
      s.lifted[i].reset(::fcntl(s.fds[i], F_DUPFD_CLOEXEC, 3));
      if (!s.lifted[i]) return sys_error("dup stdio fd");
      s.fds[i] = s.lifted[i].get();
    }
  }
  return s;
}

void reset_signals_in_child() {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &action, nullptr);  // EINVAL for the C library's own: nothing to reset
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

bool dup_stdio_in_child(const int (&fds)[3]) {
  for (int i = 0; i < 3; ++i)
    if (::dup2(fds[i], i) < 0) return false;
  return true;
}

std::vector<ProcInfo> read_processes() {
  std::vector<ProcInfo> out;
  DIR* dir = ::opendir("/proc");
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const auto pid = static_cast<pid_t>(std::atoi(e->d_name));
    auto line = read_proc_stat(pid);
    if (!line || line->zombie()) continue;
    out.push_back({pid, line->ppid, line->pgid, line->sid, line->start_time});
  }
  ::closedir(dir);
  return out;
}

Result<Child> spawn_plain(const LaunchRequest& request, const std::vector<std::string>& argv,
                          std::span<const int> cgroup_procs, const std::vector<std::string>& shell_argv) {
  if (argv.empty()) return fail("nothing to run: empty command");
  // Everything the child touches is built here, before the clone.
  std::vector<std::string> argv_copy = argv;
  std::string path = find_in_path(argv_copy[0], request.env);
  std::vector<char*> argv_ptrs;
  for (auto& a : argv_copy) argv_ptrs.push_back(a.data());
  argv_ptrs.push_back(nullptr);
  std::vector<std::string> shell_copy = shell_argv;
  std::vector<char*> shell_ptrs;
  for (auto& a : shell_copy) shell_ptrs.push_back(a.data());
  shell_ptrs.push_back(nullptr);
  // Not on PATH: never execve a bare name (it would be looked up in the cwd); the shell says
  // "not found".
  bool direct = shell_copy.empty() || path.find('/') != std::string::npos;
  std::vector<std::string> env_copy = request.env;
  if (direct && !shell_copy.empty()) {
    char here[PATH_MAX];
    std::string cwd = !request.cwd.empty() ? request.cwd : ::getcwd(here, sizeof here) ? here : "";
    set_shell_pwd(env_copy, cwd, cwd);
  }
  std::vector<char*> env_ptrs;
  for (auto& e : env_copy) env_ptrs.push_back(e.data());
  env_ptrs.push_back(nullptr);

  auto stdio = stdio_sources(request.stdin_fd, request.stdout_fd, request.stderr_fd);
  if (!stdio) return std::unexpected(stdio.error());

  SpawnPlan plan{};
  plan.path = direct ? path.c_str() : nullptr;
  plan.argv = argv_ptrs.data();
  plan.shell_argv = shell_copy.empty() ? nullptr : shell_ptrs.data();
  plan.envp = env_ptrs.data();
  plan.cwd = request.cwd.empty() ? nullptr : request.cwd.c_str();
  for (int i = 0; i < 3; ++i) plan.fds[i] = stdio->fds[i];
  plan.set_umask = request.umask.has_value();
  plan.umask_value = request.umask.value_or(022);
  plan.set_ids = request.uid.has_value();
  plan.uid = request.uid.value_or(0);
  plan.gid = request.gid.value_or(0);
  plan.die_with_parent = request.profile.die_with_parent;
  plan.cgroup_procs = cgroup_procs.data();
  plan.cgroup_count = cgroup_procs.size();
  plan.parent = ::getpid();

  // One stack per spawning thread, kept: the child runs on it only until execve, while this
  // thread waits (CLONE_VFORK), and unmapping a stack the child touched on another CPU costs
  // a TLB shootdown at every spawn.
  constexpr std::size_t kStack = 256 * 1024;
  thread_local void* stack = nullptr;
  if (!stack) {
    void* mapped = ::mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapped == MAP_FAILED) return sys_error("mmap child stack");
    stack = mapped;
  }

  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &old);
  int pidfd = -1;
  pid_t pid = ::clone(child_main, static_cast<char*>(stack) + kStack,
                      CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &plan, &pidfd);
  int clone_errno = errno;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return sys_error("clone", clone_errno);
  if (plan.failed_step) {
    ::waitpid(pid, nullptr, 0);
    if (pidfd >= 0) ::close(pidfd);
    std::string step = plan.failed_step;
    if (step == "execve") step = "execute " + (plan.shell_argv ? shell_copy[0] : path);
    else if (step == "chdir") step = "chdir " + request.cwd;
    return sys_error(step, plan.failed_errno);
  }
  Child child;
  child.pid = pid;
  child.pidfd.reset(pidfd);
  return child;
}

std::vector<pid_t> session_members(pid_t sid) {
  std::vector<pid_t> out;
  for (const auto& p : read_processes())
    if (p.sid == sid) out.push_back(p.pid);
  return out;
}

std::vector<pid_t> children_of(pid_t parent) {
  // /proc/PID/task/TID/children (one file per thread) is far cheaper than a /proc scan.
  std::vector<pid_t> out;
  char dir_path[64];
  std::snprintf(dir_path, sizeof dir_path, "/proc/%d/task", parent);
  DIR* dir = ::opendir(dir_path);
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[400];
    std::snprintf(path, sizeof path, "/proc/%d/task/%s/children", parent, e->d_name);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    for (const char* p = text.c_str();;) {
      char* end = nullptr;
      const long child = std::strtol(p, &end, 10);
      if (end == p) break;
      out.push_back(static_cast<pid_t>(child));
      p = end;
    }
  }
  ::closedir(dir);
  return out;
}

namespace {

// The session of a process (a zombie's too: signalling it is harmless), or -1 when it is
// gone. getsid(2) is one system call where reading /proc/PID/stat was three and a path
// walk: signal_session asks it of each of batman's children for every program stopped, and
// a taskmaster `stop all` of 500 programs took 9.2 s with the reads, 1.1 s with getsid.
pid_t session_of(pid_t pid) { return ::getsid(pid); }

// The parent of `pid` (zombies included), or -1 when it is gone.
pid_t parent_of(pid_t pid) {
  auto line = read_proc_stat(pid);
  return line ? line->ppid : -1;
}

// batman's own children by session, for the SignalBatch in force (null: none).
struct ChildSessions {
  bool read = false;
  std::map<pid_t, std::vector<pid_t>> by_session;
};
thread_local std::unique_ptr<ChildSessions> batch_sessions;

// batman's children (orphans reparented to it among them) in session `sid`.
std::vector<pid_t> own_children_in(pid_t self, pid_t sid) {
  if (batch_sessions) {
    if (!batch_sessions->read) {
      batch_sessions->read = true;
      for (pid_t p : children_of(self)) batch_sessions->by_session[session_of(p)].push_back(p);
    }
    auto it = batch_sessions->by_session.find(sid);
    return it == batch_sessions->by_session.end() ? std::vector<pid_t>{} : it->second;
  }
  std::vector<pid_t> out;
  for (pid_t p : children_of(self))
    if (session_of(p) == sid) out.push_back(p);
  return out;
}

// Every descendant of `root`, found through the children files.
void collect_descendants(pid_t root, std::set<pid_t>& out) {
  for (pid_t c : children_of(root))
    if (out.insert(c).second) collect_descendants(c, out);
}

}  // namespace

SignalBatch::SignalBatch() {
  if (batch_sessions) return;
  batch_sessions = std::make_unique<ChildSessions>();
  outermost_ = true;
}

SignalBatch::~SignalBatch() {
  if (outermost_) batch_sessions.reset();
}

void signal_session(pid_t sid, int sig) {
  if (sid <= 1) return;
  // The tree is read before anything is signalled: a leader killed first would hand its
  // children to us and hide which of them were its own.
  pid_t self = ::getpid();
  std::set<pid_t> targets;
  pid_t leader_parent = parent_of(sid);
  if (leader_parent == self || leader_parent < 0) {
    // The job is ours (batman is its parent and subreaper). Its processes are below its
    // leader, or, once their parent died, reparented to us: look only there, so stopping
    // many programs costs each stop its own tree, not a walk of every program's.
    if (leader_parent == self) {
      targets.insert(sid);
      collect_descendants(sid, targets);
    }
    for (pid_t p : own_children_in(self, sid)) {
      if (p == sid || targets.count(p)) continue;
      targets.insert(p);
      collect_descendants(p, targets);
    }
  }
  if (leader_parent != self && targets.empty()) {
    // Someone else's job (`batman stop` of a lost run): scan /proc.
    auto procs = read_processes();
    std::map<pid_t, std::vector<pid_t>> children;
    for (const auto& p : procs) children[p.ppid].push_back(p.pid);
    std::vector<pid_t> stack;
    for (const auto& p : procs)
      if (p.sid == sid || p.pid == sid) stack.push_back(p.pid);
    while (!stack.empty()) {
      pid_t p = stack.back();
      stack.pop_back();
      if (!targets.insert(p).second) continue;
      for (pid_t c : children[p]) stack.push_back(c);
    }
  }
  ::kill(-sid, sig);
  for (pid_t p : targets)
    if (p != self) ::kill(p, sig);
}

void kill_all_descendants() {
  pid_t self = ::getpid();
  // A child already in do_exit (a namespaces PID 1 that reported the job's status and now
  // waits for the kernel to take its namespaces down) has nothing left alive below it: it is
  // not waited for here, its pidfd or SIGCHLD reaps it.
  std::set<pid_t> dying;
  // Bounded: a fork bomb cannot keep us here forever, SIGKILL wins within a few rounds.
  for (int round = 0; round < 100; ++round) {
    std::set<pid_t> all;
    for (pid_t c : children_of(self)) {
      if (dying.count(c)) continue;
      if (auto st = read_proc_stat(c); st && st->exiting()) {
        collect_descendants(c, all);  // none for a PID 1; a dying parent's children are live
        if (::waitpid(c, nullptr, WNOHANG) == 0) dying.insert(c);
        continue;
      }
      if (all.insert(c).second) collect_descendants(c, all);
    }
    if (all.empty()) return;
    for (pid_t p : all) ::kill(p, SIGKILL);
    for (pid_t child : children_of(self))
      if (!dying.count(child)) ::waitpid(child, nullptr, 0);
  }
}

void reap_strays(const std::vector<pid_t>& keep) {
  std::vector<pid_t> kept(keep);  // sorted: a supervisor of 2000 programs asks of each child
  std::sort(kept.begin(), kept.end());
  for (pid_t child : children_of(::getpid())) {
    if (std::binary_search(kept.begin(), kept.end(), child)) continue;
    ::waitpid(child, nullptr, WNOHANG);
  }
}

}  // namespace batman::isolation
