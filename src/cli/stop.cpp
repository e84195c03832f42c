// `batman stop PROJECT [RUN-ID | --all] [--signal SIG] [--grace DURATION]`: the stop
// sequence, run by the run's own batman (signal, wait, SIGKILL to the whole tree). A RUN-ID
// that names one supervised instance (or program) is stopped through its supervisor's
// control socket, one that names a batch task through the batch (common/signals.hpp): the
// supervisor and the batch go on.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/executables.hpp"
#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "isolation/cgroups.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"
#include "src/cli/runs.hpp"

namespace batman::cli {
namespace {

// Wait until `pid` exits, up to `timeout`. True when it is gone.
bool wait_gone(pid_t pid, unsigned long long start_time, Duration timeout) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return !runner::process_matches(pid, start_time);
  UniqueFd owner(pidfd);
  if (!runner::process_matches(pid, start_time)) return true;
  pollfd p{pidfd, POLLIN, 0};
  int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
  return ::poll(&p, 1, ms) == 1;
}

// Whether `pid` runs one of this very batman's two executables (`batman`, whose aliases are
// symlinks to it, for a run; batman-services for a batch or a supervisor): the inode of
// /proc/PID/exe against theirs, which no process can fake. After an upgrade the binary an
// older batman runs is gone from the path: its link reads exactly one of their paths +
// " (deleted)", a name only whoever may replace our binaries can give a file. Only when the
// link cannot be followed (another user's process) is it judged by its name, which it can
// set itself.
bool is_batman_process(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/exe", pid);
  struct stat other{};
  if (::stat(path, &other) == 0) {
    char theirs[4096];
    const ssize_t t = ::readlink(path, theirs, sizeof theirs);
    const std::string_view link(theirs, t > 0 && t < static_cast<ssize_t>(sizeof theirs) ? static_cast<std::size_t>(t) : 0);
    for (const std::string& ours : {self_executable(), launcher_executable()}) {
      struct stat st{};
      if (ours.empty()) continue;
      if (::stat(ours.c_str(), &st) == 0 && st.st_dev == other.st_dev && st.st_ino == other.st_ino) return true;
      if (!link.empty() && link == ours + " (deleted)") return true;
    }
    return false;
  }
  if (errno == ENOENT || errno == ESRCH) return false;  // gone
  std::snprintf(path, sizeof path, "/proc/%d/comm", pid);
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[32] = {};
  if (::read(fd.get(), buf, sizeof buf - 1) <= 0) return false;
  const std::string_view comm(buf);
  return comm.starts_with("batman") || comm.starts_with("taskmaster");
}

// Whether `pid` holds the project's own state directory open (one of /proc/PID/fd/* is the
// same inode as tree.state_fd): every batman working in a project does (its ProjectTree, for
// the whole run, batch or supervisor), and nothing else does, since batman opens it close-on-
// exec. A state file only names a pid; this is what proves that pid is this project's.
bool holds_state_dir(const ProjectTree& tree, pid_t pid) {
  struct stat mine{};
  if (::fstat(tree.state_fd.get(), &mine) != 0) return false;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  UniqueFd fds(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fds) return false;  // gone, or another user's
  auto names = list_dir(fds.get());
  if (!names) return false;
  for (const auto& name : *names) {
    struct stat st{};
    if (::stat((dir + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == mine.st_dev &&
        st.st_ino == mine.st_ino)
      return true;
  }
  return false;
}

// A live batman of this very project at `pid`, as `start_time` recorded it: the only process
// `batman stop` signals on the word of a state file (memoised: 10000 instances share one).
bool is_project_batman(const ProjectTree& tree, pid_t pid, unsigned long long start_time) {
  static std::map<std::pair<pid_t, unsigned long long>, bool> known;
  if (pid <= 1 || !runner::process_matches(pid, start_time)) return false;
  const auto key = std::pair{pid, start_time};
  if (auto it = known.find(key); it != known.end()) return it->second;
  return known[key] = is_batman_process(pid) && holds_state_dir(tree, pid);
}

// The processes of a lost run, each held by a pidfd opened while it was still the process
// that was found (same start time): a pid that exits and is reused meanwhile is never hit.
class HeldProcesses {
 public:
  void hold(const LostRun& found) {
    for (const auto& p : found.processes) {
      if (held_.contains(p.pid)) continue;
      const int fd = static_cast<int>(::syscall(SYS_pidfd_open, p.pid, 0));
      if (fd < 0) continue;
      UniqueFd owner(fd);
      if (runner::process_start_time(p.pid) != p.start_time) continue;  // gone, or reused
      held_.emplace(p.pid, std::move(owner));
    }
  }
  void signal(int sig) {
    for (auto& [pid, fd] : held_) (void)::syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0);
  }
  // Wait, without polling, until every held process has exited or `deadline` passes.
  void wait_all(std::chrono::steady_clock::time_point deadline) {
    while (!held_.empty()) {
      std::vector<pollfd> fds;
      std::vector<pid_t> pids;
      for (auto& [pid, fd] : held_) {
        fds.push_back({fd.get(), POLLIN, 0});
        pids.push_back(pid);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
      if (n < 0 && errno != EINTR) return;
      for (std::size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents) held_.erase(pids[i]);
    }
  }
  bool empty() const { return held_.empty(); }

 private:
  std::map<pid_t, UniqueFd> held_;
};

// Stop what is left of a run whose batman is gone. False (with a line on stderr) when the
// run's record names a process that is not provably its job's, and nothing else was found.
bool stop_lost_run(const runner::RunState& s, std::optional<int> sig, std::optional<Duration> grace) {
  LostRun found = find_lost_run(s);
  if (found.empty()) {
    if (!found.distrusted.empty()) {
      error(s.project + " " + s.run_id + ": nothing of the run is left that can be shown to be its job (" +
            found.distrusted + "): nothing signalled");
      return false;
    }
    for (const auto& left : isolation::remove_empty_cgroup_dirs(found.cgroup_dirs)) error("cgroup " + left);
    return true;
  }
  auto cgroup = isolation::open_job_cgroup(found.cgroup_dirs);
  HeldProcesses held;
  held.hold(found);
  const int first = sig.value_or(SIGTERM);
  if (first != SIGKILL) {
    held.signal(first);
    if (cgroup) cgroup->signal_all(first);
    // Cgroup members that are not held were found to be the job's by the kernel: hold
    // them too, so the wait covers them.
    if (cgroup) {
      LostRun members;
      for (pid_t pid : cgroup->members())
        if (auto t = runner::process_start_time(pid)) members.processes.push_back({pid, t});
      held.hold(members);
    }
    held.wait_all(std::chrono::steady_clock::now() + grace.value_or(std::chrono::seconds(10)));
  }
  // SIGKILL, then look again for what forked meanwhile (bounded: the cgroup's freezer or
  // the pids limit stop a fork bomb; without either, a few rounds catch a well-behaved tree).
  for (int round = 0; round < 5; ++round) {
    if (cgroup) cgroup->kill_all();
    held.signal(SIGKILL);
    held.wait_all(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    found = find_lost_run(s);
    if (found.processes.empty() && !found.cgroup_members) break;
    held.hold(found);
  }
  if (cgroup) cgroup->remove();
  if (!found.processes.empty()) {
    error(s.project + " " + s.run_id + ": " + std::to_string(found.processes.size()) +
          " process(es) of the job are still alive after SIGKILL");
    return false;
  }
  return true;
}

// Ask the run's batman to stop it; fall back to killing the job's tree ourselves when that
// batman is gone (lost) or does not finish in time.
bool stop_run(const ProjectTree& tree, const runner::RunState& s, std::optional<int> sig,
              std::optional<Duration> grace) {
  // Without --grace the run's own batman applies the job's stoptime and SIGKILL: wait for it.
  Duration wait = grace ? *grace + std::chrono::seconds(5) : Duration(std::chrono::hours(24 * 365));
  if (s.batman_pid > 0 && runner::process_matches(s.batman_pid, s.batman_start_time)) {
    if (!is_project_batman(tree, s.batman_pid, s.batman_start_time)) {
      error(tree.name + " " + s.run_id + ": its batman pid " + std::to_string(s.batman_pid) +
            " is not a batman of project '" + tree.name + "': not signalling it (is the state file genuine?)");
      return false;
    }
    sigval value{};
    value.sival_int = encode_stop_request(StopRequest{sig, grace});
    if (::sigqueue(s.batman_pid, SIGTERM, value) != 0) {
      error("cannot signal batman pid " + std::to_string(s.batman_pid) + " of " + s.run_id + ": " +
            std::strerror(errno));
      return false;
    }
    if (wait_gone(s.batman_pid, s.batman_start_time, wait)) return true;
    error(s.run_id + ": batman pid " + std::to_string(s.batman_pid) + " did not finish in time; killing it and the job");
    if (int fd = static_cast<int>(::syscall(SYS_pidfd_open, s.batman_pid, 0)); fd >= 0) {
      UniqueFd owner(fd);
      if (runner::process_matches(s.batman_pid, s.batman_start_time))
        (void)::syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
    }
  }
  // Lost run: its batman is gone, but the job may not be.
  if (s.run_id.empty()) return true;  // a supervisor found by its socket: no record of its own
  if (!stop_lost_run(s, sig, grace)) return false;
  runner::RunState final_state = s;
  if (final_state.status == "lost" || final_state.live_status()) {
    final_state.status = "killed";
    final_state.ended_at = format_rfc3339(std::chrono::system_clock::now());
    (void)runner::write_state(tree.state_fd.get(), final_state);
  }
  return true;
}

// The run's batman, alive and provably this project's batman (not a reused pid, nor another
// project's batman named by a forged record).
bool batman_alive(const ProjectTree& tree, const runner::RunState& s) {
  return is_project_batman(tree, s.batman_pid, s.batman_start_time);
}

// One command over a supervisor's control socket (SPEC §9's protocol: a line out, JSON lines
// back up to {"exit":N}). The socket is state/control.sock (a symlink to the config's
// `socket:` when it sets one), and must be served by `supervisor_pid` (SO_PEERCRED).
struct ControlAnswer {
  int exit = 0;
  std::string out, error;
};
Result<ControlAnswer> ask_supervisor(const ProjectTree& tree, pid_t supervisor_pid, const std::string& line) {
  const std::string shown = tree.state_path() + "/control.sock";
  const std::string path = "/proc/self/fd/" + std::to_string(tree.state_fd.get()) + "/control.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return fail("socket path too long: " + shown);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error("the supervisor (pid " + std::to_string(supervisor_pid) + ") does not answer on " + shown);
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) return sys_error("SO_PEERCRED on " + shown);
  if (peer.pid != supervisor_pid)
    return fail(shown + " is served by pid " + std::to_string(peer.pid) + ", not by the instance's supervisor (pid " +
                std::to_string(supervisor_pid) + ")");
  if (auto w = write_all(fd.get(), line + "\n"); !w) return std::unexpected(w.error().wrap("send to the supervisor"));
  std::string buffer;
  ControlAnswer answer;
  for (;;) {
    const auto nl = buffer.find('\n');
    if (nl == std::string::npos) {
      char chunk[4096];
      const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error("read from the supervisor");
      if (n == 0) return fail("the supervisor closed the connection before it answered");
      buffer.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    const auto j = nlohmann::json::parse(buffer.substr(0, nl), nullptr, false);
    buffer.erase(0, nl + 1);
    if (!j.is_object()) return fail("malformed answer from the supervisor");
    if (auto it = j.find("out"); it != j.end() && it->is_string()) answer.out += it->get<std::string>();
    if (auto it = j.find("exit"); it != j.end() && it->is_number_integer()) {
      answer.exit = it->get<int>();
      if (auto e = j.find("error"); e != j.end() && e->is_string()) answer.error = e->get<std::string>();
      return answer;
    }
  }
}

// The live supervisor of the project: whoever serves state/control.sock (SO_PEERCRED), when
// it is provably a batman of this project (the socket may be a symlink: a planted one could
// lead to another project's supervisor). Found even when none of its instances runs.
struct LiveSupervisor {
  pid_t pid = 0;
  unsigned long long start_time = 0;
};
std::optional<LiveSupervisor> live_supervisor(const ProjectTree& tree) {
  const std::string path = "/proc/self/fd/" + std::to_string(tree.state_fd.get()) + "/control.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return std::nullopt;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return std::nullopt;
  ucred peer{};
  socklen_t len = sizeof peer;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0 || peer.pid <= 1) return std::nullopt;
  const LiveSupervisor found{peer.pid, runner::process_start_time(peer.pid)};
  if (found.start_time == 0 || !is_project_batman(tree, found.pid, found.start_time)) return std::nullopt;
  return found;
}

// Stop one instance ("web:01") or every instance of a program ("web") through the supervisor,
// as `batman ctl stop NAME` does: the supervisor keeps running and restarts nothing. The name
// goes as given, so the supervisor's own `select` resolves it (web_01 is program web_01 when
// there is one, else web:01). nullopt when the supervisor knows no such name.
std::optional<int> stop_supervised(const ProjectTree& tree, pid_t supervisor_pid, const std::string& name,
                                   bool tuned) {
  if (tuned) {
    error(tree.name + " " + name + ": --signal and --grace apply to whole runs; a supervised program is stopped "
          "with its own stopsignal and stoptime (see its config)");
    return kExitBatmanError;
  }
  auto answer = ask_supervisor(tree, supervisor_pid, "stop " + name);
  if (!answer) {
    error(tree.name + " " + name + ": not stopped: " + answer.error().message);
    return 1;
  }
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < answer->out.size();) {
    auto nl = answer->out.find('\n', at);
    if (nl == std::string::npos) nl = answer->out.size();
    if (nl > at) lines.push_back(answer->out.substr(at, nl - at));
    at = nl + 1;
  }
  if (answer->exit != 0 && lines.empty() && answer->error.find("no such ") != std::string::npos) return std::nullopt;
  const std::string by = " (by its supervisor, pid " + std::to_string(supervisor_pid) + ", which keeps running)";
  if (answer->exit == 0) {
    for (const auto& l : lines) info(tree.name + " " + l + by);
    return 0;
  }
  // Instances that were not running are not an error: there was nothing to stop.
  bool nothing_failed = !lines.empty();
  for (const auto& l : lines) {
    if (l.ends_with(": ERROR (not running)")) info(tree.name + " " + l.substr(0, l.size() - 21) + " is not running");
    else if (l.ends_with(": stopped")) info(tree.name + " " + l + by);
    else {
      nothing_failed = false;
      error(tree.name + " " + l);
    }
  }
  if (!answer->error.empty()) error(tree.name + " " + name + ": " + answer->error);
  if (nothing_failed && answer->error.empty()) return 0;
  return answer->exit == 0 ? 0 : 1;
}

// With no supervisor alive, the state files of what it ran, named as its `select` would: a
// program name when some instance of that program has a record (every instance of it), else
// web_01 / web:01 as that instance. Empty when the name is no supervised one.
std::vector<const runner::RunState*> supervised_records(const std::vector<runner::RunState>& runs,
                                                        const std::string& name) {
  std::set<std::string> programs;
  for (const auto& s : runs)
    if (auto parts = s.kind == "program" ? split_instance(s.run_id) : std::nullopt) programs.insert(parts->first);
  std::string program = name;
  std::optional<int> index;
  auto number = [](const std::string& digits) -> std::optional<int> {
    if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    return std::stoi(digits);
  };
  if (const auto colon = name.find(':'); colon != std::string::npos) {
    program = name.substr(0, colon);
    index = number(name.substr(colon + 1));
    if (!index) return {};
  } else if (!programs.contains(name)) {
    auto parts = split_instance(name);
    if (!parts || !programs.contains(parts->first)) return {};
    program = parts->first;
    index = number(parts->second);
    if (!index) return {};
  }
  if (!programs.contains(program)) return {};
  std::vector<const runner::RunState*> out;
  for (const auto& s : runs) {
    auto parts = s.kind == "program" ? split_instance(s.run_id) : std::nullopt;
    if (parts && parts->first == program && (!index || number(parts->second) == index)) out.push_back(&s);
  }
  return out;
}

// Wait, without polling, until `pred` holds: re-checked on each change in the state
// directory (inotify) and when the batman of the run exits (pidfd); false at `deadline`.
template <typename Pred>
bool wait_state(pid_t batman_pid, std::chrono::steady_clock::time_point deadline,
                int inotify_fd, Pred pred) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, batman_pid, 0)));
  for (;;) {
    if (pred()) return true;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return false;
    pollfd fds[2] = {{inotify_fd, POLLIN, 0}, {pidfd ? pidfd.get() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1 << 30)));
    if (n < 0 && errno != EINTR) return pred();
    if (fds[0].revents & POLLIN) {
      char drain[4096];
      while (::read(inotify_fd, drain, sizeof drain) > 0) {
      }
    }
    if (fds[1].revents) return pred();  // the batch ended: its final states are written
  }
}


// Stop one task of a running batch: the batch goes on, the task ends `stopped`, and its
// dependents are skipped. Done when the task's state file says it is no longer running.
int stop_batch_task(const ProjectTree& tree, const runner::RunState& s, std::optional<int> sig,
                    std::optional<Duration> grace) {
  UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!watch) {
    error("inotify: " + std::string(std::strerror(errno)));
    return 1;
  }
  const std::string dir = "/proc/self/fd/" + std::to_string(tree.state_fd.get());
  if (::inotify_add_watch(watch.get(), dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
    error("inotify on " + tree.state_path() + ": " + std::strerror(errno));
    return 1;
  }
  sigval value{};
  value.sival_ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(
      encode_task_stop(StopRequest{sig, grace}, task_selector(s.run_id))));
  if (::sigqueue(s.batman_pid, task_stop_signal(), value) != 0) {
    error(tree.name + " " + s.run_id + ": cannot signal its batch (pid " + std::to_string(s.batman_pid) +
          "): " + std::strerror(errno));
    return 1;
  }
  // The batch kills the task's tree (SIGTERM, SIGKILL after 1 s, or --signal/--grace).
  const Duration wait = grace.value_or(std::chrono::seconds(1)) + std::chrono::seconds(30);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(wait);
  std::string status = s.status;
  const bool done = wait_state(s.batman_pid, deadline, watch.get(), [&] {
    auto now = runner::read_state(tree.state_fd.get(), s.run_id);
    if (!now) return false;
    status = now->status;
    return !now->live_status();
  });
  if (!done) {
    error(tree.name + " " + s.run_id + ": the batch (pid " + std::to_string(s.batman_pid) +
          ") did not stop the task in " + format_duration(wait) + "; it is " + status);
    return 1;
  }
  if (status == "lost") {
    error(tree.name + " " + s.run_id + ": its batch ended before the task was seen to stop (lost)");
    return 1;
  }
  const auto task = batch_task_name(s).value_or(s.run_id);
  info("stopped " + tree.name + " " + task + " (task of the batch " + s.run_id.substr(0, s.run_id.find('.')) +
       ", pid " + std::to_string(s.batman_pid) + ", which goes on)");
  return 0;
}

}  // namespace

int command_stop(const std::vector<std::string>& args) {
  std::string project, run_id, signal_text, grace_text;
  bool all = false;
  CLI::App app{"Stop runs of PROJECT: signal, wait, then SIGKILL to the whole tree. A RUN-ID that is a "
               "supervised instance (web_01, web:01) or program (web) is stopped by its supervisor, which "
               "keeps running; one that is a batch task is stopped by its batch, which goes on.",
               "batman stop"};
  app.add_option("PROJECT", project, "project (or batman-multi ID)")->required();
  app.add_option("RUN-ID", run_id,
                 "the run, supervised instance or program, or batch task to stop (default: the project's "
                 "only live run; a supervisor or a batch counts as one)");
  app.add_flag("--all", all, "every live run of the project");
  app.add_option("--signal", signal_text, "signal to send first (default: the job's stopsignal)");
  app.add_option("--grace", grace_text, "wait before SIGKILL (default: the job's stoptime)");
  if (auto rc = parse(app, args)) return *rc;
  // The project's name is validated by open_project below. An instance may be named as ctl
  // names it (web:01) or as ps does (web_01): the state file's name is the latter.
  std::string wanted = run_id;
  run_id = state_name(run_id);
  if (!run_id.empty()) {
    if (auto v = validate_name(run_id, "run-id"); !v) {
      error(v.error().message);
      return kExitBatmanError;
    }
  }
  if (all && !run_id.empty()) {
    error("give RUN-ID or --all, not both");
    return kExitBatmanError;
  }
  std::optional<int> sig;
  if (!signal_text.empty()) {
    auto s = parse_signal(signal_text);
    if (!s) {
      error(s.error().wrap("--signal").message);
      return kExitBatmanError;
    }
    sig = *s;
  }
  std::optional<Duration> grace;
  if (!grace_text.empty()) {
    auto g = parse_duration(grace_text);
    if (!g) {
      error(g.error().wrap("--grace").message);
      return kExitBatmanError;
    }
    grace = *g;
  }
  auto tree = open_project(project, false);
  if (!tree) {
    error(tree.error().message);
    return kExitBatmanError;
  }
  const auto runs = load_runs(project);

  if (!run_id.empty()) {
    const runner::RunState* exact = nullptr;
    for (const auto& s : runs)
      if (s.run_id == run_id) exact = &s;
    // A batch task whose batch runs: that one only.
    if (exact && batch_task_name(*exact) && batman_alive(*tree, *exact) && run_is_live(*exact))
      return stop_batch_task(*tree, *exact, sig, grace);
    if (!exact) {
      // A task named as its batch file names it (docs): the one live batch running it.
      std::vector<const runner::RunState*> tasks;
      for (const auto& s : runs)
        if (batch_task_name(s) == run_id && batman_alive(*tree, s) && run_is_live(s)) tasks.push_back(&s);
      if (tasks.size() == 1) return stop_batch_task(*tree, *tasks.front(), sig, grace);
      if (tasks.size() > 1) {
        std::string ids;
        for (const auto* t : tasks) ids += " " + t->run_id;
        error("task '" + wanted + "' runs in " + std::to_string(tasks.size()) + " batches of project '" + project +
              "': name one of" + ids);
        return kExitBatmanError;
      }
    }
    // A supervised instance or program while its supervisor runs: through the supervisor,
    // which resolves the name exactly as `batman ctl stop NAME` has it resolved.
    const auto supervisor = live_supervisor(*tree);
    if (supervisor && (!exact || exact->kind == "program")) {
      if (auto rc = stop_supervised(*tree, supervisor->pid, wanted, sig || grace)) return *rc;
    }
    if (!supervisor) {
      const auto records = supervised_records(runs, wanted);
      // A supervisor that is alive but does not answer on its socket: say so, touch nothing.
      for (const auto* r : records)
        if (batman_alive(*tree, *r)) {
          if (auto rc = stop_supervised(*tree, r->batman_pid, wanted, sig || grace)) return *rc;
          break;
        }
      if (!records.empty() && (!exact || exact->kind == "program")) {
        // What a dead supervisor left of a program: each instance's stop sequence, as for
        // one instance named alone.
        int rc = 0;
        std::size_t stopped = 0;
        for (const auto* r : records) {
          if (!run_is_live(*r)) {
            if (r->status == "lost")
              if (auto left = find_lost_run(*r); !left.distrusted.empty()) {
                error(project + " " + r->run_id + " is lost and " + left.distrusted + ": nothing signalled");
                rc = 1;
              }
            continue;
          }
          if (stop_run(*tree, *r, sig, grace)) {
            info("stopped " + project + " " + r->run_id + " (left by its supervisor, pid " +
                 std::to_string(r->batman_pid) + ", which is not running)");
            ++stopped;
          } else {
            rc = 1;
          }
        }
        if (!stopped && rc == 0) info(project + " " + wanted + " is not running (nor is its supervisor)");
        return rc;
      }
    }
    if (!exact) {
      std::string known;
      std::set<std::string> programs;
      std::size_t listed = 0, more = 0;
      auto list = [&](const std::string& name) {
        if (++listed <= 20) known += " " + name;  // the line stays a line with 10000 instances
        else ++more;
      };
      std::vector<std::string> ids;
      for (const auto& s : runs) {
        if (!run_is_live(s) && !(s.kind == "program" && batman_alive(*tree, s))) continue;
        ids.push_back(s.run_id);
        if (auto parts = s.kind == "program" ? split_instance(s.run_id) : std::nullopt) programs.insert(parts->first);
      }
      for (const auto& p : programs) list(p);  // programs first: the shortest way to name many
      for (const auto& id : ids) list(id);
      if (more) known += " and " + std::to_string(more) + " more";
      error("no run, instance or task '" + wanted + "' in project '" + project + "'" +
            (known.empty() ? std::string(": nothing of it runs") : ": it has" + known) + " (see 'batman ps --all --project " +
            project + "')");
      return kExitBatmanError;
    }
    if (exact->kind == "program" && batman_alive(*tree, *exact)) {
      // Its supervisor runs but has no such instance now (a reload removed it): never stop
      // that whole supervisor for it.
      error(project + " " + wanted + ": its supervisor (pid " + std::to_string(exact->batman_pid) +
            ") has no such program or instance now (see 'batman ctl status')");
      return kExitBatmanError;
    }
    if (!run_is_live(*exact)) {
      // A record that names a live process which is not provably the job's: say so, and
      // leave that process alone.
      if (exact->status == "lost") {
        if (auto left = find_lost_run(*exact); !left.distrusted.empty()) {
          error(project + " " + run_id + " is lost and " + left.distrusted + ": nothing signalled");
          return 1;
        }
      }
      info(run_id + " is not running (" + exact->status + ")");
      return 0;
    }
    // A run of its own, or what a dead supervisor or batch left (lost): the stop sequence.
    if (stop_run(*tree, *exact, sig, grace)) {
      info("stopped " + project + " " + run_id);
      return 0;
    }
    return 1;
  }

  // No RUN-ID: every live run, where a live supervisor or batch (all the records that share
  // one batman) counts as one run and is stopped whole, by its own run's request.
  std::vector<runner::RunState> targets;
  std::set<pid_t> whole;
  std::map<pid_t, std::string> labels;
  for (const auto& s : runs) {
    if (!run_is_live(s)) continue;
    if ((s.kind == "program" || s.kind == "batch") && batman_alive(*tree, s)) {
      if (!whole.insert(s.batman_pid).second) continue;
      labels[s.batman_pid] = std::string(s.kind == "program" ? "supervisor" : "batch") + " pid " + std::to_string(s.batman_pid);
    }
    targets.push_back(s);
  }
  // A supervisor none of whose programs runs (all stopped, or autostart: false) has no live
  // record: found by its control socket, it is stopped whole all the same.
  if (auto supervisor = live_supervisor(*tree); supervisor && !whole.contains(supervisor->pid)) {
    runner::RunState s;
    s.project = project;
    s.kind = "program";
    s.batman_pid = supervisor->pid;
    s.batman_start_time = supervisor->start_time;
    whole.insert(s.batman_pid);
    labels[s.batman_pid] = "supervisor pid " + std::to_string(s.batman_pid);
    targets.push_back(s);
  }
  if (targets.empty()) {
    info("project '" + project + "' has no live runs");
    return 0;
  }
  auto label = [&](const runner::RunState& t) {
    auto it = whole.contains(t.batman_pid) && (t.kind == "program" || t.kind == "batch") ? labels.find(t.batman_pid)
                                                                                           : labels.end();
    return it == labels.end() ? t.run_id : it->second;
  };
  if (targets.size() > 1 && !all) {
    std::string ids;
    for (const auto& t : targets) ids += ", " + label(t);
    error("project '" + project + "' has " + std::to_string(targets.size()) + " live runs (" + ids.substr(2) +
          "): give a RUN-ID or --all");
    return kExitBatmanError;
  }
  int rc = 0;
  for (const auto& t : targets) {
    if (stop_run(*tree, t, sig, grace)) {
      info("stopped " + project + " " + label(t) + (label(t) == t.run_id ? "" : " and everything it ran"));
    } else {
      rc = 1;
    }
  }
  return rc;
}

}  // namespace batman::cli
