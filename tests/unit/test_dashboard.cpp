// The dashboard's pure parts: the model's JSON, the metrics text, log chunks, the request
// checks (Host, Origin, tokens).
#include <gtest/gtest.h>

#include <sstream>

#include "src/dashboard/home_model.hpp"
#include "src/dashboard/metrics.hpp"
#include "src/dashboard/security.hpp"

namespace batman::dashboard {
namespace {

runner::RunState dash_state(std::string project, std::string run_id, std::string kind, std::string status) {
  runner::RunState s;
  s.project = std::move(project);
  s.run_id = std::move(run_id);
  s.kind = std::move(kind);
  s.status = std::move(status);
  s.command = "echo hi";
  s.started_at = "2026-11-22T01:00:00.000Z";
  if (!s.live_status()) {
    s.ended_at = "2026-11-22T01:00:03.500Z";
    s.exit_code = s.status == "succeeded" ? 0 : 1;
  }
  s.isolation.tier = "env";
  s.log = "logs/" + s.run_id + ".log";
  return s;
}

WallTime dash_now() { return *parse_rfc3339("2026-11-22T01:00:10.000Z"); }

TEST(DashboardModel, CategoriesFollowKindAndName) {
  EXPECT_EQ(category_of(dash_state("p", "20261122T010000-abcdef", "parallel", "running")), Category::Run);
  EXPECT_EQ(category_of(dash_state("p", "20261122T010000-abcdef", "batch", "running")), Category::Batch);
  EXPECT_EQ(category_of(dash_state("p", "20261122T010000-abcdef.docs", "batch", "running")), Category::Task);
  EXPECT_EQ(category_of(dash_state("p", "web_00", "program", "running")), Category::Program);
}

TEST(DashboardModel, RunJsonHasDurationAndNoBatmanInternals) {
  auto s = dash_state("p", "r1", "parallel", "succeeded");
  s.batman_pid = 4242;
  auto j = run_json(s, dash_now());
  EXPECT_EQ(j["category"], "run");
  EXPECT_DOUBLE_EQ(j["duration_seconds"].get<double>(), 3.5);
  EXPECT_FALSE(j.contains("batman_pid"));
  EXPECT_EQ(j["exit_code"], 0);
  auto live = run_json(dash_state("p", "r2", "parallel", "running"), dash_now());
  EXPECT_DOUBLE_EQ(live["duration_seconds"].get<double>(), 10.0);
  EXPECT_TRUE(live["live"].get<bool>());
  auto task = run_json(dash_state("p", "B1.docs", "batch", "failed"), dash_now());
  EXPECT_EQ(task["task"], "docs");
  EXPECT_EQ(task["batch"], "B1");
  EXPECT_TRUE(task["slurm_job"].is_null());
  auto remote = dash_state("p", "B2.build", "batch", "running");
  remote.slurm_job = "123_4";
  remote.node = "node7";
  auto on_slurm = run_json(remote, dash_now());
  EXPECT_EQ(on_slurm["slurm_job"], "123_4");
  EXPECT_EQ(on_slurm["node"], "node7");
}

TEST(DashboardModel, ListRunsIsNewestFirstFilteredAndLimited) {
  std::map<std::string, Project> projects;
  for (int i = 0; i < 5; ++i) {
    auto s = dash_state("a", "r" + std::to_string(i), "parallel", i == 4 ? "running" : "succeeded");
    s.started_at = "2026-11-22T01:00:0" + std::to_string(i) + ".000Z";
    projects["a"].runs[s.run_id] = s;
  }
  projects["a"].name = "a";
  projects["b"].name = "b";
  projects["b"].runs["t"] = dash_state("b", "X.t", "batch", "failed");
  RunFilter f;
  f.limit = 2;
  auto j = list_runs(projects, f, {Category::Run, Category::Batch}, dash_now());
  EXPECT_EQ(j["total"], 5);
  ASSERT_EQ(j["items"].size(), 2u);
  EXPECT_EQ(j["items"][0]["run_id"], "r4");
  EXPECT_EQ(j["items"][1]["run_id"], "r3");
  f.limit = 100;
  f.live_only = true;
  EXPECT_EQ(list_runs(projects, f, {Category::Run}, dash_now())["total"], 1);
  RunFilter tasks;
  EXPECT_EQ(list_runs(projects, tasks, {Category::Task}, dash_now())["items"][0]["task"], "t");
  tasks.text = "nothing-like-it";
  EXPECT_EQ(list_runs(projects, tasks, {Category::Task}, dash_now())["total"], 0);
}

TEST(DashboardModel, ProgramsComeFromTheSupervisorElseFromStateFiles) {
  Project p;
  p.name = "web";
  p.runs["web_00"] = dash_state("web", "web_00", "program", "running");
  p.runs["web_00"].isolation.tier = "namespaces";
  auto from_files = programs_json(p, dash_now());
  ASSERT_EQ(from_files.size(), 1u);
  EXPECT_EQ(from_files[0]["state"], "RUNNING");
  EXPECT_FALSE(from_files[0]["supervised"].get<bool>());
  auto rows = parse_program_rows(nlohmann::json::parse(
      R"([{"name":"web","program":"web","index":0,"state":"BACKOFF","pid":null,"uptime_seconds":null,)"
      R"("exit_code":1,"signal":null,"restarts":3,"detail":"exited too quickly"},{"bogus":1}])"));
  ASSERT_EQ(rows.size(), 1u);
  p.supervisor_rows = rows;
  p.supervisor_pid = 99;
  auto live = programs_json(p, dash_now());
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0]["state"], "BACKOFF");
  EXPECT_EQ(live[0]["restarts"], 3);
  EXPECT_EQ(live[0]["tier"], "namespaces");  // from web_00.json
  auto summary = project_summary(p);
  EXPECT_EQ(summary["programs"]["total"], 1);
  EXPECT_EQ(summary["programs"]["by_state"]["BACKOFF"], 1);
  EXPECT_EQ(summary["supervisor_pid"], 99);
}

TEST(DashboardModel, LogFileNamesStayInsideTheProjectsLogs) {
  auto s = dash_state("p", "r1", "parallel", "running");
  EXPECT_EQ(log_file_name(s, "/h/p", "stdout"), "r1.log");
  for (std::string bad : {"logs/../../etc/passwd", "/etc/passwd", "logs/", "logs/.hidden", "logs/a/b", "../logs/x"}) {
    s.log = bad;
    EXPECT_EQ(log_file_name(s, "/h/p", "stdout"), std::nullopt) << bad;
  }
  s.log = "/h/p/logs/web_00.out.log";
  EXPECT_EQ(log_file_name(s, "/h/p", "stdout"), "web_00.out.log");
  EXPECT_EQ(log_file_name(s, "/h/p", "stderr"), "web_00.err.log");
  EXPECT_EQ(log_file_name(s, "/h/other", "stdout"), std::nullopt);
}

TEST(DashboardModel, LogChunksEndOnWholeCharacters) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
  const std::string euro = "\xe2\x82\xac";  // 3 bytes
  EXPECT_EQ(utf8_complete_prefix("a" + euro), 4u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro.substr(0, 2)), 1u);
  EXPECT_EQ(utf8_complete_prefix("a" + euro.substr(0, 1)), 1u);
  EXPECT_EQ(utf8_complete_prefix("a\xff"), 2u);  // an invalid byte is whole
}

// A line of the exposition: name{labels} value.
std::map<std::string, double> dash_samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

TEST(DashboardMetrics, NamesLabelsAndValues) {
  std::map<std::string, Project> projects;
  Project& p = projects["web"];
  p.name = "web";
  p.runs["r1"] = dash_state("web", "r1", "parallel", "succeeded");
  p.runs["r2"] = dash_state("web", "r2", "parallel", "failed");
  p.runs["r3"] = dash_state("web", "r3", "parallel", "running");
  p.runs["B.docs"] = dash_state("web", "B.docs", "batch", "succeeded");
  p.supervisor_rows = parse_program_rows(nlohmann::json::parse(
      R"([{"name":"api:01","program":"api","index":1,"state":"RUNNING","pid":7,"uptime_seconds":5,"restarts":2}])"));
  const std::string text = metrics_text(projects, dash_now(), "0.1.0", 3);
  auto m = dash_samples(text);
  EXPECT_EQ(m[R"(batman_build_info{version="0.1.0"})"], 1);
  EXPECT_EQ(m[R"(batman_runs{project="web",status="succeeded"})"], 1);
  EXPECT_EQ(m[R"(batman_runs{project="web",status="running"})"], 1);
  EXPECT_EQ(m[R"(batman_batch_tasks{project="web",state="succeeded"})"], 1);
  EXPECT_EQ(m[R"(batman_program_state{project="web",program="api:01",state="RUNNING"})"], 1);
  EXPECT_EQ(m[R"(batman_program_state{project="web",program="api:01",state="FATAL"})"], 0);
  EXPECT_EQ(m[R"(batman_program_restarts_total{project="web",program="api:01"})"], 2);
  // Three finished jobs of 3.5 s: r1, r2 and the task.
  EXPECT_EQ(m[R"(batman_job_duration_seconds_count{project="web"})"], 3);
  EXPECT_DOUBLE_EQ(m[R"(batman_job_duration_seconds_sum{project="web"})"], 10.5);
  EXPECT_EQ(m[R"(batman_job_duration_seconds_bucket{project="web",le="2.5"})"], 0);
  EXPECT_EQ(m[R"(batman_job_duration_seconds_bucket{project="web",le="5"})"], 3);
  EXPECT_EQ(m[R"(batman_job_duration_seconds_bucket{project="web",le="+Inf"})"], 3);
  EXPECT_EQ(m["batman_dashboard_clients"], 3);
  // No run-ids, task names or pids in any label.
  EXPECT_EQ(text.find("r1"), std::string::npos);
  EXPECT_EQ(text.find("docs"), std::string::npos);
  EXPECT_NE(text.find("# TYPE batman_program_restarts_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE batman_job_duration_seconds histogram"), std::string::npos);
}

TEST(DashboardMetrics, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(DashboardSecurity, HostChecksStopDnsRebinding) {
  Listening local{"127.0.0.1", 8123, true};
  EXPECT_TRUE(host_allowed("127.0.0.1:8123", local));
  EXPECT_TRUE(host_allowed("localhost:8123", local));
  EXPECT_TRUE(host_allowed("LOCALHOST:8123", local));
  EXPECT_TRUE(host_allowed("[::1]:8123", local));
  EXPECT_FALSE(host_allowed("evil.example:8123", local));
  EXPECT_FALSE(host_allowed("127.0.0.1:8124", local));
  EXPECT_FALSE(host_allowed("127.0.0.1", local));
  EXPECT_FALSE(host_allowed("", local));
  EXPECT_FALSE(host_allowed("127.0.0.1:8123@evil", local));
  Listening wide{"0.0.0.0", 8123, false};
  EXPECT_TRUE(host_allowed("build-box.lan:8123", wide));
  EXPECT_FALSE(host_allowed("build-box.lan:9", wide));
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("127.1.2.3"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(is_loopback_address("192.0.2.1"));
}

TEST(DashboardSecurity, OriginsAndTokens) {
  EXPECT_TRUE(origin_allowed("", "127.0.0.1:8123"));
  EXPECT_TRUE(origin_allowed("http://127.0.0.1:8123", "127.0.0.1:8123"));
  EXPECT_FALSE(origin_allowed("http://evil.example", "127.0.0.1:8123"));
  EXPECT_FALSE(origin_allowed("null", "127.0.0.1:8123"));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "x"));
  EXPECT_EQ(cookie_value("a=1; batman_token=xyz; b=2", "batman_token"), "xyz");
  EXPECT_EQ(cookie_value("xbatman_token=1", "batman_token"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer  tok "), "tok");
  EXPECT_EQ(bearer_token("Basic tok"), std::nullopt);
  const auto t1 = random_token(), t2 = random_token();
  EXPECT_EQ(t1.size(), 64u);
  EXPECT_NE(t1, t2);
}

}  // namespace
}  // namespace batman::dashboard
