// `batman logs PROJECT [RUN-ID] [-f] [-n N]`: a run's log, the latest by default.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <deque>
#include <iostream>

#include "common/fs.hpp"
#include "common/names.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"
#include "src/cli/runs.hpp"

namespace batman::cli {
namespace {

// Copy the fd to stdout from where it is; returns bytes copied.
std::size_t copy_out(int fd) {
  std::size_t total = 0;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    (void)write_all(1, std::string_view(buf, static_cast<std::size_t>(n)));
    total += static_cast<std::size_t>(n);
  }
  return total;
}

// Position fd so that only the last n lines remain to be read.
void seek_last_lines(int fd, long long n) {
  off_t size = ::lseek(fd, 0, SEEK_END);
  if (n == 0) return;  // nothing of the past, only what comes (-f)
  off_t pos = size;
  long long newlines = 0;
  char buf[8192];
  // A trailing newline ends the last line; it does not start another.
  bool first = true;
  while (pos > 0) {
    off_t chunk = std::min<off_t>(pos, sizeof buf);
    pos -= chunk;
    if (::pread(fd, buf, static_cast<std::size_t>(chunk), pos) != chunk) break;
    for (off_t i = chunk - 1; i >= 0; --i) {
      if (buf[i] != '\n') {
        first = false;
        continue;
      }
      if (first) {
        first = false;
        continue;
      }
      if (++newlines == n) {
        ::lseek(fd, pos + i + 1, SEEK_SET);
        return;
      }
    }
  }
  ::lseek(fd, 0, SEEK_SET);
}

}  // namespace

int command_logs(const std::vector<std::string>& args) {
  std::string project, run_id;
  bool follow = false;
  long long lines = -1;
  CLI::App app{"Show a run's log (the latest run by default).", "batman logs"};
  app.add_option("PROJECT", project, "project")->required();
  app.add_option("RUN-ID", run_id, "run (default: the latest)");
  app.add_flag("-f,--follow", follow, "follow until the run ends");
  app.add_option("-n,--lines", lines, "only the last N lines")->check(CLI::NonNegativeNumber);
  if (auto rc = parse(app, args)) return *rc;
  // A supervised instance as ctl names it (web:01) is the state file web_01.
  run_id = state_name(run_id);
  if (!run_id.empty()) {
    if (auto v = validate_name(run_id, "run-id"); !v) {
      error(v.error().message);
      return kExitBatmanError;
    }
  }
  auto tree = open_project(project, false);  // validates the name first
  if (!tree) {
    error(tree.error().message);
    return kExitBatmanError;
  }
  auto runs = load_runs(project);
  const runner::RunState* run = nullptr;
  for (const auto& s : runs)
    if (run_id.empty() ? true : s.run_id == run_id) run = &s;  // runs are oldest first
  if (!run && !run_id.empty()) {
    // A batch task by the name its batch file gives it (docs): its latest run, recorded as
    // <batch-run-id>.docs.
    for (const auto& s : runs)
      if (batch_task_name(s) == run_id) run = &s;
  }
  if (!run && !run_id.empty()) {
    // A program's name: its one instance (web -> web_00); with several, they are listed.
    std::vector<const runner::RunState*> instances;
    for (const auto& s : runs) {
      const auto parts = s.kind == "program" ? split_instance(s.run_id) : std::nullopt;
      if (parts && parts->first == run_id) instances.push_back(&s);
    }
    if (instances.size() == 1) run = instances.front();
    if (instances.size() > 1) {
      std::string names;
      for (const auto* s : instances) names += " " + s->run_id;
      error("program '" + run_id + "' has " + std::to_string(instances.size()) + " instances: name one of" + names);
      return kExitBatmanError;
    }
  }
  if (!run) {
    error(run_id.empty() ? "project '" + project + "' has no runs yet"
                         : "no run '" + run_id + "' in project '" + project + "': see 'batman ps --all --project " +
                               project + "'");
    return kExitBatmanError;
  }
  std::string log_rel = run->log.empty() ? "logs/" + run->run_id + ".log" : run->log;
  // A supervised program's `stdout:` may put its log anywhere (the supervisor wrote that
  // absolute path); every other log is under the project's logs/.
  const bool own_file = run->kind == "program" && log_rel.starts_with("/");
  if (!own_file && (log_rel.find("..") != std::string::npos || log_rel.rfind("logs/", 0) != 0)) {
    error("state file of " + run->run_id + " names an unexpected log path '" + log_rel + "'");
    return kExitBatmanError;
  }
  const std::string log_path = own_file ? log_rel : tree->logs_path() + "/" + log_rel.substr(5);
  const std::string shown = own_file ? log_rel : tree->dir + "/" + log_rel;
  int fd = own_file ? ::open(log_rel.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
                    : ::openat(tree->logs_fd.get(), log_rel.substr(5).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat log_stat{};
  if (fd >= 0 && (::fstat(fd, &log_stat) != 0 || !S_ISREG(log_stat.st_mode))) {
    ::close(fd);
    error(shown + " is not a regular file: remove it");
    return kExitBatmanError;
  }
  if (fd < 0) {
    error("cannot open " + shown + ": " + std::strerror(errno));
    return kExitBatmanError;
  }
  UniqueFd log(fd);
  // A batch task of the slurm executor: which job and node wrote this log (on stderr, so
  // that stdout stays the log itself).
  if (run->slurm_job)
    info(run->run_id + ": Slurm job " + printable(*run->slurm_job) +
         (run->node ? " on node " + printable(*run->node) : std::string()));
  ::signal(SIGPIPE, SIG_DFL);
  if (lines >= 0) seek_last_lines(fd, lines);
  copy_out(fd);
  if (!follow) return 0;

  UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (watch) ::inotify_add_watch(watch.get(), log_path.c_str(), IN_MODIFY);
  std::string id = run->run_id;
  for (;;) {
    pollfd p{watch.get(), POLLIN, 0};
    // Wake on new output; every half second also check whether the run is still alive.
    ::poll(&p, watch ? 1 : 0, 500);
    if (watch) {
      char drain[4096];
      while (::read(watch.get(), drain, sizeof drain) > 0) {
      }
    }
    copy_out(fd);
    auto s = runner::read_state(tree->state_fd.get(), id);
    if (!s || !s->live_status()) {
      copy_out(fd);
      return 0;
    }
  }
}

}  // namespace batman::cli
