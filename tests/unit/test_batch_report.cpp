// Batch report tests: JUnit XML stays well-formed whatever a log holds, the joblog has GNU
// parallel's columns, and the summary lists what a reader needs.
#include <gtest/gtest.h>

#include "src/batch/batch_report.hpp"

namespace batman::cli {
namespace {

using std::chrono::milliseconds;

Report sample() {
  Report r;
  r.project = "ci";
  r.started = WallTime{} + std::chrono::seconds(1700000000);
  r.elapsed = milliseconds(2500);
  ReportBatch b{"checks & tests", {}};
  ReportTask ok{1, "lint", "echo clean", "succeeded", "", {}, ""};
  ok.attempts.push_back(ReportAttempt{1, r.started, milliseconds(1250), 0, 0, false, false, "", 6, "logs/lint.1.log", "exit 0"});
  ReportTask bad{2, "unit", "make\ttest", "failed", "exit 2 (after 2 attempts)", {}, "got <1> & \"2\"\x01\xff\nlast line"};
  bad.attempts.push_back(ReportAttempt{1, r.started, milliseconds(100), 2, 0, false, false, "", 0, "logs/unit.1.log", "exit 2"});
  bad.attempts.push_back(ReportAttempt{2, r.started + std::chrono::seconds(1), milliseconds(150), 2, 0, false, false, "", 9, "logs/unit.2.log", "exit 2"});
  ReportTask skipped{3, "e2e", "true", "skipped", "dependency failed: unit", {}, ""};
  b.tasks = {ok, bad, skipped};
  r.batches.push_back(b);
  return r;
}

TEST(BatchReport, JunitEscapesAndCountsPerBatch) {
  const auto xml = report_junit(sample());
  EXPECT_NE(xml.find("<testsuites name=\"ci\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.500\">"),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<testsuite name=\"checks &amp; tests\" tests=\"3\" failures=\"1\""), std::string::npos);
  EXPECT_NE(xml.find("<testcase name=\"lint\" classname=\"ci\" time=\"1.250\"/>"), std::string::npos);
  EXPECT_NE(xml.find("<failure message=\"exit 2 (after 2 attempts)\" type=\"failure\">$ make\ttest\n"
                     "got &lt;1&gt; &amp; &quot;2&quot;??\nlast line</failure>"),
            std::string::npos) << xml;
  EXPECT_NE(xml.find("<skipped message=\"dependency failed: unit\"/>"), std::string::npos);
}

TEST(BatchReport, JoblogHasGnuParallelColumns) {
  const auto log = report_joblog(sample());
  EXPECT_EQ(log,
            "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
            "1\t:\t1700000000.000\t   1.250\t0\t6\t0\t0\techo clean\n"
            "2\t:\t1700000001.000\t   0.150\t0\t9\t2\t0\tmake test\n");
}

TEST(BatchReport, SummaryListsEveryTaskWhenFewElseOnlyProblems) {
  const auto all = summary_table(sample());
  EXPECT_NE(all.find("lint  succeeded  1         1.2s"), std::string::npos) << all;
  EXPECT_NE(all.find("e2e   skipped    0         -      dependency failed: unit"), std::string::npos) << all;
  EXPECT_NE(all.find("3 tasks: 1 succeeded, 1 failed, 1 skipped in 2.5s"), std::string::npos) << all;
  const auto few = summary_table(sample(), 1);
  EXPECT_EQ(few.find("lint"), std::string::npos);
  EXPECT_NE(few.find("(1 succeeded tasks not listed)"), std::string::npos);
}

TEST(BatchReport, JsonCarriesAttemptsAndSummary) {
  const auto json = report_json(sample());
  EXPECT_NE(json.find("\"failed\": 1"), std::string::npos);
  EXPECT_NE(json.find("\"log\": \"logs/unit.2.log\""), std::string::npos);
  EXPECT_NE(json.find("\"reason\": \"dependency failed: unit\""), std::string::npos);
}

TEST(BatchReport, LastLines) {
  EXPECT_EQ(last_lines("a\nb\nc\n", 2), "b\nc");
  EXPECT_EQ(last_lines("a\nb\nc", 5), "a\nb\nc");
  EXPECT_EQ(last_lines("", 3), "");
}

}  // namespace
}  // namespace batman::cli
