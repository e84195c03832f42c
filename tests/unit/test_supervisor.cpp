// Supervisor pure parts: instance names, the per-instance reload plan of SPEC §9, and the
// status lines and JSON.
#include <gtest/gtest.h>

#include "runner/supervisor.hpp"

namespace batman::runner {
namespace {

using std::chrono::seconds;

ProgramConfig program(const std::string& name, int numprocs = 1, const std::string& cmd = "sleep 100") {
  ProgramConfig p;
  p.name = name;
  p.command = cmd;
  p.numprocs = numprocs;
  return p;
}

SupervisorConfig config(std::vector<ProgramConfig> programs) {
  SupervisorConfig c;
  c.project = "test";
  c.programs = std::move(programs);
  return c;
}

std::vector<std::string> keys(const std::vector<InstanceKey>& ks) {
  std::vector<std::string> out;
  for (const auto& k : ks) out.push_back(k.program + "#" + std::to_string(k.index));
  return out;
}

using Names = std::vector<std::string>;

TEST(InstanceName, OneInstanceIsTheProgramNameSeveralAreNumbered) {
  EXPECT_EQ(instance_name("web", 0, 1), "web");
  EXPECT_EQ(instance_name("web", 0, 2), "web:00");
  EXPECT_EQ(instance_name("web", 11, 12), "web:11");
  EXPECT_EQ(instance_file_stem({"web", 3}), "web_03");
}

TEST(ReloadPlan, UnchangedConfigTouchesNothing) {
  auto before = config({program("a"), program("b", 2)});
  auto plan = plan_reload(before, before);
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(keys(plan.keep), (Names{"a#0", "b#0", "b#1"}));
  EXPECT_EQ(plan.summary(), "no changes");
}

TEST(ReloadPlan, ChangedProgramRestartsEveryInstanceOthersKept) {
  auto before = config({program("a"), program("b", 2)});
  auto after = config({program("a"), program("b", 2, "sleep 200")});
  auto plan = plan_reload(before, after);
  EXPECT_EQ(keys(plan.restart), (Names{"b#0", "b#1"}));
  EXPECT_EQ(keys(plan.keep), (Names{"a#0"}));
  EXPECT_TRUE(plan.start.empty());
  EXPECT_TRUE(plan.stop.empty());
  EXPECT_EQ(plan.changed_programs, (Names{"b"}));
}

TEST(ReloadPlan, EveryRestartRuleAndLaunchFieldCountsAsAChange) {
  auto base = program("a");
  std::vector<std::function<void(ProgramConfig&)>> edits = {
      [](ProgramConfig& p) { p.rules.autorestart = AutoRestart::Always; },
      [](ProgramConfig& p) { p.rules.exitcodes = {0, 2}; },
      [](ProgramConfig& p) { p.rules.startretries = 7; },
      [](ProgramConfig& p) { p.rules.starttime = seconds(5); },
      [](ProgramConfig& p) { p.rules.stopsignal = 2; },
      [](ProgramConfig& p) { p.rules.stoptime = seconds(1); },
      [](ProgramConfig& p) { p.env["X"] = "1"; },
      [](ProgramConfig& p) { p.workingdir = "/tmp"; },
      [](ProgramConfig& p) { p.umask = 077; },
      [](ProgramConfig& p) { p.stdout_log.kind = OutputTarget::Kind::Discard; },
      [](ProgramConfig& p) { p.stderr_log.max_bytes = 1024; },
      [](ProgramConfig& p) { p.autostart = false; },
      [](ProgramConfig& p) { p.user = "nobody"; },
      [](ProgramConfig& p) { p.profile = "ci"; },
  };
  for (std::size_t i = 0; i < edits.size(); ++i) {
    auto changed = base;
    edits[i](changed);
    EXPECT_FALSE(same_program(base, changed)) << "edit " << i;
    auto plan = plan_reload(config({base}), config({changed}));
    EXPECT_EQ(keys(plan.restart), (Names{"a#0"})) << "edit " << i;
  }
}

TEST(ReloadPlan, NumprocsUpStartsOnlyTheNewInstances) {
  auto plan = plan_reload(config({program("w", 2)}), config({program("w", 4)}));
  EXPECT_EQ(keys(plan.keep), (Names{"w#0", "w#1"}));
  EXPECT_EQ(keys(plan.start), (Names{"w#2", "w#3"}));
  EXPECT_TRUE(plan.restart.empty());
  EXPECT_TRUE(plan.stop.empty());
}

TEST(ReloadPlan, NumprocsDownStopsOnlyTheExtraInstances) {
  auto plan = plan_reload(config({program("w", 3)}), config({program("w", 1)}));
  EXPECT_EQ(keys(plan.keep), (Names{"w#0"}));
  EXPECT_EQ(keys(plan.stop), (Names{"w#1", "w#2"}));
  EXPECT_TRUE(plan.start.empty());
}

TEST(ReloadPlan, NumprocsAndCommandChangedTogether) {
  auto plan = plan_reload(config({program("w", 2)}), config({program("w", 3, "other")}));
  EXPECT_EQ(keys(plan.restart), (Names{"w#0", "w#1"}));
  EXPECT_EQ(keys(plan.start), (Names{"w#2"}));
}

TEST(ReloadPlan, AddedAndRemovedPrograms) {
  auto plan = plan_reload(config({program("old", 2), program("kept")}), config({program("kept"), program("new")}));
  EXPECT_EQ(keys(plan.stop), (Names{"old#0", "old#1"}));
  EXPECT_EQ(keys(plan.start), (Names{"new#0"}));
  EXPECT_EQ(keys(plan.keep), (Names{"kept#0"}));
  EXPECT_EQ(plan.summary(), "added: new; removed: old");
}

InstanceStatus row(const std::string& name, ProcState state) {
  InstanceStatus s;
  s.name = name;
  s.program = name.substr(0, name.find(':'));
  s.state = state;
  s.started = true;
  return s;
}

TEST(StatusFormat, RunningShowsPidAndUptime) {
  auto s = row("web", ProcState::Running);
  s.pid = 1234;
  s.uptime = seconds(65);
  EXPECT_EQ(status_detail(s), "pid 1234, uptime 0:01:05");
}

TEST(StatusFormat, ExitedShowsTheExitCodeOrSignal) {
  auto s = row("job", ProcState::Exited);
  s.last_exit = ExitInfo{3, 0, false};
  EXPECT_EQ(status_detail(s), "exit code 3 (not expected)");
  s.last_exit = ExitInfo{-1, 9, false};
  EXPECT_EQ(status_detail(s), "killed by SIGKILL (not expected)");
  s.last_exit = ExitInfo{0, 0, true};
  EXPECT_EQ(status_detail(s), "exit code 0 (expected)");
}

TEST(StatusFormat, BackoffAndFatalShowTheReason) {
  auto s = row("bad", ProcState::Fatal);
  s.reason = "exited too quickly (exit status 1); gave up after 4 attempts";
  EXPECT_EQ(status_detail(s), s.reason);
  s.state = ProcState::Backoff;
  EXPECT_EQ(status_detail(s), s.reason);
}

TEST(StatusFormat, ColumnsAlignOnTheLongestName) {
  auto a = row("a", ProcState::Running);
  a.pid = 7;
  auto b = row("longer:01", ProcState::Stopped);
  b.started = false;
  std::string text = format_status({a, b});
  EXPECT_EQ(text,
            "a          RUNNING   pid 7, uptime 0:00:00\n"
            "longer:01  STOPPED   not started\n");
}

TEST(StatusFormat, JsonCarriesTheSameFields) {
  auto a = row("web:01", ProcState::Running);
  a.index = 1;
  a.pid = 42;
  a.uptime = seconds(3);
  auto b = row("job", ProcState::Exited);
  b.last_exit = ExitInfo{2, 0, false};
  auto j = status_json({a, b});
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "web:01");
  EXPECT_EQ(j[0]["program"], "web");
  EXPECT_EQ(j[0]["index"], 1);
  EXPECT_EQ(j[0]["state"], "RUNNING");
  EXPECT_EQ(j[0]["pid"], 42);
  EXPECT_EQ(j[0]["uptime_seconds"], 3);
  EXPECT_EQ(j[0]["detail"], "pid 42, uptime 0:00:03");
  EXPECT_TRUE(j[1]["pid"].is_null());
  EXPECT_EQ(j[1]["exit_code"], 2);
  EXPECT_EQ(j[1]["state"], "EXITED");
}

}  // namespace
}  // namespace batman::runner
