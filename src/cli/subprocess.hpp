// Running a helper program (git, Slurm's clients, batman itself) without a shell, its stdout
// and stderr captured through one pipe.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace batman::cli {

struct PipedChild {
  pid_t pid = -1;
  UniqueFd output;  // the read end of the child's stdout and stderr
};
// Start `argv`: `path` when given, else argv[0] searched on PATH; stdin /dev/null; the default
// signal mask and dispositions (not the caller's blocked set); `envp`, or batman's own
// environment when null. The caller reads `output` and reaps `pid`. The Error's code is the
// errno of a failed start.
Result<PipedChild> spawn_piped(const std::vector<std::string>& argv, const std::string& path = "",
                               char* const* envp = nullptr);

struct Captured {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};
// spawn_piped, then everything it prints until it exits.
Result<Captured> run_capture(const std::vector<std::string>& argv, const std::string& path = "");

}  // namespace batman::cli
