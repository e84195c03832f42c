// Resource limits through setrlimit: nofile, and memory as RLIMIT_AS when no cgroup can.
#include "isolation/rlimits.hpp"

#include <cerrno>

namespace batman::isolation {

RlimitPlan plan_rlimits(const Limits& limits, const Cgroup* cgroup,
                        std::vector<std::string>& unenforced) {
  RlimitPlan plan;
  const bool cgroup_memory = cgroup && cgroup->enforced.memory;
  const bool cgroup_pids = cgroup && cgroup->enforced.pids;
  const bool cgroup_cpu = cgroup && cgroup->enforced.cpu;
  auto add = [&](int resource, std::uint64_t value) {
    plan.entries[plan.count++] = {resource, static_cast<rlim_t>(value)};
  };
  if (limits.nofile) add(RLIMIT_NOFILE, *limits.nofile);
  if (limits.memory_bytes && !cgroup_memory) {
    // Address space, not resident memory: stricter than a cgroup limit, but it holds.
    add(RLIMIT_AS, *limits.memory_bytes);
    unenforced.push_back("memory limit: no writable cgroup, applied as an address-space "
                         "rlimit (RLIMIT_AS) per process instead");
  }
  if (limits.pids && !cgroup_pids)
    unenforced.push_back("pids limit: no writable cgroup with the pids controller");
  if (limits.cpus && !cgroup_cpu)
    unenforced.push_back("cpu limit: no writable cgroup with the cpu controller");
  return plan;
}

int apply_rlimits(const RlimitPlan& plan) {
  for (int i = 0; i < plan.count; ++i) {
    rlimit value{plan.entries[i].value, plan.entries[i].value};
    if (setrlimit(plan.entries[i].resource, &value) != 0) {
      // A hard limit cannot be raised without privilege: keep the lower one already there.
      rlimit current{};
      if (getrlimit(plan.entries[i].resource, &current) != 0) return errno;
      if (current.rlim_max != RLIM_INFINITY && current.rlim_max < value.rlim_max) {
        value.rlim_cur = value.rlim_max = current.rlim_max;
        if (setrlimit(plan.entries[i].resource, &value) != 0) return errno;
      } else {
        return errno;
      }
    }
  }
  return 0;
}

}  // namespace batman::isolation
