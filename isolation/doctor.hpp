// What `batman doctor` reports: every tier with why (not), and the machine facts behind it.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "isolation/backend.hpp"
#include "isolation/cgroups.hpp"

namespace batman::isolation {

struct DoctorReport {
  unsigned uid = 0;
  std::vector<Availability> tiers;  // in auto order
  long max_user_namespaces = -1;        // user.max_user_namespaces, -1 when unreadable
  long unprivileged_userns_clone = -1;  // Debian/Ubuntu knob, -1 when absent
  std::string init;                     // PID 1's name
  std::string firejail;                 // "firejail version X" or ""
  CgroupSupport cgroups;
  bool seccomp = false;
  std::string libseccomp;               // "2.5.4"
  // Which tier `auto` picks for each command, with its default profile.
  std::vector<std::pair<std::string, std::string>> auto_choice;  // command -> tier
  std::string auto_summary;             // TierChoice::summary()
};

DoctorReport run_doctor();

}  // namespace batman::isolation
