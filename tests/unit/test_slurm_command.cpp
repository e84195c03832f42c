// The slurm executor's sbatch command lines: arrays and their throttle, --time from a task's
// timeout, no --dependency (needs are batman's), which attempts share an array, the options' precedence (batch file,
// --slurm-opt, --partition/--account/--qos), and the parsing of sbatch's and squeue's answers.
#include <gtest/gtest.h>

#include <algorithm>

#include "src/batch/batch_config.hpp"
#include "src/batch/sbatch_command.hpp"

namespace batman::slurm {
namespace {

using std::chrono::seconds;

Submission basic(std::size_t elements, int throttle = 0) {
  Submission s;
  s.job_name = "batman.p.R";
  s.elements = elements;
  s.throttle = throttle;
  s.output = "/h/p/slurm/R/slurm-%A_%a.out";
  s.chdir = "/h/p/slurm/R";
  s.script = "/h/p/slurm/R/job.sh";
  s.script_args = {"/h/p/slurm/R/submit-0.json"};
  return s;
}

bool has(const std::vector<std::string>& argv, const std::string& word) {
  return std::find(argv.begin(), argv.end(), word) != argv.end();
}

bool has_prefix(const std::vector<std::string>& argv, const std::string& prefix) {
  return std::any_of(argv.begin(), argv.end(), [&](const std::string& w) { return w.starts_with(prefix); });
}

TEST(SbatchCommand, ArrayWithThrottle) {
  const auto argv = sbatch_argv({}, basic(50, 3));
  const std::vector<std::string> expected = {"sbatch",
                                             "--parsable",
                                             "--job-name=batman.p.R",
                                             "--array=0-49%3",
                                             "--output=/h/p/slurm/R/slurm-%A_%a.out",
                                             "--chdir=/h/p/slurm/R",
                                             "/h/p/slurm/R/job.sh",
                                             "/h/p/slurm/R/submit-0.json"};
  EXPECT_EQ(argv, expected);
}

TEST(SbatchCommand, ArrayWithoutThrottle) {
  EXPECT_TRUE(has(sbatch_argv({}, basic(4, 0)), "--array=0-3"));
}

TEST(SbatchCommand, SingleJobHasNoArray) {
  EXPECT_FALSE(has_prefix(sbatch_argv({}, basic(1, 3)), "--array"));
}

TEST(SbatchCommand, TimeoutBecomesTimeWithAMinuteToSpare) {
  auto s = basic(1);
  s.timeout = seconds(30);
  EXPECT_TRUE(has(sbatch_argv({}, s), "--time=2"));  // 30 s + 60 s, rounded up to minutes
  s.timeout = seconds(120);
  EXPECT_TRUE(has(sbatch_argv({}, s), "--time=3"));
  s.timeout = std::chrono::milliseconds(1);
  EXPECT_TRUE(has(sbatch_argv({}, s), "--time=2"));
  s.timeout = seconds(0);
  EXPECT_FALSE(has_prefix(sbatch_argv({}, s), "--time"));
}

TEST(SbatchCommand, UsersTimeReplacesBatmansBackstop) {
  auto s = basic(1);
  s.timeout = seconds(30);
  const auto argv = sbatch_argv({{"time", "10:00"}}, s);
  EXPECT_TRUE(has(argv, "--time=10:00"));
  EXPECT_FALSE(has(argv, "--time=2"));
}

TEST(SbatchCommand, NoDependencyAndNoUserDependency) {
  // needs are resolved by batman: a retried dependency is a new job, which an afterok on
  // its first job would never see succeed.
  EXPECT_FALSE(has_prefix(sbatch_argv({}, basic(3, 2)), "--dependency"));
  EXPECT_FALSE(run_options({}, {"dependency=afterok:1"}, "", "", ""));
}

TEST(SbatchCommand, OptionsFollowBatmansOwnBeforeTheScript) {
  const auto argv = sbatch_argv({{"partition", "gpu"}, {"exclusive", ""}, {"N", "2"}}, basic(2, 2));
  const auto script = std::find(argv.begin(), argv.end(), "/h/p/slurm/R/job.sh");
  ASSERT_NE(script, argv.end());
  const auto partition = std::find(argv.begin(), argv.end(), "--partition=gpu");
  ASSERT_NE(partition, argv.end());
  EXPECT_LT(partition, script);
  EXPECT_TRUE(has(argv, "--exclusive"));
  const auto n = std::find(argv.begin(), argv.end(), "-N");
  ASSERT_NE(n, argv.end());
  EXPECT_EQ(*(n + 1), "2");
}

TEST(SbatchOptionsPrecedence, FlagsBeatSlurmOptBeatsTheFile) {
  SbatchOptions file = {{"partition", "file-part"}, {"account", "file-acct"}, {"mem", "1G"}};
  auto merged = run_options(file, {"partition=opt-part", "--mem=2G", "qos=opt-qos"}, "", "flag-acct", "");
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_EQ(merged->at("partition"), "opt-part");  // --slurm-opt over the file
  EXPECT_EQ(merged->at("account"), "flag-acct");   // --account over the file
  EXPECT_EQ(merged->at("mem"), "2G");
  EXPECT_EQ(merged->at("qos"), "opt-qos");
  auto flagged = run_options(file, {"partition=opt-part"}, "flag-part", "", "flag-qos");
  ASSERT_TRUE(flagged);
  EXPECT_EQ(flagged->at("partition"), "flag-part");  // --partition over --slurm-opt
  EXPECT_EQ(flagged->at("qos"), "flag-qos");
  EXPECT_EQ(flagged->at("account"), "file-acct");
}

TEST(SbatchOptionsPrecedence, ReservedAndMalformedOptionsAreRefused) {
  for (const char* bad : {"array=0-3", "dependency=afterok:1", "--job-name=x", "output=/tmp/x", "chdir=/", "=x", "a b=c"}) {
    auto r = run_options({}, {bad}, "", "", "");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("--slurm-opt"), std::string::npos) << r.error().message;
  }
}

TEST(SbatchOptionsPrecedence, BatchFileDefaults) {
  auto file = cli::parse_batch_file(R"(defaults:
  executor: slurm
  partition: debug
  slurm_options: {partition: other, mem: 1G}
tasks:
  a: "true"
)",
                                    "ci.yaml");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->executor, "slurm");
  EXPECT_EQ(file->slurm_options.at("partition"), "debug");  // the named key over slurm_options
  EXPECT_EQ(file->slurm_options.at("mem"), "1G");
}

TEST(SbatchOptionsPrecedence, BatchFileErrorsNameTheKey) {
  auto bad = cli::parse_batch_file("defaults:\n  executor: cloud\ntasks:\n  a: \"true\"\n", "ci.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("ci.yaml:2"), std::string::npos) << bad.error().message;
  auto reserved = cli::parse_batch_file("defaults:\n  slurm_options: {array: 0-3}\ntasks:\n  a: \"true\"\n", "ci.yaml");
  ASSERT_FALSE(reserved);
  EXPECT_NE(reserved.error().message.find("batman sets --array itself"), std::string::npos) << reserved.error().message;
}

TEST(ArrayGroups, SameOptionsShareAnArrayUpToItsSize) {
  const auto groups = array_groups({"2%3", "2%3", "5%3", "2%3", "2%3"}, 3);
  const std::vector<std::vector<std::size_t>> expected = {{0, 1, 3}, {2}, {4}};
  EXPECT_EQ(groups, expected);
}

TEST(ArrayGroups, SizeOneIsOneJobPerAttempt) {
  const auto groups = array_groups({"a", "a", "a"}, 1);
  EXPECT_EQ(groups.size(), 3u);
}

TEST(SbatchAnswers, JobId) {
  EXPECT_EQ(*parse_job_id("123\n"), "123");
  EXPECT_EQ(*parse_job_id("4567;cluster\n"), "4567");
  EXPECT_FALSE(parse_job_id("sbatch: error: invalid partition specified: nope\n"));
  EXPECT_FALSE(parse_job_id(""));
}

TEST(SbatchAnswers, QueueLines) {
  const auto q = parse_queue("  12_0 RUNNING\n12_1 PENDING\n13 COMPLETING\n\ngarbage\n");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0].job, "12_0");
  EXPECT_EQ(q[0].state, "RUNNING");
  EXPECT_EQ(q[2].job, "13");
  EXPECT_EQ(q[2].state, "COMPLETING");
}

}  // namespace
}  // namespace batman::slurm
