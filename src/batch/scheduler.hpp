// The batch scheduler of SPEC §10: batches of tasks run under a concurrency limit, a
// sliding-window rate limit, timeouts, retries with backoff, `needs`, `--halt` and AIMD health.
// It owns no process and no time: a Launcher starts and kills attempts and arms its one timer,
// and a Clock tells the time, so unit tests drive it with fakes in microseconds.
#pragma once
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"

namespace batman::runner {

// Retry waits: initial × factor^(n-1) before retry n, capped at max. With jitter the wait is
// scaled by (1 - 0.25·u), u uniform in [0, 1): never longer than the schedule, so a user
// reading "initial 1s, factor 2" can count on it, yet retries of many tasks spread out.
struct Backoff {
  Duration initial = std::chrono::seconds(1);
  double factor = 2.0;
  Duration max = std::chrono::seconds(30);
  bool jitter = true;
};
// `retry` counts from 1; `unit` is the jitter draw in [0, 1) (ignored without jitter).
Duration backoff_delay(const Backoff& backoff, int retry, double unit);

// At most `rate` starts in any window of one second: (t - 1s, t]. A rate below one is one
// start per 1/rate seconds; a fraction above one is rounded down; 0 means no limit.
class RateLimiter {
 public:
  explicit RateLimiter(double rate = 0);
  // The earliest time, not before `now`, at which one more start is allowed.
  TimePoint next_allowed(TimePoint now);
  void record(TimePoint start);
  bool unlimited() const { return limit_ == 0; }

 private:
  std::size_t limit_ = 0;
  Duration window_ = std::chrono::seconds(1);
  std::deque<TimePoint> starts_;  // the starts still inside some window, oldest first
};

// AIMD over recent completions: above 50% failures halve the limit, below 10% add one,
// within [min, max]. "Recent" is every attempt that ended since the last evaluation.
struct HealthPolicy {
  Duration interval = std::chrono::seconds(5);
  bool adjust = true;
  int min_concurrency = 1;
  int max_concurrency = 10;
};

struct Adjustment {
  int from = 0;
  int to = 0;
  std::string reason;
};

class HealthMonitor {
 public:
  explicit HealthMonitor(HealthPolicy policy = {}) : policy_(policy) {}
  void record(bool failed);
  // Evaluate the completions recorded since the last call and forget them. nullopt when
  // there were none or the limit would not change.
  std::optional<Adjustment> evaluate(int current);
  const HealthPolicy& policy() const { return policy_; }

 private:
  HealthPolicy policy_;
  int completed_ = 0;
  int failed_ = 0;
};

// --halt as GNU parallel: never, or when (soon|now) a count or percentage of the tasks has
// failed, succeeded or finished. Legacy 0, 1, 2 mean never, soon,fail=1, now,fail=1.
struct HaltPolicy {
  enum class When { Never, Soon, Now } when = When::Never;
  enum class Why { Fail, Success, Done } why = Why::Fail;
  double threshold = 0;  // a count, or a percentage of the run's tasks when `percent`
  bool percent = false;
};
Result<HaltPolicy> parse_halt(std::string_view text);

struct TaskPlan {
  std::string name;
  Duration timeout{0};  // 0 = none
  int retries = 0;      // attempts = 1 + retries
  Backoff backoff;
  std::vector<std::size_t> needs;        // indices into SchedulePlan::tasks
  std::vector<std::string> unmet_needs;  // needed tasks that are not part of this run
  // --resume: what an earlier run of the same batch left, kept instead of running the task.
  // A success settles it as Done (its dependents may start), a failure as Skipped.
  struct Carried {
    bool succeeded = false;
    std::string reason;  // "succeeded in run R"
  };
  std::optional<Carried> carried;
};

struct BatchPlan {
  std::string name;
  std::vector<std::size_t> tasks;  // indices into SchedulePlan::tasks, in start order
  int max_concurrency = 3;
  double rate_limit = 10;
  std::size_t max_queue = 100;
  // A stream (batch -) waits for room in the queue instead of skipping what overflows.
  bool queue_overflow_waits = false;
};

struct SchedulePlan {
  std::vector<TaskPlan> tasks;
  std::vector<BatchPlan> batches;
  Duration between_batches{0};
  Duration between_tasks{0};
  HealthPolicy health;
  HaltPolicy halt;
  // A stream (`batch -`): one batch, whose tasks come through Scheduler::add_task, in order,
  // until Scheduler::end_input; it waits for room in its queue (queue_overflow_waits).
  bool stream = false;
};

// Interrupted: batman was told to stop (SIGINT, SIGTERM) while the task ran. Done: not run,
// it succeeded in the earlier run this one resumes (--resume); it counts as a success.
// Stopped: by `batman stop PROJECT TASK` (never retried; its dependents are skipped).
enum class TaskStatus { Pending, Queued, Running, Backoff, Succeeded, Failed, Skipped, Interrupted, Done, Stopped };
std::string_view task_status_name(TaskStatus s);  // "succeeded"

// How one attempt ended.
struct AttemptOutcome {
  int exit_code = -1;  // -1 when killed by a signal or not started
  int signal = 0;
  bool timed_out = false;
  bool check_failed = false;  // the health check before the start failed
  std::string error;          // the attempt could not be started
  bool succeeded() const {
    return exit_code == 0 && !timed_out && !check_failed && error.empty();
  }
  std::string describe() const;  // "exit 1", "killed by signal 9", "timed out", ...
};

struct AttemptRecord {
  int number = 0;  // 1-based
  TimePoint started{};
  TimePoint ended{};
  AttemptOutcome outcome;
};

struct TaskRecord {
  TaskStatus status = TaskStatus::Pending;
  std::size_t batch = 0;
  std::vector<AttemptRecord> attempts;
  std::string reason;  // why skipped or failed
  TimePoint retry_at{};
  std::optional<TimePoint> deadline;  // of the running attempt
  // Why kill() was sent: it decides how the attempt's end is told (timed out, killed by
  // --halt now, interrupted, stopped by `batman stop`).
  enum class Kill { None, Timeout, Halt, Interrupt, Stop } killing = Kill::None;
  bool admitted = false;              // in the queue (not the overflow backlog)
};

// What the scheduler asks of the world.
class Launcher {
 public:
  virtual ~Launcher() = default;
  // Start attempt `attempt` (1-based) of task `task`. The launcher reports its end through
  // Scheduler::on_exit. An error means it did not start and counts as a failed attempt.
  virtual Result<void> start(std::size_t task, int attempt) = 0;
  // Kill the whole tree of the task's running attempt; its end is still reported by on_exit.
  virtual void kill(std::size_t task) = 0;
  // Arm the scheduler's single timer (replacing the last one); nullopt disarms it. When it
  // fires the launcher calls Scheduler::on_timer.
  virtual void set_timer(std::optional<TimePoint> deadline) = 0;
  // Notifications, for views, logs and reports.
  virtual void on_batch_start(std::size_t /*batch*/) {}
  virtual void on_batch_end(std::size_t /*batch*/) {}
  virtual void on_attempt_end(std::size_t /*task*/, const AttemptRecord&) {}
  virtual void on_task_end(std::size_t /*task*/) {}  // reached succeeded, failed or skipped
  // Concurrency adjustments, retries, skips, halts: one line each, with its reason.
  virtual void on_log(std::string_view /*message*/) {}
};

class Scheduler {
 public:
  // `jitter` draws from [0, 1); the default uses a random engine.
  Scheduler(const Clock& clock, Launcher& launcher, SchedulePlan plan,
            std::function<double()> jitter = {});

  // Begin the first batch. Call once.
  void start();
  // The task's running attempt has ended.
  void on_exit(std::size_t task, AttemptOutcome outcome);
  // The timer armed through the launcher has expired (early or late calls are harmless).
  void on_timer();
  // Stop now (SIGINT/SIGTERM to batman): kill what runs (those tasks end `interrupted`, or
  // succeeded if they still exit 0), skip the rest. `why` is the reason they carry
  // ("interrupted by SIGINT").
  void interrupt(const std::string& why);
  bool interrupted() const { return !interrupt_reason_.empty(); }
  // `batman stop` on one task: a running attempt is killed (launcher kill) and the task ends
  // `stopped`; a waiting one (queued, blocked, in backoff) ends `stopped` at once. The rest
  // of the batch goes on; dependents are skipped. False when the task had already ended.
  bool stop_task(std::size_t task, const std::string& why);

  // A stream: one more task for its batch, after the ones before it; returns its index. Only
  // while wants_input() or before start(): the caller reads no more than the queue takes.
  std::size_t add_task(TaskPlan task);
  // A stream: no more tasks will come (end of input, or input that cannot be read further).
  void end_input();
  // A stream whose input is still open, not halted, with fewer than max_queue tasks waiting.
  bool wants_input() const;

  bool finished() const { return finished_; }
  // Tasks so far (a stream's grow with add_task).
  std::size_t task_count() const { return first_ + records_.size(); }
  // A task's record. A stream's settled tasks are forgotten, oldest first, at the next call
  // into the scheduler after the one in which they settled (their on_task_end has been told):
  // memory stays flat however many lines a stream brings. has_record says whether it is kept.
  bool has_record(std::size_t task) const { return task >= first_ && task < task_count(); }
  const TaskRecord& record(std::size_t task) const { return records_[task - first_]; }
  std::size_t current_batch() const { return batch_; }
  int concurrency() const { return limit_; }
  std::size_t running() const { return running_; }
  // Admitted tasks that wait to start (for needs, a slot, the rate, a retry), plus the
  // backlog of a stream.
  std::size_t queued() const;
  bool halted() const { return halting_; }
  // True when every task succeeded (this run, or in the run it resumes).
  bool all_succeeded() const;

 private:
  void pump();
  void pump_once();
  void begin_batch();
  void admit(std::size_t position);
  void admit_backlog();
  void enqueue(std::size_t task);
  void resolve_needs();
  void start_ready();
  void start_one(std::size_t task);
  void expire_timeouts(TimePoint now);
  void release_retries(TimePoint now);
  void finish_attempt(std::size_t task, AttemptOutcome outcome);
  void settle(std::size_t task, TaskStatus status, std::string reason);
  void check_halt();
  void halt(HaltPolicy::When when, const std::string& why);
  void settle_carried();
  void end_batch_if_done(TimePoint now);
  void arm_timer();
  bool terminal(std::size_t task) const;
  TaskRecord& entry(std::size_t task) { return records_[task - first_]; }
  const TaskRecord& entry(std::size_t task) const { return records_[task - first_]; }
  const TaskPlan& task_plan(std::size_t task) const { return tasks_[task - first_]; }
  // A stream's one batch holds the tasks 0, 1, 2... in order: its positions are task indices.
  std::size_t batch_size(std::size_t batch) const {
    return plan_.stream ? task_count() : plan_.batches[batch].tasks.size();
  }
  std::size_t task_at(std::size_t batch, std::size_t position) const {
    return plan_.stream ? position : plan_.batches[batch].tasks[position];
  }
  std::size_t position_of(std::size_t task) const { return plan_.stream ? task : position_[task]; }
  // A stream: drop the records of settled tasks from the front (see has_record).
  void forget_settled();

  const Clock& clock_;
  Launcher& launcher_;
  SchedulePlan plan_;
  std::function<double()> jitter_;
  // Per task, from task first_ on (a stream forgets settled ones from the front; a batch
  // FILE keeps all, first_ stays 0). plan_.tasks is moved into tasks_.
  std::deque<TaskPlan> tasks_;
  std::deque<TaskRecord> records_;
  std::size_t first_ = 0;
  bool input_open_ = false;  // a stream before end_input()

  std::size_t batch_ = 0;
  bool batch_active_ = false;
  bool started_ = false;
  bool finished_ = false;
  bool halting_ = false;
  bool in_pump_ = false;
  bool pump_again_ = false;
  std::string interrupt_reason_;  // set by interrupt()
  std::optional<TimePoint> next_batch_at_;
  int limit_ = 0;
  std::size_t running_ = 0;
  std::size_t backlog_next_ = 0;  // next position in the batch's tasks not yet admitted
  std::size_t waiting_ = 0;       // admitted, not running, not settled
  std::vector<std::size_t> position_;     // task -> its position in its batch
  std::vector<std::size_t> settled_in_batch_;
  std::set<std::size_t> ready_;           // positions of tasks that may start now
  std::vector<std::size_t> blocked_;      // tasks waiting for their needs
  std::vector<std::size_t> retrying_;     // tasks in backoff
  std::vector<std::size_t> running_tasks_;
  RateLimiter rate_;
  std::optional<TimePoint> last_start_;
  std::optional<TimePoint> start_wake_;  // when the rate or the spacing lets the next start
  HealthMonitor health_;
  std::optional<TimePoint> next_health_;
  std::size_t total_tasks_ = 0;
  std::size_t settled_tasks_ = 0;
  std::size_t failed_tasks_ = 0;
  std::size_t succeeded_tasks_ = 0;
  std::size_t done_tasks_ = 0;
};

}  // namespace batman::runner
