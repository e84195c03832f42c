// Supervisor pure parts: instance names, the per-instance reload plan of SPEC §9, the
// status lines and JSON, the control protocol's line framing and parser; and the search for
// what a killed supervisor left running, against real processes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include "src/taskmaster/leftovers.hpp"
#include "src/taskmaster/supervisor.hpp"
#include "src/taskmaster/control_commands.hpp"

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

// ---------------------------------------------------------------------------------------
// The control protocol: framing and parsing, without a supervisor.

using cli::ControlRequest;
using cli::parse_control_line;
using cli::RequestLines;

TEST(ControlLine, ParsesEveryCommandAndItsOptions) {
  auto status = parse_control_line("status --json web db:01");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->command, "status");
  EXPECT_TRUE(status->json);
  EXPECT_EQ(status->names, (Names{"web", "db:01"}));
  auto tail = parse_control_line(" tail\tweb:00 -f -200 stderr\r");
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->command, "tail");
  EXPECT_TRUE(tail->follow);
  EXPECT_EQ(tail->tail_bytes, 200u);
  EXPECT_EQ(tail->stream, "stderr");
  EXPECT_EQ(tail->names, (Names{"web:00"}));
  EXPECT_EQ(parse_control_line("shutdown")->command, "quit");
  EXPECT_EQ(parse_control_line("?")->command, "help");
  EXPECT_EQ(parse_control_line("   ")->command, "");
  EXPECT_EQ(parse_control_line("stop all")->names, (Names{"all"}));
}

TEST(ControlLine, BadLinesAreOneLineUsageErrors) {
  for (const char* line : {"frobnicate", "start", "reload now", "quit please", "status -x", "tail", "tail a b",
                           "tail web -q", "stop\x01"}) {
    auto r = parse_control_line(line);
    ASSERT_FALSE(r) << line;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << line;
  }
  // Digits beyond what fits are a name, not an overflow.
  auto huge = parse_control_line("tail web -99999999999999999999");
  EXPECT_FALSE(huge);
}

TEST(RequestLines, SplitsOnNewlinesAcrossReads) {
  RequestLines lines;
  ASSERT_TRUE(lines.feed("sta"));
  EXPECT_EQ(lines.pending(), 0u);
  ASSERT_TRUE(lines.feed("tus\nstop web\nver"));
  EXPECT_EQ(lines.next(), "status");
  EXPECT_EQ(lines.next(), "stop web");
  EXPECT_EQ(lines.next(), std::nullopt);
  ASSERT_TRUE(lines.feed("sion\n"));
  EXPECT_EQ(lines.next(), "version");
}

TEST(RequestLines, HalfCloseTurnsTheUnterminatedLineIntoACommand) {
  RequestLines lines;
  ASSERT_TRUE(lines.feed("status\npid"));
  lines.end();
  EXPECT_TRUE(lines.ended());
  EXPECT_EQ(lines.next(), "status");
  EXPECT_EQ(lines.next(), "pid");
  EXPECT_EQ(lines.next(), std::nullopt);
  ASSERT_TRUE(lines.feed("more\n"));  // nothing after the end counts
  EXPECT_EQ(lines.pending(), 0u);
}

TEST(RequestLines, AnOverLongLineIsRefusedWhetherOrNotItEnds) {
  RequestLines unterminated;
  EXPECT_TRUE(unterminated.feed(std::string(cli::kMaxRequestLine, 'a')));
  EXPECT_FALSE(unterminated.feed("a"));
  EXPECT_TRUE(unterminated.failed());
  RequestLines terminated;
  EXPECT_FALSE(terminated.feed(std::string(cli::kMaxRequestLine + 1, 'a') + "\nstatus\n"));
  EXPECT_EQ(terminated.pending(), 0u);
  RequestLines exact;
  EXPECT_TRUE(exact.feed(std::string(cli::kMaxRequestLine, 'a') + "\n"));
  EXPECT_EQ(exact.pending(), 1u);
}

// ---------------------------------------------------------------------------------------
// Leftovers of a supervisor killed with SIGKILL, against real processes.

// Fork a session leader with `env`, running `sh -c script`; returns its pid.
pid_t spawn_session(const std::vector<std::string>& env, const char* script) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    std::vector<char*> envp;
    std::vector<std::string> copy = env;
    for (auto& e : copy) envp.push_back(e.data());
    envp.push_back(nullptr);
    char sh[] = "/bin/sh", dash_c[] = "-c";
    std::string s = script;
    char* argv[] = {sh, dash_c, s.data(), nullptr};
    ::execve("/bin/sh", argv, envp.data());
    ::_exit(127);
  }
  return pid;
}

RunState record_of(pid_t pid, const std::string& project, const std::string& run_id) {
  RunState r;
  r.kind = "program";
  r.project = project;
  r.run_id = run_id;
  r.pid = pid;
  r.pid_start_time = process_start_time(pid);
  return r;
}

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(Leftovers, FindsTheInstancesSessionAndMarkedProcessesOnlyThenKillsThem) {
  std::string project = "leftover-test-" + std::to_string(::getpid());
  // The instance: its session holds a child that cleared its environment, and a marked
  // grandchild that made its own session (a daemon).
  pid_t instance = spawn_session({"BATMAN_PROJECT=" + project, "BATMAN_RUN_ID=web_00", "PATH=/usr/bin:/bin"},
                                 "env -i sleep 1001 & setsid sleep 1002 & wait");
  // A stranger: same project, another run id; and one with no markers at all.
  pid_t other = spawn_session({"BATMAN_PROJECT=" + project, "BATMAN_RUN_ID=db_00", "PATH=/usr/bin:/bin"}, "exec sleep 1003");
  pid_t plain = spawn_session({"PATH=/usr/bin:/bin"}, "exec sleep 1004");
  ASSERT_GT(instance, 0);
  std::vector<RunState> records{record_of(instance, project, "web_00")};
  // Wait until the shell has started both sleeps (3 processes: sh + 2 sleeps).
  std::vector<Leftover> found;
  for (int i = 0; i < 400 && found.size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    found = find_leftovers(records, ::getpid());
  }
  ASSERT_EQ(found.size(), 3u);
  for (const auto& l : found) {
    EXPECT_EQ(l.run_id, "web_00");
    EXPECT_NE(l.pid, other);
    EXPECT_NE(l.pid, plain);
  }
  // A pid whose start time changed since it was found is not signalled.
  auto stale = found;
  for (auto& l : stale) l.start_time += 1;
  EXPECT_TRUE(kill_leftovers(stale, std::chrono::milliseconds(100)).empty());
  EXPECT_TRUE(alive(instance));

  auto killed = kill_leftovers(found, std::chrono::seconds(5));
  EXPECT_EQ(killed.size(), 3u);
  ::waitpid(instance, nullptr, 0);
  EXPECT_TRUE(find_leftovers(records, ::getpid()).empty());
  EXPECT_TRUE(alive(other));
  EXPECT_TRUE(alive(plain));
  ::killpg(other, SIGKILL);
  ::killpg(plain, SIGKILL);
  ::waitpid(other, nullptr, 0);
  ::waitpid(plain, nullptr, 0);
}

TEST(Leftovers, AProcessOlderThanTheInstanceIsNeverCounted) {
  std::string project = "leftover-old-" + std::to_string(::getpid());
  pid_t early = spawn_session({"BATMAN_PROJECT=" + project, "BATMAN_RUN_ID=web_00"}, "exec sleep 1005");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  pid_t instance = spawn_session({"BATMAN_PROJECT=" + project, "BATMAN_RUN_ID=web_00"}, "exec sleep 1006");
  // Different start ticks need time between the two: 10 ms per tick at USER_HZ 100.
  std::vector<RunState> records{record_of(instance, project, "web_00")};
  auto comm = [](pid_t pid) {
    std::string text;
    if (FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/comm").c_str(), "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof buf, f)) text = buf;
      std::fclose(f);
    }
    return text;
  };
  for (int i = 0; i < 400 && (comm(early) != "sleep\n" || comm(instance) != "sleep\n"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto found = find_leftovers(records, ::getpid());
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].pid, instance);
  kill_leftovers(found, std::chrono::seconds(5));
  ::kill(early, SIGKILL);
  ::waitpid(instance, nullptr, 0);
  ::waitpid(early, nullptr, 0);
}

}  // namespace
}  // namespace batman::runner
