// RunState: the state file of SPEC §5, written atomically, read back with `lost` detection.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace batman::runner {

struct SkippedTier {
  std::string tier;
  std::string reason;
};

struct RunState {
  int schema = 1;
  std::string project;
  std::string run_id;
  std::string kind = "parallel";  // parallel|isolated|multi|batch|program
  std::string command;
  std::string cwd;
  pid_t pid = 0;
  unsigned long long pid_start_time = 0;
  pid_t batman_pid = 0;
  unsigned long long batman_start_time = 0;  // to detect reuse of batman_pid
  struct Isolation {
    std::string tier;
    std::string profile;
    std::vector<SkippedTier> skipped;
    std::vector<std::string> unenforced;
  } isolation;
  struct Limits {
    std::optional<std::string> memory, cpus, pids;
  } limits;
  std::string status = "starting";  // starting|running|succeeded|failed|killed|timeout|lost
  std::string started_at;           // RFC 3339 UTC
  std::optional<std::string> ended_at;
  std::optional<int> exit_code;
  std::optional<int> signal;
  int restarts = 0;
  std::string log;                  // relative to the project dir
  std::optional<std::string> monitor_url;
  std::optional<std::string> worktree;
  // A batch task run by the slurm executor: its Slurm job ("123" or "123_4" for an array
  // element) and the node it ran on.
  std::optional<std::string> slurm_job;
  std::optional<std::string> node;

  bool live_status() const { return status == "starting" || status == "running"; }
};

std::string to_json(const RunState& s);
Result<RunState> from_json(const std::string& text, const std::string& source);

// Write state/<run-id>.json atomically inside the open state directory.
Result<void> write_state(int state_dirfd, const RunState& s);
// After a write of `s` (as `content`, its to_json) failed with `err`: on a full disk (ENOSPC,
// EDQUOT) its file is rewritten in place instead, reusing the old file's blocks, since a new
// file needs new ones. True when that recorded it.
bool rewrite_state_in_place(int state_dirfd, const RunState& s, const std::string& content, int err);
// write_state, else rewrite_state_in_place.
Result<void> write_state_or_in_place(int state_dirfd, const RunState& s);
// Read one state file; a live status whose batman process is gone (or reused) reads as "lost".
Result<RunState> read_state(int state_dirfd, const std::string& run_id);
// Apply the lost rule to a state read by other means.
void mark_lost_if_dead(RunState& s);

// Field 22 of /proc/PID/stat (start time in clock ticks since boot); 0 when gone.
unsigned long long process_start_time(pid_t pid);
// True when `pid` is alive and still the process that started at `start_time` (0: none).
bool process_matches(pid_t pid, unsigned long long start_time);

}  // namespace batman::runner
