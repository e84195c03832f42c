// Tier names, probing each tier on this machine for this user, and `auto`'s choice.
#include <algorithm>
#include <fstream>
#include <string>

#include "isolation/backend.hpp"
#include "isolation/backends.hpp"
#include "isolation/firejail.hpp"
#include "isolation/systemd.hpp"

namespace batman::isolation {

bool has_own_pid_namespace(Tier tier, const Profile& profile) {
  const auto& ns = profile.namespaces;
  return tier == Tier::Namespaces && std::find(ns.begin(), ns.end(), "pid") != ns.end();
}

std::string_view tier_name(Tier t) {
  switch (t) {
    case Tier::Namespaces: return "namespaces";
    case Tier::Firejail: return "firejail";
    case Tier::Systemd: return "systemd";
    case Tier::Env: return "env";
  }
  return "env";
}

Result<std::optional<Tier>> parse_tier(std::string_view text) {
  if (text == "auto") return std::optional<Tier>{};
  for (Tier t : kAutoOrder) {
    if (text == tier_name(t)) return std::optional<Tier>{t};
  }
  return fail("unknown isolation tier '" + std::string(text) +
              "' (use auto, namespaces, firejail, systemd or env)");
}

Availability probe_tier(Tier t) {
  switch (t) {
    case Tier::Namespaces:
      return probe_namespaces();
    case Tier::Firejail:
      return probe_firejail();
    case Tier::Systemd:
      return probe_systemd();
    case Tier::Env:
      return {t, true, "separate directories, environment and process group"};
  }
  return {t, false, "unknown tier"};
}

std::string TierChoice::summary() const {
  std::string line = "isolation: " + std::string(tier_name(tier));
  if (!skipped.empty()) {
    line += " (";
    for (std::size_t i = 0; i < skipped.size(); ++i) {
      if (i) line += "; ";
      line += std::string(tier_name(skipped[i].tier)) + ": " + skipped[i].reason;
    }
    line += ")";
  }
  return line;
}

Result<TierChoice> choose_tier(std::optional<Tier> requested) {
  if (requested) {
    auto a = probe_tier(*requested);
    if (!a.available)
      return fail("isolation tier '" + std::string(tier_name(*requested)) +
                  "' is not available: " + a.reason + " (see 'batman doctor')");
    return TierChoice{*requested, {}};
  }
  TierChoice choice{Tier::Env, {}};
  for (Tier t : kAutoOrder) {
    auto a = probe_tier(t);
    if (a.available) {
      choice.tier = t;
      return choice;
    }
    choice.skipped.push_back(std::move(a));
  }
  return choice;
}

std::unique_ptr<Backend> make_backend(Tier t) {
  switch (t) {
    case Tier::Namespaces: return make_namespaces_backend();
    case Tier::Firejail: return make_firejail_backend();
    case Tier::Systemd: return make_systemd_backend();
    case Tier::Env: return make_env_backend();
  }
  return make_env_backend();
}

}  // namespace batman::isolation
