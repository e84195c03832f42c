// Job and JobSet against a fake backend whose children are real processes (fork + _exit)
// speaking the namespaces tier's protocol when asked: the setup report (EOF = started, text =
// why not) and the exit status pipe of a PID 1. And the launch
// path's pure parts: environment, request, status and exit code.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <poll.h>

#include <sched.h>
#include <sys/stat.h>
#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <tuple>

#include "runner/job.hpp"
#include "runner/job_set.hpp"
#include "isolation/cgroups.hpp"
#include "runner/launch.hpp"
#include "isolation/spawn.hpp"
#include "isolation/backends.hpp"

namespace batman::runner {
namespace {

using std::chrono::milliseconds;

// What the fake child does.
struct JobScript {
  int exit_code = 0;
  bool reported = false;           // a setup report pipe: EOF once the "job" runs
  std::string report_failure;      // written on the report pipe instead of EOF
  bool status_pipe = false;        // send the wait status on a pipe as a PID 1 does, then exit 0
  int linger_ms = 0;               // sleep before the "job" ends
};

class FakeBackend final : public isolation::Backend {
 public:
  explicit FakeBackend(JobScript script, int* released = nullptr) : script_(std::move(script)), released_(released) {}
  isolation::Tier tier() const override { return isolation::Tier::Env; }
  Result<std::vector<std::string>> prepare(const isolation::LaunchRequest&) override { return std::vector<std::string>{}; }
  Result<isolation::Child> spawn(const isolation::LaunchRequest&) override {
    int report[2] = {-1, -1}, status[2] = {-1, -1};
    if ((script_.reported || !script_.report_failure.empty()) && ::pipe2(report, O_CLOEXEC) != 0) return sys_error("pipe");
    if (script_.status_pipe && ::pipe2(status, O_CLOEXEC) != 0) return sys_error("pipe");
    pid_t pid = ::fork();
    if (pid < 0) return sys_error("fork");
    if (pid == 0) {
      for (int fd : {report[0], status[0]})
        if (fd >= 0) ::close(fd);
      if (report[1] >= 0) {
        if (!script_.report_failure.empty()) {
          (void)!::write(report[1], script_.report_failure.data(), script_.report_failure.size());
          ::_exit(125);
        }
        ::close(report[1]);
      }
      if (script_.linger_ms) ::usleep(static_cast<useconds_t>(script_.linger_ms) * 1000);
      if (status[1] >= 0) {
        int ws = script_.exit_code << 8;
        (void)!::write(status[1], &ws, sizeof ws);
        ::_exit(0);
      }
      ::_exit(script_.exit_code);
    }
    isolation::Child child;
    child.pid = pid;
    child.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (report[0] >= 0) {
      ::close(report[1]);
      child.report_fd.reset(report[0]);
    }
    if (status[0] >= 0) {
      ::close(status[1]);
      child.status_fd.reset(status[0]);
    }
    ++spawned;
    return child;
  }
  void signal_tree(const isolation::Child& child, int sig) override { ::kill(child.pid, sig); }
  void kill_leftovers(const isolation::Child&) override {}
  void release() override {
    if (released_) ++*released_;
  }
  std::optional<Error> read_report(const isolation::Child& child) override {
    char buf[256];
    ssize_t n = ::read(child.report_fd.get(), buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    return Error{std::string(buf, static_cast<std::size_t>(n)), 0};
  }
  int spawned = 0;

 private:
  JobScript script_;
  int* released_;
};

JobScript script(int exit_code, bool reported = false, std::string report_failure = "", bool status_pipe = false,
              int linger_ms = 0) {
  JobScript s;
  s.exit_code = exit_code;
  s.reported = reported;
  s.report_failure = std::move(report_failure);
  s.status_pipe = status_pipe;
  s.linger_ms = linger_ms;
  return s;
}

RestartRules one_shot() {
  RestartRules r;
  r.autorestart = AutoRestart::Never;
  r.startretries = 0;
  r.starttime = Duration::zero();
  r.stoptime = milliseconds(500);
  return r;
}

// Records what the JobSet tells its owner.
struct Recorder final : JobSet::Owner {
  std::vector<std::string> events;
  std::vector<Job*> settled;
  int turns = 0;
  Result<void> prepare_result;
  std::function<void(Job&)> on_settle;
  void on_transition(Job&, ProcState from, ProcState to, const std::string&) override {
    events.push_back(std::string(state_name(from)) + ">" + std::string(state_name(to)));
  }
  void on_starting(Job&, pid_t) override { events.push_back("starting"); }
  Result<void> prepare_start(Job&) override {
    events.push_back("prepare");
    return prepare_result;
  }
  void on_spawned(Job&, pid_t) override { events.push_back("spawned"); }
  void on_settled(Job& job) override {
    settled.push_back(&job);
    if (on_settle) on_settle(job);
  }
  void after_changes() override { ++turns; }
};

class JobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = EventLoop::create();
    ASSERT_TRUE(l.has_value());
    loop = std::move(*l);
    jobs = std::make_unique<JobSet>(*loop, owner);
  }
  Job& add(JobScript script, RestartRules rules = one_shot(), int* released = nullptr) {
    return jobs->add(std::make_unique<FakeBackend>(std::move(script), released), isolation::LaunchRequest{}, rules,
                     {}, {});
  }
  // Run the loop until `done` or 10 s.
  void run_until(const std::function<bool()>& done) {
    auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (!done() && SteadyClock::now() < deadline) ASSERT_TRUE(loop->run_once(milliseconds(100)).has_value());
    ASSERT_TRUE(done()) << "timed out";
  }
  Recorder owner;
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<JobSet> jobs;
};

TEST_F(JobTest, ExitStatusReachesTheMachineAndTheSetHandsTheJobBackOnce) {
  Job& job = add(script(3));
  job.process().start();
  run_until([&] { return !owner.settled.empty(); });
  EXPECT_EQ(owner.settled, std::vector<Job*>{&job});
  EXPECT_EQ(job.process().state(), ProcState::Exited);
  ASSERT_TRUE(job.process().last_exit().has_value());
  EXPECT_EQ(job.process().last_exit()->code, 3);
  // Without a report: prepared before the spawn, spawned at once.
  EXPECT_EQ(owner.events.front(), "prepare");
  EXPECT_NE(std::find(owner.events.begin(), owner.events.end(), "spawned"), owner.events.end());
  // Told once: further turns do not repeat it.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(loop->run_once(milliseconds(10)).has_value());
  EXPECT_EQ(owner.settled.size(), 1u);
}

TEST_F(JobTest, WithAReportTheStartIsConfirmedByItsEof) {
  Job& job = add(script(0, true));
  job.process().start();
  run_until([&] { return !owner.settled.empty(); });
  // Prepared before the spawn; spawned only once the report's EOF came.
  auto starting = std::find(owner.events.begin(), owner.events.end(), "starting");
  auto prepare = std::find(owner.events.begin(), owner.events.end(), "prepare");
  auto spawned = std::find(owner.events.begin(), owner.events.end(), "spawned");
  ASSERT_NE(spawned, owner.events.end());
  EXPECT_LT(prepare, starting);
  EXPECT_LT(starting, spawned);
  EXPECT_EQ(job.process().last_exit()->code, 0);
  EXPECT_FALSE(job.start_failed());
}

TEST_F(JobTest, AFailedPreparationStartsNoChild) {
  owner.prepare_result = fail("cannot create log: disk full");
  auto* backend = new FakeBackend(script(0, true));
  Job& job = jobs->add(std::unique_ptr<isolation::Backend>(backend), isolation::LaunchRequest{}, one_shot(), {}, {});
  job.process().start();
  run_until([&] { return !owner.settled.empty(); });
  EXPECT_EQ(job.process().state(), ProcState::Fatal);
  EXPECT_EQ(backend->spawned, 0);
  ASSERT_TRUE(job.spawn_error().has_value());
  EXPECT_EQ(job.spawn_error()->message, "cannot create log: disk full");
  EXPECT_EQ(std::find(owner.events.begin(), owner.events.end(), "spawned"), owner.events.end());
  EXPECT_FALSE(job.process().last_exit().has_value());
}

TEST_F(JobTest, ASetupReportIsAFailedStartWithItsReason) {
  Job& job = add(script(0, true, "pivot_root: Operation not permitted"));
  job.process().start();
  run_until([&] { return !owner.settled.empty(); });
  EXPECT_EQ(job.process().state(), ProcState::Fatal);
  EXPECT_TRUE(job.start_failed());
  EXPECT_EQ(job.spawn_error()->message, "pivot_root: Operation not permitted");
  EXPECT_NE(job.process().reason().find("pivot_root"), std::string::npos) << job.process().reason();
}

TEST_F(JobTest, AStatusPipeCarriesTheJobsExitNotPid1s) {
  Job& job = add(script(7, false, "", true));
  job.process().start();
  run_until([&] { return !owner.settled.empty(); });
  ASSERT_TRUE(job.process().last_exit().has_value());
  EXPECT_EQ(job.process().last_exit()->code, 7);
}

TEST_F(JobTest, ARestartWithinTheTurnIsNotASettle) {
  RestartRules rules = one_shot();
  rules.autorestart = AutoRestart::Always;
  rules.startretries = 0;
  auto* backend = new FakeBackend(script(0, false, "", false, 20));
  Job& job = jobs->add(std::unique_ptr<isolation::Backend>(backend), isolation::LaunchRequest{}, rules, {}, {});
  job.process().start();
  run_until([&] { return backend->spawned >= 3; });
  EXPECT_TRUE(owner.settled.empty()) << "restarted each time: never handed back";
  EXPECT_GT(owner.turns, 0);
  job.process().stop();
  run_until([&] { return !owner.settled.empty(); });
  EXPECT_EQ(job.process().state(), ProcState::Stopped);
}

TEST_F(JobTest, RemoveFromInsideACallbackDefersTheDestructionToTheEndOfTheTurn) {
  int released = 0;
  struct Remover final : JobSet::Owner {
    JobSet* set = nullptr;
    int* released = nullptr;
    int released_inside = -1;
    bool settled = false;
    void on_transition(Job& j, ProcState, ProcState to, const std::string&) override {
      if (to != ProcState::Exited) return;
      set->remove(j);  // inside the Job's own on_exit: it must survive until the turn is over
      released_inside = *released;
      (void)j.process().state();  // still alive
    }
    void on_settled(Job&) override { settled = true; }
  };
  // A set of its own, with this owner.
  Remover remover;
  JobSet set(*loop, remover);
  remover.set = &set;
  remover.released = &released;
  Job& j2 = set.add(std::make_unique<FakeBackend>(script(1), &released), isolation::LaunchRequest{},
                    one_shot(), {}, {});
  j2.process().start();
  run_until([&] { return set.size() == 0 && released == 1; });
  EXPECT_EQ(remover.released_inside, 0) << "finished only after the turn";
  EXPECT_FALSE(remover.settled) << "a removed job's settle is dropped";
}

TEST_F(JobTest, ClearFinishesAndReleasesEveryJob) {
  int released = 0;
  add(script(0), one_shot(), &released);
  add(script(0), one_shot(), &released);
  EXPECT_EQ(jobs->size(), 2u);
  jobs->clear();
  EXPECT_EQ(jobs->size(), 0u);
  EXPECT_EQ(released, 2);
}

// ---------------------------------------------------------------------------------------
// The launch path's pure parts.

LaunchSpec spec() {
  LaunchSpec s;
  s.project = "p";
  s.home = "/h";
  s.project_dir = "/h/p";
  s.run_id = "r1";
  s.tmp_dir = "/h/p/tmp/r1";
  s.command = "make";
  s.cwd = "/src";
  s.base_env = {"PATH=/bin", "HOME=/root", "SECRET=1", "TMPDIR=/tmp", "BATMAN_RUN_ID=forged"};
  return s;
}

std::map<std::string, std::string> as_map(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const auto& kv : env) m[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
  return m;
}

TEST(Launch, EnvironmentLayersBaseProfileUserThenBatmansOwn) {
  auto s = spec();
  s.profile.env.set = {{"FROM_PROFILE", "1"}, {"HOME", "/profile"}};
  s.env = {{"HOME", "/user"}, {"TMPDIR", "/user-tmp"}, {"BATMAN_PROJECT", "forged"}};
  s.batman_vars = {{"BATMAN_TASK", "t"}};
  auto env = as_map(job_environment(s));
  EXPECT_EQ(env["SECRET"], "1");
  EXPECT_EQ(env["FROM_PROFILE"], "1");
  EXPECT_EQ(env["HOME"], "/user") << "the user's env overrides the profile's set";
  EXPECT_EQ(env["TMPDIR"], "/h/p/tmp/r1") << "TMPDIR and BATMAN_* are batman's";
  EXPECT_EQ(env["BATMAN_PROJECT"], "p");
  EXPECT_EQ(env["BATMAN_RUN_ID"], "r1");
  EXPECT_EQ(env["BATMAN_TASK"], "t");
  EXPECT_EQ(env["BATMAN_ISOLATION"], "env");
}

TEST(Launch, AClearingProfileKeepsOnlyPathAndItsKeepList) {
  auto s = spec();
  s.profile.env.clear = true;
  s.profile.env.keep = {"HOME"};
  auto env = as_map(job_environment(s));
  EXPECT_EQ(env.count("SECRET"), 0u);
  EXPECT_EQ(env["PATH"], "/bin");
  EXPECT_EQ(env["HOME"], "/root");
  EXPECT_EQ(env["TMPDIR"], "/h/p/tmp/r1");
}

TEST(Launch, RequestCarriesTheSpec) {
  auto s = spec();
  s.unit_parts = {"task", "2", "check"};
  s.uid = 1000;
  auto r = launch_request(s);
  EXPECT_EQ(r.argv, (std::vector<std::string>{"make"}));  // no shell syntax: exec'd directly
  EXPECT_EQ(r.shell_argv, (std::vector<std::string>{"/bin/sh", "-c", "make"}));
  EXPECT_EQ(r.cwd, "/src");
  EXPECT_EQ(r.batman_home, "/h");
  EXPECT_EQ(r.tmp_dir, "/h/p/tmp/r1");
  // Its cgroup's name ends in its home's tag (another home's job of the same names is not it).
  const std::string tag = isolation::home_tag("/h");
  EXPECT_EQ(r.unit_name, "batman:p:task:2:check:" + tag);
  EXPECT_EQ(r.uid, std::optional<uid_t>(1000));
  EXPECT_EQ(launch_request(spec()).unit_name, "batman:p:r1:" + tag);
  s.home = "/elsewhere";
  EXPECT_NE(launch_request(s).unit_name, r.unit_name);
}

TEST(Launch, OneStatusMapping) {
  auto exit = [](int code, int sig = 0) { return std::optional<ExitInfo>(ExitInfo{code, sig, false}); };
  EXPECT_EQ(end_status({exit(0), false, false}), JobStatus::Succeeded);
  EXPECT_EQ(end_status({exit(2), false, false}), JobStatus::Failed);
  EXPECT_EQ(end_status({exit(-1, 9), false, false}), JobStatus::Killed);
  EXPECT_EQ(end_status({exit(0), false, true}), JobStatus::Killed) << "stopped on request";
  EXPECT_EQ(end_status({exit(-1, 15), true, true}), JobStatus::Timeout);
  EXPECT_EQ(end_status({std::nullopt, false, false}), JobStatus::Failed);
  EXPECT_EQ(exit_code_of({exit(2), false, false}), 2);
  EXPECT_EQ(exit_code_of({exit(-1, 9), false, false}), 137);
  EXPECT_EQ(exit_code_of({exit(-1, 15), true, false}), 124);
  EXPECT_EQ(exit_code_of({std::nullopt, false, false}), 125);
  EXPECT_EQ(status_of(ProcState::Backoff, std::nullopt), JobStatus::Starting);
  EXPECT_EQ(status_of(ProcState::Stopping, std::nullopt), JobStatus::Running);
  EXPECT_EQ(status_of(ProcState::Exited, exit(0)), JobStatus::Succeeded);
  EXPECT_EQ(status_of(ProcState::Fatal, std::nullopt), JobStatus::Failed);
  EXPECT_EQ(status_of(ProcState::Stopped, exit(0)), JobStatus::Killed);
  EXPECT_EQ(status_name(JobStatus::Timeout), "timeout");
}

TEST(Launch, StateRecordStartAndEnd) {
  auto s = spec();
  s.limits.cpus = 0.5;
  s.limits.memory_bytes = 1 << 20;
  auto r = state_record(s, "batch", {{isolation::Tier::Namespaces, false, "no userns"}}, "logs/r1.log");
  EXPECT_EQ(r.kind, "batch");
  EXPECT_EQ(r.status, "starting");
  EXPECT_EQ(r.limits.cpus, std::optional<std::string>("0.5"));
  EXPECT_EQ(r.limits.memory, std::optional<std::string>("1048576"));
  ASSERT_EQ(r.isolation.skipped.size(), 1u);
  EXPECT_EQ(r.isolation.skipped[0].tier, "namespaces");
  EXPECT_EQ(r.batman_pid, ::getpid());
  record_started(r, ::getpid(), std::chrono::system_clock::now());
  EXPECT_EQ(r.status, "running");
  EXPECT_GT(r.pid_start_time, 0u);
  record_ended(r, JobEnd{std::nullopt, false, false}, std::chrono::system_clock::now());
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.exit_code, std::optional<int>(125)) << "never ran: batman's own error";
  record_ended(r, JobEnd{ExitInfo{-1, 9, false}, false, false}, std::chrono::system_clock::now());
  EXPECT_EQ(r.status, "killed");
  EXPECT_FALSE(r.exit_code.has_value());
  EXPECT_EQ(r.signal, std::optional<int>(9));
}

}  // namespace
}  // namespace batman::runner

namespace batman::isolation {
namespace {

// A child of a batman with threads (the state writer) that changes its uid before execve:
// glibc's setgroups/setuid wrappers would wait in the child for the parent's other threads
// (__nptl_setxid) forever; the raw system calls do not.
TEST(SpawnAs, AUserChangeInTheChildOfAThreadedParentDoesNotHang) {
  if (::geteuid() != 0) GTEST_SKIP() << "changing the job's uid needs root";
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread other([&] {
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return done; });
  });
  LaunchRequest request;
  request.argv = {"/bin/true"};
  request.env = {"PATH=/usr/bin:/bin"};
  request.cwd = "/";
  request.uid = 65534;
  request.gid = 65534;
  auto child = spawn_plain(request, request.argv);
  ASSERT_TRUE(child.has_value()) << child.error().message;
  pollfd p{child->pidfd.get(), POLLIN, 0};
  const int ready = ::poll(&p, 1, 5000);
  if (ready == 0) ::kill(child->pid, SIGKILL);
  int status = 0;
  ::waitpid(child->pid, &status, 0);
  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_all();
  other.join();
  EXPECT_EQ(ready, 1) << "the child hung before execve";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace batman::isolation

namespace batman::runner {
namespace {

TEST(DirectExec, PlainWordsAreExecdDirectly) {
  using W = std::vector<std::string>;
  EXPECT_EQ(direct_argv("make -j4 all"), W({"make", "-j4", "all"}));
  EXPECT_EQ(direct_argv("  sleep\t5 "), W({"sleep", "5"}));
  EXPECT_EQ(direct_argv("./run.sh --port=80 a,b x@y 50% ^z +1"), W({"./run.sh", "--port=80", "a,b", "x@y", "50%", "^z", "+1"}));
  EXPECT_EQ(direct_argv("true"), W({"true"}));
  EXPECT_EQ(direct_argv("false"), W({"false"}));
  EXPECT_EQ(direct_argv("env A=1"), W({"env", "A=1"}));
}

TEST(DirectExec, ShellSyntaxAndShellWordsGoThroughSh) {
  for (const char* command : {"", "   ", "echo hi", "echo $HOME", "a 'b c'", "a \"b\"", "a\\ b", "ls *.c", "ls ?",
                              "ls [ab]", "a > f", "a < f", "a | b", "a && b", "a; b", "a &", "~/bin/x", "a # c",
                              "a\nb", "A=1 cmd", "cd /tmp", "exit 3", "test -f x", "[ -f x ]", "kill 1", "pwd",
                              "printf x", "true x", "false 1", "if", "exec ls", "a {b,c}", "!x", "a `b`", "a(b)",
                              "caf\xc3\xa9"})
    EXPECT_FALSE(direct_argv(command)) << command;
}

TEST(DirectExec, OnlyWhereTheShellWouldPassTheSameEnvironment) {
  EXPECT_TRUE(shell_passes_environment({"PATH=/usr/bin:/bin", "HOME=/root", "_x1=y", "A="}));
  EXPECT_FALSE(shell_passes_environment({"HOME=/root"}));                    // no PATH
  EXPECT_FALSE(shell_passes_environment({"PATH=/usr/bin:node_modules/.bin"}));  // relative
  EXPECT_FALSE(shell_passes_environment({"PATH=/usr/bin::/bin"}));            // empty: the cwd
  EXPECT_FALSE(shell_passes_environment({"PATH=/usr/bin:"}));
  EXPECT_FALSE(shell_passes_environment({"PATH=/usr/bin", "A-B=1"}));         // dash drops it
  EXPECT_FALSE(shell_passes_environment({"PATH=/usr/bin", "X.Y=2"}));
  EXPECT_FALSE(shell_passes_environment({"PATH=/usr/bin", "1X=2"}));
}

TEST(DirectExec, TheRequestCarriesBothForms) {
  LaunchSpec spec;
  spec.command = "sleep 1";
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  auto request = launch_request(spec);
  EXPECT_EQ(request.argv, (std::vector<std::string>{"sleep", "1"}));
  EXPECT_EQ(request.shell_argv, (std::vector<std::string>{"/bin/sh", "-c", "sleep 1"}));
  spec.command = "sleep 1; true";
  request = launch_request(spec);
  EXPECT_EQ(request.argv, (std::vector<std::string>{"/bin/sh", "-c", "sleep 1; true"}));
  EXPECT_TRUE(request.shell_argv.empty());
}

}  // namespace
}  // namespace batman::runner

namespace {
// This process's live children, from /proc (any state but zombie).
std::vector<pid_t> live_children() {
  std::vector<pid_t> out;
  for (const auto& p : isolation::read_processes())
    if (p.ppid == getpid()) out.push_back(p.pid);
  return out;
}
}  // namespace

// The namespaces tier's child cloned ahead (README "The launch path"): one at a time, given
// the profile's namespaces only for a profile it can serve, and taken down (killed and
// reaped, its stack free again) otherwise or when the run does not want it.
TEST(Prestart, AnUnwantedEarlyChildIsTakenDownAndReaped) {
  if (auto a = isolation::probe_namespaces(); !a.available) GTEST_SKIP() << a.reason;
  isolation::Profile p;
  p.namespaces = {"mount", "pid", "ipc", "uts", "net"};
  p.network = isolation::Network::None;
  p.die_with_parent = true;
  const auto before = live_children();
  ASSERT_TRUE(isolation::prestart_namespaces());
  EXPECT_EQ(live_children().size(), before.size() + 1);
  EXPECT_FALSE(isolation::prestart_namespaces()) << "a second one while the first is there";
  EXPECT_TRUE(isolation::commit_prestart(p, {}));
  isolation::abort_prestart();
  EXPECT_EQ(live_children(), before);
  EXPECT_FALSE(isolation::commit_prestart(p, {})) << "none to commit";
  // Taken down while it waits for the profile's namespaces.
  ASSERT_TRUE(isolation::prestart_namespaces());
  isolation::abort_prestart();
  EXPECT_EQ(live_children(), before);
  // A profile it cannot serve takes it down: no pid namespace, limits (a cgroup to join
  // first), a job that may outlive batman.
  isolation::Limits limits;
  limits.pids = 10;
  for (auto [namespaces, lim, die] : {std::tuple{std::vector<std::string>{"mount"}, isolation::Limits{}, true},
                                      std::tuple{std::vector<std::string>{"mount", "pid"}, limits, true},
                                      std::tuple{std::vector<std::string>{"mount", "pid"}, isolation::Limits{}, false}}) {
    ASSERT_TRUE(isolation::prestart_namespaces());
    isolation::Profile q = p;
    q.namespaces = namespaces;
    q.die_with_parent = die;
    EXPECT_FALSE(isolation::commit_prestart(q, lim));
    EXPECT_EQ(live_children(), before);
  }
}

// The early child's hint ($BATMAN_HOME/.cache/launch/): it makes the namespaces the last start
// with the same options needed before the profile is known. A guess the profile wants is
// kept; one it does not want takes the child down (the job never gets it); either way the
// hint then names what this start needed. Garbage, or a file batman must not trust (another
// link to it, a symlink on the way, writable by others), is no guess.
TEST(Prestart, TheChildGuessesFromItsHintAndAWrongGuessIsNeverTheJobs) {
  if (auto a = isolation::probe_namespaces(); !a.available) GTEST_SKIP() << a.reason;
  char tmpl[] = "/tmp/batman-hint.XXXXXX";
  const std::string home = ::mkdtemp(tmpl);
  const std::string dir = home + "/.cache/launch";
  std::filesystem::create_directories(dir);
  ::chmod((home + "/.cache").c_str(), 0700);
  ::chmod(dir.c_str(), 0700);
  isolation::Profile wants_net;
  wants_net.namespaces = {"mount", "pid", "ipc", "uts", "net"};
  wants_net.network = isolation::Network::None;
  wants_net.die_with_parent = true;
  isolation::Profile host_net = wants_net;
  host_net.network = isolation::Network::Host;
  const unsigned long all = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
  const unsigned long no_net = all & ~static_cast<unsigned long>(CLONE_NEWNET);
  auto hint_files = [&] {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path());
    return out;
  };
  auto write_hint = [](const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0600);
  };
  auto read_hint = [](const std::string& path) {
    std::string text;
    std::getline(std::ifstream(path), text);
    return text;
  };
  const auto before = live_children();

  // No hint yet: no guess, and the commit leaves one for the next start with these options.
  ASSERT_TRUE(isolation::prestart_namespaces(home, "opts"));
  EXPECT_EQ(isolation::prestart_guess(), 0u);
  EXPECT_TRUE(isolation::commit_prestart(wants_net, {}));
  isolation::abort_prestart();
  ASSERT_EQ(hint_files().size(), 1u);
  const std::string hint = hint_files().front();
  EXPECT_EQ(read_hint(hint), std::to_string(all));

  // Right: made ahead and kept.
  ASSERT_TRUE(isolation::prestart_namespaces(home, "opts"));
  EXPECT_EQ(isolation::prestart_guess(), all);
  EXPECT_TRUE(isolation::commit_prestart(wants_net, {}));
  isolation::abort_prestart();
  EXPECT_EQ(read_hint(hint), std::to_string(all));

  // Less than the profile wants: the child makes the rest after the commit.
  write_hint(hint, std::to_string(CLONE_NEWNET));
  ASSERT_TRUE(isolation::prestart_namespaces(home, "opts"));
  EXPECT_EQ(isolation::prestart_guess(), static_cast<unsigned long>(CLONE_NEWNET));
  EXPECT_TRUE(isolation::commit_prestart(wants_net, {}));
  isolation::abort_prestart();
  EXPECT_EQ(read_hint(hint), std::to_string(all));

  // A network namespace the profile does not want (network: host): the child is taken down.
  ASSERT_TRUE(isolation::prestart_namespaces(home, "opts"));
  EXPECT_EQ(isolation::prestart_guess(), all);
  EXPECT_FALSE(isolation::commit_prestart(host_net, {}));
  EXPECT_EQ(live_children(), before);
  EXPECT_EQ(read_hint(hint), std::to_string(no_net));

  // Flags no child may make ahead (user, pid, cgroup) are dropped from the guess.
  write_hint(hint, std::to_string(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWCGROUP | CLONE_NEWUTS));
  ASSERT_TRUE(isolation::prestart_namespaces(home, "opts"));
  EXPECT_EQ(isolation::prestart_guess(), static_cast<unsigned long>(CLONE_NEWUTS));
  isolation::abort_prestart();
  // No guess from garbage, from a file writable by others, from one with a second link, or
  // through a symlinked directory on the way.
  auto no_guess = [&](const std::string& why) {
    ASSERT_TRUE(isolation::prestart_namespaces(home, "opts"));
    EXPECT_EQ(isolation::prestart_guess(), 0u) << why;
    isolation::abort_prestart();
  };
  write_hint(hint, "garbage");
  no_guess("garbage");
  write_hint(hint, std::to_string(all));
  ::chmod(hint.c_str(), 0622);
  no_guess("writable by others");
  ::chmod(hint.c_str(), 0600);
  ASSERT_EQ(::link(hint.c_str(), (home + "/second").c_str()), 0);
  no_guess("a second link");
  ::unlink((home + "/second").c_str());
  std::filesystem::rename(dir, home + "/real");
  std::filesystem::create_directory_symlink(home + "/real", dir);
  no_guess("a symlinked directory");
  std::filesystem::remove(dir);
  std::filesystem::rename(home + "/real", dir);
  EXPECT_EQ(live_children(), before);

  // Other options, another hint.
  ASSERT_TRUE(isolation::prestart_namespaces(home, "other"));
  EXPECT_TRUE(isolation::commit_prestart(host_net, {}));
  isolation::abort_prestart();
  EXPECT_EQ(hint_files().size(), 2u);
  std::filesystem::remove_all(home);
}
