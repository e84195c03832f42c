// Capabilities: which to keep is decided in the parent (names through libcap); the child
// drops the rest from the bounding, ambient, inheritable, permitted and effective sets.
#pragma once
#include <cstdint>

#include "common/error.hpp"
#include "isolation/profile.hpp"

namespace batman::isolation {

struct CapabilityPlan {
  bool drop = false;          // false: leave the sets as they are
  std::uint64_t keep = 0;     // bit N = capability N
  int last_cap = 40;          // highest capability this kernel knows
};

Result<CapabilityPlan> plan_capabilities(const Profile::Capabilities& caps);

// Child side, system calls only; each returns 0 or an errno.
// Before changing uid: drop from the bounding set (needs CAP_SETPCAP).
int drop_bounding_set(const CapabilityPlan& plan);
// After changing uid: set effective/permitted/inheritable to `keep`, clear the ambient set
// and raise `keep` in it so the kept capabilities survive execve as a non-root user.
int set_capability_sets(const CapabilityPlan& plan);

}  // namespace batman::isolation
