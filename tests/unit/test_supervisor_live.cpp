// A live Supervisor on a real event loop with real processes (env tier, no isolation):
// start/stop/restart complete with one line per instance, and a reload restarts exactly the
// programs whose launch changed, an edited profile included.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "src/taskmaster/supervisor.hpp"

namespace batman::runner {
namespace {

using std::chrono::milliseconds;

std::string environ_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/environ");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class LiveSupervisor : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batman-live-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ::mkdir((dir + "/p").c_str(), 0700);
    ::mkdir((dir + "/p/logs").c_str(), 0700);
    ::mkdir((dir + "/p/tmp").c_str(), 0700);
    auto l = EventLoop::create();
    ASSERT_TRUE(l.has_value());
    loop = std::move(*l);
    context.project = "p";
    context.home = dir;
    context.batman_home = dir;
    context.project_dir = dir + "/p";
    context.logs_dir = dir + "/p/logs";
    context.tmp_dir = dir + "/p/tmp";
    context.default_cwd = dir;
    context.base_env = {"PATH=/usr/bin:/bin"};
  }
  void TearDown() override {
    sup.reset();
    std::string rm = "rm -rf '" + dir + "'";
    (void)!std::system(rm.c_str());
  }
  ProgramConfig program(const std::string& name, int numprocs = 1) {
    ProgramConfig p;
    p.name = name;
    p.command = "exec sleep 100";
    p.numprocs = numprocs;
    p.autostart = false;
    p.rules.starttime = milliseconds(50);
    p.rules.stoptime = milliseconds(500);
    p.tier = isolation::Tier::Env;
    return p;
  }
  SupervisorConfig config(std::vector<ProgramConfig> programs) {
    SupervisorConfig c;
    c.project = "p";
    c.programs = std::move(programs);
    return c;
  }
  // Run one command to completion.
  std::vector<std::string> run(void (Supervisor::*command)(const std::vector<InstanceKey>&, Supervisor::Done),
                               const std::vector<std::string>& names) {
    auto keys = sup->select(names);
    EXPECT_TRUE(keys.has_value());
    std::optional<std::vector<std::string>> lines;
    (sup.get()->*command)(*keys, [&](std::vector<std::string> l) { lines = std::move(l); });
    until([&] { return lines.has_value(); });
    return lines.value_or(std::vector<std::string>{});
  }
  void until(const std::function<bool()>& done) {
    auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (!done() && SteadyClock::now() < deadline) ASSERT_TRUE(loop->run_once(milliseconds(50)).has_value());
    ASSERT_TRUE(done()) << "timed out";
  }
  std::map<std::string, InstanceStatus> rows() {
    std::map<std::string, InstanceStatus> out;
    for (auto& r : sup->status()) out[r.name] = r;
    return out;
  }
  std::string dir;
  std::unique_ptr<EventLoop> loop;
  SupervisorContext context;
  std::unique_ptr<Supervisor> sup;
};

TEST_F(LiveSupervisor, StartStopRestartCompleteWithOneLinePerInstance) {
  sup = std::make_unique<Supervisor>(*loop, context, config({program("web", 2)}));
  EXPECT_EQ(run(&Supervisor::start, {"web"}), (std::vector<std::string>{"web:00: started", "web:01: started"}));
  auto before = rows();
  ASSERT_EQ(before["web:00"].state, ProcState::Running);
  pid_t first = before["web:00"].pid;
  EXPECT_GT(first, 0);
  EXPECT_EQ(run(&Supervisor::start, {"web:00"}), (std::vector<std::string>{"web:00: ERROR (already started)"}));

  EXPECT_EQ(run(&Supervisor::restart, {"web:00"}), (std::vector<std::string>{"web:00: started"}));
  auto after = rows();
  EXPECT_NE(after["web:00"].pid, first);
  EXPECT_EQ(after["web:01"].pid, before["web:01"].pid) << "restart touches only what was named";
  EXPECT_NE(::kill(first, 0), 0) << "the old process is gone";

  EXPECT_EQ(run(&Supervisor::stop, {"all"}), (std::vector<std::string>{"web:00: stopped", "web:01: stopped"}));
  for (auto& [name, r] : rows()) EXPECT_EQ(r.state, ProcState::Stopped) << name;
  EXPECT_NE(::kill(after["web:01"].pid, 0), 0);
  EXPECT_EQ(run(&Supervisor::stop, {"web:01"}), (std::vector<std::string>{"web:01: ERROR (not running)"}));
}

TEST_F(LiveSupervisor, ReloadRestartsOnlyTheProgramWhoseProfileChanged) {
  auto with_profile = [&](const std::string& value) {
    ProgramConfig p = program("api");
    p.autostart = true;
    p.profile = "custom";
    p.resolved_profile.name = "custom";
    p.resolved_profile.env.set = {{"PROFILE_VALUE", value}};
    return p;
  };
  ProgramConfig steady = program("db");
  steady.autostart = true;
  sup = std::make_unique<Supervisor>(*loop, context, config({with_profile("one"), steady}));
  sup->start_autostart();
  until([&] {
    auto r = rows();
    return r["api"].state == ProcState::Running && r["db"].state == ProcState::Running;
  });
  auto before = rows();
  EXPECT_NE(environ_of(before["api"].pid).find(std::string("PROFILE_VALUE=one") + '\0'), std::string::npos)
      << "a program gets its profile's env: section";

  ReloadPlan plan = sup->reload(config({with_profile("two"), steady}));
  EXPECT_EQ(plan.changed_programs, std::vector<std::string>{"api"});
  until([&] {
    auto r = rows();
    return r["api"].state == ProcState::Running && r["api"].pid != before["api"].pid;
  });
  auto after = rows();
  EXPECT_NE(environ_of(after["api"].pid).find(std::string("PROFILE_VALUE=two") + '\0'), std::string::npos);
  EXPECT_EQ(after["db"].pid, before["db"].pid);
  EXPECT_TRUE(sup->reload(config({with_profile("two"), steady})).empty()) << "the same profile again: no change";

  bool down = false;
  sup->shutdown([&] { down = true; });
  until([&] { return down; });
}

std::string fd_target(pid_t pid, int fd) {
  char buf[512];
  const std::string link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string live_file_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_F(LiveSupervisor, ALogThatNeverRotatesIsTheProgramsOwnStdoutAndFollowersSeeEveryByte) {
  ProgramConfig p = program("tick");
  p.command = "i=0; while [ $i -lt 6 ]; do i=$((i+1)); echo line$i; sleep 0.1; done; exec sleep 100";
  p.stdout_log.max_bytes = 0;
  sup = std::make_unique<Supervisor>(*loop, context, config({p}));
  std::string followed;
  auto id = sup->subscribe({"tick", 0}, "stdout", [&](std::string_view data) { followed.append(data); }, 0);
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_EQ(run(&Supervisor::start, {"tick"}), std::vector<std::string>{"tick: started"});
  const std::string log = dir + "/p/logs/tick_00.out.log";
  EXPECT_EQ(fd_target(rows()["tick"].pid, 1), log) << "the program writes the file itself, no pipe";
  until([&] { return followed.find("line6\n") != std::string::npos; });
  EXPECT_EQ(followed, "line1\nline2\nline3\nline4\nline5\nline6\n");
  EXPECT_EQ(live_file_text(log), followed);
  // Truncated behind the supervisor's back (copytruncate): followed from the new start.
  ASSERT_EQ(::truncate(log.c_str(), 0), 0);
  followed.clear();
  ASSERT_EQ(run(&Supervisor::stop, {"tick"}), std::vector<std::string>{"tick: stopped"});
  p.command = "echo again; exec sleep 100";
  sup->reload(config({p}));  // changed: rebuilt; the follower goes on with the new build
  EXPECT_EQ(run(&Supervisor::start, {"tick"}), std::vector<std::string>{"tick: started"});
  until([&] { return followed == "again\n"; });
  sup->unsubscribe(*id);
  EXPECT_EQ(run(&Supervisor::stop, {"tick"}), std::vector<std::string>{"tick: stopped"});
}

TEST_F(LiveSupervisor, ARotatingLogKeepsThePipeAndRotatesAtMaxBytes) {
  ProgramConfig p = program("chatty");
  p.command = "i=0; while [ $i -lt 30 ]; do i=$((i+1)); echo 123456789; done; exec sleep 100";  // 300 bytes
  p.stdout_log.max_bytes = 100;
  p.stdout_log.backups = 5;
  sup = std::make_unique<Supervisor>(*loop, context, config({p}));
  std::string followed;
  auto id = sup->subscribe({"chatty", 0}, "stdout", [&](std::string_view data) { followed.append(data); });
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(run(&Supervisor::start, {"chatty"}), std::vector<std::string>{"chatty: started"});
  EXPECT_EQ(fd_target(rows()["chatty"].pid, 1).rfind("pipe:", 0), 0u) << "rotation needs the bytes: a pipe";
  until([&] { return followed.size() == 300; });
  const std::string log = dir + "/p/logs/chatty_00.out.log";
  EXPECT_EQ(live_file_text(log + ".3") + live_file_text(log + ".2") + live_file_text(log + ".1") + live_file_text(log), followed);
  EXPECT_EQ(live_file_text(log + ".3").size(), 100u);
  EXPECT_EQ(live_file_text(log + ".1").size(), 100u);
  EXPECT_EQ(live_file_text(log).size(), 0u) << "rotated as soon as it was full";
  sup->unsubscribe(*id);
  EXPECT_EQ(run(&Supervisor::stop, {"chatty"}), std::vector<std::string>{"chatty: stopped"});
}

TEST_F(LiveSupervisor, StopAllOfManyProgramsEndsEveryProcessWithItsStopSignal) {
  std::vector<ProgramConfig> programs;
  for (int i = 0; i < 40; ++i) programs.push_back(program("p" + std::to_string(100 + i)));
  ProgramConfig stubborn = program("stubborn");
  stubborn.command = "trap '' TERM; while :; do sleep 0.05; done";
  stubborn.rules.stoptime = milliseconds(300);
  programs.push_back(stubborn);
  ProgramConfig polite = program("polite");
  polite.command = "trap 'exit 3' USR1; while :; do sleep 0.05; done";
  polite.rules.stopsignal = SIGUSR1;
  programs.push_back(polite);
  sup = std::make_unique<Supervisor>(*loop, context, config(programs));
  auto started = run(&Supervisor::start, {"all"});
  ASSERT_EQ(started.size(), 42u);
  std::vector<pid_t> pids;
  for (auto& [name, r] : rows()) pids.push_back(r.pid);
  auto t0 = SteadyClock::now();
  auto lines = run(&Supervisor::stop, {"all"});
  auto took = SteadyClock::now() - t0;
  ASSERT_EQ(lines.size(), 42u);
  for (const auto& line : lines) EXPECT_EQ(line.substr(line.find(':')), ": stopped") << line;
  for (pid_t pid : pids) EXPECT_NE(::kill(pid, 0), 0) << pid << " is gone";
  auto r = rows();
  for (auto& [name, row] : r) EXPECT_EQ(row.state, ProcState::Stopped) << name;
  ASSERT_TRUE(r["p100"].last_exit.has_value());
  EXPECT_EQ(r["p100"].last_exit->signal, SIGTERM);
  ASSERT_TRUE(r["stubborn"].last_exit.has_value());
  EXPECT_EQ(r["stubborn"].last_exit->signal, SIGKILL) << "killed after stoptime";
  ASSERT_TRUE(r["polite"].last_exit.has_value());
  EXPECT_EQ(r["polite"].last_exit->signal, 0);
  EXPECT_EQ(r["polite"].last_exit->code, 3) << "its stopsignal, SIGUSR1, made it exit 3";
  EXPECT_GE(took, milliseconds(300)) << "the stubborn one had its stoptime";
  EXPECT_LT(took, std::chrono::seconds(3)) << "stopped together, not one after the other";
}

}  // namespace
}  // namespace batman::runner
