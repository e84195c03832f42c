// What the dashboard knows of $BATMAN_HOME: every project's runs, batch tasks and supervised
// programs as their state files and supervisors say, and the JSON the API and the events
// stream give of them. Pure data and pure functions: reading files and sockets is the
// server's (server.cpp), so this is unit-tested without a home.
#pragma once
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/time_format.hpp"
#include "runner/state_store.hpp"

namespace batman::dashboard {

// What a state file is, by its kind and name: a run of batman-parallel/-isolated/-multi, a
// batch (its own record), a batch task (<batch-run-id>.<task>) or a supervised instance.
enum class Category { Run, Batch, Task, Program };
Category category_of(const runner::RunState& s);
std::string_view category_name(Category c);

// One instance as its live supervisor reports it (`batman ctl status --json`).
struct ProgramRow {
  std::string name;     // web, web:01
  std::string program;  // web
  int index = 0;
  std::string state;    // RUNNING, BACKOFF, ...
  pid_t pid = 0;
  std::optional<long long> uptime_seconds;
  std::optional<int> exit_code;
  std::optional<std::string> signal;
  int restarts = 0;
  std::string detail;
};
// Rows from the JSON array `status --json` prints; malformed entries are skipped.
std::vector<ProgramRow> parse_program_rows(const nlohmann::json& rows);
// The state file stem of an instance: web:01 / index 1 -> web_01.
std::string instance_state_name(const std::string& program, int index);

struct Project {
  std::string name;
  std::map<std::string, runner::RunState> runs;  // by state file stem (= run-id)
  // The live supervisor (it answered on state/control.sock) and what it said last.
  pid_t supervisor_pid = 0;
  std::optional<std::vector<ProgramRow>> supervisor_rows;
};

// Seconds between two RFC 3339 times (or until `now` when the end is missing); nullopt when
// the start cannot be read.
std::optional<double> duration_seconds(const runner::RunState& s, WallTime now);

// The API's view of one state file (every category): no pids of batman itself, no start
// ticks; `duration_seconds` is the run's (live: so far).
nlohmann::json run_json(const runner::RunState& s, WallTime now);
// A project's programs: each instance of the live supervisor (its state, pid, uptime,
// restarts, with the tier from the instance's state file), else what the state files say.
nlohmann::json programs_json(const Project& p, WallTime now);
// Counts for the project list: runs, tasks, programs by status/state, live ones, the newest
// start.
nlohmann::json project_summary(const Project& p);

// Filters of GET /api/v1/runs and /tasks: ?project=&status=&kind=&live=1&q=&limit=
struct RunFilter {
  std::optional<std::string> project, status, kind, text;
  bool live_only = false;
  std::size_t limit = 200;
};
bool run_matches(const runner::RunState& s, const RunFilter& f);
// Newest first, at most f.limit, of the categories in `want`; `total` is the number that
// matched before the limit.
nlohmann::json list_runs(const std::map<std::string, Project>& projects, const RunFilter& f,
                         const std::vector<Category>& want, WallTime now);

// A chunk of a log that ends on a whole UTF-8 character: the length of the longest prefix of
// `bytes` that does not stop inside a multi-byte sequence (invalid bytes count as whole).
std::size_t utf8_complete_prefix(std::string_view bytes);

// The log file of a state file inside its project's logs/ directory: the name after "logs/"
// when the state's `log` is exactly "logs/<one plain file name>" (a run's, a task's) or
// "<project_dir>/logs/<name>" (a supervised instance's), else nullopt: a log kept elsewhere
// (a program's `stdout: PATH`), or a record naming anything outside the project's logs/, is
// never read. stream "stderr" takes a program's .err.log beside its .out.log.
std::optional<std::string> log_file_name(const runner::RunState& s, std::string_view project_dir,
                                         std::string_view stream);

}  // namespace batman::dashboard
