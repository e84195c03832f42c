// What a batch run leaves behind for people and CI: the JSON report, JUnit XML (one testsuite
// per batch, one testcase per task), GNU parallel's joblog, and the summary table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/time_format.hpp"

namespace batman::cli {

struct ReportAttempt {
  int number = 0;
  WallTime started{};
  Duration runtime{0};
  int exit_code = -1;  // -1: killed by a signal or never started
  int signal = 0;
  bool timed_out = false;
  bool check_failed = false;
  std::string error;  // could not start
  std::uint64_t output_bytes = 0;
  std::string log;    // relative to the project directory
  std::string outcome;  // "exit 0", "timed out", ...
};

struct ReportTask {
  std::size_t seq = 0;  // 1-based, in start order of the plan (GNU parallel's Seq)
  std::string name;
  std::string command;
  std::string status;  // succeeded | failed | skipped | interrupted | stopped (batman stop PROJECT TASK) | done (an earlier run's success, --resume)
  std::string reason;  // why failed or skipped
  std::vector<ReportAttempt> attempts;
  std::string log_tail;  // the last lines of the last attempt's log, for failures
};

struct ReportBatch {
  std::string name;
  std::vector<ReportTask> tasks;
};

struct Report {
  std::string project;
  std::string run_id;     // the batch run's own
  std::string isolation;  // the tier used
  WallTime started{};
  Duration elapsed{0};
  bool interrupted = false;
  std::vector<ReportBatch> batches;
  std::vector<std::string> events;  // adjustments, halts, failed health checks
  // Succeeded tasks counted but not in `batches`: a `batch -` run without a report keeps
  // only the tasks its summary lists.
  std::size_t succeeded_not_listed = 0;

  struct Counts {
    std::size_t total = 0, succeeded = 0, failed = 0, skipped = 0, interrupted = 0, stopped = 0, done = 0;
  };
  Counts counts() const;
  Counts counts(const ReportBatch& batch) const;
};

std::string report_json(const Report& report);
std::string report_junit(const Report& report);
// Header line, then one line per task that ran (its last attempt), in Seq order.
std::string report_joblog(const Report& report);
// Every task when there are few, else only those that did not succeed; then a totals line.
std::string summary_table(const Report& report, std::size_t list_all_up_to = 50);

// The last `lines` lines of `text` (without a trailing partial newline problem).
std::string last_lines(const std::string& text, std::size_t lines);

}  // namespace batman::cli
