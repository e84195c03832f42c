// `batman batch FILE [TASK...]` and `batman batch -`: many tasks under the batch scheduler,
// each attempt launched through an isolation tier in the batch's project tree (SPEC §10).
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <deque>
#include <map>
#include <utility>

#include "common/executables.hpp"
#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "isolation/backend.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/profile_cache.hpp"
#include "isolation/spawn.hpp"
#include "runner/event_log.hpp"
#include "runner/job.hpp"
#include "runner/job_set.hpp"
#include "runner/launch.hpp"
#include "src/batch/scheduler.hpp"
#include "runner/state_store.hpp"
#include "runner/state_writer.hpp"
#include "src/batch/batch_config.hpp"
#include "src/batch/batch_report.hpp"
#include "src/batch/batch_view.hpp"
#include "src/batch/slurm_executor.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"
#include "src/cli/runs.hpp"
#include "common/names.hpp"

namespace batman::cli {
namespace {

using runner::TaskStatus;

// How a task's output reaches batman's stdout and stderr while the batch runs.
enum class OutputMode {
  Grouped,   // each attempt's output as one block when it ends (GNU parallel --group)
  Prefixed,  // each line as it comes, after "[task] " (parallel --tag --line-buffer)
  None,      // only in the logs
};

struct BatchOptions {
  std::string file;
  std::vector<std::string> tasks;
  std::string concurrency, rate_limit, timeout, retries, halt = "never";
  std::string report, junit, joblog;
  std::string isolation, profile;
  std::string output = "grouped";
  std::string tail = "10";
  bool resume = false, resume_failed = false, no_deps = false;
  bool quiet = false;
  // --executor slurm and its sbatch options.
  std::string executor, partition, account, qos;
  std::vector<std::string> slurm_opts;
  std::string slurm_array_size = "1000";
};

// How long a killed attempt (timeout, --halt now, Ctrl-C) gets between SIGTERM and SIGKILL.
constexpr Duration kKillGrace = std::chrono::seconds(1);
// How long a task's `running` state waits before it is written (see on_spawned).
constexpr Duration kRunningWriteDelay = std::chrono::milliseconds(5);
// Lines of a failed task's log carried into its JUnit failure.
constexpr std::size_t kJunitTailLines = 30;
// The summary lists every task of a run with at most this many (summary_table's default).
constexpr std::size_t kSummaryListsAll = 50;
// At most this many failed tasks get their log's last lines in the end summary.
constexpr std::size_t kTailedTasks = 20;
// A grouped attempt's output is kept in memory up to this size, then in an unlinked file.
constexpr std::size_t kGroupInMemory = 1 << 20;

// The last `lines` lines of the file `name` in `dirfd`, from its last 64 KiB at most (a log may
// be huge).
std::string tail_of(int dirfd, const std::string& name, std::size_t lines) {
  if (lines == 0) return "";
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st{};
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  constexpr off_t kMax = 64 * 1024;
  const off_t from = st.st_size > kMax ? st.st_size - kMax : 0;
  std::string text(static_cast<std::size_t>(st.st_size - from), '\0');
  const ssize_t n = ::pread(fd.get(), text.data(), text.size(), from);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return last_lines(text, lines);
}

// batman's stdout or stderr as the tasks' output reaches it: `before` runs before each write
// (it takes the live view off the terminal; the view is redrawn at its next tick), and a
// reader that went away (EPIPE) is not written to again.
class TerminalSink final : public runner::Sink {
 public:
  TerminalSink(int fd, std::function<void()> before) : fd_(fd), before_(std::move(before)) {}
  void write(std::string_view data) override {
    if (broken_ || data.empty()) return;
    if (before_) before_();
    if (auto w = write_all(fd_, data); !w) broken_ = true;
  }

 private:
  int fd_;
  std::function<void()> before_;
  bool broken_ = false;
};

// One stream of one attempt, kept whole until the attempt ends (--output grouped): in memory,
// then, past kGroupInMemory, in an unlinked temporary file in the project's tmp directory.
// Without such a file (a full disk) complete lines go out as they come instead: output is
// never dropped, nor held in memory without bound.
class GroupSink final : public runner::Sink {
 public:
  GroupSink(int tmp_dirfd, runner::Sink& out) : tmp_dirfd_(tmp_dirfd), out_(out) {}
  void write(std::string_view data) override {
    if (!spill_ && !streaming_ && memory_.size() + data.size() > kGroupInMemory) {
      spill_.reset(::openat(tmp_dirfd_, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
      if (spill_ && write_all(spill_.get(), memory_)) {
        memory_.clear();
      } else {
        spill_.reset();
        streaming_ = true;
      }
    }
    if (spill_) {
      if (write_all(spill_.get(), data)) return;
      streaming_ = true;  // the disk filled up: what is kept goes out now, the rest as it comes
      emit();
    }
    memory_.append(data);
    if (streaming_) {
      const auto nl = memory_.rfind('\n');
      if (nl == std::string::npos) return;
      out_.write(std::string_view(memory_).substr(0, nl + 1));
      memory_.erase(0, nl + 1);
    }
  }
  // Everything kept, as one block ending with a newline.
  void emit() {
    if (spill_) {
      char buf[65536];
      off_t at = 0;
      char last = '\n';
      for (;;) {
        const ssize_t n = ::pread(spill_.get(), buf, sizeof buf, at);
        if (n <= 0) break;
        at += n;
        last = buf[n - 1];
        out_.write(std::string_view(buf, static_cast<std::size_t>(n)));
      }
      if (last != '\n') out_.write("\n");
      spill_.reset();
    }
    if (!memory_.empty()) {
      if (memory_.back() != '\n') memory_ += '\n';
      out_.write(memory_);
      memory_.clear();
    }
  }

 private:
  int tmp_dirfd_;
  runner::Sink& out_;
  UniqueFd spill_;
  std::string memory_;
  bool streaming_ = false;
};

// One attempt's log file: counts bytes (the joblog's Receive) and keeps the latest line for
// the live view.
class AttemptLog final : public runner::Sink {
 public:
  explicit AttemptLog(UniqueFd fd) : fd_(std::move(fd)) {}
  void write(std::string_view data) override {
    (void)write_all(fd_.get(), data);
    bytes_ += data.size();
    auto nl = data.rfind('\n');
    if (nl == std::string_view::npos) {
      partial_.append(data.substr(0, 200));
      return;
    }
    auto before = data.substr(0, nl);
    auto start = before.rfind('\n');
    auto line = start == std::string_view::npos ? before : before.substr(start + 1);
    if (start == std::string_view::npos) {
      partial_.append(line);
      line = partial_;
    }
    if (!line.empty()) last_line_ = std::string(line.substr(0, 200));
    partial_ = std::string(data.substr(nl + 1, 200));
  }
  std::uint64_t bytes() const { return bytes_; }
  const std::string& last_line() const { return last_line_; }

 private:
  UniqueFd fd_;
  std::uint64_t bytes_ = 0;
  std::string last_line_, partial_;
};

class BatchRunner;

// One attempt of one task: its log, its optional health check, then the task's own job
// (both owned by the runner's JobSet).
struct Attempt {
  std::size_t task = 0;
  int number = 0;
  TimePoint started{};
  WallTime started_wall{};
  std::string log_name;
  std::unique_ptr<AttemptLog> log;
  // Where the task's output goes besides the log (--output): line prefixers or groups.
  std::unique_ptr<runner::LinePrefixSink> out_prefix, err_prefix;
  std::unique_ptr<GroupSink> out_group, err_group;
  runner::Job* check = nullptr;
  runner::Job* job = nullptr;
  bool killed = false;

  runner::Job* current() { return job ? job : check; }
};

// --executor slurm: the executor's settings.
struct SlurmSetup {
  slurm::ExecutorConfig config;
};

// What the runner holds of one task until it ends; a stream's (`batch -`) are dropped then,
// what the reports and the summary need kept apart (BatchRunner::keep_for_report).
struct TaskSlot {
  ResolvedTask task;                    // its cwd absolute
  std::vector<ReportAttempt> attempts;  // so far
  pid_t last_pid = 0;                   // of its latest attempt, for its final state
  std::string slurm_job, slurm_node;    // its latest Slurm job and node
  // --executor slurm: its timeout, enforced on the node by the wrapper from the moment the
  // task starts, not by the scheduler from its submission.
  Duration slurm_timeout{0};
  bool ended = false;
};

// `batch -`: stdin, read as the queue drains (BatchRunner::pull_input). Every line gets the
// same plan and working directory.
struct StdinInput {
  CommandLines lines;
  runner::TaskPlan plan;
  std::string cwd;
  bool pollable = true;  // in the event loop (pipe, terminal, socket); else read when wanted
  bool watched = false;
  bool eof = false;
  bool closed = false;  // nothing more is read: its end, an error, a halt
};

// One read(2) of at most 64 KiB of stdin into `in`: true when bytes or the end came, false
// when none were there (EAGAIN). A closed stdin reads as an empty one.
Result<bool> read_stdin(StdinInput& in) {
  char buf[65536];
  const ssize_t n = ::read(0, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (n < 0 && errno != EBADF) return sys_error("<stdin>: read");
  if (n <= 0) {
    in.eof = true;
    BATMAN_TRY(in.lines.finish());
    return true;
  }
  BATMAN_TRY(in.lines.feed(std::string_view(buf, static_cast<std::size_t>(n))));
  return true;
}

// Before the event loop: read stdin until its first command (or its end, or, with
// `to_the_end`, all of it). Blocks, as there is nothing else to do until then.
Result<void> read_stdin_until_ready(StdinInput& in, bool to_the_end) {
  while (!in.eof && (to_the_end || !in.lines.has_command())) {
    if (!BATMAN_TRY(read_stdin(in))) {
      pollfd readable{0, POLLIN, 0};
      (void)::poll(&readable, 1, -1);  // a stdin left O_NONBLOCK by whoever made it
    }
  }
  return {};
}

class BatchRunner final : public runner::Launcher, public runner::JobSet::Owner, public slurm::Executor::Listener {
 public:
  // `run`'s tasks with their cwd absolute; a stream's come from `input` instead.
  BatchRunner(BatchOptions options, BatchRun run, ProjectTree tree, isolation::TierChoice tier,
              isolation::Profile profile, std::string run_id, UniqueFd batch_log, std::string command_line,
              std::optional<SlurmSetup> slurm, std::optional<StdinInput> input)
      : options_(std::move(options)), run_(std::move(run)), tree_(std::move(tree)),
        tier_(std::move(tier)), profile_(std::move(profile)), run_id_(std::move(run_id)),
        command_line_(std::move(command_line)), batch_log_(std::move(batch_log)),
        input_(std::move(input)), slurm_setup_(std::move(slurm)) {
    for (std::size_t i = 0; i < run_.tasks.size(); ++i) {
      TaskSlot slot;
      slot.task = std::move(run_.tasks[i]);
      if (slurm_setup_) {
        // The wrapper times each attempt out on the node; the scheduler does not count the queue.
        slot.slurm_timeout = std::exchange(run_.plan.tasks[i].timeout, Duration::zero());
      }
      slots_.push_back(std::move(slot));
    }
    run_.tasks.clear();
    for (const auto& b : run_.plan.batches) batch_names_.push_back(b.name);
    // Reports list every task; without them a stream keeps only what the summary lists.
    keep_all_ = !input_ || !options_.report.empty() || !options_.junit.empty() || !options_.joblog.empty();
  }

  Result<int> execute();

  // runner::Launcher
  Result<void> start(std::size_t task, int attempt) override;
  void kill(std::size_t task) override;
  void set_timer(std::optional<TimePoint> deadline) override;
  void on_attempt_end(std::size_t task, const runner::AttemptRecord& record) override;
  void on_task_end(std::size_t task) override;
  void on_log(std::string_view message) override;

  // runner::JobSet::Owner
  void on_spawned(runner::Job& j, pid_t pid) override;
  void on_settled(runner::Job& j) override;

  // slurm::Executor::Listener
  void on_submitted(std::size_t task, const std::string& job) override;
  void on_running(std::size_t task) override;
  void on_result(std::size_t task, int attempt, slurm::ElementResult result) override;
  void on_executor_log(const std::string& message) override { on_log(message); }

 private:
  Attempt* attempt_of(const runner::Job& j);
  TaskSlot& slot(std::size_t task) { return slots_[task - first_slot_]; }
  const TaskSlot& slot(std::size_t task) const { return slots_[task - first_slot_]; }
  std::size_t task_count() const { return first_slot_ + slots_.size(); }
  // batch -: read stdin while the scheduler's queue has room; add its commands as tasks.
  void pull_input();
  void schedule_pull();
  bool read_input();
  void add_command();
  void close_input();
  void input_failed(const std::string& message);
  void keep_for_report(std::size_t task, const runner::TaskRecord& rec);
  void save_end_state(std::size_t task, const runner::TaskRecord& rec);
  // "<run-id>.<task>": the task's state file, TMPDIR and BATMAN_RUN_ID, and its logs'
  // prefix, apart from every other run's.
  std::string task_id(std::size_t task) const { return run_id_ + "." + slot(task).task.name; }
  std::string log_name(std::size_t task, int attempt) const {
    return task_id(task) + "." + std::to_string(attempt) + ".log";
  }
  runner::RunState batch_record() const;
  void to_batch_log(std::string_view text);
  // SIGINT, SIGTERM, SIGHUP: stop running tasks, skip the rest; a second one SIGKILLs.
  void interrupt(int sig);
  std::string failure_tails(const Report& report) const;
  int exit_code() const;
  // With `environment` false, no environment is copied: for a state record, written several
  // times per task, which shows none of it.
  runner::LaunchSpec spec_of(const Attempt& a, bool health_check, bool environment = true) const;
  runner::RunState record_of(std::size_t task, std::string log) const;
  Result<void> start_job(Attempt& a, bool health_check);
  // --executor slurm: hand the attempt to the executor (after its health check, if any).
  void submit(const Attempt& a);
  runner::RunState slurm_record(std::size_t task, const std::string& status) const;
  void show_output(std::size_t task, const std::string& log_name);
  void finish_attempt(std::size_t task, runner::AttemptOutcome outcome);
  void save_state(const runner::RunState& s, Duration delay = Duration::zero());
  void handle_signal(const signalfd_siginfo& info);
  void handle_task_stop(const signalfd_siginfo& info);
  void show(const std::string& message);
  void tick_view();
  ViewCounts counts() const;
  // Once, at the end: it takes the ended tasks' records.
  Report build_report();
  Result<void> open_reports();
  void write_reports(const Report& report);

  BatchOptions options_;
  BatchRun run_;
  ProjectTree tree_;
  isolation::TierChoice tier_;
  isolation::Profile profile_;
  std::string run_id_;        // this batch run's own
  std::string command_line_;  // its state's command (how --resume finds it again)
  UniqueFd batch_log_;        // logs/<run-id>.log: batman's messages and the summary
  OutputMode output_ = OutputMode::Grouped;
  std::size_t tail_lines_ = 10;  // --tail
  std::unique_ptr<runner::EventLoop> loop_;
  std::unique_ptr<runner::Scheduler> scheduler_;
  std::unique_ptr<runner::StateWriter> disk_;
  std::unique_ptr<BatchView> view_;
  std::shared_ptr<spdlog::logger> events_;
  // Where tasks' output goes: stdout and stderr, or stderr for both when a report is written
  // to stdout (`--report -`), which then carries only reports.
  std::unique_ptr<TerminalSink> out_, err_;
  bool stdout_taken_ = false;
  std::map<std::size_t, std::unique_ptr<Attempt>> attempts_;
  // Every attempt's jobs; declared after the attempts, whose log sinks the jobs write into.
  std::unique_ptr<runner::JobSet> jobs_;
  // Every task from first_slot_ on; a stream drops those that ended from the front.
  std::deque<TaskSlot> slots_;
  std::size_t first_slot_ = 0;
  std::optional<StdinInput> input_;
  bool pull_scheduled_ = false;
  std::string input_error_;  // a line batch - could not take: the run ends 125
  std::vector<std::string> batch_names_;
  // The ended tasks the report needs (keep_all_: all; else those the summary lists) and
  // how many succeeded ones were only counted.
  bool keep_all_ = true;
  std::vector<std::pair<std::size_t, ReportTask>> ended_;  // (batch, task)
  std::size_t unkept_successes_ = 0;
  std::vector<std::string> report_events_;
  std::vector<std::string> base_env_;
  std::vector<std::string> unenforced_;  // what the tier could not apply (the same for every task)
  UniqueFd devnull_;
  UniqueFd report_fd_, junit_fd_, joblog_fd_;
  std::optional<runner::EventLoop::TimerId> timer_;
  std::optional<TimePoint> timer_deadline_;
  TimePoint started_{};
  WallTime started_wall_{};
  std::size_t succeeded_ = 0, failed_ = 0, skipped_ = 0, interrupted_tasks_ = 0, stopped_ = 0, done_ = 0;
  int interrupt_signal_ = 0;  // the first of SIGINT/SIGTERM/SIGHUP batman was sent
  std::map<std::size_t, StopRequest> stop_requests_;  // `batman stop PROJECT TASK`, per task
  std::optional<SlurmSetup> slurm_setup_;
  std::unique_ptr<slurm::Executor> slurm_;
  std::map<std::size_t, slurm::ElementResult> slurm_results_;  // the attempt that just ended
};

Attempt* BatchRunner::attempt_of(const runner::Job& j) {
  for (auto& [task, a] : attempts_)
    if (a->job == &j || a->check == &j) return a.get();
  return nullptr;
}

runner::LaunchSpec BatchRunner::spec_of(const Attempt& a, bool health_check, bool environment) const {
  const auto& t = slot(a.task).task;
  runner::LaunchSpec spec;
  spec.project = tree_.name;
  spec.home = tree_.home;
  spec.project_dir = tree_.dir;
  spec.run_id = task_id(a.task);
  spec.tmp_dir = tree_.tmp_path() + "/" + spec.run_id;
  spec.unit_parts = {spec.run_id, std::to_string(a.number)};
  if (health_check) spec.unit_parts.push_back("check");
  spec.command = health_check ? *run_.health_check : t.cmd;
  spec.cwd = slot(a.task).task.cwd;
  spec.tier = tier_.tier;
  spec.profile = profile_;
  spec.limits = profile_.limits;
  if (!environment) return spec;
  spec.base_env = base_env_;
  spec.env.assign(t.env.begin(), t.env.end());
  spec.batman_vars = {{"BATMAN_TASK", t.name}, {"BATMAN_ATTEMPT", std::to_string(a.number)}};
  return spec;
}

// The state record of a task (its command, not the health check's).
runner::RunState BatchRunner::record_of(std::size_t task, std::string log) const {
  Attempt probe;
  probe.task = task;
  auto s = runner::state_record(spec_of(probe, false, false), "batch", tier_.skipped, std::move(log));
  s.isolation.unenforced = unenforced_;
  return s;
}

Result<void> BatchRunner::start(std::size_t task, int attempt) {
  const auto& t = slot(task).task;
  auto a = std::make_unique<Attempt>();
  a->task = task;
  a->number = attempt;
  a->started = loop_->now();
  a->started_wall = std::chrono::system_clock::now();
  a->log_name = log_name(task, attempt);
  auto fd = open_regular_at(tree_.logs_fd.get(), a->log_name, O_WRONLY | O_CREAT | O_TRUNC, 0600,
                            tree_.logs_path() + "/" + a->log_name);  // never a FIFO
  if (!fd) return std::unexpected(fd.error().wrap("create log"));
  a->log = std::make_unique<AttemptLog>(std::move(*fd));
  // A retry keeps the directory of the attempt before it.
  const auto tmp = task_id(task);
  if (auto made = make_dir_at(tree_.tmp_fd.get(), tmp); !made && made.error().code != EEXIST)
    return sys_error("create " + tree_.tmp_path() + "/" + tmp, made.error().code);
  if (output_ == OutputMode::Prefixed) {
    a->out_prefix = std::make_unique<runner::LinePrefixSink>("[" + t.name + "] ", *out_);
    a->err_prefix = std::make_unique<runner::LinePrefixSink>("[" + t.name + "] ", *err_);
  } else if (output_ == OutputMode::Grouped) {
    a->out_group = std::make_unique<GroupSink>(tree_.tmp_fd.get(), *out_);
    a->err_group = std::make_unique<GroupSink>(tree_.tmp_fd.get(), *err_);
  }
  auto& started = attempts_[task];
  started = std::move(a);
  schedule_pull();  // it left the queue: room for one more line
  if (slurm_ && !run_.health_check) {
    submit(*started);
    return {};
  }
  // On an error the scheduler records the failed attempt (on_attempt_end drops this one).
  return start_job(*started, run_.health_check.has_value());
}

void BatchRunner::submit(const Attempt& a) {
  const auto& t = slot(a.task).task;
  slurm::Element e;
  e.task = a.task;
  e.attempt = a.number;
  e.name = t.name;
  e.task_id = task_id(a.task);
  e.command = t.cmd;
  e.cwd = slot(a.task).task.cwd;
  e.env = t.env;
  e.timeout = slot(a.task).slurm_timeout;
  e.log = a.log_name;
  e.throttle = scheduler_->concurrency();
  slurm_->submit(std::move(e));
}

runner::RunState BatchRunner::slurm_record(std::size_t task, const std::string& status) const {
  auto s = record_of(task, "logs/" + log_name(task, static_cast<int>(scheduler_->record(task).attempts.size())));
  s.status = status;
  if (auto it = attempts_.find(task); it != attempts_.end()) s.started_at = format_rfc3339(it->second->started_wall);
  s.restarts = static_cast<int>(scheduler_->record(task).attempts.size()) - 1;
  if (!slot(task).slurm_job.empty()) s.slurm_job = slot(task).slurm_job;
  if (!slot(task).slurm_node.empty()) s.node = slot(task).slurm_node;
  return s;
}

void BatchRunner::on_submitted(std::size_t task, const std::string& job) {
  slot(task).slurm_job = job;
  if (events_) events_->info("task {} submitted as Slurm job {}", slot(task).task.name, job);
  save_state(slurm_record(task, "starting"));
}

void BatchRunner::on_running(std::size_t task) { save_state(slurm_record(task, "running")); }

// The attempt's output, from its log (the wrapper wrote it on the node), as the local
// executor shows it: one block (grouped) or line by line after "[task] " (prefixed).
void BatchRunner::show_output(std::size_t task, const std::string& log_name) {
  if (output_ == OutputMode::None) return;
  UniqueFd fd(::openat(tree_.logs_fd.get(), log_name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return;
  GroupSink group(tree_.tmp_fd.get(), *out_);
  runner::LinePrefixSink prefixed("[" + slot(task).task.name + "] ", *out_);
  runner::Sink& sink = output_ == OutputMode::Grouped ? static_cast<runner::Sink&>(group) : prefixed;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) break;
    sink.write(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  if (output_ == OutputMode::Grouped) group.emit();
  else prefixed.flush();
}

void BatchRunner::on_result(std::size_t task, int attempt, slurm::ElementResult result) {
  auto it = attempts_.find(task);
  if (it == attempts_.end() || it->second->number != attempt) return;
  if (!result.host.empty()) slot(task).slurm_node = result.host;
  show_output(task, it->second->log_name);
  runner::AttemptOutcome outcome;
  outcome.exit_code = result.exit_code;
  outcome.signal = result.signal;
  outcome.timed_out = result.timed_out;
  outcome.error = result.error;
  if (!result.job.empty() && !result.error.empty() && result.error.find(result.job) == std::string::npos)
    outcome.error = "Slurm job " + result.job + ": " + result.error;
  if (result.timed_out) {
    on_log("task " + slot(task).task.name + " attempt " + std::to_string(attempt) + " timed out after " +
           format_duration(slot(task).slurm_timeout) + " on node " + result.host + ": its process tree was killed");
  }
  slurm_results_[task] = std::move(result);
  finish_attempt(task, std::move(outcome));
}

Result<void> BatchRunner::start_job(Attempt& a, bool health_check) {
  runner::RestartRules rules;
  rules.autorestart = runner::AutoRestart::Never;
  rules.startretries = 0;
  rules.starttime = Duration::zero();
  rules.stoptime = kKillGrace;
  // The check's output goes to the attempt's log only; the task's also to the terminal.
  std::vector<runner::Sink*> out{a.log.get()}, err{a.log.get()};
  if (!health_check && a.out_prefix) {
    out.push_back(a.out_prefix.get());
    err.push_back(a.err_prefix.get());
  }
  if (!health_check && a.out_group) {
    out.push_back(a.out_group.get());
    err.push_back(a.err_group.get());
  }
  runner::Job& job = jobs_->add(isolation::make_backend(tier_.tier), runner::launch_request(spec_of(a, health_check)),
                                rules, out, err, devnull_.get());
  auto unenforced = job.prepare();
  if (!unenforced) {
    jobs_->remove(job, true);
    return std::unexpected(unenforced.error());
  }
  if (!unenforced->empty() && unenforced_.empty()) {
    std::string joined;
    for (const auto& u : *unenforced) joined += (joined.empty() ? "" : "; ") + u;
    unenforced_ = *unenforced;
    show("not enforced: " + joined);
  }
  (health_check ? a.check : a.job) = &job;
  job.process().start();
  if (job.process().settled()) {
    // A spawn that failed at once: reported to the scheduler as this attempt's error.
    std::string why = job.spawn_error() ? job.spawn_error()->message : job.process().reason();
    (health_check ? a.check : a.job) = nullptr;
    jobs_->remove(job, true);
    return fail((health_check ? "health check: " : "") + why);
  }
  return {};
}

void BatchRunner::on_spawned(runner::Job& j, pid_t pid) {
  Attempt* a = attempt_of(j);
  if (!a || &j != a->job) return;  // the health check has no state of its own
  runner::RunState s = record_of(a->task, "logs/" + a->log_name);
  runner::record_started(s, pid, a->started_wall);
  slot(a->task).last_pid = pid;
  s.started_at = format_rfc3339(a->started_wall);
  s.restarts = a->number - 1;
  // As for a single run: a task that is over within a few milliseconds gets one state write
  // (its end) instead of two.
  save_state(s, kRunningWriteDelay);
}

// After the loop turn in which one of an attempt's jobs settled: the check passed (the task
// starts) or failed, or the task's job ended. The job is finished (its output read dry into
// the attempt's log) and dropped here, before the attempt and its log can go.
void BatchRunner::on_settled(runner::Job& j) {
  Attempt* found = attempt_of(j);
  if (!found) return;
  Attempt& a = *found;
  const auto task = a.task;
  runner::AttemptOutcome outcome;
  if (&j == a.check) {
    const auto exit = j.process().last_exit();
    a.check = nullptr;
    jobs_->remove(j, true);
    const bool passed = exit && exit->signal == 0 && exit->code == 0;
    if (passed && !a.killed && slurm_) {
      submit(a);
      return;
    }
    if (passed && !a.killed) {
      if (auto started = start_job(a, false); !started) {
        outcome.error = started.error().message;
        finish_attempt(task, std::move(outcome));
      }
      return;
    }
    if (exit) {
      outcome.exit_code = exit->code;
      outcome.signal = exit->signal;
    }
    if (!a.killed) {
      outcome.check_failed = true;
      const auto msg = "health check failed before task " + slot(task).task.name + " attempt " +
                       std::to_string(a.number) + ": " +
                       (exit ? (exit->signal ? "killed by SIG" + signal_name(exit->signal)
                                             : "exit " + std::to_string(exit->code))
                             : std::string("did not run"));
      on_log(msg);
    }
    finish_attempt(task, std::move(outcome));
    return;
  }
  const auto exit = j.process().last_exit();
  if (exit) {
    outcome.exit_code = exit->code;
    outcome.signal = exit->signal;
  } else {
    outcome.error = j.spawn_error() ? j.spawn_error()->message : j.process().reason();
  }
  a.job = nullptr;
  jobs_->remove(j, true);  // its output is all in the sinks now
  if (a.out_group) {
    a.out_group->emit();
    a.err_group->emit();
  }
  finish_attempt(task, std::move(outcome));
}

void BatchRunner::finish_attempt(std::size_t task, runner::AttemptOutcome outcome) {
  scheduler_->on_exit(task, std::move(outcome));
  // A retry waits in backoff: the state file says so instead of "running" with a dead pid.
  if (scheduler_->record(task).status == TaskStatus::Backoff) {
    const auto& attempts = slot(task).attempts;
    runner::RunState s = record_of(task, "");
    s.started_at = attempts.empty() ? format_rfc3339(started_wall_) : format_rfc3339(attempts.front().started);
    s.restarts = static_cast<int>(attempts.size());
    if (!attempts.empty()) s.log = attempts.back().log;
    save_state(s);
  }
}

void BatchRunner::on_attempt_end(std::size_t task, const runner::AttemptRecord& record) {
  ReportAttempt r;
  r.number = record.number;
  r.runtime = record.ended - record.started;
  r.exit_code = record.outcome.exit_code;
  r.signal = record.outcome.signal;
  r.timed_out = record.outcome.timed_out;
  r.check_failed = record.outcome.check_failed;
  r.error = record.outcome.error;
  r.outcome = record.outcome.describe();
  r.started = std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(r.runtime);
  r.log = "logs/" + log_name(task, record.number);
  if (auto it = attempts_.find(task); it != attempts_.end()) {
    r.started = it->second->started_wall;
    if (it->second->log) r.output_bytes = it->second->log->bytes();
    // On the cluster: the task's own start and run time on its node, not the queue's wait.
    if (auto res = slurm_results_.find(task); res != slurm_results_.end()) {
      if (res->second.started && res->second.ended) {
        r.started = *res->second.started;
        r.runtime = std::chrono::duration_cast<Duration>(*res->second.ended - *res->second.started);
      }
      struct stat st{};
      if (::fstatat(tree_.logs_fd.get(), it->second->log_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        r.output_bytes = static_cast<std::uint64_t>(st.st_size);
      slurm_results_.erase(res);
    }
    // The attempt's jobs have settled (or never started): safe to destroy here.
    attempts_.erase(it);
  }
  if (events_)
    events_->info("task {} attempt {}: {} after {}", slot(task).task.name, record.number, r.outcome,
                  format_duration(r.runtime));
  slot(task).attempts.push_back(std::move(r));
}

void BatchRunner::on_task_end(std::size_t task) {
  const auto& rec = scheduler_->record(task);
  const auto& t = slot(task).task;
  switch (rec.status) {
    case TaskStatus::Succeeded: ++succeeded_; break;
    case TaskStatus::Failed: ++failed_; break;
    case TaskStatus::Interrupted: ++interrupted_tasks_; break;
    case TaskStatus::Stopped: ++stopped_; break;
    case TaskStatus::Done: ++done_; break;
    default: ++skipped_; break;
  }
  if (rec.status == TaskStatus::Done) show("task " + t.name + " not run: " + rec.reason);
  // Skipped before it ran, or done earlier: no state to record, no tmp.
  if (rec.status != TaskStatus::Done && !rec.attempts.empty()) save_end_state(task, rec);
  keep_for_report(task, rec);
  slot(task).ended = true;
  schedule_pull();  // it left the queue (skipped), or its slot may go (a stream's)
}

void BatchRunner::save_end_state(std::size_t task, const runner::TaskRecord& rec) {
  disk_->remove_tree(tree_.tmp_fd.get(), task_id(task));
  const auto& last = rec.attempts.back().outcome;
  const auto& attempts = slot(task).attempts;
  runner::RunState s = record_of(task, attempts.empty() ? "" : attempts.back().log);
  s.started_at = attempts.empty() ? format_rfc3339(started_wall_) : format_rfc3339(attempts.front().started);
  s.pid = slot(task).last_pid;
  s.pid_start_time = 0;
  s.restarts = static_cast<int>(rec.attempts.size()) - 1;
  if (slurm_) {
    s.pid = 0;
    if (!slot(task).slurm_job.empty()) s.slurm_job = slot(task).slurm_job;
    if (!slot(task).slurm_node.empty()) s.node = slot(task).slurm_node;
  }
  runner::JobEnd end;
  if (last.signal || last.exit_code >= 0) end.exit = runner::ExitInfo{last.exit_code, last.signal, false};
  end.timed_out = last.timed_out;
  end.stopped = rec.status == TaskStatus::Interrupted || rec.status == TaskStatus::Stopped;
  runner::record_ended(s, end, std::chrono::system_clock::now());
  save_state(s);
}

// What the reports need of an ended task, moved out of its slot: every task when a report
// was asked for or for a batch FILE; else (a stream) the first 50 and the ones that did not
// succeed (the summary lists those), the other successes only counted.
void BatchRunner::keep_for_report(std::size_t task, const runner::TaskRecord& rec) {
  auto& ended = slot(task);
  const bool success = rec.status == TaskStatus::Succeeded || rec.status == TaskStatus::Done;
  if (!keep_all_ && success && task >= kSummaryListsAll) {
    ++unkept_successes_;
    return;
  }
  ReportTask t;
  t.seq = task + 1;  // tasks are numbered in plan order, batch after batch
  t.name = ended.task.name;
  t.command = ended.task.cmd;
  t.status = std::string(runner::task_status_name(rec.status));
  t.reason = rec.reason;
  t.attempts = std::move(ended.attempts);
  ended_.emplace_back(rec.batch, std::move(t));
}

void BatchRunner::save_state(const runner::RunState& s, Duration delay) { disk_->submit(s, delay); }

void BatchRunner::on_log(std::string_view message) {
  const std::string text(message);
  if (events_) events_->info("{}", text);
  to_batch_log(text + "\n");
  report_events_.push_back(text);
  show(text);
}

void BatchRunner::show(const std::string& message) {
  if (quiet()) return;
  if (view_ && view_->live()) {
    view_->message(message);
  } else {
    info(message);
  }
}

void BatchRunner::kill(std::size_t task) {
  auto it = attempts_.find(task);
  if (it == attempts_.end()) return;
  Attempt& a = *it->second;
  a.killed = true;
  std::optional<int> sig = SIGTERM;
  std::optional<Duration> grace = kKillGrace;
  if (auto r = stop_requests_.find(task); r != stop_requests_.end()) {
    // `batman stop --signal S --grace G` on this task (unset: SIGTERM, then SIGKILL after 1 s).
    if (r->second.signal) sig = r->second.signal;
    if (r->second.grace) grace = r->second.grace;
  }
  if (auto* j = a.current(); j && !j->process().settled()) {
    j->process().stop(sig, grace);
    return;
  }
  if (slurm_) slurm_->cancel(task);
}

void BatchRunner::set_timer(std::optional<TimePoint> deadline) {
  if (scheduler_ && scheduler_->finished()) loop_->stop();
  if (deadline == timer_deadline_ && timer_) return;
  if (timer_) loop_->cancel_timer(*timer_);
  timer_.reset();
  timer_deadline_ = deadline;
  if (deadline) {
    timer_ = loop_->add_timer(*deadline, [this] {
      timer_.reset();
      timer_deadline_.reset();
      scheduler_->on_timer();
    });
  }
}

// Every signal batman handles comes here (signalfd). Requests that concern one task can be
// told apart here (sigqueue's value, info.ssi_int) before falling through to the batch-wide
// interrupt.
void BatchRunner::handle_signal(const signalfd_siginfo& info) {
  interrupt(static_cast<int>(info.ssi_signo));
}

void BatchRunner::interrupt(int sig) {
  if (interrupt_signal_ == 0) {
    interrupt_signal_ = sig;
    scheduler_->interrupt("interrupted by SIG" + signal_name(sig));
    schedule_pull();  // stdin not read yet is not run
    return;
  }
  // A second signal does not wait for the grace period.
  for (auto& [task, a] : attempts_)
    if (auto* j = a->current()) j->signal_tree(SIGKILL);
}

runner::RunState BatchRunner::batch_record() const {
  runner::LaunchSpec spec;
  spec.project = tree_.name;
  spec.run_id = run_id_;
  spec.command = command_line_;
  std::error_code ec;
  spec.cwd = std::filesystem::current_path(ec).string();
  spec.tier = tier_.tier;
  spec.profile = profile_;
  spec.limits = profile_.limits;
  auto s = runner::state_record(spec, "batch", tier_.skipped, "logs/" + run_id_ + ".log");
  s.isolation.unenforced = unenforced_;
  // Its "job" is batman itself: `batman stop PROJECT RUN-ID` stops the whole batch.
  runner::record_started(s, ::getpid(), started_wall_);
  s.started_at = format_rfc3339(started_wall_);
  return s;
}

// Run from the event loop (EventLoop::defer), never inside the scheduler: add_task may start
// tasks at once. Stdin is read only while the queue has room, at most 64 KiB at a time and
// only once the loop says it is readable (a pipe, a terminal, a socket: epoll), so a slow
// writer never blocks the loop; what epoll cannot watch (a regular file, /dev/null) is read
// when wanted.
void BatchRunner::pull_input() {
  pull_scheduled_ = false;
  if (input_) {
    while (!slots_.empty() && slots_.front().ended) {
      slots_.pop_front();
      ++first_slot_;
    }
  }
  if (!input_ || input_->closed) return;
  while (scheduler_->wants_input()) {
    if (input_->lines.has_command()) {
      add_command();
    } else if (input_->eof) {
      close_input();
      return;
    } else if (input_->pollable) {
      if (!input_->watched) {
        auto watched = loop_->watch(0, EPOLLIN, [this](std::uint32_t) {
          if (read_input()) pull_input();
        });
        if (!watched) {
          input_failed("<stdin>: " + watched.error().message);
          return;
        }
        input_->watched = true;
      }
      return;
    } else if (!read_input()) {
      return;
    }
  }
  if (scheduler_->halted()) {  // interrupted or halted: the rest of stdin is not run
    close_input();
    return;
  }
  // The queue is full: stdin waits (a level-triggered watch would wake the loop for nothing).
  if (input_->watched) {
    loop_->unwatch(0);
    input_->watched = false;
  }
}

void BatchRunner::schedule_pull() {
  if (!input_ || pull_scheduled_) return;
  pull_scheduled_ = true;
  loop_->defer([this] { pull_input(); });
}

// One read of at most 64 KiB; false when nothing came (EAGAIN) or the input is closed.
bool BatchRunner::read_input() {
  if (input_->closed || input_->eof) return false;
  auto read = read_stdin(*input_);
  if (!read) input_failed(read.error().message);
  return read && *read;
}

void BatchRunner::add_command() {
  TaskSlot added;
  added.task.cmd = input_->lines.take();
  added.task.name = std::to_string(input_->lines.taken());
  added.task.cwd = input_->cwd;
  runner::TaskPlan plan = input_->plan;
  plan.name = added.task.name;
  if (slurm_setup_) added.slurm_timeout = std::exchange(plan.timeout, Duration::zero());
  slots_.push_back(std::move(added));
  scheduler_->add_task(std::move(plan));  // may start it at once
}

void BatchRunner::close_input() {
  if (input_->watched) loop_->unwatch(0);
  input_->watched = false;
  input_->closed = true;
  scheduler_->end_input();
}

// A line batch - cannot take (too long, one too many) or stdin unreadable: what was read
// before it runs; nothing after it; the run ends 125.
void BatchRunner::input_failed(const std::string& message) {
  input_error_ = message;
  error(message + ": the commands before it run, none after it");
  to_batch_log(message + "\n");
  report_events_.push_back(message);
  input_->eof = true;  // nothing more is read; the commands already split off still run
  if (input_->watched) loop_->unwatch(0);
  input_->watched = false;
  schedule_pull();
}

void BatchRunner::to_batch_log(std::string_view text) {
  if (batch_log_) (void)write_all(batch_log_.get(), text);
}

int BatchRunner::exit_code() const {
  if (interrupt_signal_) return 128 + interrupt_signal_;
  if (!input_error_.empty()) return kExitBatmanError;
  return scheduler_->all_succeeded() ? 0 : 1;
}

// For each failed task: its log's path, and its last lines (--tail).
std::string BatchRunner::failure_tails(const Report& report) const {
  std::string out;
  std::size_t shown = 0, more = 0;
  for (const auto& b : report.batches) {
    for (const auto& t : b.tasks) {
      if (t.status != "failed" || t.attempts.empty()) continue;
      if (shown == kTailedTasks) {
        ++more;
        continue;
      }
      ++shown;
      const auto& log = t.attempts.back().log;  // "logs/<name>"
      out += "task " + t.name + " failed (" + t.reason + "): " + tree_.dir + "/" + log + "\n";
      const auto tail = tail_of(tree_.logs_fd.get(), log.substr(5), tail_lines_);
      if (tail.empty()) continue;
      std::size_t from = 0;
      while (from <= tail.size()) {
        auto nl = tail.find('\n', from);
        if (nl == std::string::npos) nl = tail.size();
        out += "  | " + printable(std::string_view(tail).substr(from, nl - from)) + "\n";
        from = nl + 1;
      }
    }
  }
  if (more) out += "(and " + std::to_string(more) + " more failed tasks: see their logs)\n";
  return out;
}

// `batman stop PROJECT TASK` (common/signals.hpp): stop the one task whose state file the
// request names, and nothing else; a request that matches no task, or several, is ignored
// (and logged), and the sender, seeing the task still live, says it was not stopped.
void BatchRunner::handle_task_stop(const signalfd_siginfo& info) {
  if (info.ssi_code != SI_QUEUE) return;
  const TaskStopRequest request = decode_task_stop(info.ssi_ptr);
  std::optional<std::size_t> found;
  std::size_t matches = 0;
  for (std::size_t task = first_slot_; task < task_count(); ++task) {
    if (slot(task).ended) continue;
    if (task_selector(record_of(task, "").run_id) != request.selector) continue;
    found = task;
    ++matches;
  }
  if (matches != 1) {
    on_log("stop request from pid " + std::to_string(info.ssi_pid) + " matches " + std::to_string(matches) +
           " tasks: ignored");
    return;
  }
  stop_requests_[*found] = request.stop;
  if (!scheduler_->stop_task(*found, "stopped by batman stop (pid " + std::to_string(info.ssi_pid) + ")"))
    stop_requests_.erase(*found);
}

ViewCounts BatchRunner::counts() const {
  ViewCounts c;
  c.total = task_count();
  c.queued = scheduler_->queued();
  c.running = scheduler_->running();
  c.succeeded = succeeded_;
  c.failed = failed_;
  c.skipped = skipped_;
  c.interrupted = interrupted_tasks_;
  c.stopped = stopped_;
  c.done = done_;
  c.concurrency = scheduler_->concurrency();
  return c;
}

void BatchRunner::tick_view() {
  const auto elapsed = loop_->now() - started_;
  if (view_->live()) {
    std::vector<ViewTask> running;
    for (const auto& [task, a] : attempts_)
      running.push_back(ViewTask{slot(task).task.name, a->number, loop_->now() - a->started,
                                 a->log ? a->log->last_line() : ""});
    view_->draw(counts(), running, elapsed);
    loop_->add_timer_after(std::chrono::milliseconds(250), [this] { tick_view(); });
  } else {
    if (!quiet()) info(stats_line(counts(), elapsed));
    loop_->add_timer_after(std::chrono::seconds(5), [this] { tick_view(); });
  }
}

Result<void> BatchRunner::open_reports() {
  for (auto [path, fd, flag] : {std::tuple{&options_.report, &report_fd_, "--report"},
                                std::tuple{&options_.junit, &junit_fd_, "--junit"},
                                std::tuple{&options_.joblog, &joblog_fd_, "--joblog"}}) {
    if (path->empty()) continue;
    if (*path == "-") {  // stdout, as for every GNU tool
      const int f = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
      if (f < 0) return sys_error(std::string(flag) + " -: stdout");
      fd->reset(f);
      stdout_taken_ = true;
      continue;
    }
    const int f = ::open(path->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    if (f < 0) return sys_error(std::string(flag) + " " + *path);
    fd->reset(f);
  }
  return {};
}

Report BatchRunner::build_report() {
  Report report;
  report.project = tree_.name;
  report.run_id = run_id_;
  report.isolation = std::string(isolation::tier_name(tier_.tier));
  report.started = started_wall_;
  report.elapsed = loop_->now() - started_;
  report.interrupted = interrupt_signal_ != 0;
  report.events = report_events_;
  report.succeeded_not_listed = unkept_successes_;
  for (const auto& name : batch_names_) report.batches.push_back(ReportBatch{name, {}});
  // In plan order: tasks end in any order.
  std::sort(ended_.begin(), ended_.end(), [](const auto& a, const auto& b) { return a.second.seq < b.second.seq; });
  for (auto& [batch, t] : ended_) {
    if ((t.status == "failed" || t.status == "interrupted" || t.status == "stopped") && !t.attempts.empty())
      t.log_tail = tail_of(tree_.logs_fd.get(), t.attempts.back().log.substr(5), kJunitTailLines);
    report.batches[batch].tasks.push_back(std::move(t));
  }
  ended_.clear();
  return report;
}

void BatchRunner::write_reports(const Report& report) {
  // Each report is made only when asked for: a thousand tasks' JSON is not free.
  auto put = [&](const UniqueFd& fd, const std::string& path, std::string (*make)(const Report&)) {
    if (!fd) return;
    if (auto w = write_all(fd.get(), make(report)); !w)
      error("cannot write " + (path == "-" ? std::string("the report to stdout") : path) + ": " + w.error().message);
  };
  put(report_fd_, options_.report, report_json);
  put(junit_fd_, options_.junit, report_junit);
  put(joblog_fd_, options_.joblog, report_joblog);
}

Result<int> BatchRunner::execute() {
  base_env_ = runner::current_environment();
  if (auto ok = open_reports(); !ok) return std::unexpected(ok.error());
  tail_lines_ = static_cast<std::size_t>(std::stoul(options_.tail));  // checked by command_batch
  if (options_.output == "prefixed") output_ = OutputMode::Prefixed;
  else if (options_.output == "none") output_ = OutputMode::None;
  auto take_view_off = [this] {
    if (view_ && view_->live()) view_->clear();
  };
  out_ = std::make_unique<TerminalSink>(stdout_taken_ ? 2 : 1, take_view_off);
  err_ = std::make_unique<TerminalSink>(2, take_view_off);
  devnull_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull_) return sys_error("open /dev/null");

  auto loop = runner::EventLoop::create();
  if (!loop) return std::unexpected(loop.error());
  loop_ = std::move(*loop);
  jobs_ = std::make_unique<runner::JobSet>(*loop_, *this);
  ::signal(SIGPIPE, SIG_IGN);
  if (auto h = loop_->handle_signals({SIGINT, SIGTERM, SIGHUP, task_stop_signal()},
                                     [this](const signalfd_siginfo& i) {
                                       if (static_cast<int>(i.ssi_signo) == task_stop_signal()) handle_task_stop(i);
                                       else handle_signal(i);
                                     });
      !h)
    return std::unexpected(h.error());
  if (auto ev = runner::open_event_log(tree_.logs_fd.get(), "events.log", tree_.name, tree_.logs_path() + "/events.log"))
    events_ = *ev;
  else
    info("warning: " + ev.error().message + "; this batch is not in the events log");
  // After the signals are blocked: the writer's thread inherits the mask.
  disk_ = std::make_unique<runner::StateWriter>(tree_.state_fd.get());

  if (slurm_setup_) {
    auto executor = slurm::Executor::create(*loop_, *this, slurm_setup_->config);
    if (!executor) return std::unexpected(executor.error());
    slurm_ = std::move(*executor);
    show("slurm: checking the nodes with a test job (batman at " + slurm_setup_->config.batman + ")");
    if (auto probed = slurm_->probe(); !probed) {
      slurm_->remove_directory();
      return std::unexpected(probed.error());
    }
  }

  const char* term = std::getenv("TERM");
  const bool live = !quiet() && ::isatty(1) && ::isatty(2) && !(term && std::string_view(term) == "dumb");
  view_ = std::make_unique<BatchView>(live, 2);


  started_ = loop_->now();
  started_wall_ = std::chrono::system_clock::now();
  const std::string tasks = input_ ? "commands from stdin"
                            : std::to_string(slots_.size()) + (slots_.size() == 1 ? " task" : " tasks");
  if (events_) events_->info("batch {} run {} started: {}", run_.project, run_id_, tasks);
  save_state(batch_record());
  show("run " + run_id_ + ": " + tasks + ", logs in " + tree_.logs_path() + "/" + run_id_ + ".*");
  SystemClock clock;
  const bool read_all_first = run_.plan.halt.percent;
  scheduler_ = std::make_unique<runner::Scheduler>(clock, *this, std::move(run_.plan));
  loop_->add_timer_after(view_->live() ? Duration(std::chrono::milliseconds(250)) : Duration(std::chrono::seconds(5)),
                         [this] { tick_view(); });
  if (input_ && read_all_first) {
    // --halt ...N%: a percentage of every task, as GNU parallel counts it: stdin is read to
    // its end before the first start.
    if (auto read = read_stdin_until_ready(*input_, true); !read) input_failed(read.error().message);
    while (input_->lines.has_command()) add_command();
    if (!input_->closed) close_input();
  }
  scheduler_->start();
  pull_input();
  if (!scheduler_->finished()) {
    if (auto r = loop_->run(); !r) return std::unexpected(r.error());
  }
  // Orphans of the tasks that escaped their sessions were reparented to us (subreaper).
  for (pid_t orphan : isolation::children_of(::getpid())) ::kill(orphan, SIGKILL);
  if (slurm_) {
    slurm_->cancel_all();  // nothing, unless the loop ended early
    const std::string calls = "slurm: " + std::to_string(slurm_->sbatch_calls()) + " sbatch and " +
                              std::to_string(slurm_->squeue_calls()) + " squeue calls";
    if (scheduler_->all_succeeded()) {
      slurm_->remove_directory();
      on_log(calls);
    } else {
      on_log(calls + "; job scripts, manifests and Slurm's own output kept in " + slurm_->directory());
    }
  }

  view_->clear();
  const int code = exit_code();
  auto final_state = batch_record();
  runner::JobEnd end;
  end.exit = runner::ExitInfo{code, 0, false};
  end.stopped = interrupt_signal_ != 0;
  runner::record_ended(final_state, end, std::chrono::system_clock::now());
  save_state(final_state);
  for (const auto& e : disk_->flush()) error(e.message);
  const auto report = build_report();
  write_reports(report);
  // The failed tasks' logs first: the totals stay the last line.
  const auto summary = failure_tails(report) + summary_table(report, kSummaryListsAll);
  to_batch_log(summary);
  if (!quiet()) (void)write_all(2, summary);
  if (events_)
    events_->info("batch {} run {} ended: {} succeeded, {} failed, {} skipped, {} interrupted, {} stopped, {} done earlier",
                  run_.project, run_id_, succeeded_, failed_, skipped_, interrupted_tasks_, stopped_, done_);
  return code;
}

// Each task's working directory made absolute (`cwd` is relative to batman's own); returns
// batman's own, which is every `batch -` line's.
Result<std::string> absolute_working_directories(BatchRun& run, const std::string& source) {
  std::error_code ec;
  const auto here = std::filesystem::current_path(ec);
  if (ec) return fail("cannot read the current directory: " + ec.message());
  auto text_of = [](const std::filesystem::path& dir) {
    auto text = dir.string();
    if (text.size() > 1 && text.back() == '/') text.pop_back();
    return text;
  };
  for (auto& t : run.tasks) {
    auto dir = t.cwd.empty() ? here : (here / t.cwd).lexically_normal();
    if (!std::filesystem::is_directory(dir, ec))
      return fail(source + ": key 'tasks." + t.name + ".cwd': " + dir.string() + " is not a directory");
    t.cwd = text_of(dir);
  }
  return text_of(here);
}


// Flags as Limits; the flag's name is in every error.
Result<Limits> limits_from_flags(const BatchOptions& o) {
  Limits l;
  if (!o.concurrency.empty()) {
    auto n = parse_integer(o.concurrency, "--max-concurrency", 1, 100000);
    if (!n) return std::unexpected(n.error());
    l.max_concurrency = static_cast<int>(*n);
  }
  if (!o.rate_limit.empty()) {
    char* end = nullptr;
    const double r = std::strtod(o.rate_limit.c_str(), &end);
    if (end == o.rate_limit.c_str() || *end || !(r >= 0) || r > 1e9)
      return fail("--rate-limit '" + o.rate_limit + "': expected starts per second (0 = no limit)");
    l.rate_limit = r;
  }
  if (!o.timeout.empty()) {
    auto t = parse_duration(o.timeout);
    if (!t) return std::unexpected(t.error().wrap("--timeout"));
    l.timeout = *t;
  }
  if (!o.retries.empty()) {
    auto n = parse_integer(o.retries, "--retries", 0, 1000);
    if (!n) return std::unexpected(n.error());
    l.retries = static_cast<int>(*n);
  }
  return l;
}

// The state file's command of a batch run: "batman batch FILE [--resume|--resume-failed]
// [TASK...]" with FILE absolute, so that --resume can find the runs of the same file.
std::string batch_command_line(const BatchOptions& o) {
  if (o.file == "-") return "batman batch -";
  std::error_code ec;
  auto file = std::filesystem::absolute(o.file, ec).lexically_normal().string();
  std::string line = "batman batch " + (ec ? o.file : file);
  if (o.resume_failed) line += " --resume-failed";
  else if (o.resume) line += " --resume";
  if (o.no_deps) line += " --no-deps";
  for (const auto& t : o.tasks) line += " " + t;
  return line;
}

// --resume / --resume-failed: each task's outcome in the latest runs of the same batch file
// (the latest one, and the ones before it as far back as the last run that was not itself a
// resume, whose tasks it did not run), kept in the plan instead of running the task again.
// Succeeded stays done; failed or timed out stays failed with --resume; a task killed, lost
// (batman was killed), never started, or whose command changed since, runs.
void carry_outcomes(const std::string& project, const std::string& command_line, bool resume_failed,
                    BatchRun& run) {
  const std::string file_part = command_line.substr(0, command_line.find(" --resume"));
  auto runs = load_runs(project);
  // A batch run's own record: kind batch, a run-id without a dot (its tasks' have one).
  std::vector<const runner::RunState*> batches;
  for (const auto& s : runs) {
    if (s.kind != "batch" || s.run_id.find('.') != std::string::npos) continue;
    const auto& c = s.command;
    if (c == file_part || (c.starts_with(file_part) && c[file_part.size()] == ' ')) batches.push_back(&s);
  }
  if (batches.empty()) {
    info("--resume: no earlier run of this batch file in project " + project + ": running every task");
    return;
  }
  std::map<std::string, std::pair<const runner::RunState*, std::string>> latest;  // task -> (state, run-id)
  for (auto it = batches.rbegin(); it != batches.rend(); ++it) {
    const auto& id = (*it)->run_id;
    for (const auto& s : runs) {
      if (!s.run_id.starts_with(id + ".") || s.kind != "batch") continue;
      latest.try_emplace(s.run_id.substr(id.size() + 1), &s, id);
    }
    if ((*it)->command.find(" --resume", file_part.size()) != file_part.size()) break;  // not a resume
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < run.tasks.size(); ++i) {
    const auto& task = run.tasks[i];
    auto found = latest.find(task.name);
    if (found == latest.end()) continue;
    const auto& [state, id] = found->second;
    if (state->command != task.cmd) {
      info("--resume: task " + task.name + " changed its command since run " + id + ": it runs");
      continue;
    }
    runner::TaskPlan::Carried carried;
    if (state->status == "succeeded") {
      carried = {true, "succeeded in run " + id};
    } else if (!resume_failed && (state->status == "failed" || state->status == "timeout")) {
      std::string how = state->status == "timeout" ? "timed out"
                        : state->signal                ? "killed by SIG" + signal_name(*state->signal)
                        : state->exit_code             ? "exit " + std::to_string(*state->exit_code)
                                                       : state->status;
      carried = {false, "failed in run " + id + " (" + how + "); --resume-failed runs it again"};
    } else {
      continue;
    }
    run.plan.tasks[i].carried = std::move(carried);
    ++kept;
  }
  info("--resume: " + std::to_string(kept) + " of " + std::to_string(run.tasks.size()) +
       " tasks keep their outcome from run " + batches.back()->run_id);
}

// --executor > BATMAN_EXECUTOR > the file's `defaults.executor` > local.
Result<std::string> choose_executor(const std::string& flag, const char* environment, const std::string& file) {
  std::string chosen = "local", from;
  if (!file.empty()) {
    chosen = file;
    from = "defaults.executor";
  }
  if (environment && *environment) {
    chosen = environment;
    from = "BATMAN_EXECUTOR";
  }
  if (!flag.empty()) {
    chosen = flag;
    from = "--executor";
  }
  if (chosen != "local" && chosen != "slurm") return fail(from + " '" + chosen + "': expected local or slurm");
  return chosen;
}

// The batman the nodes run: this one's `batman`, at the same path ($BATMAN_SLURM_BATMAN names
// another).
std::string slurm_batman() {
  if (const char* other = std::getenv("BATMAN_SLURM_BATMAN"); other && *other) return other;
  const std::string self = launcher_executable();
  return self.empty() ? std::string("batman") : self;
}

// Create logs/<run-id>.log for a new batch run: O_EXCL makes the run-id this run's alone.
Result<std::pair<std::string, UniqueFd>> new_batch_run(const ProjectTree& tree) {
  for (int tries = 0;; ++tries) {
    std::string id = new_run_id();
    const std::string name = id + ".log";
    auto fd = open_regular_at(tree.logs_fd.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0600,
                              tree.logs_path() + "/" + name);
    if (fd) return std::pair{std::move(id), std::move(*fd)};
    if (fd.error().code != EEXIST || tries == 100) return std::unexpected(fd.error().wrap("create the batch's log"));
  }
}

}  // namespace

int command_batch(const std::vector<std::string>& args) {
  BatchOptions o;
  CLI::App app{"Run many tasks with a concurrency limit, a rate limit, timeouts, retries and reports.",
               "batman batch"};
  app.set_help_flag("-h,--help", "show this help");
  app.add_option("FILE", o.file, "batch file (YAML), or - for one command per line on stdin")->required();
  app.add_option("TASK", o.tasks, "run only these tasks, as one batch");
  app.add_option("-j,--max-concurrency", o.concurrency, "tasks at once (default 3; batch -: the CPUs)");
  app.add_option("--rate-limit", o.rate_limit, "task starts per second, 0 = no limit (default 10; batch -: 0)");
  app.add_option("--timeout", o.timeout, "per-attempt timeout, e.g. 30s, 0 = none (default 30s; batch -: 0)");
  app.add_option("--retries", o.retries, "retries after a failed attempt (default 3; batch -: 0)");
  app.add_option("--halt", o.halt, "never, or soon|now,fail|success|done=N or N% (as GNU parallel)");
  app.add_option("--report", o.report, "write a JSON report to FILE");
  app.add_option("--junit", o.junit, "write JUnit XML to FILE");
  app.add_option("--joblog", o.joblog, "write GNU parallel's joblog to FILE");
  app.add_option("--isolation", o.isolation, "auto|namespaces|firejail|systemd|env");
  app.add_option("--profile", o.profile, "isolation profile: NAME or FILE (default ci)");
  app.add_option("--output", o.output,
                 "how tasks' output is shown: grouped (each task's as one block when it ends, the "
                 "default), prefixed (each line as it comes, after [task]) or none (logs only)");
  app.add_option("--tail", o.tail, "lines of each failed task's log in the summary (default 10, 0 = none)");
  app.add_flag("--resume", o.resume, "run only the tasks that did not finish in the last run of FILE");
  app.add_flag("--resume-failed", o.resume_failed, "as --resume, and run the failed ones again");
  app.add_flag("--no-deps", o.no_deps, "with TASK names: run only those, not what they need");
  app.add_flag("-q,--quiet", o.quiet, "only errors from batman");
  app.add_option("--executor", o.executor, "where tasks run: local (default) or slurm (also BATMAN_EXECUTOR)");
  app.add_option("--partition", o.partition, "slurm: sbatch --partition");
  app.add_option("--account", o.account, "slurm: sbatch --account");
  app.add_option("--qos", o.qos, "slurm: sbatch --qos");
  app.add_option("--slurm-opt", o.slurm_opts, "slurm: another sbatch option as NAME=VALUE (repeatable), e.g. mem=2G");
  app.add_option("--slurm-array-size", o.slurm_array_size,
                 "slurm: at most N attempts in one job array (default 1000; 1 = one sbatch per attempt)");
  if (auto rc = parse(app, args)) return *rc;
  set_quiet(o.quiet);
  if (o.output != "grouped" && o.output != "prefixed" && o.output != "none") {
    error("--output '" + o.output + "': expected grouped, prefixed or none");
    return kExitBatmanError;
  }
  if (auto n = parse_integer(o.tail, "--tail", 0, 100000); !n) {
    error(n.error().message);
    return kExitBatmanError;
  }
  if ((o.resume || o.resume_failed) && o.file == "-") {
    error("--resume: needs a batch FILE (a stdin batch has nothing to find its last run by)");
    return kExitBatmanError;
  }

  auto config_error = [](const Error& e) {
    error(e.message);
    return kExitBatmanError;
  };
  BatchFile file;
  std::optional<StdinInput> input;  // batch -: its lines become tasks as the queue drains
  if (o.file == "-") {
    if (!o.tasks.empty()) return config_error(Error{"batch -: task names only apply to a batch file", 0});
    // Every line's plan is the one a task of this shape resolves to (flags, environment,
    // stdin_defaults); the lines themselves are read later.
    file.source = "<stdin>";
    file.project = "batch";
    file.from_stdin = true;
    file.tasks.push_back(BatchTask{"1", "true", {}, {}, {}, {}});
    input.emplace();
    // A closed stdin is an empty one: the files batman opens next may take fd 0.
    if (::fcntl(0, F_GETFD) < 0) input->eof = true;
  } else {
    auto loaded = load_batch_file(o.file);
    if (!loaded) return config_error(loaded.error());
    file = std::move(*loaded);
  }
  auto flags = limits_from_flags(o);
  if (!flags) return config_error(flags.error());
  auto environment = limits_from_environment([](const char* n) { return std::getenv(n); });
  if (!environment) return config_error(environment.error());
  auto halt = runner::parse_halt(o.halt);
  if (!halt) return config_error(halt.error());
  auto executor = choose_executor(o.executor, std::getenv("BATMAN_EXECUTOR"), file.executor);
  if (!executor) return config_error(executor.error());
  auto sbatch_options = slurm::run_options(file.slurm_options, o.slurm_opts, o.partition, o.account, o.qos);
  if (!sbatch_options) return config_error(sbatch_options.error());
  auto array_size = parse_integer(o.slurm_array_size, "--slurm-array-size", 1, 100000);
  if (!array_size) return config_error(array_size.error());
  auto run = resolve_batch(file, o.tasks, *flags, *environment, o.no_deps);
  if (!run) return config_error(run.error());
  run->plan.halt = *halt;
  if (input) {
    input->plan = std::move(run->plan.tasks.front());
    run->plan.tasks.clear();
    run->plan.batches.front().tasks.clear();
    run->tasks.clear();
    run->plan.stream = true;
  }

  auto requested = isolation::parse_tier(o.isolation.empty() ? file.isolation : o.isolation);
  if (!requested) return config_error(requested.error().wrap("--isolation"));
  auto profile = isolation::load_profile_cached(o.profile.empty() ? file.profile : o.profile, batman_home());
  if (!profile) return config_error(profile.error());
  auto tier = isolation::choose_tier(*requested);
  if (!tier) return config_error(tier.error());
  auto here = absolute_working_directories(*run, file.source);
  if (!here) return config_error(here.error());
  auto tree = open_project(run->project, true);
  if (!tree) return config_error(tree.error());
  if (input) {
    input->cwd = std::move(*here);
    struct stat st{};
    // epoll takes pipes, sockets and terminals; a file (or /dev/null) is read when wanted.
    input->pollable = ::fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || ::isatty(0));
    // Until its first command: a first line too long is refused before any run exists.
    if (auto read = read_stdin_until_ready(*input, false); !read) return config_error(read.error());
  }
  if (input ? !input->lines.has_command() : run->tasks.empty()) {
    info("nothing to run: no tasks");
    return 0;
  }
  const auto command_line = batch_command_line(o);
  if (o.resume || o.resume_failed) carry_outcomes(run->project, command_line, o.resume_failed, *run);
  auto made = new_batch_run(*tree);
  if (!made) return config_error(made.error());
  info(tier->summary());

  const std::string run_id = made->first;
  std::optional<SlurmSetup> slurm;
  if (*executor == "slurm") {
    SlurmSetup setup;
    setup.config.home = tree->home;
    setup.config.project = tree->name;
    setup.config.project_dir = tree->dir;
    setup.config.run_id = run_id;
    setup.config.tier = o.isolation.empty() ? file.isolation : o.isolation;
    std::string profile_name = o.profile.empty() ? file.profile : o.profile;
    if (profile_name.find('/') != std::string::npos) {
      std::error_code ec;
      profile_name = std::filesystem::absolute(profile_name, ec).lexically_normal().string();
    }
    setup.config.profile = profile_name;
    setup.config.batman = slurm_batman();
    setup.config.options = std::move(*sbatch_options);
    setup.config.max_array = *array_size;
    slurm = std::move(setup);
  }
  UniqueFd logs_fd(::fcntl(tree->logs_fd.get(), F_DUPFD_CLOEXEC, 3));
  BatchRunner runner(std::move(o), std::move(*run), std::move(*tree), std::move(*tier), std::move(*profile),
                     std::move(made->first), std::move(made->second), command_line, std::move(slurm),
                     std::move(input));
  auto code = runner.execute();
  if (!code) {
    // It failed before anything ran (a report it could not open): no run is left behind.
    if (logs_fd) ::unlinkat(logs_fd.get(), (run_id + ".log").c_str(), 0);
    error(code.error().message);
    return kExitBatmanError;
  }
  return *code;
}

}  // namespace batman::cli
