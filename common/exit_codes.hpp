// batman's exit codes (SPEC §4): the job's own code otherwise, 128+N for signal N.
#pragma once

namespace batman {

constexpr int kExitTimeout = 124;        // the job was stopped by its --timeout
constexpr int kExitBatmanError = 125;    // batman's own error: the job never ran
constexpr int kExitNotExecutable = 126;  // (from /bin/sh) found but not executable
constexpr int kExitNotFound = 127;       // (from /bin/sh) not found

}  // namespace batman
