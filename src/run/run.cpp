// `batman parallel|isolated|multi` (and batman-parallel, batman-isolated, batman-multi):
// one job in its project tree, under an isolation tier and the restart rules of SPEC §8.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/detach.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "isolation/backend.hpp"
#include "isolation/backends.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/spawn.hpp"
#include "runner/event_log.hpp"
#include "runner/job_set.hpp"
#include "runner/launch.hpp"
#include "runner/state_store.hpp"
#include "src/cli/arguments.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/monitor.hpp"
#include "isolation/profile_cache.hpp"
#include "src/cli/project.hpp"
#include "src/cli/subprocess.hpp"

namespace batman::cli {
namespace {

using runner::ProcState;

struct RunOptions {
  std::string kind;
  std::string project;
  std::string command;
  std::string isolation = "auto";
  std::string profile;
  bool net = false, no_net = false;
  std::string memory, cpus, pids, timeout;
  std::string restart = "never", exitcodes = "0", startretries, starttime, stopsignal = "TERM",
              stoptime = "10s";
  std::vector<std::string> env;
  std::string cwd;
  bool worktree = false, keep_worktree = false, tty = false, detach = false, keep_tmp = false, quiet = false,
       no_monitor = false;
  std::optional<std::string> monitor;
};

// Everything validated and resolved before anything is created.
struct RunPlan {
  RunOptions options;
  isolation::Profile profile;
  isolation::TierChoice tier;
  isolation::Limits limits;
  runner::RestartRules rules;
  std::optional<Duration> timeout;
  std::string cwd;
  int monitor_port = -1;
};

Result<RunPlan> make_plan(RunOptions options) {
  RunPlan plan;
  if (auto v = validate_name(options.project, options.kind == "multi" ? "ID" : "project"); !v)
    return std::unexpected(v.error());
  if (options.command.empty()) return fail("empty COMMAND: give the command to run");
  if (options.net && options.no_net) return fail("--net and --no-net contradict each other: give one");
  if (options.keep_worktree && !options.worktree) return fail("--keep-worktree goes with --worktree: give both");

  auto requested = isolation::parse_tier(options.isolation);
  if (!requested) return std::unexpected(requested.error());

  std::string profile_name = options.profile;
  if (profile_name.empty()) profile_name = options.kind == "isolated" ? "isolated" : "parallel";
  auto profile = isolation::load_profile_cached(profile_name, batman_home());
  if (!profile) return std::unexpected(profile.error());
  plan.profile = std::move(*profile);
  auto& ns = plan.profile.namespaces;
  if (options.net) {
    plan.profile.network = isolation::Network::Host;
    std::erase(ns, std::string("net"));
  } else if (options.no_net) {
    plan.profile.network = isolation::Network::None;
    if (std::find(ns.begin(), ns.end(), "net") == ns.end()) ns.push_back("net");
  }

  plan.limits = plan.profile.limits;
  if (!options.memory.empty()) {
    auto m = parse_size(options.memory);
    if (!m) return std::unexpected(m.error().wrap("--memory"));
    if (*m < 4096) return fail("--memory " + options.memory + " is too small: give at least 4K");
    plan.limits.memory_bytes = *m;
  }
  if (!options.cpus.empty()) {
    char* end = nullptr;
    double c = std::strtod(options.cpus.c_str(), &end);
    if (end == options.cpus.c_str() || *end || !(c > 0) || c > 4096)
      return fail("--cpus '" + options.cpus + "' is not a positive number of CPUs (e.g. 0.5, 2)");
    if (c < isolation::kMinCpus)
      return fail("--cpus " + options.cpus + " is below 0.01, the smallest CPU limit the kernel enforces (1 ms per 100 ms period)");
    plan.limits.cpus = c;
  }
  if (!options.pids.empty()) {
    auto p = parse_integer(options.pids, "--pids", 1, 4'194'304);
    if (!p) return std::unexpected(p.error());
    plan.limits.pids = static_cast<std::uint64_t>(*p);
  }
  if (!options.timeout.empty()) {
    auto t = parse_duration(options.timeout);
    if (!t) return std::unexpected(t.error().wrap("--timeout"));
    if (*t <= Duration::zero()) return fail("--timeout must be longer than 0");
    plan.timeout = *t;
  }

  auto restart = runner::parse_autorestart(options.restart);
  if (!restart) return std::unexpected(restart.error().wrap("--restart"));
  plan.rules.autorestart = *restart;
  plan.rules.exitcodes.clear();
  std::stringstream codes(options.exitcodes);
  for (std::string item; std::getline(codes, item, ',');) {
    auto c = parse_integer(item, "--exitcodes", 0, 255);
    if (!c) return std::unexpected(c.error());
    plan.rules.exitcodes.push_back(static_cast<int>(*c));
  }
  if (plan.rules.exitcodes.empty()) return fail("--exitcodes: give at least one code, e.g. 0,2");
  auto retries = parse_integer(options.startretries.empty() ? "3" : options.startretries, "--startretries", 0, 1000);
  if (!retries) return std::unexpected(retries.error());
  plan.rules.startretries = static_cast<int>(*retries);
  // A one-shot job has no "started" phase: any exit is its result. With a restart policy,
  // supervisord's 1 s applies so a job that dies at once backs off instead of spinning.
  std::string starttime = options.starttime;
  if (starttime.empty()) starttime = *restart == runner::AutoRestart::Never ? "0" : "1s";
  // Nor is there anything to retry: a job that cannot be started at all fails at once.
  if (options.starttime.empty() && options.startretries.empty() && *restart == runner::AutoRestart::Never)
    plan.rules.startretries = 0;
  auto st = parse_duration(starttime);
  if (!st) return std::unexpected(st.error().wrap("--starttime"));
  plan.rules.starttime = *st;
  auto sig = parse_signal(options.stopsignal);
  if (!sig) return std::unexpected(sig.error().wrap("--stopsignal"));
  plan.rules.stopsignal = *sig;
  auto stoptime = parse_duration(options.stoptime);
  if (!stoptime) return std::unexpected(stoptime.error().wrap("--stoptime"));
  plan.rules.stoptime = *stoptime;

  for (const auto& kv : options.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail("--env '" + kv + "' is not KEY=VALUE");
  }

  std::error_code ec;
  std::string cwd = options.cwd.empty() ? std::filesystem::current_path(ec).string() : options.cwd;
  if (ec) return fail("cannot read the current directory: " + ec.message());
  auto abs = std::filesystem::absolute(cwd, ec);
  if (ec || !std::filesystem::is_directory(abs, ec))
    return fail("--cwd " + cwd + " is not a directory");
  plan.cwd = abs.lexically_normal().string();
  if (plan.cwd.size() > 1 && plan.cwd.back() == '/') plan.cwd.pop_back();

  if (options.monitor && options.no_monitor) return fail("--monitor and --no-monitor: give one of them");
  if (options.monitor) {
    auto port = parse_integer(options.monitor->empty() ? "0" : *options.monitor, "--monitor", 0, 65535);
    if (!port) return std::unexpected(port.error());
    plan.monitor_port = static_cast<int>(*port);
  }

  auto tier = isolation::choose_tier(*requested);
  if (!tier) return std::unexpected(tier.error());
  plan.tier = std::move(*tier);
  plan.options = std::move(options);
  return plan;
}

// The first of batman's stdout, stderr and stdin that is a terminal (-1: none): the size
// the job's --tty terminal takes.
int terminal_fd() {
  for (int fd : {1, 2, 0})
    if (::isatty(fd)) return fd;
  return -1;
}

// A memory limit as a user would write it: 512M, 2G, 4096K, else bytes.
std::string format_size(std::uint64_t bytes) {
  for (auto [unit, scale] : {std::pair{"G", 1ULL << 30}, std::pair{"M", 1ULL << 20}, std::pair{"K", 1ULL << 10}})
    if (bytes >= scale && bytes % scale == 0) return std::to_string(bytes / scale) + unit;
  return std::to_string(bytes);
}

struct Worktree {
  std::string repo;  // top level of the repository
  std::string path;  // worktrees/<run-id>
};

Result<Worktree> add_worktree(const std::string& cwd, const ProjectTree& tree, const std::string& run_id,
                              std::string& job_cwd) {
  auto top = run_capture({"git", "-C", cwd, "rev-parse", "--show-toplevel"});
  if (!top) return std::unexpected(top.error().wrap("--worktree: git"));
  if (top->exit_code != 0)
    return fail("--worktree: " + cwd + " is not inside a git repository (run it from a checkout)");
  std::string repo = top->out;
  while (!repo.empty() && (repo.back() == '\n' || repo.back() == '\r')) repo.pop_back();
  Worktree wt{repo, tree.worktrees_path() + "/" + run_id};
  auto add = run_capture({"git", "-C", repo, "worktree", "add", "--detach", "--quiet", wt.path, "HEAD"});
  if (!add) return std::unexpected(add.error().wrap("--worktree: git worktree add"));
  if (add->exit_code != 0) {
    std::string msg = add->out;
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return fail("--worktree: git worktree add failed: " + msg);
  }
  std::string rel = std::filesystem::path(cwd).lexically_relative(repo).string();
  job_cwd = (rel.empty() || rel == ".") ? wt.path : wt.path + "/" + rel;
  // The worktree is HEAD: what the checkout has beyond it is not there, and is said once.
  if (auto status = run_capture({"git", "-C", repo, "status", "--porcelain"}); status && status->exit_code == 0) {
    std::size_t changes = 0;
    for (char c : status->out) changes += c == '\n';
    if (changes)
      info("--worktree: " + repo + " has " + std::to_string(changes) +
           " uncommitted change(s) (git status); they are not in the worktree, which holds HEAD only");
  }
  return wt;
}

// The run itself: state, log, job, event loop. Returns batman's exit code.
class Run final : public runner::JobSet::Owner {
 public:
  Run(RunPlan plan, ProjectTree tree, std::string run_id, UniqueFd lock_fd)
      : plan_(std::move(plan)), tree_(std::move(tree)), run_id_(std::move(run_id)),
        lock_fd_(std::move(lock_fd)) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // ready: written one byte (0 = started, 1 = failed) once the job has started, for --detach.
  int execute(int ready_fd);

  // runner::JobSet::Owner
  void on_transition(runner::Job& job, ProcState from, ProcState to, const std::string& why) override;
  void on_starting(runner::Job& job, pid_t pid) override;
  Result<void> prepare_start(runner::Job& job) override;
  Result<void> prepare_files();
  Result<void> make_tmp_dir();
  void on_spawned(runner::Job& job, pid_t pid) override;
  void on_settled(runner::Job&) override { loop_->stop(); }

 private:
  void reply(bool started, const std::string& message = {});
  // An error before the job started: say it (also to a --detach parent), remove what was made.
  int fail_early(const std::string& message);
  void handle_signal(const signalfd_siginfo& info);
  // The `running` state, now (a write that fails is said once; the next one tries again).
  void write_running_state();
  void cancel_running_write() {
    if (running_write_) loop_->cancel_timer(*running_write_);
    running_write_.reset();
  }
  // The end: into the file made for it (final_state_), else as any state is written.
  // `meanwhile` runs between the write and the fsync, while the disk takes the data.
  void write_final_state(const std::function<void()>& meanwhile);
  void final_state_not_written(const std::string& why);

  RunPlan plan_;
  ProjectTree tree_;
  std::string run_id_;
  UniqueFd lock_fd_;
  runner::LaunchSpec spec_;
  runner::RunState state_;
  std::unique_ptr<runner::EventLoop> loop_;
  // The `running` write's timer (kRunningWriteDelay), while one is pending.
  std::optional<runner::EventLoop::TimerId> running_write_;
  bool said_state_error_ = false;
  // The run's log, opened by prepare_start with its TMPDIR, before the job's spawn; the job
  // cannot write before then. Declared before the jobs, which write into it.
  class LogSink final : public runner::Sink {
   public:
    void write(std::string_view data) override {
      if (file) file->write(data);
    }
    void flush() override {
      if (file) file->flush();
    }
    std::unique_ptr<runner::FileSink> file;
  } log_sink_;
  std::unique_ptr<runner::FdSink> term_out_, term_err_;
  // --tty: the job's pseudo-terminal, read into term_out_ and the log.
  std::unique_ptr<runner::PseudoTerminal> terminal_;
  std::unique_ptr<runner::JobSet> jobs_;
  runner::Job* job_ = nullptr;
  std::optional<std::string> monitor_url_;  // --monitor: this run's page on the dashboard
  std::shared_ptr<spdlog::logger> events_;
  int ready_fd_ = -1;
  bool timed_out_ = false;
  bool stop_requested_ = false;
  bool made_tmp_ = false, made_log_ = false;
  std::optional<Worktree> worktree_;
  // The final state's file, made and given room before the job exists: a job that fills the
  // disk (ENOSPC) cannot keep its end from being recorded, and on a disk already full the run
  // is refused (125) instead of started with no record that `ps` or `stop` could find.
  std::optional<PendingFile> final_state_;
  // What the final state may have beyond the `running` one (end time, exit code, signal).
  static constexpr std::size_t kFinalStateReserve = 1024;
  // The `running` state is written this long after the start, as the batch writer coalesces:
  // a job that is over by then gets one state write (its end) instead of two fsyncs in a row.
  // Each fsync of a new file is a journal commit on ext4/xfs/btrfs: on loop-mounted journaled
  // file systems here one costs 1-3 ms (scripts/bench/launch-fs), more than `true` runs.
  static constexpr auto kRunningWriteDelay = std::chrono::milliseconds(5);
};

void Run::final_state_not_written(const std::string& why) {
  std::string what = "the end of " + run_id_ + " (" + state_.status;
  if (state_.exit_code) what += ", exit " + std::to_string(*state_.exit_code);
  if (state_.signal) what += ", signal " + std::to_string(*state_.signal);
  what += ") could not be written to " + tree_.state_path() + "/" + run_id_ + ".json: " + why;
  error(what);
  if (events_) events_->error("{}", what);
}

// --detach: the waiting caller hears once that the job started (or why it did not).
void Run::reply(bool started, const std::string& message) {
  if (ready_fd_ < 0) return;
  if (started)
    reply_started(ready_fd_);
  else
    reply_failed(ready_fd_, message);
  ready_fd_ = -1;
}

void Run::on_starting(runner::Job& job, pid_t pid) {
  // A child that then fails to start is recorded as failed by the final write.
  runner::record_started(state_, pid, std::chrono::system_clock::now());
  state_.restarts = job.process().restarts();
  cancel_running_write();
  // --detach: the caller may run `batman ps` or `batman stop` the moment we answer (on_spawned).
  if (ready_fd_ >= 0) {
    write_running_state();
    return;
  }
  running_write_ = loop_->add_timer_after(kRunningWriteDelay, [this] {
    running_write_.reset();
    write_running_state();
  });
}

void Run::write_running_state() {
  auto written = runner::write_state_or_in_place(tree_.state_fd.get(), state_);
  // The end will replace this file: its file gets the directory entry that takes now, while
  // the disk has room (a job that fills the disk cannot keep its end off it). A failure
  // here leaves that to the end, whose fallback is the in-place rewrite.
  if (written && final_state_) (void)final_state_->name();
  if (written) {
    if (said_state_error_) info("state " + run_id_ + ".json: written after all");
    said_state_error_ = false;
  } else if (!said_state_error_) {
    said_state_error_ = true;
    const std::string what = "state " + run_id_ + ".json: " + written.error().message + " (status " + state_.status + ")";
    error(what);
    if (events_) events_->warn("{}", what);
  }
}

void Run::write_final_state(const std::function<void()>& meanwhile) {
  if (final_state_) {
    const std::string content = runner::to_json(state_);
    auto w = final_state_->write(content);
    meanwhile();
    if (w) w = final_state_->sync();
    if (w) w = final_state_->publish();
    final_state_.reset();
    if (w || runner::rewrite_state_in_place(tree_.state_fd.get(), state_, content, w.error().code)) return;
  } else {
    meanwhile();
  }
  auto w = runner::write_state_or_in_place(tree_.state_fd.get(), state_);
  if (!w) final_state_not_written(w.error().message);
}

Result<void> Run::make_tmp_dir() {
  // The job's private TMPDIR; a multi instance reuses its ID, so clear what a previous run left.
  if (plan_.options.kind == "multi") (void)remove_tree_at(tree_.tmp_fd.get(), run_id_);
  if (auto made = make_dir_at(tree_.tmp_fd.get(), run_id_); !made)
    return sys_error("cannot create " + tree_.tmp_path() + "/" + run_id_, made.error().code);
  made_tmp_ = true;
  return {};
}

Result<void> Run::prepare_start(runner::Job&) {
  auto ready = prepare_files();
  // A start that fails here is retried by a fresh clone: the early child's mounts were made
  // for what was there before (a TMPDIR made again since, or not at all).
  if (!ready) isolation::abort_prestart();
  return ready;
}

Result<void> Run::prepare_files() {
  if (log_sink_.file) return {};  // a restart appends to the run's log
  if (!made_tmp_) {
    if (auto made = make_tmp_dir(); !made) return made;  // as a failed start: retried, recorded
  }
  const std::string name = run_id_ + ".log";
  const std::string shown = tree_.logs_path() + "/" + name;
  int flags = O_WRONLY | O_CREAT | O_APPEND | (plan_.options.kind == "multi" ? O_TRUNC : O_EXCL);
  auto fd = open_regular_at(tree_.logs_fd.get(), name, flags, 0600, shown);  // never a FIFO
  if (!fd) return std::unexpected(fd.error().wrap("cannot create log"));
  made_log_ = true;
  log_sink_.file = runner::FileSink::adopt(std::move(*fd), shown);
  if (!final_state_) {
    auto f = PendingFile::create(tree_.state_fd.get(), run_id_ + ".json");
    if (!f) return std::unexpected(f.error().wrap("cannot create the state file"));
    if (auto r = f->reserve(kFinalStateReserve + runner::to_json(state_).size()); !r)
      return std::unexpected(r.error().wrap("cannot reserve room for the state file"));  // ~PendingFile removes it
    final_state_ = std::move(*f);
  }
  // A log the disk could not take (ENOSPC) is said once, here and in the events log.
  log_sink_.file->set_on_error([this](const std::string& message) {
    error(message);
    if (events_) events_->warn("{} {}", run_id_, message);
  });
  return {};
}

void Run::on_spawned(runner::Job&, pid_t pid) {
  if (events_) events_->info("{} started pid {} ({})", run_id_, pid, state_.restarts ? "restart" : "start");
  reply(true);  // --detach: the state file is there already (on_starting)
}

void Run::on_transition(runner::Job&, ProcState from, ProcState to, const std::string& why) {
  if (events_)
    events_->info("{} {} -> {}: {}", run_id_, runner::state_name(from), runner::state_name(to), why);
  if (to == ProcState::Backoff || to == ProcState::Fatal) info(std::string(runner::state_name(to)) + ": " + why);
}

void Run::handle_signal(const signalfd_siginfo& info) {
  int sig = static_cast<int>(info.ssi_signo);
  if (sig == SIGCHLD) {
    // Orphans reparented to us (the subreaper) are reaped as they exit; the job's own
    // process is left to its pidfd watch.
    isolation::reap_strays(jobs_->live_pids());
    return;
  }
  if (sig == SIGHUP) {
    job_->signal_tree(SIGHUP);
    return;
  }
  if (sig == SIGWINCH) {
    if (terminal_ && terminal_fd() >= 0) terminal_->resize_from(terminal_fd());
    return;
  }
  // SIGINT/SIGTERM: run the stop sequence. `batman stop` sends SIGTERM through sigqueue
  // with the signal and grace it wants packed in the value.
  std::optional<int> send = sig;
  std::optional<Duration> grace;
  if (info.ssi_code == SI_QUEUE) {
    // From `batman stop`: unset parts are the job's stopsignal and stoptime.
    const StopRequest request = decode_stop_request(info.ssi_int);
    send = request.signal;
    grace = request.grace;
  }
  if (stop_requested_) {
    // A second Ctrl-C does not wait for stoptime.
    job_->signal_tree(SIGKILL);
    return;
  }
  stop_requested_ = true;
  job_->process().stop(send, grace);
}

int Run::fail_early(const std::string& message) {
  error(message);
  reply(false, message);  // --detach: the parent prints it; this process's stderr is /dev/null
  // Nothing of a run that never started is left behind for `clean` to miss.
  if (jobs_) jobs_->clear();
  if (made_tmp_) (void)remove_tree_at(tree_.tmp_fd.get(), run_id_);
  if (made_log_) (void)remove_tree_at(tree_.logs_fd.get(), run_id_ + ".log");
  if (worktree_) {
    auto rm = run_capture({"git", "-C", worktree_->repo, "worktree", "remove", "--force", worktree_->path});
    (void)rm;
  }
  return kExitBatmanError;
}

int Run::execute(int ready_fd) {
  ready_fd_ = ready_fd;
  const auto& o = plan_.options;

  // What can fail without touching the project tree comes first.
  auto loop = runner::EventLoop::create();
  if (!loop) return fail_early(loop.error().message);
  loop_ = std::move(*loop);
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<int> handled{SIGINT, SIGTERM, SIGHUP, SIGCHLD};
  if (o.tty && !o.detach) handled.push_back(SIGWINCH);  // the terminal's size follows batman's
  auto signals = loop_->handle_signals(handled, [this](const signalfd_siginfo& i) { handle_signal(i); });
  if (!signals) return fail_early(signals.error().message);
  if (plan_.monitor_port >= 0) {
    // The home's dashboard, started in the background when none runs (one HTTP server for
    // every run: src/dashboard/).
    auto base = dashboard::ensure_dashboard(plan_.monitor_port);
    if (!base) return fail_early(base.error().message);
    monitor_url_ = dashboard::run_page_url(*base, tree_.name, run_id_);
    info("monitor: " + *monitor_url_);
  }

  if (auto ev = runner::open_event_log(tree_.logs_fd.get(), "events.log", tree_.name, tree_.logs_path() + "/events.log"))
    events_ = *ev;
  else
    info("warning: " + ev.error().message + "; this run is not in the events log");

  std::string job_cwd = plan_.cwd;
  if (o.worktree) {
    auto wt = add_worktree(plan_.cwd, tree_, run_id_, job_cwd);
    if (!wt) return fail_early(wt.error().message);
    worktree_ = *wt;
  }

  spec_.project = tree_.name;
  spec_.home = tree_.home;
  spec_.project_dir = tree_.dir;
  spec_.run_id = run_id_;
  spec_.tmp_dir = tree_.tmp_path() + "/" + run_id_;
  if (worktree_) spec_.worktree = worktree_->path;
  spec_.command = o.command;
  spec_.cwd = job_cwd;
  spec_.tier = plan_.tier.tier;
  spec_.profile = plan_.profile;
  spec_.limits = plan_.limits;
  spec_.base_env = runner::current_environment();
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    spec_.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  state_ = runner::state_record(spec_, o.kind, plan_.tier.skipped, "logs/" + run_id_ + ".log");
  // The CPU limit as the user wrote it.
  if (plan_.limits.cpus && !o.cpus.empty()) state_.limits.cpus = o.cpus;
  if (monitor_url_) state_.monitor_url = monitor_url_;

  // A reader that goes away ends the job as it would end a pipeline: with SIGPIPE.
  auto on_broken = [this] {
    if (job_ && !stop_requested_) {
      stop_requested_ = true;
      job_->process().stop(SIGPIPE);
    }
  };
  std::vector<runner::Sink*> out_sinks{&log_sink_}, err_sinks{&log_sink_};
  if (!o.detach) {
    term_out_ = std::make_unique<runner::FdSink>(1, on_broken);
    term_err_ = std::make_unique<runner::FdSink>(2, on_broken);
    out_sinks.insert(out_sinks.begin(), term_out_.get());
    err_sinks.insert(err_sinks.begin(), term_err_.get());
  }
  if (o.tty) {
    // One stream, as on a terminal: stdout and stderr both reach batman's stdout.
    auto t = runner::PseudoTerminal::open(*loop_, out_sinks, o.detach ? -1 : terminal_fd());
    if (!t) return fail_early(t.error().message);
    terminal_ = std::move(*t);
    out_sinks.clear();
    err_sinks.clear();
  }
  jobs_ = std::make_unique<runner::JobSet>(*loop_, *this);
  job_ = &jobs_->add(isolation::make_backend(plan_.tier.tier), runner::launch_request(spec_), plan_.rules,
                     out_sinks, err_sinks, o.detach ? -1 : 0);
  if (terminal_) {
    job_->use_terminal(terminal_->slave());
    terminal_->forward_input(o.detach ? -1 : 0);
  }
  // The TMPDIR before the plan: the namespaces tier's early child mounts it while we go on
  // (if it cannot be made, the start fails in prepare_start, as any start that fails).
  if (!make_tmp_dir()) isolation::abort_prestart();  // no mounts made ahead from a missing source
  auto unenforced = job_->prepare();
  if (!unenforced) return fail_early(unenforced.error().message);
  state_.isolation.unenforced = *unenforced;
  if (!unenforced->empty() && !o.quiet) {
    std::string joined;
    for (const auto& u : *unenforced) joined += (joined.empty() ? "" : "; ") + u;
    info("not enforced: " + joined);
  }
  // The first state write is on_starting's (status running, with the pid): one fsync fewer
  // on every run's critical path. A job that never starts gets its file at the end.

  if (plan_.timeout) {
    loop_->add_timer_after(*plan_.timeout, [this] {
      timed_out_ = true;
      info("timeout after " + plan_.options.timeout + ": stopping the job");
      job_->process().stop();
    });
  }
  if (events_) events_->info("{} run: {}", run_id_, o.command);
  job_->process().start();
  if (!job_->process().settled()) (void)loop_->run();
  if (terminal_) terminal_->drain();
  // Read before finish() releases the job's cgroup: did its memory limit kill it?
  const bool oom_killed = plan_.limits.memory_bytes && isolation::job_oom_kills(job_->request().unit_name) > 0;
  job_->finish();

  // Whatever of the job is still alive is below us (we are its subreaper): daemons that
  // left its session, their children reparented to us. None of it outlives the run. A job in
  // a pid namespace of its own has nothing left by now: the kernel killed every process in
  // it when its PID 1 ended.
  if (!isolation::has_own_pid_namespace(plan_.tier.tier, plan_.profile)) isolation::kill_all_descendants();

  const auto& proc = job_->process();
  const runner::JobEnd end{proc.last_exit(), timed_out_, stop_requested_, oom_killed};
  const int code = runner::exit_code_of(end);
  if (runner::end_status(end) == runner::JobStatus::Oom)
    error("oom-killed: memory limit " + (o.memory.empty() ? format_size(*plan_.limits.memory_bytes) : o.memory) +
          " reached");
  state_.restarts = proc.restarts();
  runner::record_ended(state_, end, std::chrono::system_clock::now());
  if (!end.exit) {
    // Never ran: the tier could not start it.
    std::string why = "could not start the job: " + (job_->spawn_error() ? job_->spawn_error()->message : proc.reason());
    error(why);
    reply(false, why);
  }
  reply(true);
  if (events_) events_->info("{} ended: {} (exit {})", run_id_, state_.status, code);

  cancel_running_write();  // the end replaces a `running` write still pending: one write, not two
  // The job's descriptors close, and an empty TMPDIR goes (one rmdir: bounded), while the disk
  // takes the final state (README "The launch path"; that fsync is the dearest step of the
  // end). A TMPDIR with files in it goes once the end is on record.
  bool tmp_removed = o.keep_tmp;
  write_final_state([&] {
    jobs_->clear();
    if (!tmp_removed) tmp_removed = ::unlinkat(tree_.tmp_fd.get(), run_id_.c_str(), AT_REMOVEDIR) == 0;
  });
  if (!tmp_removed) {
    if (auto removed = remove_tree_at(tree_.tmp_fd.get(), run_id_); !removed)
      error(removed.error().wrap("remove " + run_id_).message);
  }
  if (worktree_) {
    if (code == 0 && o.keep_worktree) {
      info("worktree kept (--keep-worktree): " + worktree_->path);
    } else if (code == 0) {
      auto rm = run_capture({"git", "-C", worktree_->repo, "worktree", "remove", "--force", worktree_->path});
      if (!rm || rm->exit_code != 0) info("could not remove worktree " + worktree_->path);
    } else {
      info("worktree kept for inspection: " + worktree_->path);
    }
  }
  return code;
}

// batman-multi: one live instance per ID, held by flock on state/<ID>.lock. The holder
// writes "PID START_TICKS STARTED_AT" into the file under the lock, so a second start can
// name it even before the holder's state file exists.
void record_lock_owner(int lock_fd) {
  pid_t self = ::getpid();
  std::string owner = std::to_string(self) + " " + std::to_string(runner::process_start_time(self)) + " " +
                      format_rfc3339(std::chrono::system_clock::now()) + "\n";
  if (::ftruncate(lock_fd, 0) == 0) (void)::pwrite(lock_fd, owner.data(), owner.size(), 0);
}

struct LockOwner {
  pid_t pid = 0;
  std::string started;
};

// The live holder the lock file names, if it names one.
std::optional<LockOwner> lock_owner(int lock_fd) {
  char buf[128];
  ssize_t n = ::pread(lock_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  std::istringstream in(std::string(buf, static_cast<std::size_t>(n)));
  long long pid = 0;
  unsigned long long ticks = 0;
  std::string started;
  if (!(in >> pid >> ticks >> started) || pid <= 0 || pid > std::numeric_limits<pid_t>::max() || ticks == 0)
    return std::nullopt;
  // A file left by a holder that died names a dead (or reused) pid: not the running one.
  if (runner::process_start_time(static_cast<pid_t>(pid)) != ticks) return std::nullopt;
  return LockOwner{static_cast<pid_t>(pid), started};
}

Result<UniqueFd> lock_instance(const ProjectTree& tree, const std::string& id) {
  std::string name = id + ".lock";
  int fd = ::openat(tree.state_fd.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("open " + tree.state_path() + "/" + name);
  UniqueFd lock(fd);
  // The winner of a start race writes its pid right after taking the lock: a loser that reads
  // the file in between waits a little for it (or takes the lock, if the winner is gone).
  std::optional<LockOwner> owner;
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      record_lock_owner(fd);
      return lock;
    }
    if (errno != EWOULDBLOCK && errno != EINTR) return sys_error("lock " + name);
    if ((owner = lock_owner(fd))) break;
    timespec pause{0, 10'000'000};
    ::nanosleep(&pause, nullptr);
  }
  // The job's pid and start once its state file says so, and always batman's own.
  std::string detail = "its pid is not known yet";
  auto s = runner::read_state(tree.state_fd.get(), id);
  bool state_live = s && s->live_status() && s->pid > 0 && (!owner || s->batman_pid == owner->pid);
  if (state_live)
    detail = "pid " + std::to_string(s->pid) + ", started " + s->started_at + ", batman pid " + std::to_string(s->batman_pid);
  else if (owner)
    detail = "batman pid " + std::to_string(owner->pid) + ", started " + owner->started;
  return fail("instance '" + id + "' is already running (" + detail + "): stop it with 'batman stop " + id +
              "' or pick another ID");
}

}  // namespace

namespace {

// The namespaces tier's early child, as the words of a run's command line ask for it, read as
// they come, before CLI11 has parsed them, so that the child makes the namespaces at once.
// `wanted`: no word says another tier, --detach, --worktree, --help or --version (each would
// have it killed once parsed: a clone and a kill for nothing, 0.26 ms of an env-tier launch).
// `options`: what decides the profile's namespaces, its hint being kept per value: the kind,
// the profile asked for (a path: from this directory), $BATMAN_PROFILES, --net and --no-net.
// A word of the job's own taken for one of batman's only costs the early start or makes
// another hint (a hint is only a guess: README "The launch path"); the parsed options decide.
struct EarlyWords {
  bool wanted = true;
  std::string options;
};
EarlyWords early_words(std::string_view kind, const std::vector<std::string>& args) {
  EarlyWords out;
  std::string profile;
  bool net = false, no_net = false;
  const auto value = [&](std::size_t& i, std::string_view name) -> std::optional<std::string> {
    const std::string& word = args[i];
    if (word == name && i + 1 < args.size()) return args[++i];
    if (word.starts_with(name) && word.size() > name.size() && word[name.size()] == '=') return word.substr(name.size() + 1);
    return std::nullopt;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--net") net = true;
    else if (word == "--no-net") no_net = true;
    else if (word == "-d" || word == "--detach" || word == "--worktree" || is_help_or_version(word))
      out.wanted = false;
    else if (auto p = value(i, "--profile")) profile = *p;
    else if (auto tier = value(i, "--isolation"); tier && *tier != "auto" && *tier != "namespaces")
      out.wanted = false;
  }
  const char* profiles = std::getenv("BATMAN_PROFILES");
  out.options = std::string(kind) + '\0' + profile + '\0' + (profiles ? profiles : "") + '\0' +
                (net ? "net" : "") + (no_net ? "no-net" : "");
  if (profile.find('/') != std::string::npos) {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) out.options += std::string("\0", 1) + cwd;
  }
  return out;
}

}  // namespace

int run_job(std::string_view kind, const std::vector<std::string>& args) {
  // The sandbox's namespaces are made by a child cloned now, from its hint, beside the reading
  // of the arguments and the rest of the preparation; taken down if the run does not want it
  // (where it is not there, the start clones it as usual).
  struct AbortPrestart {
    ~AbortPrestart() { isolation::abort_prestart(); }
  } abort_prestart;
  if (const EarlyWords early = early_words(kind, args); early.wanted && isolation::prestart_clone())
    isolation::prestart_hint(batman_home(), early.options);
  RunOptions o;
  o.kind = std::string(kind);
  std::string program = kind == "parallel" ? "batman-parallel" : kind == "isolated" ? "batman-isolated" : "batman-multi";
  CLI::App app{kind == "parallel"   ? "Run COMMAND in PROJECT's own tree, side by side with other runs."
               : kind == "isolated" ? "Run COMMAND with the strongest isolation this machine allows."
                                    : "Run COMMAND as the one live instance of ID.",
               program};
  app.set_help_flag("-h,--help", "show this help");
  if (kind == "parallel") app.add_option("PROJECT", o.project, "project name")->required();
  if (kind == "multi") app.add_option("ID", o.project, "instance ID (also the project)")->required();
  // COMMAND is taken apart before CLI11 sees the line (split_job_arguments): listed here for
  // --help only.
  std::string command_help;
  app.add_option("COMMAND", command_help,
                 "one shell string, run as /bin/sh -c COMMAND, or several words run as they are "
                 "(argv: batman-parallel web make -j4)");
  if (kind == "isolated") {
    o.project = "isolated";
    app.add_option("--project", o.project, "project name (default: isolated)");
  }
  app.add_option("--isolation", o.isolation, "auto|namespaces|firejail|systemd|env");
  app.add_option("--profile", o.profile, "isolation profile: NAME or FILE");
  app.add_flag("--net", o.net, "use the host network");
  app.add_flag("--no-net", o.no_net, "no network");
  app.add_option("--memory", o.memory, "memory limit, e.g. 512M (a job killed by it ends with status oom)");
  app.add_option("--cpus", o.cpus, "CPU limit, e.g. 1.5");
  app.add_option("--pids", o.pids, "process count limit");
  app.add_option("--timeout", o.timeout, "stop the job after DURATION (exit 124)");
  app.add_option("--restart", o.restart, "always|never|unexpected (default never)");
  app.add_option("--exitcodes", o.exitcodes, "expected exit codes, e.g. 0,2");
  app.add_option("--startretries", o.startretries, "retries of a failed start");
  app.add_option("--starttime", o.starttime, "time up before a start counts");
  app.add_option("--stopsignal", o.stopsignal, "signal of the stop sequence");
  app.add_option("--stoptime", o.stoptime, "wait before SIGKILL");
  app.add_option("--env", o.env, "K=V for the job (repeatable)")->allow_extra_args(false)->take_all();
  app.add_option("--cwd", o.cwd, "working directory");
  app.add_flag("--worktree", o.worktree,
               "run in a fresh git worktree of HEAD (committed files only); removed after a successful "
               "run, kept after a failed one");
  app.add_flag("--keep-worktree", o.keep_worktree, "with --worktree: keep it after a successful run too");
  app.add_flag("-t,--tty", o.tty, "give the job a pseudo-terminal (colours survive; the log gets the same bytes)");
  app.add_flag("-d,--detach", o.detach, "run in the background, print the run-id");
  app.add_flag("--keep-tmp", o.keep_tmp, "keep tmp/<run-id> afterwards");
  // --monitor's port: --monitor=PORT, or --monitor PORT when PORT is a number (a name would
  // be PROJECT); taken out by split_job_arguments before CLI11 sees the line.
  bool monitor_flag = false;
  app.add_flag("--monitor", monitor_flag, "show this run on the home's dashboard (started on 127.0.0.1 when none runs; --monitor PORT: its port then)");
  app.add_flag("--no-monitor", o.no_monitor, "no status page (the default)");
  app.add_flag("-q,--quiet", o.quiet, "only errors from batman");
  app.footer("COMMAND: batman's options go before it. One argument is a shell command line "
             "('make && make test'); several words are the command's argv (make -j4), everything "
             "after its first word is the command's. Put -- before a command whose words start with -.");

  std::vector<std::string> long_options;
  for (const CLI::Option* opt : app.get_options())
    for (const auto& l : opt->get_lnames()) long_options.push_back("--" + l);
  auto arity = [&app](std::string_view name) -> std::optional<int> {
    const CLI::Option* opt = app.get_option_no_throw(std::string(name));
    if (!opt || opt->get_positional()) return std::nullopt;
    return opt->get_expected_max() == 0 ? 0 : 1;  // a flag takes no word
  };
  const std::size_t leading = kind == "isolated" ? 0 : 1;
  JobArguments split = split_job_arguments(args, leading, arity, long_options);
  if (auto rc = parse(app, split.options)) return *rc;
  if (!split.stray.empty()) {
    error(program + ": unexpected '" + split.stray.front() + "' after the shell command '" + split.command.front() +
          "': give the command as one quoted argument, or as separate words with no shell syntax");
    return kExitBatmanError;
  }
  if (split.command.empty()) {
    error(program + ": missing COMMAND (see '" + program + " --help')");
    return kExitBatmanError;
  }
  o.command = job_command_line(split);
  o.monitor = split.monitor;
  for (const auto& [word, near] : split.near_misses)
    if (!o.quiet)
      info("'" + word + "' is passed to the command; did you mean batman's " + near +
           "? (batman's options go before the command)");
  set_quiet(o.quiet);

  const auto requested = isolation::parse_tier(o.isolation);  // an error: make_plan says it
  if (!requested || (*requested && **requested != isolation::Tier::Namespaces) || o.detach || o.worktree)
    isolation::abort_prestart();
  auto plan = make_plan(o);
  if (!plan) {
    error(plan.error().message);
    return kExitBatmanError;
  }
  info(plan->tier.summary());
  if (plan->tier.tier == isolation::Tier::Namespaces)
    (void)isolation::commit_prestart(plan->profile, plan->limits);
  else
    isolation::abort_prestart();

  auto tree = open_project(plan->options.project, true);
  if (!tree) {
    error(tree.error().message);
    return kExitBatmanError;
  }

  UniqueFd lock;
  std::string run_id;
  if (kind == "multi") {
    auto l = lock_instance(*tree, plan->options.project);
    if (!l) {
      error(l.error().message);
      return kExitBatmanError;
    }
    lock = std::move(*l);
    run_id = plan->options.project;
  } else {
    run_id = new_run_id();
    // Unique even within one second: six random hex digits, and the log is created O_EXCL.
    struct stat st{};
    while (::fstatat(tree->logs_fd.get(), (run_id + ".log").c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      run_id = new_run_id();
  }

  if (!plan->options.detach) {
    Run run(std::move(*plan), std::move(*tree), run_id, std::move(lock));
    return run.execute(-1);
  }

  // --detach: the child runs the job in its own session; the parent prints the run-id once
  // the job has started (so `batman ps` sees it at once) and exits 0.
  std::cout.flush();
  auto detached = detach(false);
  if (!detached) {
    error(detached.error().message);
    return kExitBatmanError;
  }
  if (detached->in_child) {
    set_quiet(true);
    if (lock) record_lock_owner(lock.get());  // the instance is now this process
    Run run(std::move(*plan), std::move(*tree), run_id, std::move(lock));
    std::_Exit(run.execute(detached->reply.release()));
  }
  lock.reset();
  const DetachReply reply = read_detach_reply(detached->reply.get());
  if (!reply.started) {
    std::string why = reply.message.empty() ? "it exited before starting the job" : reply.message;
    error("the detached run " + run_id + " failed to start: " + why);
    return kExitBatmanError;
  }
  std::cout << run_id << std::endl;
  return 0;
}

}  // namespace batman::cli
