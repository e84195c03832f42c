// Resource limits through setrlimit, where one fits: nofile always, and memory as an
// address-space limit when no cgroup enforces it. Planned in the parent, applied in the child.
#pragma once
#include <sys/resource.h>

#include <string>
#include <vector>

#include "isolation/cgroups.hpp"
#include "isolation/profile.hpp"

namespace batman::isolation {

struct RlimitPlan {
  struct Entry {
    int resource = 0;
    rlim_t value = 0;
  };
  Entry entries[4];
  int count = 0;
};

// `cgroup` (may be null): the job's cgroup, and the limits it already enforces. What no
// rlimit can express (cpus; pids without a cgroup) is appended to `unenforced`.
RlimitPlan plan_rlimits(const Limits& limits, const Cgroup* cgroup,
                        std::vector<std::string>& unenforced);
// Child side, system calls only: 0 or an errno.
int apply_rlimits(const RlimitPlan& plan);

}  // namespace batman::isolation
