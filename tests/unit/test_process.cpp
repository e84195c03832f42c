// Unit tests of the SPEC §8 state machine with a fake host and clock: every transition,
// exact backoff delays, no sleeps.
#include <csignal>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.hpp"
#include "runner/process.hpp"

using namespace batman;
using namespace batman::runner;
using namespace std::chrono_literals;

namespace {

int exited(int code) { return (code & 0xff) << 8; }
int killed(int sig) { return sig & 0x7f; }

class FakeHost : public ProcessHost {
 public:
  FakeClock clock;
  std::optional<TimePoint> timer;
  std::vector<int> signals;
  std::vector<std::pair<ProcState, ProcState>> transitions;
  std::vector<std::string> notes;  // self-transitions: SIGKILL after stoptime, ignored events
  int spawns = 0;
  bool fail_spawn = false;
  pid_t next_pid = 100;

  TimePoint now() const override { return clock.now(); }
  Result<pid_t> spawn() override {
    ++spawns;
    if (fail_spawn) return fail("execute /nonexistent: No such file or directory");
    return next_pid++;
  }
  void signal_tree(int sig) override { signals.push_back(sig); }
  void set_timer(std::optional<TimePoint> deadline) override { timer = deadline; }
  void on_transition(ProcState from, ProcState to, const std::string& why) override {
    if (from == to) notes.push_back(why);
    else transitions.emplace_back(from, to);
  }
  // Advance to the armed timer and fire it.
  void fire(SupervisedProcess& p) {
    ASSERT_TRUE(timer.has_value());
    clock.set(*timer);
    timer.reset();
    p.on_timer();
  }
  Duration timer_in() const { return *timer - clock.now(); }
};

RestartRules rules(AutoRestart a = AutoRestart::Unexpected) {
  RestartRules r;
  r.autorestart = a;
  r.startretries = 3;
  r.starttime = 1s;
  r.stoptime = 10s;
  return r;
}

}  // namespace

TEST(Process, StartingBecomesRunningAfterStarttime) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  EXPECT_EQ(p.state(), ProcState::Stopped);
  p.start();
  EXPECT_EQ(p.state(), ProcState::Starting);
  EXPECT_EQ(p.pid(), 100);
  EXPECT_EQ(host.timer_in(), 1s);
  host.fire(p);
  EXPECT_EQ(p.state(), ProcState::Running);
  EXPECT_FALSE(host.timer);
}

TEST(Process, ZeroStarttimeIsRunningAtOnce) {
  FakeHost host;
  auto r = rules();
  r.starttime = 0s;
  SupervisedProcess p(host, r);
  p.start();
  EXPECT_EQ(p.state(), ProcState::Running);
  ASSERT_EQ(host.transitions.size(), 2u);
  EXPECT_EQ(host.transitions[0].second, ProcState::Starting);
  EXPECT_EQ(host.transitions[1].second, ProcState::Running);
}

TEST(Process, FailedStartsBackOffOneTwoThreeSecondsThenFatal) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  p.start();
  std::vector<Duration> delays;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    host.clock.advance(100ms);
    p.on_exit(exited(1));
    ASSERT_EQ(p.state(), ProcState::Backoff) << attempt;
    delays.push_back(host.timer_in());
    host.fire(p);
    ASSERT_EQ(p.state(), ProcState::Starting);
  }
  EXPECT_EQ(delays, (std::vector<Duration>{1s, 2s, 3s}));
  p.on_exit(exited(1));
  EXPECT_EQ(p.state(), ProcState::Fatal);
  EXPECT_FALSE(host.timer);
  EXPECT_EQ(host.spawns, 4);  // 1 + startretries
  EXPECT_TRUE(p.settled());
  EXPECT_NE(p.reason().find("gave up"), std::string::npos);
}

TEST(Process, EvenAnExpectedExitBeforeStarttimeIsAFailedStart) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  p.start();
  p.on_exit(exited(0));
  EXPECT_EQ(p.state(), ProcState::Backoff);
}

TEST(Process, RunningResetsTheRetryCount) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  p.start();
  p.on_exit(exited(1));
  host.fire(p);      // retry
  host.fire(p);      // up for starttime
  EXPECT_EQ(p.state(), ProcState::Running);
  EXPECT_EQ(p.backoff_count(), 0);
}

TEST(Process, UnexpectedExitRestartsAtOnce) {
  FakeHost host;
  SupervisedProcess p(host, rules(AutoRestart::Unexpected));
  p.start();
  host.fire(p);
  p.on_exit(exited(3));
  EXPECT_EQ(p.state(), ProcState::Starting);  // EXITED -> STARTING with no delay
  EXPECT_EQ(host.spawns, 2);
  EXPECT_EQ(p.restarts(), 1);
  ASSERT_GE(host.transitions.size(), 2u);
  EXPECT_EQ(host.transitions[host.transitions.size() - 2].second, ProcState::Exited);
  EXPECT_FALSE(p.last_exit()->expected);
}

TEST(Process, ExpectedExitStaysExitedUnderUnexpected) {
  FakeHost host;
  auto r = rules(AutoRestart::Unexpected);
  r.exitcodes = {0, 2};
  SupervisedProcess p(host, r);
  p.start();
  host.fire(p);
  p.on_exit(exited(2));
  EXPECT_EQ(p.state(), ProcState::Exited);
  EXPECT_TRUE(p.last_exit()->expected);
  EXPECT_TRUE(p.settled());
}

TEST(Process, AlwaysRestartsEvenExpectedExits) {
  FakeHost host;
  SupervisedProcess p(host, rules(AutoRestart::Always));
  p.start();
  host.fire(p);
  p.on_exit(exited(0));
  EXPECT_EQ(p.state(), ProcState::Starting);
}

TEST(Process, NeverStaysExited) {
  FakeHost host;
  SupervisedProcess p(host, rules(AutoRestart::Never));
  p.start();
  host.fire(p);
  p.on_exit(exited(5));
  EXPECT_EQ(p.state(), ProcState::Exited);
  EXPECT_EQ(p.last_exit()->shell_code(), 5);
}

TEST(Process, KilledBySignalIsUnexpected) {
  FakeHost host;
  SupervisedProcess p(host, rules(AutoRestart::Never));
  p.start();
  host.fire(p);
  p.on_exit(killed(SIGKILL));
  EXPECT_EQ(p.state(), ProcState::Exited);
  EXPECT_FALSE(p.last_exit()->expected);
  EXPECT_EQ(p.last_exit()->shell_code(), 128 + SIGKILL);
}

TEST(Process, StopSendsStopsignalThenSigkillAfterStoptime) {
  FakeHost host;
  auto r = rules();
  r.stopsignal = SIGINT;
  SupervisedProcess p(host, r);
  p.start();
  host.fire(p);
  p.stop();
  EXPECT_EQ(p.state(), ProcState::Stopping);
  EXPECT_EQ(host.signals, std::vector<int>{SIGINT});
  EXPECT_EQ(host.timer_in(), 10s);
  host.fire(p);
  EXPECT_EQ(host.signals, (std::vector<int>{SIGINT, SIGKILL}));
  EXPECT_EQ(p.state(), ProcState::Stopping);
  p.on_exit(killed(SIGKILL));
  EXPECT_EQ(p.state(), ProcState::Stopped);
  EXPECT_EQ(host.spawns, 1);  // no restart after a stop
}

TEST(Process, StopThatIsHonouredDisarmsTheKillTimer) {
  FakeHost host;
  SupervisedProcess p(host, rules(AutoRestart::Always));
  p.start();
  host.fire(p);
  p.stop(SIGUSR1, 2s);
  EXPECT_EQ(host.signals, std::vector<int>{SIGUSR1});
  EXPECT_EQ(host.timer_in(), 2s);
  p.on_exit(exited(0));
  EXPECT_EQ(p.state(), ProcState::Stopped);
  EXPECT_FALSE(host.timer);
}

TEST(Process, StopDuringStartingAndBackoff) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  p.start();
  p.stop();
  EXPECT_EQ(p.state(), ProcState::Stopping);
  p.on_exit(killed(SIGTERM));
  EXPECT_EQ(p.state(), ProcState::Stopped);
  p.start();
  p.on_exit(exited(1));
  EXPECT_EQ(p.state(), ProcState::Backoff);
  p.stop();
  EXPECT_EQ(p.state(), ProcState::Stopped);
  EXPECT_FALSE(host.timer);
}

TEST(Process, SpawnFailureBacksOffThenFatal) {
  FakeHost host;
  host.fail_spawn = true;
  auto r = rules();
  r.startretries = 1;
  SupervisedProcess p(host, r);
  p.start();
  EXPECT_EQ(p.state(), ProcState::Backoff);
  EXPECT_EQ(host.timer_in(), 1s);
  host.fire(p);
  EXPECT_EQ(p.state(), ProcState::Fatal);
  EXPECT_NE(p.reason().find("No such file"), std::string::npos);
}

TEST(Process, StartFailureLearnedAfterSpawnBacksOffThenFatal) {
  // The namespaces tier reports a setup failure after spawn() returned: same rules.
  FakeHost host;
  auto r = rules();
  r.startretries = 1;
  SupervisedProcess p(host, r);
  p.start();
  EXPECT_EQ(p.state(), ProcState::Starting);
  p.on_start_failed("namespaces: mount tmpfs /x: Permission denied");
  EXPECT_EQ(p.state(), ProcState::Backoff);
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(p.last_exit());
  EXPECT_EQ(host.timer_in(), 1s);
  host.fire(p);
  EXPECT_EQ(host.spawns, 2);
  EXPECT_EQ(p.state(), ProcState::Starting);
  p.on_start_failed("namespaces: mount tmpfs /x: Permission denied");
  EXPECT_EQ(p.state(), ProcState::Fatal);
  EXPECT_NE(p.reason().find("could not start: namespaces: mount tmpfs"), std::string::npos);

  // With starttime 0 the attempt is RUNNING already; a failed start still is not an exit.
  FakeHost host0;
  auto r0 = rules(AutoRestart::Never);
  r0.starttime = 0s;
  r0.startretries = 0;
  SupervisedProcess q(host0, r0);
  q.start();
  EXPECT_EQ(q.state(), ProcState::Running);
  q.on_start_failed("namespaces: the child died during setup");
  EXPECT_EQ(q.state(), ProcState::Fatal);
  EXPECT_TRUE(q.settled());
  EXPECT_FALSE(q.last_exit());
}

TEST(Process, StartAfterFatalResetsRetries) {
  FakeHost host;
  auto r = rules();
  r.startretries = 0;
  SupervisedProcess p(host, r);
  p.start();
  p.on_exit(exited(1));
  EXPECT_EQ(p.state(), ProcState::Fatal);
  p.start();
  EXPECT_EQ(p.state(), ProcState::Starting);
  EXPECT_EQ(p.backoff_count(), 0);
}

TEST(Process, StartWhileRunningAndStopWhileStoppedAreNoOps) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  p.stop();
  EXPECT_EQ(p.state(), ProcState::Stopped);
  EXPECT_TRUE(host.transitions.empty());
  p.start();
  host.fire(p);
  p.start();
  EXPECT_EQ(host.spawns, 1);
}

TEST(Process, StartAndStopWhereTheStateForbidsThemAreRefusedAndChangeNothing) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  auto stopped = p.stop();
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().message, "stop in STOPPED: not running");
  ASSERT_TRUE(p.start());
  auto again = p.start();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "start in STARTING: already started");
  ASSERT_TRUE(p.stop());
  auto twice = p.stop(SIGKILL);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().message, "stop in STOPPING: a stop is under way");
  EXPECT_EQ(host.signals, std::vector<int>{SIGTERM}) << "the refused stop sent nothing";
  EXPECT_FALSE(p.start()) << "no start while the old attempt is still stopping";
  EXPECT_EQ(host.spawns, 1);
  EXPECT_TRUE(p.illegal_events().empty()) << "a user's command is no host bug";
  EXPECT_TRUE(host.notes.empty());
}

// Events of the host that the state does not allow: refused with an error, recorded, told to
// the host (by default as a self-transition note, which reaches its log), nothing changed.
TEST(Process, IllegalHostEventsAreErrorsThatChangeNothing) {
  FakeHost host;
  SupervisedProcess p(host, rules());
  auto exit_while_stopped = p.on_exit(exited(0));
  ASSERT_FALSE(exit_while_stopped);
  EXPECT_EQ(exit_while_stopped.error().message, "on_exit in STOPPED: no process is running");
  EXPECT_EQ(p.state(), ProcState::Stopped);
  EXPECT_FALSE(p.last_exit()) << "the bogus exit is not taken as the process's";
  auto timer_with_nothing_armed = p.on_timer();
  ASSERT_FALSE(timer_with_nothing_armed);
  EXPECT_EQ(timer_with_nothing_armed.error().message, "on_timer in STOPPED: no timer is armed");
  EXPECT_EQ(host.spawns, 0);

  // A start that failed: BACKOFF; a second report of the same failure is a host bug.
  ASSERT_TRUE(p.start());
  ASSERT_TRUE(p.on_start_failed("setup failed"));
  ASSERT_EQ(p.state(), ProcState::Backoff);
  EXPECT_EQ(p.backoff_count(), 1);
  EXPECT_FALSE(p.on_start_failed("setup failed"));
  EXPECT_FALSE(p.on_exit(exited(1)));
  EXPECT_EQ(p.state(), ProcState::Backoff);
  EXPECT_EQ(p.backoff_count(), 1) << "nothing counted twice";
  ASSERT_TRUE(host.timer.has_value()) << "the retry stays armed";

  // A timer the host should have disarmed (it fired late, after the stop it belonged to).
  host.fire(p);  // the retry: STARTING
  ASSERT_EQ(p.state(), ProcState::Starting);
  ASSERT_TRUE(p.stop());
  ASSERT_TRUE(p.on_exit(killed(SIGTERM)));
  ASSERT_EQ(p.state(), ProcState::Stopped);
  EXPECT_FALSE(p.on_timer());
  EXPECT_EQ(p.state(), ProcState::Stopped);
  EXPECT_EQ(host.spawns, 2);

  const std::vector<std::string> expected{
      "on_exit in STOPPED: no process is running",
      "on_timer in STOPPED: no timer is armed",
      "on_start_failed in BACKOFF: no attempt is under way",
      "on_exit in BACKOFF: no process is running",
      "on_timer in STOPPED: no timer is armed",
  };
  EXPECT_EQ(p.illegal_events(), expected);
  ASSERT_EQ(host.notes.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(host.notes[i], "ignored " + expected[i]);
}

TEST(Process, EveryFailedStartSaysTheRetryOrTheGivingUp) {
  // Spawn failure, exit before starttime and a setup failure take the one path.
  FakeHost host;
  host.fail_spawn = true;
  auto r = rules();
  r.startretries = 2;
  SupervisedProcess p(host, r);
  ASSERT_TRUE(p.start());
  EXPECT_EQ(p.reason(), "could not start: execute /nonexistent: No such file or directory; retry 1 in 1s");
  host.fail_spawn = false;
  host.fire(p);
  ASSERT_TRUE(p.on_exit(exited(2)));
  EXPECT_EQ(p.reason(), "exited too quickly (exit status 2); retry 2 in 2s");
  EXPECT_EQ(host.timer_in(), 2s);
  host.fire(p);
  ASSERT_TRUE(p.on_start_failed("mount /x: Permission denied"));
  EXPECT_EQ(p.state(), ProcState::Fatal);
  EXPECT_EQ(p.reason(), "could not start: mount /x: Permission denied; gave up after 3 attempts");
  EXPECT_FALSE(host.timer);
  EXPECT_TRUE(p.illegal_events().empty());
}

TEST(Process, StateNames) {
  EXPECT_EQ(state_name(ProcState::Backoff), "BACKOFF");
  EXPECT_EQ(state_name(ProcState::Fatal), "FATAL");
  EXPECT_EQ(state_name(ProcState::Stopping), "STOPPING");
  EXPECT_TRUE(parse_autorestart("unexpected"));
  EXPECT_FALSE(parse_autorestart("sometimes"));
}
