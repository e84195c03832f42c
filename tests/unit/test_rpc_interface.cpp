// supervisord's XML-RPC methods (src/taskmaster/rpc_interface.*) on a live Supervisor with
// real processes: the answers supervisorctl reads (process-info dicts, state codes, fault
// codes and strings), startProcess answered once RUNNING and not before, groups, multicall,
// and reloadConfig/addProcessGroup/removeProcessGroup through the supervisor's reload.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <limits>

#include "src/taskmaster/rpc_interface.hpp"

namespace batman::cli {
namespace {

using runner::ProcState;
using runner::ProgramConfig;
using std::chrono::milliseconds;
using XV = xmlrpc::Value;
using XA = xmlrpc::Array;

class Rpc : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batman-rpc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    for (const char* d : {"/p", "/p/logs", "/p/tmp"}) ::mkdir((dir + d).c_str(), 0700);
    auto l = runner::EventLoop::create();
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
    rpc.reset();
    sup.reset();
    std::string rm = "rm -rf '" + dir + "'";
    (void)!std::system(rm.c_str());
  }
  static ProgramConfig program(const std::string& name, const std::string& command = "exec sleep 100", int numprocs = 1) {
    ProgramConfig p;
    p.name = name;
    p.command = command;
    p.numprocs = numprocs;
    p.autostart = false;
    p.rules.starttime = milliseconds(300);
    p.rules.stoptime = milliseconds(500);
    p.rules.startretries = 0;
    p.tier = isolation::Tier::Env;
    return p;
  }
  void start(runner::SupervisorConfig config) {
    config.project = "p";
    sup = std::make_unique<runner::Supervisor>(*loop, context, std::move(config));
    RpcInterface::Hooks hooks;
    hooks.load = [this]() -> Result<runner::SupervisorConfig> {
      if (!next_config) return fail("supervisord.conf:3: [program:x] numprocs: expected a whole number");
      return *next_config;
    };
    hooks.apply = [this](runner::SupervisorConfig next) -> Result<void> {
      sup->reload(std::move(next));
      return {};
    };
    hooks.main_log = dir + "/main.log";
    hooks.version = "0.1.0";
    rpc = std::make_unique<RpcInterface>(*loop, *sup, hooks);
    sup->set_observer([this](const runner::InstanceKey& k, ProcState from, ProcState to) { rpc->on_transition(k, from, to); });
  }
  // One call, run to its answer.
  Outcome call(const std::string& method, XA params = {}) {
    std::optional<Outcome> got;
    rpc->call(method, params, [&](Outcome o) { got = std::move(o); });
    until([&] { return got.has_value(); });
    return got.value_or(Outcome::failed(faults::kFailed, "no answer"));
  }
  void until(const std::function<bool()>& done) {
    auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (!done() && SteadyClock::now() < deadline) ASSERT_TRUE(loop->run_once(milliseconds(20)).has_value());
    ASSERT_TRUE(done()) << "timed out";
  }
  ProcState state_of(const std::string& program, int index = 0) {
    return sup->status({runner::InstanceKey{program, index}}).at(0).state;
  }
  static std::string field(const XV& info, const char* name) {
    const XV* v = info.member(name);
    if (!v) return "<absent>";
    if (const auto* s = v->get<std::string>()) return *s;
    if (const auto* n = v->get<std::int64_t>()) return std::to_string(*n);
    return "<other>";
  }

  std::string dir;
  std::unique_ptr<runner::EventLoop> loop;
  runner::SupervisorContext context;
  std::unique_ptr<runner::Supervisor> sup;
  std::unique_ptr<RpcInterface> rpc;
  std::optional<runner::SupervisorConfig> next_config;
};

TEST(RpcNames, FaultsStatesAndUptimeAsSupervisordSaysThem) {
  EXPECT_EQ(make_fault(faults::kBadName, "web").text, "BAD_NAME: web");
  EXPECT_EQ(make_fault(faults::kUnknownMethod).text, "UNKNOWN_METHOD");
  EXPECT_EQ(make_fault(faults::kCantReread, "x").text, "CANT_REREAD: x");
  EXPECT_EQ(state_code(ProcState::Stopped), 0);
  EXPECT_EQ(state_code(ProcState::Running), 20);
  EXPECT_EQ(state_code(ProcState::Fatal), 200);
  EXPECT_EQ(python_timedelta(62), "0:01:02");
  EXPECT_EQ(python_timedelta(86400 + 3723), "1 day, 1:02:03");
  EXPECT_EQ(python_timedelta(2 * 86400), "2 days, 0:00:00");
  // The table is fixed: supervisorctl's methods, nothing private.
  const auto names = RpcInterface::method_names();
  for (const char* m : {"supervisor.getVersion", "supervisor.startProcess", "supervisor.getAllProcessInfo",
                        "supervisor.reloadConfig", "supervisor.readProcessStdoutLog", "system.multicall"})
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
  for (const auto& n : names) EXPECT_EQ(n.find("._"), std::string::npos) << n;
}

TEST_F(Rpc, VersionStateAndUnknownMethods) {
  start({});
  EXPECT_EQ(call("supervisor.getVersion").value, XV("3.0"));
  EXPECT_EQ(call("supervisor.getAPIVersion").value, XV("3.0"));
  EXPECT_EQ(field(*call("supervisor.getState").value, "statename"), "RUNNING");
  EXPECT_EQ(call("supervisor.getPID").value, XV(static_cast<int>(::getpid())));
  for (const char* bad : {"supervisor._update", "supervisor.startProcess.__init__", "os.system", "system", ""})
    EXPECT_EQ(call(bad).fault.code, faults::kUnknownMethod) << bad;
  EXPECT_EQ(call("supervisor.getPID", {XV(1)}).fault.code, faults::kIncorrectParameters);
}

TEST_F(Rpc, ProcessInfoStartStopAndFaults) {
  runner::SupervisorConfig c;
  c.programs = {program("web"), program("flaky", "exit 3")};
  start(c);
  auto info = call("supervisor.getProcessInfo", {XV("web")});
  ASSERT_TRUE(info.value);
  std::vector<std::string> keys;
  for (const auto& [k, v] : *info.value->get<xmlrpc::Struct>()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "group", "start", "stop", "now", "state", "statename", "spawnerr",
                                            "exitstatus", "logfile", "stdout_logfile", "stderr_logfile", "pid",
                                            "description"}));
  EXPECT_EQ(field(*info.value, "statename"), "STOPPED");
  EXPECT_EQ(field(*info.value, "description"), "Not started");
  EXPECT_EQ(field(*info.value, "group"), "web");

  // Answered once RUNNING (starttime 300 ms), not when spawned.
  const auto before = SteadyClock::now();
  auto started = call("supervisor.startProcess", {XV("web"), XV(true)});
  ASSERT_TRUE(started.value) << started.fault.text;
  EXPECT_GE(SteadyClock::now() - before, milliseconds(250));
  EXPECT_EQ(state_of("web"), ProcState::Running);
  info = call("supervisor.getProcessInfo", {XV("web")});
  EXPECT_EQ(field(*info.value, "state"), "20");
  EXPECT_EQ(field(*info.value, "description").rfind("pid " + field(*info.value, "pid") + ", uptime 0:00:0", 0), 0u);
  EXPECT_EQ(call("supervisor.startProcess", {XV("web")}).fault.text, "ALREADY_STARTED: web");
  EXPECT_EQ(call("supervisor.startProcess", {XV("nope")}).fault.text, "BAD_NAME: nope");
  // Out before starttime: supervisord's SPAWN_ERROR, then FATAL (startretries 0).
  EXPECT_EQ(call("supervisor.startProcess", {XV("flaky")}).fault.text, "SPAWN_ERROR: flaky");
  until([&] { return state_of("flaky") == ProcState::Fatal; });
  EXPECT_EQ(call("supervisor.signalProcess", {XV("web"), XV("NOPE")}).fault.text, "BAD_SIGNAL: NOPE");
  EXPECT_EQ(call("supervisor.signalProcess", {XV("flaky"), XV("HUP")}).fault.text, "NOT_RUNNING: flaky");
  EXPECT_TRUE(call("supervisor.signalProcess", {XV("web"), XV("usr1")}).value);  // as supervisord: any case
  // stop waits for STOPPED.
  auto stopped = call("supervisor.stopProcess", {XV("web")});
  ASSERT_TRUE(stopped.value) << stopped.fault.text;
  EXPECT_EQ(state_of("web"), ProcState::Stopped);
  EXPECT_EQ(call("supervisor.stopProcess", {XV("web")}).fault.text, "NOT_RUNNING: web");
}

TEST_F(Rpc, GroupsAllAndMulticall) {
  runner::SupervisorConfig c;
  auto worker = program("worker", "exec sleep 100", 2);
  worker.process_name = "%(program_name)s_%(process_num)02d";
  worker.group = "pool";
  c.programs = {program("web"), worker};
  c.groups = {runner::ProgramGroup{"pool", {"worker"}, 999}};
  start(c);
  auto all = call("supervisor.getAllProcessInfo");
  ASSERT_TRUE(all.value);
  std::vector<std::string> names;
  for (const auto& info : *all.value->get<XA>()) names.push_back(field(info, "group") + ":" + field(info, "name"));
  EXPECT_EQ(names, (std::vector<std::string>{"pool:worker_00", "pool:worker_01", "web:web"}));
  auto group = call("supervisor.startProcessGroup", {XV("pool")});
  ASSERT_TRUE(group.value) << group.fault.text;
  ASSERT_EQ(group.value->get<XA>()->size(), 2u);
  EXPECT_EQ(field(group.value->get<XA>()->at(1), "name"), "worker_01");
  EXPECT_EQ(field(group.value->get<XA>()->at(1), "description"), "OK");
  EXPECT_EQ(state_of("worker", 1), ProcState::Running);
  EXPECT_EQ(call("supervisor.startProcess", {XV("worker")}).fault.text, "BAD_NAME: worker");
  EXPECT_EQ(call("supervisor.getProcessInfo", {XV("pool:worker_01")}).value.has_value(), true);
  // stopAllProcesses: only what runs.
  auto stopped = call("supervisor.stopAllProcesses");
  ASSERT_TRUE(stopped.value);
  EXPECT_EQ(stopped.value->get<XA>()->size(), 2u);
  // multicall: each answered in order, faults inside, no recursion.
  XA calls{XV(xmlrpc::Struct{{"methodName", XV("supervisor.getAPIVersion")}, {"params", XV(XA{})}}),
           XV(xmlrpc::Struct{{"methodName", XV("supervisor.startProcess")}, {"params", XV(XA{XV("web")})}}),
           XV(xmlrpc::Struct{{"methodName", XV("system.multicall")}, {"params", XV(XA{})}}),
           XV(xmlrpc::Struct{{"params", XV(XA{})}})};
  auto multi = call("system.multicall", {XV(calls)});
  ASSERT_TRUE(multi.value);
  const auto& r = *multi.value->get<XA>();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0], XV("3.0"));
  EXPECT_EQ(r[1], XV(true));
  EXPECT_EQ(field(r[2], "faultString"), "INCORRECT_PARAMETERS: Recursive system.multicall forbidden");
  EXPECT_EQ(field(r[3], "faultString"), "INCORRECT_PARAMETERS: No methodName");
}

TEST_F(Rpc, RereadAddRemoveGoThroughTheReload) {
  runner::SupervisorConfig c;
  c.programs = {program("web")};
  start(c);
  auto bad = call("supervisor.reloadConfig");
  EXPECT_EQ(bad.fault.code, faults::kCantReread);
  EXPECT_NE(bad.fault.text.find("numprocs"), std::string::npos);
  runner::SupervisorConfig next;
  auto extra = program("extra");
  extra.autostart = true;
  auto web = program("web", "exec sleep 101");
  next.programs = {web, extra};
  next_config = next;
  auto diff = call("supervisor.reloadConfig");
  ASSERT_TRUE(diff.value) << diff.fault.text;
  EXPECT_EQ(*diff.value, XV(XA{XV(XA{XV(XA{XV("extra")}), XV(XA{XV("web")}), XV(XA{})})}));
  EXPECT_EQ(sup->config().programs.size(), 1u) << "reread changes nothing";
  ASSERT_TRUE(call("supervisor.addProcessGroup", {XV("extra")}).value);
  until([&] { return state_of("extra") == ProcState::Running; });
  EXPECT_EQ(call("supervisor.addProcessGroup", {XV("extra")}).fault.text, "ALREADY_ADDED: extra");
  EXPECT_EQ(call("supervisor.removeProcessGroup", {XV("extra")}).fault.text, "STILL_RUNNING: extra");
  ASSERT_TRUE(call("supervisor.stopProcess", {XV("extra")}).value);
  ASSERT_TRUE(call("supervisor.removeProcessGroup", {XV("extra")}).value);
  EXPECT_EQ(sup->config().find("extra"), nullptr);
  EXPECT_EQ(call("supervisor.removeProcessGroup", {XV("extra")}).fault.text, "BAD_NAME: extra");
}

TEST_F(Rpc, RedirectStderrAndTheLogMethods) {
  runner::SupervisorConfig c;
  auto talk = program("talk", "echo to-out; echo to-err >&2; exec sleep 100");
  talk.redirect_stderr = true;
  c.programs = {talk};
  start(c);
  ASSERT_TRUE(call("supervisor.startProcess", {XV("talk")}).value);
  std::string log;
  until([&] {
    auto r = call("supervisor.readProcessStdoutLog", {XV("talk"), XV(0), XV(0)});
    log = r.value ? *r.value->get<std::string>() : "";
    return log.find("to-out") != std::string::npos && log.find("to-err") != std::string::npos;
  });
  // Both streams in the stdout log; no stderr log at all.
  EXPECT_EQ(call("supervisor.readProcessStderrLog", {XV("talk"), XV(0), XV(0)}).fault.text, "NO_FILE: None");
  // readFile's rules: the last N bytes, BAD_ARGUMENTS for a length with a negative offset.
  auto last = call("supervisor.readProcessStdoutLog", {XV("talk"), XV(-7), XV(0)});
  ASSERT_TRUE(last.value);
  EXPECT_EQ(last.value->get<std::string>()->size(), 7u);
  EXPECT_EQ(call("supervisor.readProcessStdoutLog", {XV("talk"), XV(-7), XV(3)}).fault.code, faults::kBadArguments);
  auto tail = call("supervisor.tailProcessStdoutLog", {XV("talk"), XV(0), XV(1000)});
  ASSERT_TRUE(tail.value);
  EXPECT_EQ(tail.value->get<XA>()->at(1), XV(static_cast<std::int64_t>(log.size())));
  // A client's extreme numbers are answered, not overflowed (UBSan would say).
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max(), kMin = std::numeric_limits<std::int64_t>::min();
  EXPECT_TRUE(call("supervisor.tailProcessStdoutLog", {XV("talk"), XV(kMax), XV(kMax)}).value);
  EXPECT_TRUE(call("supervisor.tailProcessStdoutLog", {XV("talk"), XV(kMin), XV(kMin)}).value);
  EXPECT_TRUE(call("supervisor.readProcessStdoutLog", {XV("talk"), XV(kMin), XV(0)}).value);
  EXPECT_TRUE(call("supervisor.readProcessStdoutLog", {XV("talk"), XV(kMax), XV(kMax)}).value);
  ASSERT_TRUE(call("supervisor.clearProcessLogs", {XV("talk")}).value);
  EXPECT_EQ(call("supervisor.readProcessStdoutLog", {XV("talk"), XV(0), XV(0)}).value, XV(""));
}

// Shutdown stops by priority, highest first, one priority after the other.
TEST_F(Rpc, ShutdownStopsByPriorityHighestFirst) {
  runner::SupervisorConfig c;
  auto db = program("db");
  db.priority = 1;
  auto web = program("web");
  web.priority = 500;
  c.programs = {db, web};
  start(c);
  ASSERT_TRUE(call("supervisor.startAllProcesses").value);
  std::vector<std::string> stopped;
  sup->set_observer([&](const runner::InstanceKey& k, ProcState, ProcState to) {
    if (to == ProcState::Stopping || to == ProcState::Stopped)
      stopped.push_back(k.program + (to == ProcState::Stopping ? " stopping" : " stopped"));
  });
  bool done = false;
  sup->shutdown([&] { done = true; });
  until([&] { return done; });
  EXPECT_EQ(stopped, (std::vector<std::string>{"web stopping", "web stopped", "db stopping", "db stopped"}));
}

TEST(RpcAuth, PlainAndShaPasswordsAsSupervisordTakesThem) {
  runner::HttpRequest request;
  request.headers["authorization"] = "Basic dXNlcjpzZWNyZXQ=";  // user:secret
  EXPECT_TRUE(RpcInterface::authorized(request, "user", "secret"));
  EXPECT_FALSE(RpcInterface::authorized(request, "user", "secreT"));
  EXPECT_TRUE(RpcInterface::authorized(request, "user", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"));
  EXPECT_TRUE(RpcInterface::authorized(request, "user", "{SHA}E5E9FA1BA31ECD1AE84F75CAAA474F3A663F05F4"));
  EXPECT_FALSE(RpcInterface::authorized(request, "user", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f5"));
  EXPECT_FALSE(RpcInterface::authorized(request, "other", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"));
  request.headers["authorization"] = "Basic " "dXNlcjp7U0hBfWU1ZTlmYTFiYTMxZWNkMWFlODRmNzVjYWFhNDc0ZjNhNjYzZjA1ZjQ=";
  EXPECT_FALSE(RpcInterface::authorized(request, "user", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4"))
      << "the hash itself is not the password";
  request.headers.clear();
  EXPECT_FALSE(RpcInterface::authorized(request, "user", "secret"));
}

}  // namespace
}  // namespace batman::cli
