// The sbatch command lines of the slurm executor (`batman batch --executor slurm`): which
// attempts share one job array, the options every submission carries and their precedence.
// Pure functions of their inputs, so that unit tests read the exact argv.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/error.hpp"

namespace batman::slurm {

// sbatch options that every job of a run carries, by long name without the dashes
// ("partition" -> --partition=VALUE), in one map so that each name is given once.
// Precedence, lowest first: the batch file's `defaults.slurm_options`, its `defaults.partition`,
// `account`, `qos`, then `--slurm-opt K=V`, then `--partition`, `--account`, `--qos`.
using SbatchOptions = std::map<std::string, std::string>;

// Options batman sets itself (an array, a dependency, the job's name, output, working directory,
// its own --parsable): `--slurm-opt` may not set them.
bool reserved_option(std::string_view name);

// Merge `K=V` (or `--K=V`, or a bare flag `K`) into `into`; a reserved or malformed one is an
// error naming the flag. A later value for the same name replaces an earlier one.
Result<void> add_option(SbatchOptions& into, std::string_view text, std::string_view flag);

// The run's options under that precedence: `file` (the batch file's, already merged), then each
// `--slurm-opt`, then the non-empty ones of --partition, --account, --qos.
Result<SbatchOptions> run_options(const SbatchOptions& file, const std::vector<std::string>& slurm_opts,
                                  const std::string& partition, const std::string& account, const std::string& qos);

// Slurm's --time for an attempt that batman times out after `timeout` itself: a backstop a
// minute longer, in whole minutes (Slurm's granularity), "0" never (0 = no timeout: unset).
std::string time_limit(Duration timeout);

// One sbatch call: a single job (elements == 1, no --array) or a job array of `elements`
// elements with at most `throttle` running at once (0: no throttle).
struct Submission {
  std::string job_name;
  std::size_t elements = 1;
  int throttle = 0;
  Duration timeout{0};                 // batman's own per-attempt timeout; 0 = none
  std::string output;                  // Slurm's own output of the wrapper (%A, %a allowed)
  std::string chdir;                   // the job's working directory (the wrapper's)
  std::string script;                  // the batch script
  std::vector<std::string> script_args;
};

// sbatch's argv: "sbatch --parsable --job-name=... [--array=0-N%M] [--time=M] --output=...
// --chdir=... [--K=V ...] SCRIPT ARGS...". The run's options come after batman's own, so a
// user's `time` replaces batman's backstop. No --dependency: `needs` are resolved by batman
// (a dependency retried as a new job would leave an afterok on its first job unsatisfiable).
std::vector<std::string> sbatch_argv(const SbatchOptions& options, const Submission& submission);

// Which of the attempts to submit share one array: attempts with the same key (the options
// that differ per task: its timeout), in their order, at most `max_elements` to an array
// (MaxArraySize - 1). Each group is a list of indices into `keys`; a group of one is a job
// of its own.
std::vector<std::vector<std::size_t>> array_groups(const std::vector<std::string>& keys, std::size_t max_elements);

// The job id sbatch --parsable printed ("123" or "123;cluster"): its digits, or an error with
// sbatch's output.
Result<std::string> parse_job_id(std::string_view sbatch_output);

// One line of `squeue -h -r -o '%i %T'` ("123_4 RUNNING", "124 PENDING").
struct QueueEntry {
  std::string job;    // "123_4" or "124"
  std::string state;  // PENDING, RUNNING, COMPLETING, ...
};
std::vector<QueueEntry> parse_queue(std::string_view squeue_output);

}  // namespace batman::slurm
