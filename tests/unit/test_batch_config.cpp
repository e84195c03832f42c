// Batch file tests: every field of SPEC §10, file:line:key errors, and the precedence rule
// flags > environment > per-task/per-batch > defaults > built-ins.
#include <gtest/gtest.h>

#include <sstream>

#include "src/batch/batch_config.hpp"

namespace batman::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const char* kFull = R"(project: roadmap
defaults:
  max_concurrency: 4
  rate_limit: 5
  timeout: 20s
  retries: 2
  backoff: {initial: 500ms, factor: 3, max: 10s, jitter: false}
  max_queue: 50
  isolation: env
  profile: ci
tasks:
  monitoring: {cmd: "echo mon", timeout: 60s, needs: [], env: {A: "1"}, cwd: /tmp, retries: 1}
  dashboard:  {cmd: "echo dash", needs: [monitoring]}
  docs: "echo docs"
batches:
  - name: "Month 1 - Week 1"
    tasks: [monitoring, dashboard]
    max_concurrency: 2
    rate_limit: 1.5
  - name: later
    tasks: [docs]
    timeout: 5s
delays: {between_batches: 5s, between_tasks: 250ms}
health:
  interval: 2s
  adjust: true
  min_concurrency: 1
  max_concurrency: 6
  check: "true"
)";

std::string error_of(const std::string& yaml) {
  auto f = parse_batch_file(yaml, "ci.yaml");
  return f ? std::string("(no error)") : f.error().message;
}

TEST(BatchConfig, ReadsEveryField) {
  auto f = parse_batch_file(kFull, "dir/plan.yaml");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->project, "roadmap");
  EXPECT_EQ(f->defaults.max_concurrency, 4);
  EXPECT_EQ(f->defaults.timeout, seconds(20));
  EXPECT_EQ(f->backoff.initial, milliseconds(500));
  EXPECT_DOUBLE_EQ(f->backoff.factor, 3);
  EXPECT_FALSE(f->backoff.jitter);
  EXPECT_EQ(f->isolation, "env");
  ASSERT_EQ(f->tasks.size(), 3u);
  EXPECT_EQ(f->tasks[0].name, "monitoring");
  EXPECT_EQ(f->tasks[0].env.at("A"), "1");
  EXPECT_EQ(f->tasks[0].cwd, "/tmp");
  EXPECT_EQ(f->tasks[1].needs, std::vector<std::string>{"monitoring"});
  EXPECT_EQ(f->tasks[2].cmd, "echo docs");
  ASSERT_EQ(f->batches.size(), 2u);
  EXPECT_EQ(f->batches[0].name, "Month 1 - Week 1");
  EXPECT_EQ(f->between_batches, seconds(5));
  EXPECT_EQ(f->between_tasks, milliseconds(250));
  ASSERT_TRUE(f->health);
  EXPECT_EQ(f->health->max_concurrency, 6);
  EXPECT_EQ(f->health_check, "true");
}

TEST(BatchConfig, ProjectDefaultsToTheFileStem) {
  auto f = parse_batch_file("tasks: {a: {cmd: x}}", "/some/where/nightly.yaml");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->project, "nightly");
  EXPECT_FALSE(f->health) << "no health section: no AIMD";
}

TEST(BatchConfig, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(error_of("tasks:\n  a: {cmd: x}\n  b:\n    cmd: y\n    timeout: soon\n"),
            "ci.yaml:5: key 'tasks.b.timeout': expected a duration such as 1500ms, 30s, 5m or 1h");
  EXPECT_EQ(error_of("defaults:\n  max_concurency: 3\ntasks: {a: {cmd: x}}\n"),
            "ci.yaml:2: key 'defaults.max_concurency': unknown key (known: account, backoff, executor, "
            "isolation, max_concurrency, max_queue, partition, profile, qos, rate_limit, retries, "
            "slurm_options, timeout)");
  EXPECT_EQ(error_of("tasks:\n  a: {cmd: x, needs: [b]}\n"),
            "ci.yaml:2: key 'tasks.a.needs': no task named 'b'");
  EXPECT_EQ(error_of("tasks:\n  a: {cmd: x}\nbatches:\n  - tasks: [a]\n  - tasks: [a]\n"),
            "ci.yaml:5: key 'batches[1].tasks': task 'a' is already in batch 'batch 1'");
  EXPECT_EQ(error_of("tasks:\n  a: {cmd: x, retries: -1}\n"),
            "ci.yaml:2: key 'tasks.a.retries': -1 is out of range (0 to 1000)");
  EXPECT_EQ(error_of("tasks:\n  a: {timeout: 1s}\n"),
            "ci.yaml:2: key 'tasks.a.cmd': missing: the command to run");
  EXPECT_EQ(error_of("health: {min_concurrency: 5, max_concurrency: 2}\ntasks: {a: x}\n"),
            "ci.yaml:1: key 'health.min_concurrency': is above health.max_concurrency (2)");
  EXPECT_EQ(error_of("tasks: {a: x}\ndefaults: {isolation: chroot}\n").substr(0, 36),
            "ci.yaml:2: key 'defaults.isolation':");
  EXPECT_NE(error_of("tasks:\n  ../x: {cmd: x}\n").find("ci.yaml:2: key 'tasks.../x': invalid task name"),
            std::string::npos);
  EXPECT_EQ(error_of(""), "ci.yaml: expected a mapping of keys");
  EXPECT_EQ(error_of("tasks: {}\n"), "ci.yaml:1: key 'tasks': missing: a batch file lists at least one task");
  EXPECT_NE(error_of("tasks: [unclosed\n").find("ci.yaml:"), std::string::npos);
}

TEST(BatchConfig, RefusesDependencyCycles) {
  EXPECT_EQ(error_of("tasks:\n  a: {cmd: x, needs: [b]}\n  b: {cmd: x, needs: [c]}\n  c: {cmd: x, needs: [a]}\n"),
            "ci.yaml:2: key 'tasks.a.needs': dependency cycle a -> b -> c -> a");
}

TEST(BatchConfig, PrecedenceFlagsThenEnvironmentThenTaskThenDefaults) {
  auto f = parse_batch_file(kFull, "plan.yaml");
  ASSERT_TRUE(f);
  const Limits none;
  auto run = resolve_batch(*f, {}, none, none);
  ASSERT_TRUE(run) << run.error().message;
  ASSERT_EQ(run->plan.batches.size(), 2u);
  const auto& p = run->plan;
  EXPECT_EQ(p.batches[0].max_concurrency, 2);       // per-batch beats defaults
  EXPECT_DOUBLE_EQ(p.batches[0].rate_limit, 1.5);
  EXPECT_EQ(p.batches[1].max_concurrency, 4);       // defaults
  EXPECT_EQ(p.batches[1].max_queue, 50u);
  EXPECT_EQ(p.tasks[0].timeout, seconds(60));       // per-task
  EXPECT_EQ(p.tasks[1].timeout, seconds(20));       // defaults
  EXPECT_EQ(p.tasks[2].timeout, seconds(5));        // per-batch
  EXPECT_EQ(p.tasks[0].retries, 1);
  EXPECT_EQ(p.tasks[1].retries, 2);
  EXPECT_EQ(p.tasks[1].needs, std::vector<std::size_t>{0});
  EXPECT_EQ(p.tasks[0].backoff.initial, milliseconds(500));
  EXPECT_TRUE(p.health.adjust);

  Limits env;
  env.max_concurrency = 7;
  env.timeout = milliseconds(1500);
  run = resolve_batch(*f, {}, none, env);
  EXPECT_EQ(run->plan.batches[0].max_concurrency, 7);
  EXPECT_EQ(run->plan.tasks[0].timeout, milliseconds(1500));
  EXPECT_DOUBLE_EQ(run->plan.batches[0].rate_limit, 1.5);

  Limits flags;
  flags.max_concurrency = 1;
  flags.retries = 0;
  run = resolve_batch(*f, {}, flags, env);
  EXPECT_EQ(run->plan.batches[0].max_concurrency, 1);
  EXPECT_EQ(run->plan.tasks[0].retries, 0);
  EXPECT_EQ(run->plan.tasks[0].timeout, milliseconds(1500));
}

TEST(BatchConfig, BuiltInDefaults) {
  auto f = parse_batch_file("tasks: {a: x, b: y}", "p.yaml");
  auto run = resolve_batch(*f, {}, {}, {});
  ASSERT_TRUE(run);
  ASSERT_EQ(run->plan.batches.size(), 1u);
  EXPECT_EQ(run->plan.batches[0].max_concurrency, 3);
  EXPECT_DOUBLE_EQ(run->plan.batches[0].rate_limit, 10);
  EXPECT_EQ(run->plan.batches[0].max_queue, 100u);
  EXPECT_EQ(run->plan.tasks[0].timeout, seconds(30));
  EXPECT_EQ(run->plan.tasks[0].retries, 3);
  EXPECT_FALSE(run->plan.health.adjust);
}

TEST(BatchConfig, NamedTasksRunAsOneBatch) {
  auto f = parse_batch_file(kFull, "plan.yaml");
  // --no-deps: only the named ones; a need outside them is unmet (the task is skipped).
  auto run = resolve_batch(*f, {"docs", "dashboard"}, {}, {}, true);
  ASSERT_TRUE(run) << run.error().message;
  ASSERT_EQ(run->plan.batches.size(), 1u);
  EXPECT_EQ(run->plan.batches[0].name, "docs dashboard");
  EXPECT_EQ(run->tasks.size(), 2u);
  EXPECT_EQ(run->tasks[0].name, "docs");
  EXPECT_EQ(run->plan.tasks[1].unmet_needs, std::vector<std::string>{"monitoring"});
  auto missing = resolve_batch(*f, {"nope"}, {}, {});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "plan.yaml: no task named 'nope' (tasks: monitoring, dashboard, docs)");
}

TEST(BatchConfig, NamedTasksPullInWhatTheyNeedTransitively) {
  auto f = parse_batch_file(R"(tasks:
  build: "make"
  lint: "make lint"
  unit: {cmd: "make test", needs: [build]}
  e2e: {cmd: "make e2e", needs: [unit, fixtures]}
  fixtures: {cmd: "make fixtures", needs: [build]}
  docs: "make docs"
)", "ci.yaml");
  ASSERT_TRUE(f) << f.error().message;
  auto run = resolve_batch(*f, {"e2e"}, {}, {});
  ASSERT_TRUE(run) << run.error().message;
  std::vector<std::string> names;
  for (const auto& t : run->tasks) names.push_back(t.name);
  // The named task first, then what it needs in file order; lint and docs are not part of it.
  EXPECT_EQ(names, (std::vector<std::string>{"e2e", "build", "unit", "fixtures"}));
  EXPECT_EQ(run->plan.batches[0].name, "e2e");
  for (const auto& t : run->plan.tasks) EXPECT_TRUE(t.unmet_needs.empty()) << t.name;
  EXPECT_EQ(run->plan.tasks[0].needs, (std::vector<std::size_t>{2, 3}));  // unit, fixtures
  auto only = resolve_batch(*f, {"e2e"}, {}, {}, true);
  ASSERT_TRUE(only);
  EXPECT_EQ(only->tasks.size(), 1u);
  EXPECT_EQ(only->plan.tasks[0].unmet_needs, (std::vector<std::string>{"unit", "fixtures"}));
}

TEST(BatchConfig, TaskNamesLeaveRoomForTheRunId) {
  const std::string ok(kMaxTaskName, 'a'), long_name(kMaxTaskName + 1, 'a');
  EXPECT_TRUE(parse_batch_file("tasks: {" + ok + ": x}", "ci.yaml"));
  EXPECT_EQ(error_of("tasks:\n  " + long_name + ": x\n"),
            "ci.yaml:2: key 'tasks." + long_name + "': a task name is at most 41 characters (its files are named "
            "<run-id>.<task>)");
}

TEST(BatchConfig, StdinHasXargsDefaultsAndStillTakesFlagsAndEnvironment) {
  std::istringstream in("echo a\necho b\n");
  auto f = batch_from_lines(in);
  ASSERT_TRUE(f);
  auto run = resolve_batch(*f, {}, {}, {});
  ASSERT_TRUE(run);
  EXPECT_EQ(run->plan.batches[0].max_concurrency, available_cpus());
  EXPECT_GE(available_cpus(), 1);
  EXPECT_DOUBLE_EQ(run->plan.batches[0].rate_limit, 0);
  EXPECT_EQ(run->plan.tasks[0].timeout, Duration::zero());
  EXPECT_EQ(run->plan.tasks[0].retries, 0);
  Limits environment;
  environment.max_concurrency = 7;
  environment.timeout = seconds(3);
  Limits flags;
  flags.retries = 2;
  flags.rate_limit = 4;
  flags.max_concurrency = 5;
  run = resolve_batch(*f, {}, flags, environment);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->plan.batches[0].max_concurrency, 5);
  EXPECT_DOUBLE_EQ(run->plan.batches[0].rate_limit, 4);
  EXPECT_EQ(run->plan.tasks[1].timeout, seconds(3));
  EXPECT_EQ(run->plan.tasks[1].retries, 2);
  // A batch file keeps SPEC §10's built-ins.
  auto file = parse_batch_file("tasks: {a: x}", "p.yaml");
  run = resolve_batch(*file, {}, {}, {});
  EXPECT_EQ(run->plan.batches[0].max_concurrency, kDefaultConcurrency);
  EXPECT_EQ(run->plan.tasks[0].retries, kDefaultRetries);
}

TEST(BatchConfig, EnvironmentVariables) {
  std::map<std::string, std::string> vars{{"MAX_CONCURRENCY", "5"}, {"RATE_LIMIT", "2.5"}, {"TASK_TIMEOUT", "1500"}};
  auto get = [&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  auto l = limits_from_environment(get);
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(l->max_concurrency, 5);
  EXPECT_DOUBLE_EQ(*l->rate_limit, 2.5);
  EXPECT_EQ(l->timeout, milliseconds(1500));
  vars["MAX_CONCURRENCY"] = "lots";
  l = limits_from_environment(get);
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().message.substr(0, 50), "MAX_CONCURRENCY='lots' in the environment: MAX_CON");
  vars["MAX_CONCURRENCY"] = "2";
  vars["RATE_LIMIT"] = "-1";
  EXPECT_FALSE(limits_from_environment(get));
}

TEST(BatchConfig, EndlessStdinIsRefusedNotRead) {
  std::istringstream zeros(std::string(1000, '\0'));
  auto long_line = batch_from_lines(zeros, 100);
  ASSERT_FALSE(long_line);
  EXPECT_EQ(long_line.error().message, "<stdin>:1: a line longer than 100 bytes (the kernel's limit for one command)");
  std::istringstream many("a\nb\nc\n");
  auto too_many = batch_from_lines(many, 100, 2);
  ASSERT_FALSE(too_many);
  EXPECT_NE(too_many.error().message.find("more than 2 commands"), std::string::npos);
}

TEST(CommandLines, SplitsChunksIntoCommandsAsTheyCome) {
  CommandLines lines;
  ASSERT_TRUE(lines.feed("echo a\nec"));
  ASSERT_TRUE(lines.has_command());
  EXPECT_EQ(lines.take(), "echo a");
  EXPECT_EQ(lines.taken(), 1u);
  EXPECT_FALSE(lines.has_command()) << "half a line is not a command yet";
  ASSERT_TRUE(lines.feed("ho b\r\n\n   \n\t\necho c"));
  EXPECT_EQ(lines.take(), "echo b");
  EXPECT_EQ(lines.taken(), 2u);
  EXPECT_FALSE(lines.has_command()) << "blank lines are no commands";
  ASSERT_TRUE(lines.finish());
  EXPECT_EQ(lines.take(), "echo c") << "a last line without a newline";
  EXPECT_EQ(lines.taken(), 3u);
  EXPECT_FALSE(lines.has_command());
}

TEST(CommandLines, ALineTooLongAcrossChunksNamesItsLineNumber) {
  CommandLines lines(10, 100);
  ASSERT_TRUE(lines.feed("ok\n\n0123456"));
  ASSERT_TRUE(lines.feed("789"));  // exactly 10: still fine
  auto too_long = lines.feed("a");
  ASSERT_FALSE(too_long);
  EXPECT_EQ(too_long.error().message, "<stdin>:3: a line longer than 10 bytes (the kernel's limit for one command)");
  EXPECT_EQ(lines.take(), "ok") << "the commands before it are still there";
  CommandLines few(100, 2);
  auto many = few.feed("a\nb\nc\n");
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().message, "<stdin>: more than 2 commands; split the input");
  EXPECT_EQ(few.take(), "a");
  EXPECT_EQ(few.take(), "b");
}

TEST(BatchConfig, StdinLinesAreTasksNumberedFromOne) {
  std::istringstream in("echo a\n\n  \necho b\r\n");
  auto lines = batch_from_lines(in);
  ASSERT_TRUE(lines);
  auto& f = *lines;
  ASSERT_EQ(f.tasks.size(), 2u);
  EXPECT_EQ(f.tasks[1].name, "2");
  EXPECT_EQ(f.tasks[1].cmd, "echo b");
  std::istringstream last("echo c");  // no final newline
  ASSERT_TRUE(batch_from_lines(last));
  EXPECT_EQ(batch_from_lines(last = std::istringstream("echo c"))->tasks.at(0).cmd, "echo c");
  auto run = resolve_batch(f, {}, {}, {});
  ASSERT_TRUE(run);
  EXPECT_TRUE(run->plan.batches[0].queue_overflow_waits);
}

}  // namespace
}  // namespace batman::cli

namespace batman::cli {
namespace {

TEST(BatchConfig, DuplicateKeysAreRefused) {
  EXPECT_EQ(error_of("tasks:\n  a: {cmd: x}\n  a: {cmd: y}\n"),
            "ci.yaml:3: key 'tasks.a': duplicate key (first on line 2)");
  EXPECT_EQ(error_of("tasks:\n  a:\n    cmd: x\n    timeout: 1s\n    timeout: 2s\n"),
            "ci.yaml:5: key 'tasks.a.timeout': duplicate key (first on line 4)");
  EXPECT_EQ(error_of("tasks: {a: x}\nbatches:\n  - {name: one, tasks: [a], name: two}\n"),
            "ci.yaml:3: key 'batches[0].name': duplicate key (first on line 3)");
}

}  // namespace
}  // namespace batman::cli
