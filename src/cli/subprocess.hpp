// Running a helper program (git) to completion and capturing its output, without a shell.
#pragma once
#include <string>
#include <vector>

#include "common/error.hpp"

namespace batman::cli {

struct Captured {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};
// posix_spawnp argv[0]; stdin is /dev/null.
Result<Captured> run_capture(const std::vector<std::string>& argv);

}  // namespace batman::cli
