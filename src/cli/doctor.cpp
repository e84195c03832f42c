// `batman doctor [--json]`: each isolation tier, available or not and why, the machine facts
// behind that, and which tier `auto` picks for each command.
#include <sys/utsname.h>

#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "isolation/doctor.hpp"
#include "src/cli/cli.hpp"

namespace batman::cli {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out.empty() ? "none" : out;
}

nlohmann::json to_json(const isolation::DoctorReport& r) {
  using nlohmann::json;
  json tiers = json::array();
  for (const auto& t : r.tiers)
    tiers.push_back({{"tier", isolation::tier_name(t.tier)}, {"available", t.available}, {"reason", t.reason}});
  json choice = json::object();
  for (const auto& [command, tier] : r.auto_choice) choice[command] = tier;
  auto optional_number = [](long n) { return n < 0 ? json(nullptr) : json(n); };
  return {
      {"uid", r.uid},
      {"tiers", tiers},
      {"user_namespaces",
       {{"max_user_namespaces", optional_number(r.max_user_namespaces)},
        {"unprivileged_userns_clone", optional_number(r.unprivileged_userns_clone)}}},
      {"init", r.init},
      {"cgroups",
       {{"version", r.cgroups.version},
        {"controllers", r.cgroups.controllers},
        {"writable", r.cgroups.writable},
        {"note", r.cgroups.note}}},
      {"seccomp", {{"supported", r.seccomp}, {"libseccomp", r.libseccomp}}},
      {"auto", choice},
      {"auto_summary", r.auto_summary},
  };
}

}  // namespace

int command_doctor(const std::vector<std::string>& args) {
  bool as_json = false;
  CLI::App app{"Show which isolation tiers this machine offers this user, and why.", "batman doctor"};
  app.add_flag("--json", as_json, "print JSON");
  if (auto rc = parse(app, args)) return *rc;
  const auto report = isolation::run_doctor();
  if (as_json) {
    std::cout << to_json(report).dump(2) << "\n";
    return 0;
  }
  std::printf("batman doctor (uid %u)\n\ntiers, strongest first:\n", report.uid);
  // Green and red on a terminal (not with NO_COLOR); the padding stays outside the colour.
  const bool colour = colour_on(1);
  for (const auto& t : report.tiers) {
    const std::string word = t.available ? "available" : "unavailable";
    const std::string shown = colour ? coloured(word, t.available ? "32" : "31") : word;
    std::printf("  %-11s %s%*s %s\n", std::string(isolation::tier_name(t.tier)).c_str(), shown.c_str(),
                static_cast<int>(13 - word.size()), "", t.reason.c_str());
  }
  std::printf("\nuser namespaces: user.max_user_namespaces = %ld", report.max_user_namespaces);
  if (report.unprivileged_userns_clone >= 0)
    std::printf(", kernel.unprivileged_userns_clone = %ld", report.unprivileged_userns_clone);
  std::printf("\ninit (PID 1):    %s\n", report.init.c_str());
  if (report.cgroups.version)
    std::printf("cgroups:         v%d, controllers %s, %s\n", report.cgroups.version,
                joined(report.cgroups.controllers).c_str(),
                report.cgroups.writable ? "writable" : "not writable");
  else
    std::printf("cgroups:         none\n");
  std::printf("                 %s\n", report.cgroups.note.c_str());
  std::printf("seccomp:         %s (libseccomp %s)\n", report.seccomp ? "supported" : "not supported",
              report.libseccomp.c_str());
  std::printf("\nauto picks:\n");
  for (const auto& [command, tier] : report.auto_choice)
    std::printf("  %-36s %s\n", command.c_str(), tier.c_str());
  std::printf("  %s\n", report.auto_summary.c_str());
  return 0;
}

std::string version_report() {
  const auto r = isolation::run_doctor();
  std::string out = version_text() + "\n";
  out += "libseccomp " + r.libseccomp + (r.seccomp ? " (seccomp filters supported)" : " (seccomp not supported)") + "\n";
  utsname u{};
  if (::uname(&u) == 0)
    out += std::string("kernel ") + u.sysname + " " + u.release + " " + u.version + " " + u.machine + "\n";
  out += "init " + r.init + "; cgroups ";
  out += r.cgroups.version ? "v" + std::to_string(r.cgroups.version) + (r.cgroups.writable ? " writable" : " not writable")
                           : std::string("none");
  out += "; user.max_user_namespaces " + std::to_string(r.max_user_namespaces) + "; uid " + std::to_string(r.uid) + "\n";
  for (const auto& t : r.tiers) {
    out += "tier " + std::string(isolation::tier_name(t.tier)) + ": " + (t.available ? "available" : "unavailable");
    if (!t.reason.empty()) out += " (" + t.reason + ")";
    out += "\n";
  }
  out += "auto " + r.auto_summary;  // "auto isolation: namespaces (...)"
  return out;
}

}  // namespace batman::cli
