// The probing behind `batman doctor`: each tier's probe plus the facts it depends on.
#include "isolation/doctor.hpp"

#include <seccomp.h>
#include <unistd.h>

#include <cstdlib>

#include "common/fs.hpp"
#include "isolation/seccomp.hpp"

namespace batman::isolation {

namespace {

long read_number(const char* path) {
  auto text = read_file(path);
  if (!text) return -1;
  return std::strtol(text->c_str(), nullptr, 10);
}

std::string first_line(std::string text) {
  text = text.substr(0, text.find('\n'));
  return text;
}

}  // namespace

DoctorReport run_doctor() {
  DoctorReport r;
  r.uid = getuid();
  for (Tier t : kAutoOrder) r.tiers.push_back(probe_tier(t));
  r.max_user_namespaces = read_number("/proc/sys/user/max_user_namespaces");
  r.unprivileged_userns_clone = read_number("/proc/sys/kernel/unprivileged_userns_clone");
  if (auto comm = read_file("/proc/1/comm")) r.init = first_line(*comm);
  if (r.tiers[1].available || r.tiers[1].reason.find("installed but") != std::string::npos)
    r.firejail = "installed";
  r.cgroups = detect_cgroups();
  r.seccomp = seccomp_supported();
  const scmp_version* v = seccomp_version();
  if (v) r.libseccomp = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->micro);
  // auto is the same walk for every command; only the default profile differs.
  TierChoice choice{Tier::Env, {}};
  for (const auto& a : r.tiers) {
    if (a.available) {
      choice.tier = a.tier;
      break;
    }
    choice.skipped.push_back(a);
  }
  r.auto_summary = choice.summary();
  for (const char* command : {"batman-parallel (profile parallel)", "batman-multi (profile parallel)",
                              "batman-isolated (profile isolated)", "batman batch (profile ci)"})
    r.auto_choice.emplace_back(command, std::string(tier_name(choice.tier)));
  return r;
}

}  // namespace batman::isolation
