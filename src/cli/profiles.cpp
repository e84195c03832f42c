// `batman profiles list` and `batman profiles show NAME|FILE`: the isolation profiles found on
// the search path (SPEC §2), and one profile as batman understood it.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "isolation/profile.hpp"
#include "common/names.hpp"
#include "src/cli/arguments.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/table.hpp"

namespace batman::cli {

namespace {

std::string list_text(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

}  // namespace

int command_profiles(const std::vector<std::string>& args) {
  std::string action, name;
  bool as_json = false;
  CLI::App app{"List the isolation profiles, or show one.", "batman profiles"};
  app.add_option("action", action, "list | show")->required();
  app.add_option("name", name, "the profile to show (a name or a .yaml file)");
  app.add_flag("--json", as_json, "with list: the profiles and the search path as JSON");
  if (auto rc = parse(app, args)) return *rc;
  if (action == "list") {
    if (!name.empty()) {
      error("profiles list: takes no name (did you mean 'batman profiles show " + name + "'?)");
      return kExitBatmanError;
    }
    const auto profiles = isolation::list_profiles();
    if (as_json) {
      nlohmann::json out = {{"profiles", nlohmann::json::array()}, {"search_path", nlohmann::json::array()}};
      for (const auto& p : profiles)
        out["profiles"].push_back({{"name", p.name}, {"description", p.description}, {"file", p.source}});
      for (const auto& dir : isolation::profile_search_path()) out["search_path"].push_back(dir.string());
      std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return 0;
    }
    Table table({"NAME", "DESCRIPTION", "FILE"});
    for (const auto& p : profiles) table.add({printable(p.name), printable(p.description), printable(p.source)});
    std::fputs(table.render().c_str(), stdout);
    std::printf("\nsearched, in order:\n");
    for (const auto& dir : isolation::profile_search_path()) std::printf("  %s\n", dir.c_str());
    return 0;
  }
  if (action != "show") {
    const auto near = closest_match(action, {"list", "show"});
    error("profiles: unknown action '" + action + "'" + (near ? ": did you mean '" + *near + "'?" : "") +
          " (use 'list' or 'show NAME')");
    return kExitBatmanError;
  }
  if (as_json) {
    error("profiles show: --json is for 'profiles list' (show prints the file as written)");
    return kExitBatmanError;
  }
  if (name.empty()) {
    error("profiles show: which profile? (see 'batman profiles list')");
    return kExitBatmanError;
  }
  // Which file NAME resolves to; refused (one line naming both files and what is looser) when
  // it loosens a profile of the same name it shadows.
  auto profile = isolation::load_profile(name);
  if (!profile) {
    error(profile.error().message);
    return kExitBatmanError;
  }
  // The file as written, so comments and the deny list read as the author meant them.
  auto text = read_file(profile->source);
  std::printf("# %s\n", profile->source.c_str());
  if (auto source = isolation::read_profile_source(name); source && !source->shadowed.empty())
    std::printf("# shadows %s (and is at least as strict)\n", source->shadowed.c_str());
  if (text) std::fputs(text->c_str(), stdout);
  std::printf("# as batman reads it: namespaces %s, network %s, seccomp %s (%zu calls denied), "
              "capabilities %s, no_new_privs %s\n",
              list_text(profile->namespaces).c_str(),
              std::string(isolation::network_name(profile->network)).c_str(),
              profile->seccomp.enabled ? "on" : "off", profile->seccomp.deny.size(),
              profile->capabilities.drop_all ? "dropped" : "kept",
              profile->no_new_privs ? "yes" : "no");
  return 0;
}

}  // namespace batman::cli
