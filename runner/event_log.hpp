// The per-project event log (logs/events.log) through spdlog, written to an fd opened
// without following symlinks.
#pragma once
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "common/error.hpp"

namespace batman::runner {

// Open (append) `file_name` inside the open directory `dirfd` as an spdlog logger named
// `logger_name`. Lines: "2026-11-22T01:41:25.123Z [info] message". Only a regular file, not
// a symlink (open_regular_at: a FIFO there cannot block); `shown` names it in errors.
Result<std::shared_ptr<spdlog::logger>> open_event_log(int dirfd, const std::string& file_name,
                                                       const std::string& logger_name,
                                                       const std::string& shown = {});
// Same, for an absolute path chosen by the user (taskmaster's `logfile:`): a regular file or
// a character device (/dev/null).
Result<std::shared_ptr<spdlog::logger>> open_event_log_path(const std::string& path,
                                                            const std::string& logger_name);

}  // namespace batman::runner
