// Capabilities: parent-side planning with libcap, child-side dropping with prctl and capset.
#include "isolation/capabilities.hpp"

#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>

namespace batman::isolation {

Result<CapabilityPlan> plan_capabilities(const Profile::Capabilities& caps) {
  CapabilityPlan plan;
  plan.drop = caps.drop_all;
  plan.last_cap = static_cast<int>(cap_max_bits()) - 1;
  for (const auto& name : caps.keep) {
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!lower.starts_with("cap_")) lower = "cap_" + lower;
    cap_value_t value;
    if (cap_from_name(lower.c_str(), &value) != 0)
      return fail("capabilities: unknown capability '" + name + "'");
    plan.keep |= std::uint64_t{1} << value;
  }
  return plan;
}

int drop_bounding_set(const CapabilityPlan& plan) {
  if (!plan.drop) return 0;
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if (plan.keep & (std::uint64_t{1} << cap)) continue;
    // EINVAL: a capability this kernel does not have; nothing to drop.
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }
  return 0;
}

int set_capability_sets(const CapabilityPlan& plan) {
  if (!plan.drop) return 0;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  for (int i = 0; i < 2; ++i) {
    const auto word = static_cast<std::uint32_t>(plan.keep >> (32 * i));
    data[i].effective = data[i].permitted = data[i].inheritable = word;
  }
  if (syscall(SYS_capset, &header, data) != 0) return errno;
  for (int cap = 0; cap <= plan.last_cap; ++cap) {
    if (!(plan.keep & (std::uint64_t{1} << cap))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) return errno;
  }
  return 0;
}

}  // namespace batman::isolation
