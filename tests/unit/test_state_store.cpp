// Unit tests of the state file: JSON round trip, atomic write, `lost` detection.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "runner/state_store.hpp"

using namespace batman::runner;

TEST(StateStore, RoundTripsEveryField) {
  RunState s;
  s.project = "api";
  s.run_id = "20261122T014125-abcdef";
  s.kind = "parallel";
  s.command = "npm test";
  s.cwd = "/src";
  s.pid = 42;
  s.pid_start_time = 7;
  s.batman_pid = 41;
  s.isolation = {"env", "parallel", {{"namespaces", "no user namespaces"}}, {"seccomp (env tier)"}};
  s.limits.memory = "536870912";
  s.status = "succeeded";
  s.started_at = "2026-11-22T01:41:25.000Z";
  s.ended_at = "2026-11-22T01:41:26.000Z";
  s.exit_code = 0;
  s.restarts = 2;
  s.log = "logs/20261122T014125-abcdef.log";
  s.monitor_url = "http://127.0.0.1:8080/";
  auto text = to_json(s);
  auto j = nlohmann::json::parse(text);
  for (const char* key : {"schema", "project", "run_id", "kind", "command", "cwd", "pid", "pid_start_time",
                          "batman_pid", "isolation", "limits", "status", "started_at", "ended_at", "exit_code",
                          "signal", "restarts", "log", "monitor_url", "worktree"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["schema"], 1);
  EXPECT_TRUE(j["signal"].is_null());
  auto back = from_json(text, "x");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->isolation.skipped.at(0).reason, "no user namespaces");
  EXPECT_EQ(back->exit_code, 0);
  EXPECT_EQ(back->limits.memory, "536870912");
  EXPECT_EQ(to_json(*back), text);
}

TEST(StateStore, BadJsonIsAnErrorNamingTheFile) {
  auto r = from_json("{not json", "state/x.json");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("state/x.json"), std::string::npos);
}

TEST(StateStore, RunningWithADeadBatmanReadsAsLost) {
  RunState s;
  s.status = "running";
  s.batman_pid = getpid();
  s.batman_start_time = process_start_time(getpid());
  mark_lost_if_dead(s);
  EXPECT_EQ(s.status, "running");
  s.batman_start_time += 1;  // the pid was reused by another process
  mark_lost_if_dead(s);
  EXPECT_EQ(s.status, "lost");
  RunState done;
  done.status = "failed";
  done.batman_pid = 999999;
  mark_lost_if_dead(done);
  EXPECT_EQ(done.status, "failed");
}

TEST(StateStore, AMissingStartTimeMatchesNothing) {
  // A state file without pid_start_time (or with 0) must not make every live pid "ours".
  EXPECT_TRUE(process_matches(getpid(), process_start_time(getpid())));
  EXPECT_FALSE(process_matches(getpid(), 0));
  EXPECT_FALSE(process_matches(getpid(), process_start_time(getpid()) + 1));
  EXPECT_FALSE(process_matches(0, 0));
  auto parsed = from_json(R"({"status":"running","pid":1,"batman_pid":1})", "x.json");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->pid_start_time, 0u);
  mark_lost_if_dead(*parsed);  // pid 1 is alive, but nothing says it is this run's batman
  EXPECT_EQ(parsed->status, "lost");
}

TEST(StateStore, WriteAndReadBack) {
  char tmpl[] = "/tmp/batman-state-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  RunState s;
  s.run_id = "r1";
  s.status = "succeeded";
  ASSERT_TRUE(write_state(fd, s));
  auto back = read_state(fd, "r1");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, "succeeded");
  ::close(fd);
  std::filesystem::remove_all(dir);
}
