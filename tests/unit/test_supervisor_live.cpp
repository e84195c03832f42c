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

}  // namespace
}  // namespace batman::runner
