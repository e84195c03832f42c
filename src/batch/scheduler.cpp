// The batch scheduler: which task starts when, what a finished attempt leads to, and when a
// batch, a halt or the whole run ends. Time comes from the injected Clock only.
#include "src/batch/scheduler.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <random>

#include "common/duration.hpp"
#include "common/signals.hpp"

namespace batman::runner {

std::string_view task_status_name(TaskStatus s) {
  switch (s) {
    case TaskStatus::Pending: return "pending";
    case TaskStatus::Queued: return "queued";
    case TaskStatus::Running: return "running";
    case TaskStatus::Backoff: return "backoff";
    case TaskStatus::Succeeded: return "succeeded";
    case TaskStatus::Failed: return "failed";
    case TaskStatus::Skipped: return "skipped";
    case TaskStatus::Interrupted: return "interrupted";
    case TaskStatus::Done: return "done";
    case TaskStatus::Stopped: return "stopped";
  }
  return "unknown";
}

std::string AttemptOutcome::describe() const {
  if (!error.empty()) return "could not start: " + error;
  if (check_failed) return "health check failed";
  if (timed_out) return "timed out";
  if (signal) return "killed by signal " + std::to_string(signal) + " (SIG" + signal_name(signal) + ")";
  return "exit " + std::to_string(exit_code);
}

Result<HaltPolicy> parse_halt(std::string_view text) {
  auto bad = [&] {
    return fail("--halt '" + std::string(text) +
                "': expected never, or soon|now,fail|success|done=N or N% (as GNU parallel)");
  };
  using When = HaltPolicy::When;
  using Why = HaltPolicy::Why;
  if (text == "never" || text == "0") return HaltPolicy{};
  if (text == "1") return HaltPolicy{When::Soon, Why::Fail, 1, false};
  if (text == "2") return HaltPolicy{When::Now, Why::Fail, 1, false};
  if (text == "-1") return HaltPolicy{When::Soon, Why::Success, 1, false};
  if (text == "-2") return HaltPolicy{When::Now, Why::Success, 1, false};
  const auto comma = text.find(',');
  const auto equals = text.find('=');
  if (comma == std::string_view::npos || equals == std::string_view::npos || equals < comma)
    return bad();
  HaltPolicy halt;
  const auto when = text.substr(0, comma);
  const auto why = text.substr(comma + 1, equals - comma - 1);
  auto value = text.substr(equals + 1);
  if (when == "soon") halt.when = When::Soon;
  else if (when == "now") halt.when = When::Now;
  else return bad();
  if (why == "fail") halt.why = Why::Fail;
  else if (why == "success") halt.why = Why::Success;
  else if (why == "done") halt.why = Why::Done;
  else return bad();
  if (!value.empty() && value.back() == '%') {
    halt.percent = true;
    value.remove_suffix(1);
  }
  double number = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
  if (value.empty() || ec != std::errc{} || end != value.data() + value.size() || !(number > 0) ||
      (halt.percent && number > 100))
    return bad();
  halt.threshold = number;
  return halt;
}

Scheduler::Scheduler(const Clock& clock, Launcher& launcher, SchedulePlan plan,
                     std::function<double()> jitter)
    : clock_(clock),
      launcher_(launcher),
      plan_(std::move(plan)),
      jitter_(std::move(jitter)),
      tasks_(std::make_move_iterator(plan_.tasks.begin()), std::make_move_iterator(plan_.tasks.end())),
      records_(tasks_.size()),
      input_open_(plan_.stream),
      position_(plan_.stream ? 0 : tasks_.size(), 0),
      settled_in_batch_(plan_.batches.size(), 0),
      health_(plan_.health) {
  if (!jitter_) {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    jitter_ = [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
  }
  plan_.tasks.clear();
  if (plan_.stream) {
    // One batch of the tasks 0, 1, 2... (batch_size, task_at): the list itself is not kept.
    plan_.batches.resize(1);
    plan_.batches[0].tasks.clear();
    total_tasks_ = tasks_.size();
    return;
  }
  for (std::size_t b = 0; b < plan_.batches.size(); ++b) {
    const auto& tasks = plan_.batches[b].tasks;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      entry(tasks[i]).batch = b;
      position_[tasks[i]] = i;
    }
    total_tasks_ += tasks.size();
  }
}

std::size_t Scheduler::add_task(TaskPlan task) {
  forget_settled();
  const auto index = task_count();
  tasks_.push_back(std::move(task));
  records_.emplace_back();
  ++total_tasks_;
  pump();
  return index;
}

void Scheduler::end_input() {
  forget_settled();
  if (!input_open_) return;
  input_open_ = false;
  pump();
}

bool Scheduler::wants_input() const {
  if (!input_open_ || halting_ || finished_) return false;
  const std::size_t waiting = task_count() - settled_tasks_ - running_;  // admitted or not
  return waiting < plan_.batches[0].max_queue;
}

void Scheduler::forget_settled() {
  if (!plan_.stream) return;
  while (!records_.empty() && terminal(first_)) {
    records_.pop_front();
    tasks_.pop_front();
    ++first_;
  }
}

bool Scheduler::terminal(std::size_t task) const {
  const auto s = entry(task).status;
  return s == TaskStatus::Succeeded || s == TaskStatus::Failed || s == TaskStatus::Skipped ||
         s == TaskStatus::Interrupted || s == TaskStatus::Done || s == TaskStatus::Stopped;
}

std::size_t Scheduler::queued() const {
  std::size_t backlog = 0;
  if (batch_active_ && batch_ < plan_.batches.size())
    backlog = batch_size(batch_) - backlog_next_;
  return waiting_ + backlog;
}

bool Scheduler::all_succeeded() const {
  return succeeded_tasks_ + done_tasks_ == total_tasks_;
}

void Scheduler::start() {
  if (started_) return;
  started_ = true;
  settle_carried();
  if (plan_.batches.empty()) {
    finished_ = true;
    launcher_.set_timer(std::nullopt);
    return;
  }
  begin_batch();
  pump();
}

// Tasks whose outcome is kept from the run this one resumes are settled before anything
// starts, so that their dependents, in any batch, see them.
void Scheduler::settle_carried() {
  for (std::size_t task = first_; task < task_count(); ++task) {
    const auto& carried = task_plan(task).carried;
    if (!carried || terminal(task)) continue;
    settle(task, carried->succeeded ? TaskStatus::Done : TaskStatus::Skipped, carried->reason);
  }
}

void Scheduler::begin_batch() {
  const auto& batch = plan_.batches[batch_];
  batch_active_ = true;
  limit_ = std::max(1, batch.max_concurrency);
  rate_ = RateLimiter(batch.rate_limit);
  health_ = HealthMonitor(plan_.health);
  next_health_.reset();
  if (plan_.health.adjust && plan_.health.interval > Duration::zero())
    next_health_ = clock_.now() + plan_.health.interval;
  backlog_next_ = 0;
  ready_.clear();
  blocked_.clear();
  retrying_.clear();
  launcher_.on_batch_start(batch_);
  // Tasks settled before their batch began (skipped by a halt) stay settled.
  admit_backlog();
  if (!batch.queue_overflow_waits) {
    for (; backlog_next_ < batch_size(batch_); ++backlog_next_) {
      const auto task = task_at(batch_, backlog_next_);
      if (!terminal(task))
        settle(task, TaskStatus::Skipped,
               "queue full (max_queue " + std::to_string(batch.max_queue) + ")");
    }
  }
}

void Scheduler::admit_backlog() {
  const auto& batch = plan_.batches[batch_];
  while (backlog_next_ < batch_size(batch_) && waiting_ < batch.max_queue) {
    admit(backlog_next_++);
  }
}

void Scheduler::admit(std::size_t position) {
  const auto task = task_at(batch_, position);
  if (!has_record(task) || terminal(task)) return;  // settled (and maybe forgotten) meanwhile
  auto& rec = entry(task);
  rec.admitted = true;
  rec.status = TaskStatus::Queued;
  ++waiting_;
  enqueue(task);
}

void Scheduler::enqueue(std::size_t task) {
  const auto& plan = task_plan(task);
  if (plan.needs.empty() && plan.unmet_needs.empty()) {
    ready_.insert(position_of(task));
  } else {
    blocked_.push_back(task);
  }
}

void Scheduler::resolve_needs() {
  // A skip can unblock (by skipping) another task, so repeat until nothing changes.
  bool changed = true;
  while (changed) {
    changed = false;
    for (std::size_t i = 0; i < blocked_.size();) {
      const auto task = blocked_[i];
      const auto& plan = task_plan(task);
      std::string skip;
      bool waiting = false;
      if (!plan.unmet_needs.empty()) skip = "dependency " + plan.unmet_needs.front() + " is not part of this run";
      for (const auto need : plan.needs) {
        if (!skip.empty()) break;
        const auto& dep = entry(need);
        const auto& name = task_plan(need).name;
        if (dep.status == TaskStatus::Succeeded || dep.status == TaskStatus::Done) continue;
        if (dep.status == TaskStatus::Stopped) {
          skip = "dependency stopped: " + name;
        } else if (dep.status == TaskStatus::Failed || dep.status == TaskStatus::Skipped ||
                   dep.status == TaskStatus::Interrupted) {
          skip = "dependency failed: " + name;
        } else if (dep.batch > entry(task).batch) {
          skip = "dependency " + name + " runs in a later batch";
        } else {
          waiting = true;
        }
      }
      if (!skip.empty()) {
        blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
        settle(task, TaskStatus::Skipped, skip);
        changed = true;
      } else if (!waiting) {
        blocked_.erase(blocked_.begin() + static_cast<std::ptrdiff_t>(i));
        ready_.insert(position_of(task));
        changed = true;
      } else {
        ++i;
      }
    }
  }
}

void Scheduler::release_retries(TimePoint now) {
  for (std::size_t i = 0; i < retrying_.size();) {
    const auto task = retrying_[i];
    if (entry(task).retry_at <= now) {
      retrying_.erase(retrying_.begin() + static_cast<std::ptrdiff_t>(i));
      entry(task).status = TaskStatus::Queued;
      ready_.insert(position_of(task));
    } else {
      ++i;
    }
  }
}

void Scheduler::expire_timeouts(TimePoint now) {
  // A copy: a launcher may report the killed attempt's end before kill() returns.
  for (const auto task : std::vector<std::size_t>(running_tasks_)) {
    auto& rec = entry(task);
    if (rec.deadline && *rec.deadline <= now && rec.killing == TaskRecord::Kill::None) {
      rec.killing = TaskRecord::Kill::Timeout;
      launcher_.on_log("task " + task_plan(task).name + " attempt " +
                       std::to_string(rec.attempts.size()) + " timed out after " +
                       format_duration(task_plan(task).timeout) + ": killing its process tree");
      launcher_.kill(task);
    }
  }
}

void Scheduler::start_ready() {
  start_wake_.reset();
  while (!halting_ && running_ < static_cast<std::size_t>(limit_) && !ready_.empty()) {
    const auto now = clock_.now();
    auto allowed = rate_.next_allowed(now);
    if (last_start_ && plan_.between_tasks > Duration::zero())
      allowed = std::max(allowed, *last_start_ + plan_.between_tasks);
    if (allowed > now) {
      start_wake_ = allowed;
      return;
    }
    const auto position = *ready_.begin();
    ready_.erase(ready_.begin());
    start_one(task_at(batch_, position));
  }
}

void Scheduler::start_one(std::size_t task) {
  const auto now = clock_.now();
  auto& rec = entry(task);
  rec.status = TaskStatus::Running;
  --waiting_;
  ++running_;
  running_tasks_.push_back(task);
  rec.attempts.push_back(AttemptRecord{static_cast<int>(rec.attempts.size()) + 1, now, now, {}});
  rec.killing = TaskRecord::Kill::None;
  rec.deadline.reset();
  if (task_plan(task).timeout > Duration::zero()) rec.deadline = now + task_plan(task).timeout;
  rate_.record(now);
  last_start_ = now;
  if (auto started = launcher_.start(task, rec.attempts.back().number); !started) {
    AttemptOutcome outcome;
    outcome.error = started.error().message;
    finish_attempt(task, std::move(outcome));
  }
}

void Scheduler::on_exit(std::size_t task, AttemptOutcome outcome) {
  forget_settled();
  if (!has_record(task) || entry(task).status != TaskStatus::Running) return;
  finish_attempt(task, std::move(outcome));
  pump();
}

void Scheduler::finish_attempt(std::size_t task, AttemptOutcome outcome) {
  auto& rec = entry(task);
  const auto& plan = task_plan(task);
  const auto now = clock_.now();
  if (rec.killing == TaskRecord::Kill::Timeout) outcome.timed_out = true;
  const bool halted = rec.killing == TaskRecord::Kill::Halt;
  const bool interrupted = rec.killing == TaskRecord::Kill::Interrupt;
  const bool stopped = rec.killing == TaskRecord::Kill::Stop;
  rec.killing = TaskRecord::Kill::None;
  rec.deadline.reset();
  --running_;
  running_tasks_.erase(std::find(running_tasks_.begin(), running_tasks_.end(), task));
  auto& attempt = rec.attempts.back();
  attempt.ended = now;
  attempt.outcome = std::move(outcome);
  const bool ok = attempt.outcome.succeeded();
  health_.record(!ok);
  launcher_.on_attempt_end(task, attempt);
  const auto what = attempt.outcome.describe();
  if (stopped) {
    settle(task, TaskStatus::Stopped, rec.reason + " (" + what + ")");
  } else if (ok) {
    settle(task, TaskStatus::Succeeded, "");
  } else if (interrupted) {
    settle(task, TaskStatus::Interrupted, interrupt_reason_ + " (" + what + ")");
  } else if (halted) {
    settle(task, TaskStatus::Failed, "killed by --halt now (" + what + ")");
  } else if (!halting_ && attempt.number <= plan.retries) {
    const auto wait = backoff_delay(plan.backoff, attempt.number, jitter_());
    rec.status = TaskStatus::Backoff;
    rec.retry_at = now + wait;
    ++waiting_;
    retrying_.push_back(task);
    launcher_.on_log("task " + plan.name + " attempt " + std::to_string(attempt.number) + " " +
                     what + "; retry " + std::to_string(attempt.number) + " of " +
                     std::to_string(plan.retries) + " in " + format_duration(wait));
  } else {
    std::string reason = what;
    if (attempt.number > 1) reason += " (after " + std::to_string(attempt.number) + " attempts)";
    settle(task, TaskStatus::Failed, std::move(reason));
  }
}

void Scheduler::settle(std::size_t task, TaskStatus status, std::string reason) {
  auto& rec = entry(task);
  if (rec.status == TaskStatus::Queued || rec.status == TaskStatus::Backoff) --waiting_;
  rec.status = status;
  rec.reason = std::move(reason);
  ++settled_in_batch_[rec.batch];
  ++settled_tasks_;
  if (status == TaskStatus::Failed) ++failed_tasks_;
  if (status == TaskStatus::Succeeded) ++succeeded_tasks_;
  if (status == TaskStatus::Done) ++done_tasks_;
  if (status == TaskStatus::Skipped)
    launcher_.on_log("task " + task_plan(task).name + " skipped: " + rec.reason);
  launcher_.on_task_end(task);
  check_halt();
}

void Scheduler::check_halt() {
  const auto& h = plan_.halt;
  if (h.when == HaltPolicy::When::Never || halting_) return;
  std::size_t count = 0;
  const char* what = "";
  switch (h.why) {
    case HaltPolicy::Why::Fail: count = failed_tasks_; what = "failed"; break;
    case HaltPolicy::Why::Success: count = succeeded_tasks_; what = "succeeded"; break;
    case HaltPolicy::Why::Done: count = failed_tasks_ + succeeded_tasks_; what = "finished"; break;
  }
  const bool reached = h.percent ? static_cast<double>(count) * 100.0 >= h.threshold * static_cast<double>(total_tasks_)
                                 : static_cast<double>(count) >= h.threshold;
  if (!reached) return;
  const bool now = h.when == HaltPolicy::When::Now;
  std::string threshold = std::to_string(static_cast<long long>(h.threshold));
  if (h.threshold != static_cast<double>(static_cast<long long>(h.threshold)))
    threshold = std::to_string(h.threshold);
  halt(h.when, std::string("halting ") + (now ? "now" : "soon") + ": " + std::to_string(count) +
                   " of " + std::to_string(total_tasks_) + " tasks " + what + " (--halt " +
                   (now ? "now," : "soon,") +
                   (h.why == HaltPolicy::Why::Fail ? "fail=" : h.why == HaltPolicy::Why::Success ? "success=" : "done=") +
                   threshold + (h.percent ? "%" : "") + ")");
}

void Scheduler::halt(HaltPolicy::When when, const std::string& why) {
  halting_ = true;
  launcher_.on_log(why);
  // Nothing new starts: every task that is not running or settled is skipped, in every batch.
  ready_.clear();
  blocked_.clear();
  retrying_.clear();
  const bool interrupting = !interrupt_reason_.empty();
  input_open_ = false;  // a stream's lines not yet read are not run
  for (std::size_t task = first_; task < task_count(); ++task) {
    const auto s = entry(task).status;
    if (interrupting && s == TaskStatus::Backoff)
      settle(task, TaskStatus::Interrupted, interrupt_reason_ + " while waiting to retry");
    else if (s == TaskStatus::Pending || s == TaskStatus::Queued || s == TaskStatus::Backoff)
      settle(task, TaskStatus::Skipped, interrupting ? interrupt_reason_ + " before it started" : "halted");
  }
  if (when == HaltPolicy::When::Now) {
    const auto why_kill = interrupting ? TaskRecord::Kill::Interrupt : TaskRecord::Kill::Halt;
    for (const auto task : std::vector<std::size_t>(running_tasks_)) {
      auto& rec = entry(task);
      // A timed-out attempt already being killed is told as interrupted or halted from now.
      const bool asked = rec.killing != TaskRecord::Kill::None;
      rec.killing = why_kill;
      if (!asked) launcher_.kill(task);
    }
  }
  if (batch_active_) backlog_next_ = batch_size(batch_);
}

void Scheduler::interrupt(const std::string& why) {
  forget_settled();
  if (finished_ || !interrupt_reason_.empty()) return;
  interrupt_reason_ = why;
  halt(HaltPolicy::When::Now, why + ": stopping running tasks, skipping the rest");
  pump();
}

bool Scheduler::stop_task(std::size_t task, const std::string& why) {
  forget_settled();
  if (!has_record(task) || finished_) return false;
  auto& rec = entry(task);
  switch (rec.status) {
    case TaskStatus::Running:
      if (rec.killing == TaskRecord::Kill::Stop) return true;
      rec.reason = why;
      rec.killing = TaskRecord::Kill::Stop;
      launcher_.on_log("task " + task_plan(task).name + ": " + why + ": killing its process tree");
      launcher_.kill(task);
      break;
    case TaskStatus::Pending:
    case TaskStatus::Queued:
    case TaskStatus::Backoff: {
      const auto drop = [task](std::vector<std::size_t>& v) { v.erase(std::remove(v.begin(), v.end(), task), v.end()); };
      drop(blocked_);
      drop(retrying_);
      if (rec.batch == batch_ && batch_active_) ready_.erase(position_of(task));
      launcher_.on_log("task " + task_plan(task).name + ": " + why);
      settle(task, TaskStatus::Stopped, why);
      break;
    }
    default:
      return false;
  }
  pump();
  return true;
}

void Scheduler::on_timer() {
  forget_settled();
  pump();
}

void Scheduler::pump() {
  if (in_pump_) {
    pump_again_ = true;
    return;
  }
  in_pump_ = true;
  do {
    pump_again_ = false;
    pump_once();
  } while (pump_again_ && !finished_);
  in_pump_ = false;
  arm_timer();
}

void Scheduler::pump_once() {
  if (!started_ || finished_) return;
  const auto now = clock_.now();
  if (!batch_active_) {
    if (halting_) {
      finished_ = true;
      return;
    }
    if (!next_batch_at_ || now < *next_batch_at_) return;
    next_batch_at_.reset();
    ++batch_;
    begin_batch();
  }
  expire_timeouts(now);
  release_retries(now);
  if (next_health_ && now >= *next_health_) {
    if (auto adjustment = health_.evaluate(limit_)) {
      limit_ = adjustment->to;
      launcher_.on_log(adjustment->reason);
    }
    next_health_ = now + plan_.health.interval;
  }
  if (!halting_) admit_backlog();
  resolve_needs();
  start_ready();
  // Needs that can never be met (a cycle the config check missed) must not hang the run.
  if (running_ == 0 && ready_.empty() && retrying_.empty() && !blocked_.empty()) {
    for (const auto task : std::vector<std::size_t>(blocked_))
      settle(task, TaskStatus::Skipped, "dependency cycle");
    blocked_.clear();
  }
  end_batch_if_done(now);
}

void Scheduler::end_batch_if_done(TimePoint now) {
  if (!batch_active_ || settled_in_batch_[batch_] < batch_size(batch_) || input_open_) return;
  batch_active_ = false;
  next_health_.reset();
  launcher_.on_batch_end(batch_);
  if (halting_ || batch_ + 1 >= plan_.batches.size()) {
    finished_ = true;
    return;
  }
  next_batch_at_ = now + plan_.between_batches;
  if (plan_.between_batches > Duration::zero())
    launcher_.on_log("batch " + plan_.batches[batch_].name + " done; next batch in " +
                     format_duration(plan_.between_batches));
  pump_again_ = true;
}

void Scheduler::arm_timer() {
  if (finished_) {
    launcher_.set_timer(std::nullopt);
    return;
  }
  std::optional<TimePoint> wake;
  auto consider = [&](TimePoint t) {
    if (!wake || t < *wake) wake = t;
  };
  if (!batch_active_) {
    if (next_batch_at_) consider(*next_batch_at_);
  } else {
    if (start_wake_ && !ready_.empty() && running_ < static_cast<std::size_t>(limit_))
      consider(*start_wake_);
    for (const auto task : retrying_) consider(entry(task).retry_at);
    for (const auto task : running_tasks_) {
      const auto& rec = entry(task);
      if (rec.deadline && rec.killing == TaskRecord::Kill::None) consider(*rec.deadline);
    }
    if (next_health_) consider(*next_health_);
  }
  launcher_.set_timer(wake);
}

}  // namespace batman::runner
