// The batch file of SPEC §10 (tasks, batches, delays, health), validated with file:line:key
// errors, and its resolution into a scheduler plan under the precedence rule:
// flags > MAX_CONCURRENCY, RATE_LIMIT, TASK_TIMEOUT (ms) > per-task/per-batch > defaults > built-ins.
#pragma once
#include <deque>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "src/batch/sbatch_command.hpp"
#include "src/batch/scheduler.hpp"

namespace batman::cli {

// Built-in defaults of a batch FILE: 3 at once, 10 starts a second, 30 s, 3 retries, a queue
// of 100. `batch -` has xargs'/GNU parallel's instead (stdin_defaults).
constexpr int kDefaultConcurrency = 3;
constexpr double kDefaultRateLimit = 10;
constexpr Duration kDefaultTimeout = std::chrono::seconds(30);
constexpr int kDefaultRetries = 3;
constexpr std::size_t kDefaultMaxQueue = 100;

// Values that several levels may set; unset ones fall through to the next level.
struct Limits {
  std::optional<int> max_concurrency;
  std::optional<double> rate_limit;
  std::optional<Duration> timeout;  // 0 = none
  std::optional<int> retries;
  std::optional<std::size_t> max_queue;
};

// The last level of the precedence rule.
struct BuiltIns {
  int max_concurrency = kDefaultConcurrency;
  double rate_limit = kDefaultRateLimit;
  Duration timeout = kDefaultTimeout;
  int retries = kDefaultRetries;
  std::size_t max_queue = kDefaultMaxQueue;
};
// `batch -`: as many at once as `cpus`, no rate limit, no timeout, no retries.
BuiltIns stdin_defaults(int cpus);
// The CPUs this process may run on (sched_getaffinity, as nproc counts them); at least 1.
int available_cpus();

// A task's files are named "<run-id>.<task>" (a run-id at most 64 characters, SPEC §3, and a
// batch's own run-id 22): a task name is at most this long.
constexpr std::size_t kMaxTaskName = 41;

struct BatchTask {
  std::string name;
  std::string cmd;
  Limits limits;  // timeout and retries
  std::vector<std::string> needs;
  std::map<std::string, std::string> env;
  std::string cwd;  // empty: batman's working directory
};

struct BatchGroup {
  std::string name;
  std::vector<std::string> tasks;
  Limits limits;
};

struct BatchFile {
  std::string source;   // the file name, for messages
  std::string project;  // default: the file's stem
  Limits defaults;
  runner::Backoff backoff;
  std::string isolation = "auto";
  std::string profile = "ci";
  std::string executor;                // defaults.executor: local|slurm, empty when unset
  slurm::SbatchOptions slurm_options;  // defaults.slurm_options, partition, account, qos
  std::vector<BatchTask> tasks;    // in file order
  std::vector<BatchGroup> batches;  // empty: every task, as one batch
  Duration between_batches{0};
  Duration between_tasks{0};
  // AIMD runs only when the file has a health section: without one, -j N stays N.
  std::optional<runner::HealthPolicy> health;
  std::optional<std::string> health_check;
  bool from_stdin = false;
};

// Errors read "FILE:LINE: key 'tasks.build.timeout': what is wrong".
Result<BatchFile> parse_batch_file(const std::string& yaml_text, const std::string& source);
Result<BatchFile> load_batch_file(const std::string& path);
// `batch -`: a line is at most the kernel's limit for one argument (MAX_ARG_STRLEN: `sh -c`
// could not take a longer one), and a run at most a million commands.
constexpr std::size_t kMaxCommandLine = 128 * 1024;
constexpr std::size_t kMaxCommands = 1'000'000;

// `batman batch -`'s input, split into commands as it is read: one per non-blank line (a
// final "\r" dropped), named 1, 2, 3 ... (GNU parallel's sequence numbers). A line longer
// than `max_line` or more than `max_commands` commands is an error ("<stdin>:LINE: ..."), so
// endless input (/dev/zero, `yes`) ends with a message instead of eating memory. What it
// holds is bounded: the commands of the bytes fed and not yet taken, and one partial line.
class CommandLines {
 public:
  explicit CommandLines(std::size_t max_line = kMaxCommandLine, std::size_t max_commands = kMaxCommands)
      : max_line_(max_line), max_commands_(max_commands) {}
  // The next bytes of input; each line they complete becomes a command.
  Result<void> feed(std::string_view data);
  // The end of input: a last line without a newline is a command too.
  Result<void> finish();
  bool has_command() const { return !ready_.empty(); }
  // The oldest command not taken; its task name is std::to_string(taken()) afterwards.
  std::string take();
  std::size_t taken() const { return taken_; }

 private:
  Result<void> add_line();

  std::size_t max_line_, max_commands_;
  std::string partial_;
  std::deque<std::string> ready_;
  std::size_t line_ = 0;      // lines completed so far
  std::size_t commands_ = 0;  // commands found so far (taken or ready)
  std::size_t taken_ = 0;
};

// `batman batch -` read whole (a batch FILE's shape; the command streams it instead): every
// command of `in` as a task; project "batch" unless the caller sets another.
Result<BatchFile> batch_from_lines(std::istream& in, std::size_t max_line = kMaxCommandLine,
                                   std::size_t max_tasks = kMaxCommands);

// MAX_CONCURRENCY, RATE_LIMIT, TASK_TIMEOUT (milliseconds) read through `getenv`; a value
// that is set but invalid is an error naming the variable.
Result<Limits> limits_from_environment(const std::function<const char*(const char*)>& getenv);

struct ResolvedTask {
  std::string name;
  std::string cmd;
  std::map<std::string, std::string> env;
  std::string cwd;
};

struct BatchRun {
  std::string project;
  std::vector<ResolvedTask> tasks;  // index = the scheduler's task index
  runner::SchedulePlan plan;
  std::optional<std::string> health_check;
};

// Build the scheduler's plan: every batch in order, or the `selected` tasks as one batch,
// with what they need, transitively (as make does), unless `no_deps`: then a need outside
// the selection skips its task with a reason. A stdin batch's built-ins are stdin_defaults
// with available_cpus().
Result<BatchRun> resolve_batch(const BatchFile& file, const std::vector<std::string>& selected,
                               const Limits& flags, const Limits& environment, bool no_deps = false);

}  // namespace batman::cli
