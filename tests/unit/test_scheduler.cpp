// Batch scheduler tests: a simulated world (fake clock, fake tasks with scripted durations and
// outcomes) checks limits, the rate window, backoff, timeouts, needs, the queue and --halt.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "src/batch/scheduler.hpp"

namespace batman::runner {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// How one scripted attempt behaves: how long it runs and how it ends.
struct Script {
  Duration duration = milliseconds(100);
  int exit_code = 0;
};

class World final : public Launcher {
 public:
  // script(task, attempt) decides each attempt; the default succeeds after 100ms.
  std::function<Script(std::size_t, int)> script = [](std::size_t, int) { return Script{}; };
  std::function<Result<void>(std::size_t, int)> refuse;  // start errors

  FakeClock clock;
  Scheduler* scheduler = nullptr;
  std::optional<TimePoint> timer;
  std::map<std::size_t, std::pair<TimePoint, int>> running;  // task -> (end, exit code)
  std::size_t most_running = 0;
  std::vector<std::pair<std::size_t, TimePoint>> starts;      // (task, when)
  std::vector<std::size_t> kills;
  std::vector<std::string> log;
  std::vector<std::size_t> batch_starts, batch_ends;

  TimePoint t0() const { return TimePoint{}; }
  double at(TimePoint t) const { return std::chrono::duration<double>(t - t0()).count(); }

  Result<void> start(std::size_t task, int attempt) override {
    if (refuse) {
      if (auto r = refuse(task, attempt); !r) return r;
    }
    const auto s = script(task, attempt);
    running[task] = {clock.now() + s.duration, s.exit_code};
    starts.emplace_back(task, clock.now());
    most_running = std::max(most_running, running.size());
    return {};
  }
  void kill(std::size_t task) override {
    kills.push_back(task);
    running[task] = {clock.now() + milliseconds(10), -9};  // dies shortly after SIGKILL
  }
  void set_timer(std::optional<TimePoint> deadline) override { timer = deadline; }
  void on_batch_start(std::size_t b) override { batch_starts.push_back(b); }
  void on_batch_end(std::size_t b) override { batch_ends.push_back(b); }
  void on_log(std::string_view message) override { log.emplace_back(message); }

  // Advance time from event to event until the scheduler has finished, or up to `until`.
  void run(Scheduler& s, std::optional<TimePoint> until = std::nullopt) {
    if (scheduler != &s) {
      scheduler = &s;
      s.start();
    }
    for (int steps = 0; !s.finished() && steps < 100000; ++steps) {
      std::optional<TimePoint> next = timer;
      std::optional<std::size_t> ending;
      for (const auto& [task, end] : running) {
        if (!next || end.first <= *next) {
          next = end.first;
          ending = task;
        }
      }
      ASSERT_TRUE(next) << "the scheduler waits for nothing but has not finished";
      ASSERT_GE(*next, clock.now()) << "a timer in the past";
      if (until && *next > *until) return;
      clock.set(*next);
      if (ending && running[*ending].first == *next) {
        const int code = running[*ending].second;
        running.erase(*ending);
        AttemptOutcome outcome;
        if (code < 0) outcome.signal = -code; else outcome.exit_code = code;
        s.on_exit(*ending, outcome);
      } else {
        s.on_timer();
      }
    }
    ASSERT_TRUE(s.finished());
  }

  std::vector<double> start_times(std::size_t task) const {
    std::vector<double> out;
    for (const auto& [t, when] : starts)
      if (t == task) out.push_back(at(when));
    return out;
  }
};

SchedulePlan one_batch(std::size_t tasks, int concurrency, double rate) {
  SchedulePlan plan;
  plan.health.adjust = false;
  BatchPlan batch{"all", {}, concurrency, rate, 1000, false};
  for (std::size_t i = 0; i < tasks; ++i) {
    TaskPlan t;
    t.name = std::to_string(i);
    t.name.insert(t.name.begin(), 't');  // not "t" + ...: a false -Wrestrict of GCC 12 at -O3
    t.backoff.jitter = false;
    plan.tasks.push_back(t);
    batch.tasks.push_back(i);
  }
  plan.batches.push_back(batch);
  return plan;
}

TEST(Scheduler, NeverRunsMoreThanTheConcurrencyLimit) {
  World world;
  world.script = [](std::size_t, int) { return Script{seconds(1), 0}; };
  Scheduler s(world.clock, world, one_batch(20, 3, 0));
  world.run(s);
  EXPECT_EQ(world.most_running, 3u);
  EXPECT_EQ(world.starts.size(), 20u);
  // 20 tasks of 1s, 3 at a time: 7 rounds.
  EXPECT_DOUBLE_EQ(world.at(world.clock.now()), 7.0);
  EXPECT_TRUE(s.all_succeeded());
}

TEST(Scheduler, NeverStartsMoreThanTheRateInAnyOneSecondWindow) {
  World world;
  world.script = [](std::size_t, int) { return Script{milliseconds(10), 0}; };
  Scheduler s(world.clock, world, one_batch(23, 50, 5));
  world.run(s);
  ASSERT_EQ(world.starts.size(), 23u);
  for (const auto& [task, when] : world.starts) {
    const auto in_window = std::count_if(world.starts.begin(), world.starts.end(), [&](auto& p) {
      return p.second >= when && p.second < when + seconds(1);
    });
    EXPECT_LE(in_window, 5) << "window starting at " << world.at(when);
  }
  // The limit is used to the full: five at 0s, five at 1s, ... the last three at 4s.
  EXPECT_DOUBLE_EQ(world.at(world.starts[5].second), 1.0);
  EXPECT_DOUBLE_EQ(world.at(world.starts[22].second), 4.0);
}

TEST(Scheduler, RateBelowOneSpacesStarts) {
  RateLimiter half(0.5);
  const TimePoint t{};
  EXPECT_EQ(half.next_allowed(t), t);
  half.record(t);
  EXPECT_EQ(half.next_allowed(t + milliseconds(1)), t + seconds(2));
  RateLimiter unlimited(0);
  for (int i = 0; i < 100; ++i) unlimited.record(t);
  EXPECT_EQ(unlimited.next_allowed(t), t);
  RateLimiter fraction(2.7);  // rounds down to 2 per second
  fraction.record(t);
  fraction.record(t + milliseconds(100));
  EXPECT_EQ(fraction.next_allowed(t + milliseconds(200)), t + seconds(1));
}

TEST(Scheduler, BackoffScheduleIsExact) {
  Backoff b{seconds(1), 2.0, seconds(5), false};
  EXPECT_EQ(backoff_delay(b, 1, 0.9), seconds(1));
  EXPECT_EQ(backoff_delay(b, 2, 0.9), seconds(2));
  EXPECT_EQ(backoff_delay(b, 3, 0.9), seconds(4));
  EXPECT_EQ(backoff_delay(b, 4, 0.9), seconds(5));  // capped
  EXPECT_EQ(backoff_delay(b, 60, 0.9), seconds(5));  // no overflow far past the cap
  b.jitter = true;
  EXPECT_EQ(backoff_delay(b, 3, 0.0), seconds(4));
  EXPECT_EQ(backoff_delay(b, 3, 0.5), milliseconds(3500));
  EXPECT_EQ(backoff_delay(b, 4, 0.5), milliseconds(4375));
}

TEST(Scheduler, RetriesWaitTheBackoffBetweenAttempts) {
  World world;
  world.script = [](std::size_t, int) { return Script{milliseconds(0), 1}; };
  auto plan = one_batch(1, 1, 0);
  plan.tasks[0].retries = 4;
  plan.tasks[0].backoff = Backoff{seconds(1), 2.0, seconds(3), false};
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(world.start_times(0), (std::vector<double>{0, 1, 3, 6, 9}));
  EXPECT_EQ(s.record(0).status, TaskStatus::Failed);
  EXPECT_EQ(s.record(0).attempts.size(), 5u);
  EXPECT_EQ(s.record(0).reason, "exit 1 (after 5 attempts)");
}

TEST(Scheduler, JitterComesFromTheInjectedDraw) {
  World world;
  world.script = [](std::size_t, int attempt) { return Script{milliseconds(0), attempt < 3 ? 1 : 0}; };
  auto plan = one_batch(1, 1, 0);
  plan.tasks[0].retries = 3;
  plan.tasks[0].backoff = Backoff{seconds(2), 2.0, seconds(30), true};
  Scheduler s(world.clock, world, plan, [] { return 1.0; });
  world.run(s);
  // 2s × 0.75, then 4s × 0.75; the third attempt succeeds.
  EXPECT_EQ(world.start_times(0), (std::vector<double>{0, 1.5, 4.5}));
  EXPECT_EQ(s.record(0).status, TaskStatus::Succeeded);
}

TEST(Scheduler, SucceedsAfterARetry) {
  World world;
  world.script = [](std::size_t, int attempt) { return Script{milliseconds(50), attempt == 1 ? 3 : 0}; };
  auto plan = one_batch(1, 1, 0);
  plan.tasks[0].retries = 1;
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_TRUE(s.all_succeeded());
  ASSERT_EQ(s.record(0).attempts.size(), 2u);
  EXPECT_EQ(s.record(0).attempts[0].outcome.exit_code, 3);
}

TEST(Scheduler, TimeoutKillsTheAttemptAndCountsAsFailure) {
  World world;
  world.script = [](std::size_t, int) { return Script{seconds(60), 0}; };
  auto plan = one_batch(1, 1, 0);
  plan.tasks[0].timeout = seconds(2);
  plan.tasks[0].retries = 1;
  plan.tasks[0].backoff = Backoff{seconds(1), 2.0, seconds(30), false};
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(world.kills, (std::vector<std::size_t>{0, 0}));
  // Killed at 2s, dies at 2.01s, retried 1s later, killed 2s after that.
  EXPECT_EQ(world.start_times(0), (std::vector<double>{0, 3.01}));
  EXPECT_DOUBLE_EQ(world.at(world.clock.now()), 5.02);
  const auto& rec = s.record(0);
  EXPECT_EQ(rec.status, TaskStatus::Failed);
  EXPECT_TRUE(rec.attempts[0].outcome.timed_out);
  EXPECT_EQ(rec.reason, "timed out (after 2 attempts)");
}

TEST(Scheduler, DependentsOfAFailedTaskAreSkipped) {
  World world;
  // 0 fails; 1 needs 0; 2 needs 1; 3 succeeds; 4 needs 3.
  world.script = [](std::size_t task, int) { return Script{seconds(1), task == 0 ? 1 : 0}; };
  auto plan = one_batch(5, 5, 0);
  plan.tasks[1].needs = {0};
  plan.tasks[2].needs = {1};
  plan.tasks[4].needs = {3};
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(s.record(1).status, TaskStatus::Skipped);
  EXPECT_EQ(s.record(1).reason, "dependency failed: t0");
  EXPECT_EQ(s.record(2).status, TaskStatus::Skipped);
  EXPECT_EQ(s.record(2).reason, "dependency failed: t1");
  EXPECT_EQ(s.record(4).status, TaskStatus::Succeeded);
  EXPECT_EQ(world.start_times(4), (std::vector<double>{1.0}));  // after t3 ended
  EXPECT_TRUE(world.start_times(1).empty());
  EXPECT_FALSE(s.all_succeeded());
}

TEST(Scheduler, NeedsOutsideTheRunAndCyclesAreSkippedNotHung) {
  World world;
  auto plan = one_batch(3, 2, 0);
  plan.tasks[0].needs = {1};
  plan.tasks[1].needs = {0};
  plan.tasks[2].unmet_needs = {"elsewhere"};
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(s.record(0).reason, "dependency cycle");
  EXPECT_EQ(s.record(2).reason, "dependency elsewhere is not part of this run");
  EXPECT_TRUE(world.starts.empty());
}

TEST(Scheduler, TasksBeyondTheQueueAreSkipped) {
  World world;
  auto plan = one_batch(5, 1, 0);
  plan.batches[0].max_queue = 2;
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(world.starts.size(), 2u);
  for (std::size_t t = 2; t < 5; ++t) {
    EXPECT_EQ(s.record(t).status, TaskStatus::Skipped);
    EXPECT_EQ(s.record(t).reason, "queue full (max_queue 2)");
  }
}

TEST(Scheduler, AStreamWaitsForRoomInTheQueue) {
  World world;
  auto plan = one_batch(5, 1, 0);
  plan.batches[0].max_queue = 2;
  plan.batches[0].queue_overflow_waits = true;
  Scheduler s(world.clock, world, plan);
  s.start();
  EXPECT_EQ(s.queued(), 4u);  // one running, two admitted, two in the backlog
  world.run(s);
  EXPECT_TRUE(s.all_succeeded());
}

TEST(Scheduler, HaltSoonLetsRunningTasksFinish) {
  World world;
  world.script = [](std::size_t task, int) {
    return task == 0 ? Script{milliseconds(100), 1} : Script{seconds(5), 0};
  };
  auto plan = one_batch(6, 2, 0);
  plan.halt = *parse_halt("soon,fail=1");
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(s.record(0).status, TaskStatus::Failed);
  EXPECT_EQ(s.record(1).status, TaskStatus::Succeeded);
  for (std::size_t t = 2; t < 6; ++t) EXPECT_EQ(s.record(t).reason, "halted");
  EXPECT_TRUE(world.kills.empty());
  EXPECT_DOUBLE_EQ(world.at(world.clock.now()), 5.0);
}

TEST(Scheduler, HaltNowKillsRunningTasks) {
  World world;
  world.script = [](std::size_t task, int) {
    return task == 0 ? Script{milliseconds(100), 1} : Script{seconds(5), 0};
  };
  auto plan = one_batch(4, 2, 0);
  plan.tasks[0].retries = 0;
  plan.halt = *parse_halt("now,fail=1");
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(world.kills, (std::vector<std::size_t>{1}));
  EXPECT_EQ(s.record(1).status, TaskStatus::Failed);
  EXPECT_EQ(s.record(1).reason, "killed by --halt now (killed by signal 9 (SIGKILL))");
  EXPECT_LT(world.at(world.clock.now()), 1.0);
  EXPECT_TRUE(s.halted());
}

TEST(Scheduler, HaltOnAPercentageOfAllTasks) {
  World world;
  world.script = [](std::size_t task, int) { return Script{seconds(1), task % 2 == 0 ? 1 : 0}; };
  auto plan = one_batch(10, 1, 0);
  plan.halt = *parse_halt("soon,fail=30%");
  Scheduler s(world.clock, world, plan);
  world.run(s);
  // Tasks 0, 2, 4 fail: 3 of 10 = 30% at the fifth task.
  EXPECT_EQ(world.starts.size(), 5u);
}

TEST(Scheduler, ParsesHaltAsGnuParallel) {
  EXPECT_EQ(parse_halt("never")->when, HaltPolicy::When::Never);
  EXPECT_EQ(parse_halt("2")->when, HaltPolicy::When::Now);
  auto h = parse_halt("now,done=50%");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->why, HaltPolicy::Why::Done);
  EXPECT_TRUE(h->percent);
  EXPECT_DOUBLE_EQ(h->threshold, 50);
  for (const char* bad : {"", "soon", "later,fail=1", "now,fail=", "now,fail=x", "now,oops=1",
                          "soon,fail=0", "soon,fail=150%", "now=1,fail"})
    EXPECT_FALSE(parse_halt(bad)) << bad;
}

TEST(Scheduler, StartErrorsAreFailedAttempts) {
  World world;
  world.refuse = [](std::size_t task, int) -> Result<void> {
    if (task == 1) return fail("fork: Resource temporarily unavailable");
    return {};
  };
  Scheduler s(world.clock, world, one_batch(3, 2, 0));
  world.run(s);
  EXPECT_EQ(s.record(1).status, TaskStatus::Failed);
  EXPECT_EQ(s.record(1).reason, "could not start: fork: Resource temporarily unavailable");
  EXPECT_EQ(s.record(2).status, TaskStatus::Succeeded);
}

TEST(Scheduler, BatchesRunInOrderWithTheDelayBetween) {
  World world;
  world.script = [](std::size_t, int) { return Script{seconds(1), 0}; };
  SchedulePlan plan = one_batch(4, 2, 0);
  plan.batches[0].tasks = {0, 1};
  plan.batches.push_back(BatchPlan{"second", {2, 3}, 1, 0, 100, false});
  plan.between_batches = seconds(5);
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(world.batch_starts, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(world.batch_ends, (std::vector<std::size_t>{0, 1}));
  // Batch 1 ends at 1s; batch 2 starts at 6s with its own limit of one.
  EXPECT_EQ(world.start_times(2), (std::vector<double>{6.0}));
  EXPECT_EQ(world.start_times(3), (std::vector<double>{7.0}));
}

TEST(Scheduler, SpacesStartsBetweenTasks) {
  World world;
  auto plan = one_batch(3, 3, 0);
  plan.between_tasks = milliseconds(1500);
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(world.start_times(2), (std::vector<double>{3.0}));
}

TEST(Scheduler, InterruptKillsWhatRunsAndSkipsTheRest) {
  World world;
  world.script = [](std::size_t, int) { return Script{seconds(10), 0}; };
  Scheduler s(world.clock, world, one_batch(4, 2, 0));
  s.start();
  world.clock.advance(seconds(1));
  s.interrupt("interrupted by SIGINT");
  EXPECT_EQ(world.kills.size(), 2u);
  EXPECT_EQ(s.record(3).status, TaskStatus::Skipped);
  world.run(s);
  EXPECT_EQ(s.record(0).status, TaskStatus::Interrupted);
  EXPECT_EQ(s.record(0).reason, "interrupted by SIGINT (killed by signal 9 (SIGKILL))");
  EXPECT_EQ(s.record(3).reason, "interrupted by SIGINT before it started");
  EXPECT_TRUE(s.interrupted());
  EXPECT_FALSE(s.all_succeeded());
  for (const auto& line : world.log) EXPECT_EQ(line.find("--halt"), std::string::npos) << line;
}

TEST(Scheduler, ATaskThatStillSucceedsAfterAnInterruptHasSucceeded) {
  World world;
  world.script = [](std::size_t, int) { return Script{seconds(10), 0}; };
  Scheduler s(world.clock, world, one_batch(1, 1, 0));
  s.start();
  s.interrupt("interrupted by SIGTERM");
  // It catches the signal and exits 0 before the kill lands.
  world.running[0] = {world.clock.now() + milliseconds(1), 0};
  world.run(s);
  EXPECT_EQ(s.record(0).status, TaskStatus::Succeeded);
}

TEST(Scheduler, CarriedOutcomesSettleFirstAndCountForNeeds) {
  World world;
  auto plan = one_batch(4, 4, 0);
  plan.tasks[0].carried = TaskPlan::Carried{true, "succeeded in run R"};
  plan.tasks[1].needs = {0};
  plan.tasks[2].carried = TaskPlan::Carried{false, "failed in run R (exit 1)"};
  plan.tasks[3].needs = {2};
  Scheduler s(world.clock, world, plan);
  world.run(s);
  EXPECT_EQ(s.record(0).status, TaskStatus::Done);
  EXPECT_EQ(s.record(0).reason, "succeeded in run R");
  EXPECT_EQ(s.record(1).status, TaskStatus::Succeeded);
  EXPECT_EQ(s.record(2).status, TaskStatus::Skipped);
  EXPECT_EQ(s.record(3).status, TaskStatus::Skipped);
  EXPECT_EQ(s.record(3).reason, "dependency failed: t2");
  ASSERT_EQ(world.starts.size(), 1u);  // only t1 ran
  EXPECT_EQ(world.starts[0].first, 1u);
  EXPECT_FALSE(s.all_succeeded());
  // Everything carried as a success, the rest succeeding: the run succeeded.
  World again;
  auto all = one_batch(2, 1, 0);
  all.tasks[0].carried = TaskPlan::Carried{true, "succeeded in run R"};
  Scheduler s2(again.clock, again, all);
  again.run(s2);
  EXPECT_TRUE(s2.all_succeeded());
  EXPECT_EQ(again.starts.size(), 1u);
}

TEST(Health, HalvesAboveHalfAndAddsOneBelowATenth) {
  HealthMonitor h(HealthPolicy{seconds(5), true, 2, 6});
  for (int i = 0; i < 10; ++i) h.record(i < 6);  // 60% failed
  auto a = h.evaluate(5);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->to, 2);
  EXPECT_NE(a->reason.find("failure rate 60% (6 of 10 recent attempts)"), std::string::npos);
  for (int i = 0; i < 10; ++i) h.record(false);
  EXPECT_EQ(h.evaluate(2)->to, 3);
  EXPECT_FALSE(h.evaluate(3)) << "no completions since the last check: no change";
  for (int i = 0; i < 10; ++i) h.record(i == 0);  // exactly 10%: neither rule
  EXPECT_FALSE(h.evaluate(3));
  for (int i = 0; i < 4; ++i) h.record(i < 3);  // 75%, but already at the minimum
  EXPECT_FALSE(h.evaluate(2));
  h.record(false);
  EXPECT_FALSE(h.evaluate(6)) << "already at the maximum";
  for (int i = 0; i < 3; ++i) h.record(true);
  EXPECT_EQ(h.evaluate(3)->to, 2) << "3/2 rounds down but the floor is min_concurrency";
}

TEST(Health, TheLoopAdjustsTheRunningLimitAndLogsWhy) {
  World world;
  // Everything fails in the first 2s, then everything succeeds.
  world.script = [&world](std::size_t, int) {
    return Script{milliseconds(500), world.clock.now() < TimePoint{} + seconds(2) ? 1 : 0};
  };
  auto plan = one_batch(100, 8, 0);
  plan.health = HealthPolicy{seconds(2), true, 1, 10};
  Scheduler s(world.clock, world, plan);
  world.run(s, TimePoint{} + seconds(1));
  EXPECT_EQ(s.concurrency(), 8);
  world.run(s, TimePoint{} + seconds(2));
  EXPECT_EQ(s.concurrency(), 4);
  ASSERT_FALSE(world.log.empty());
  EXPECT_NE(world.log.back().find("concurrency 8 -> 4: failure rate 100%"), std::string::npos)
      << world.log.back();
  world.run(s);
  // The check at 4s still sees the failures that ended at 2s (7 of 19: no change); the one at
  // 6s sees only successes.
  ASSERT_GE(world.log.size(), 2u);
  EXPECT_NE(world.log[1].find("concurrency 4 -> 5: failure rate 0%"), std::string::npos)
      << world.log[1];
  EXPECT_GT(s.concurrency(), 5) << "successes keep adding one per check";
  EXPECT_LE(world.most_running, 8u);
}

// `batman stop PROJECT TASK` (issue 13): the one task ends `stopped`, is never retried, its
// dependents are skipped, the rest runs; a waiting task is stopped without starting.
TEST(Scheduler, StopTaskEndsThatTaskOnlyAndSkipsItsDependents) {
  World world;
  world.script = [](std::size_t task, int) { return Script{task == 0 ? seconds(60) : seconds(1), 0}; };
  auto plan = one_batch(4, 2, 0);
  plan.tasks[0].retries = 3;
  plan.tasks[1].needs = {0};
  // 2 runs beside 0; 3 waits for a slot (concurrency 2) and is stopped before it starts.
  Scheduler s(world.clock, world, plan);
  world.run(s, TimePoint{} + milliseconds(500));
  ASSERT_EQ(s.record(0).status, TaskStatus::Running);
  ASSERT_EQ(s.record(3).status, TaskStatus::Queued);
  EXPECT_TRUE(s.stop_task(3, "stopped by batman stop"));
  EXPECT_EQ(s.record(3).status, TaskStatus::Stopped);
  EXPECT_TRUE(s.stop_task(0, "stopped by batman stop"));
  EXPECT_EQ(world.kills, (std::vector<std::size_t>{0}));
  world.run(s);
  EXPECT_EQ(s.record(0).status, TaskStatus::Stopped);
  EXPECT_EQ(s.record(0).attempts.size(), 1u);  // never retried
  EXPECT_EQ(s.record(0).reason.rfind("stopped by batman stop (", 0), 0u) << s.record(0).reason;
  EXPECT_EQ(s.record(1).status, TaskStatus::Skipped);
  EXPECT_EQ(s.record(1).reason, "dependency stopped: t0");
  EXPECT_EQ(s.record(2).status, TaskStatus::Succeeded);
  EXPECT_TRUE(world.start_times(3).empty());
  EXPECT_FALSE(s.stop_task(2, "too late"));  // ended already
  EXPECT_FALSE(s.all_succeeded());
  EXPECT_EQ(task_status_name(TaskStatus::Stopped), "stopped");
}

// A stream (`batch -`): tasks come one by one while the queue has room, records of settled
// tasks go, and the run ends only once the input has.
SchedulePlan stream_plan(int concurrency, std::size_t max_queue) {
  SchedulePlan plan = one_batch(0, concurrency, 0);
  plan.stream = true;
  plan.batches[0].max_queue = max_queue;
  plan.batches[0].queue_overflow_waits = true;
  return plan;
}

TaskPlan line_task(std::size_t index) {
  TaskPlan t;
  t.name = std::to_string(index + 1);
  return t;
}

// Add tasks while the scheduler wants them; how many were added.
std::size_t feed(Scheduler& s, std::size_t& next, std::size_t limit) {
  std::size_t added = 0;
  while (next < limit && s.wants_input()) {
    EXPECT_EQ(s.add_task(line_task(next)), next);
    ++next;
    ++added;
  }
  return added;
}

TEST(SchedulerStream, TakesTasksOnlyWhileTheQueueHasRoom) {
  World world;
  world.script = [](std::size_t, int) { return Script{seconds(1), 0}; };
  Scheduler s(world.clock, world, stream_plan(2, 3));
  world.scheduler = &s;
  s.start();
  EXPECT_FALSE(s.finished()) << "an open stream with no task yet is not over";
  std::size_t next = 0;
  // Two start at once, three wait: then the queue is full.
  EXPECT_EQ(feed(s, next, 100), 5u);
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(s.queued(), 3u);
  EXPECT_FALSE(s.wants_input());
  world.run(s, world.t0() + seconds(1));  // both end; two of the queue start
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(feed(s, next, 100), 2u);
  EXPECT_EQ(s.queued(), 3u);
  // The input ends: the queue drains and the run ends.
  s.end_input();
  EXPECT_FALSE(s.wants_input());
  world.run(s);
  EXPECT_TRUE(s.finished());
  EXPECT_TRUE(s.all_succeeded());
  EXPECT_EQ(world.starts.size(), 7u);
  EXPECT_LE(world.most_running, 2u);
}

TEST(SchedulerStream, ForgetsSettledTasksAndKeepsCounting) {
  World world;
  world.script = [](std::size_t task, int) { return Script{milliseconds(10), task == 4 ? 1 : 0}; };
  Scheduler s(world.clock, world, stream_plan(3, 5));
  world.scheduler = &s;
  s.start();
  std::size_t next = 0;
  while (next < 2000) {
    feed(s, next, 2000);
    if (next < 2000) world.run(s, world.clock.now() + milliseconds(10));
  }
  s.end_input();
  world.run(s);
  EXPECT_EQ(s.task_count(), 2000u);
  EXPECT_FALSE(s.has_record(0));
  EXPECT_FALSE(s.has_record(1500));
  EXPECT_FALSE(s.all_succeeded()) << "task 4 failed, though its record is gone";
  EXPECT_EQ(world.starts.size(), 2000u);
}

TEST(SchedulerStream, EndsWithNoTaskWhenTheInputEndsEmpty) {
  World world;
  Scheduler s(world.clock, world, stream_plan(2, 3));
  world.scheduler = &s;
  s.start();
  EXPECT_TRUE(s.wants_input());
  s.end_input();
  EXPECT_TRUE(s.finished());
  EXPECT_TRUE(s.all_succeeded());
}

TEST(SchedulerStream, AnInterruptOrAHaltClosesTheInput) {
  World world;
  world.script = [](std::size_t task, int) { return Script{seconds(1), task == 0 ? 1 : 0}; };
  SchedulePlan plan = stream_plan(1, 10);
  plan.halt = HaltPolicy{HaltPolicy::When::Soon, HaltPolicy::Why::Fail, 1, false};
  Scheduler s(world.clock, world, plan);
  world.scheduler = &s;
  s.start();
  std::size_t next = 0;
  feed(s, next, 3);
  world.run(s);  // task 0 fails: halt soon; the queued ones are skipped, nothing more is read
  EXPECT_TRUE(s.finished());
  EXPECT_FALSE(s.wants_input());
  EXPECT_EQ(world.starts.size(), 1u);

  World other;
  other.script = [](std::size_t, int) { return Script{seconds(10), 0}; };
  Scheduler t(other.clock, other, stream_plan(1, 10));
  other.scheduler = &t;
  t.start();
  next = 0;
  feed(t, next, 3);
  t.interrupt("interrupted by SIGINT");
  EXPECT_FALSE(t.wants_input());
  other.run(t);  // ends without end_input: the rest of the input is not run
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(other.kills, std::vector<std::size_t>{0});
}

}  // namespace
}  // namespace batman::runner
