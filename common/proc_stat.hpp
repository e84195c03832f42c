// /proc/PID/stat: the fields batman reads, parsed in one place for every caller.
#pragma once
#include <sys/types.h>

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace batman {

struct ProcStat {
  char state = 0;                     // field 3: R, S, D, Z, X, ...
  pid_t ppid = 0, pgid = 0, sid = 0;  // fields 4-6
  std::optional<unsigned> flags;      // field 9 (PF_*), when the line has it
  unsigned long long start_time = 0;  // field 22, clock ticks after boot; 0 when absent
  bool zombie() const { return state == 'Z' || state == 'X'; }
  // In do_exit already: a zombie, or PF_EXITING (still tearing down).
  bool exiting() const { return zombie() || (flags && (*flags & 0x4u)); }
};

// The process's stat line (zombies included), or nullopt when it is gone or the line is not
// one (fewer than the fields up to the session).
std::optional<ProcStat> read_proc_stat(pid_t pid);

// The values of `keys` in the process's initial environment (/proc/PID/environ, read as far
// as 4 MiB): how batman recognises a job's processes by BATMAN_PROJECT and BATMAN_RUN_ID. A
// key that is absent, or a process that cannot be read (gone, another user's), is missing.
std::map<std::string, std::string, std::less<>> process_environment(pid_t pid,
                                                                    std::initializer_list<std::string_view> keys);

}  // namespace batman
