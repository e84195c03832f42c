// The Taskmaster config file (SPEC §9): YAML → runner::SupervisorConfig, with supervisord's
// defaults where the file is silent and "FILE:LINE: key 'programs.web.numprocs': ..." errors.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "src/cli/project.hpp"
#include "src/taskmaster/supervisor.hpp"

namespace batman::cli {

// The most instances one program may have (supervisord sets none). Not memory (an instance
// costs a few KiB here) but names and file descriptors: `ctl` addresses an instance as
// NAME:N with at most 4 digits (NAME:9999), and each instance holds about 8 descriptors, so
// 10000 of them need more than the 65536 taskmaster raises its RLIMIT_NOFILE to (a config
// past the limit is refused whole, see supervise.cpp).
constexpr int kMaxNumprocs = 10000;

// Read and validate the config at `path`. Relative paths inside it (workingdir, stdout,
// logfile, socket) are taken from the config file's directory; '~' is $HOME.
Result<runner::SupervisorConfig> load_supervisor_config(const std::string& path);
// Same, from text already read (`source` names it in errors; `base_dir` resolves paths).
Result<runner::SupervisorConfig> parse_supervisor_config(std::string_view yaml_text, const std::string& source,
                                                         const std::string& base_dir);
// supervisord's expansions in `cmd`, `env` values, `stdout`, `stderr` and `workingdir`:
// Python's %-format with a mapping, `%(KEY)[flags][width][.precision](s|d|i)`, `%%` for '%'.
// KEY: program_name, group_name (its supervisord [group:x], else the program's), process_num (the
// instance's index), numprocs, here (the config file's directory), host_node_name, ENV_X
// (the supervisor's environment variable X). A '%' not followed by '(' or '%' is kept.
struct Expansions {
  std::string program_name;
  std::string here;
  int process_num = 0;
  int numprocs = 1;
  std::string group_name;  // "": program_name
};
// An unknown KEY, an unset ENV_X, a text KEY with d, a bad format: one-line errors.
Result<std::string> expand_percent(std::string_view text, const Expansions& vars);
// True when `text` names KEY in an expansion (so the value differs per instance).
bool mentions_expansion(std::string_view text, std::string_view key);
// The program as instance `index` runs it: every expansion applied, paths resolved.
Result<runner::ProgramConfig> expand_instance(const runner::ProgramConfig& program, int index);

}  // namespace batman::cli
