// What a supervisor killed with SIGKILL left running. Its programs' own processes die with it
// (PDEATHSIG), but what they started (`sh -c "sleep 1000 & ..."`) is reparented to init and
// lives on. The next supervisor of the same config finds those from the state files the dead
// one left and kills them before starting its own instances.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/clock.hpp"
#include "runner/state_store.hpp"

namespace batman::runner {

struct Leftover {
  pid_t pid = 0;
  unsigned long long start_time = 0;  // as read when it was found: only that process is signalled
  std::string run_id;                 // the instance it was left by
  std::string command;                // its /proc comm, for the log
};

// The processes left by `records` (program states of one project whose supervisor is gone).
// A process counts when it started after the instance it belongs to, and either carries the
// instance's BATMAN_PROJECT and BATMAN_RUN_ID in its environment, or is in a session that
// such a process proves to be the instance's (the instance's own session, or one a marked
// process leads). `self` and its ancestors are never counted.
std::vector<Leftover> find_leftovers(const std::vector<RunState>& records, pid_t self);

// SIGKILL each leftover through a pidfd opened before its start time is checked again, so a
// pid reused since it was found is never hit; then wait up to `timeout` for them to be gone.
// Returns the ones killed.
std::vector<Leftover> kill_leftovers(const std::vector<Leftover>& leftovers, Duration timeout);

// The program states in `state_dirfd` whose status is live but whose supervisor is gone.
std::vector<RunState> abandoned_programs(int state_dirfd, pid_t self);

}  // namespace batman::runner
