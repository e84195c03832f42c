// Finding and killing what a dead supervisor's programs left running (see leftovers.hpp).
#include "src/taskmaster/leftovers.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "common/proc_stat.hpp"
#include "common/unique_fd.hpp"
#include "isolation/spawn.hpp"

namespace batman::runner {
namespace {

std::string comm_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/comm", pid);
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return "?";
  char buf[64];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return "?";
  std::string s(buf, static_cast<std::size_t>(n));
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

}  // namespace

std::vector<RunState> abandoned_programs(int state_dirfd, pid_t self) {
  std::vector<RunState> out;
  int dup = ::fcntl(state_dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return out;
  DIR* dir = ::fdopendir(dup);
  if (!dir) {
    ::close(dup);
    return out;
  }
  ::rewinddir(dir);
  std::vector<std::string> ids;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name.size() <= 5 || !name.ends_with(".json") || name[0] == '.') continue;
    ids.push_back(name.substr(0, name.size() - 5));
  }
  ::closedir(dir);
  for (const auto& id : ids) {
    auto s = read_state(state_dirfd, id);
    if (!s || s->kind != "program" || s->status != "lost") continue;
    if (s->batman_pid == self || s->pid <= 0 || s->pid_start_time == 0) continue;
    out.push_back(std::move(*s));
  }
  return out;
}

std::vector<Leftover> find_leftovers(const std::vector<RunState>& records, pid_t self) {
  std::vector<Leftover> out;
  if (records.empty()) return out;
  std::map<std::string, const RunState*> by_id;
  unsigned long long earliest = 0;
  for (const auto& r : records) {
    by_id[r.run_id] = &r;
    if (earliest == 0 || r.pid_start_time < earliest) earliest = r.pid_start_time;
  }
  const auto processes = isolation::read_processes();
  std::map<pid_t, const isolation::ProcInfo*> by_pid;
  for (const auto& p : processes) by_pid[p.pid] = &p;
  // Never ourselves or what we run under (a supervisor started from inside a program).
  std::set<pid_t> spared;
  for (pid_t p = self; p > 0 && spared.insert(p).second;) {
    auto it = by_pid.find(p);
    if (it == by_pid.end()) break;
    p = it->second->ppid;
  }
  const std::string& project = records.front().project;

  // Marked processes, and the sessions they prove to be an instance's.
  std::map<pid_t, const RunState*> marked;
  std::map<pid_t, const RunState*> sessions;
  for (const auto& p : processes) {
    if (spared.count(p.pid) || p.start < earliest) continue;
    const auto env = process_environment(p.pid, {"BATMAN_PROJECT", "BATMAN_RUN_ID"});
    auto proj = env.find("BATMAN_PROJECT");
    auto run = env.find("BATMAN_RUN_ID");
    if (proj == env.end() || run == env.end() || proj->second != project) continue;
    auto rec = by_id.find(run->second);
    if (rec == by_id.end() || p.start < rec->second->pid_start_time) continue;
    marked[p.pid] = rec->second;
    // The instance's own session (its process was the leader), or one a marked process
    // created: every member descends from the instance.
    if (p.sid == rec->second->pid || p.sid == p.pid) sessions.emplace(p.sid, rec->second);
  }
  for (const auto& p : processes) {
    if (spared.count(p.pid)) continue;
    const RunState* owner = nullptr;
    if (auto m = marked.find(p.pid); m != marked.end()) owner = m->second;
    else if (auto s = sessions.find(p.sid); s != sessions.end()) owner = s->second;
    if (!owner || p.start < owner->pid_start_time) continue;
    out.push_back({p.pid, p.start, owner->run_id, comm_of(p.pid)});
  }
  return out;
}

std::vector<Leftover> kill_leftovers(const std::vector<Leftover>& leftovers, Duration timeout) {
  std::vector<Leftover> killed;
  std::vector<UniqueFd> pidfds;
  for (const auto& l : leftovers) {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, l.pid, 0)));
    if (!pidfd) continue;  // gone already
    // The pidfd pins this process: if it still has the start time we found, it is the one.
    auto stat = read_proc_stat(l.pid);
    if (!stat || stat->zombie() || stat->start_time != l.start_time) continue;
    if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0) continue;
    killed.push_back(l);
    pidfds.push_back(std::move(pidfd));
  }
  // A pidfd turns readable when its process has exited, whoever reaps it.
  auto deadline = SteadyClock::now() + timeout;
  std::vector<pollfd> waiting;
  for (auto& fd : pidfds) waiting.push_back({fd.get(), POLLIN, 0});
  while (!waiting.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) break;
    int n = ::poll(waiting.data(), waiting.size(), static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::erase_if(waiting, [](const pollfd& p) { return p.revents != 0; });
  }
  return killed;
}

}  // namespace batman::runner
