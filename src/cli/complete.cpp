// `batman __complete WHAT [PROJECT]`: the words shell completion offers that only batman
// knows (completions/): projects and run-ids under $BATMAN_HOME, profile names on the search
// path. Hidden from `batman help`; one word a line, nothing on stderr, always exit 0.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "common/names.hpp"
#include "isolation/profile.hpp"
#include "src/cli/cli.hpp"

namespace batman::cli {
namespace {

// The entries of DIR whose name is not hidden and, when SUFFIX is given, ends in it (cut off).
std::vector<std::string> completion_entries(const std::string& dir, std::string_view suffix, bool directories) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    if (!suffix.empty()) {
      if (name.size() <= suffix.size() || !name.ends_with(suffix)) continue;
      name.resize(name.size() - suffix.size());
    }
    if (directories) {
      struct stat st{};
      if (::stat((dir + "/" + e->d_name).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    }
    out.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> completion_projects() {
  std::vector<std::string> out;
  for (auto& name : completion_entries(batman_home(), "", true))
    if (validate_name(name, "project")) out.push_back(std::move(name));
  return out;
}

// Run-ids of PROJECT with a state file or a log (a batch task's <run-id>.<task> included).
std::vector<std::string> completion_runs(const std::string& project) {
  if (!validate_name(project, "project")) return {};
  const std::string dir = batman_home() + "/" + project;
  std::set<std::string> ids;
  for (auto& id : completion_entries(dir + "/state", ".json", false)) ids.insert(std::move(id));
  for (auto& id : completion_entries(dir + "/logs", ".log", false))
    if (id != "events") ids.insert(std::move(id));
  return {ids.begin(), ids.end()};
}

std::vector<std::string> completion_profiles() {
  std::set<std::string> names;
  for (const auto& dir : isolation::profile_search_path())
    for (auto& name : completion_entries(dir.string(), ".yaml", false)) names.insert(std::move(name));
  return {names.begin(), names.end()};
}

}  // namespace

int command_complete(const std::vector<std::string>& args) {
  const std::string what = args.empty() ? "" : args[0];
  std::vector<std::string> words;
  if (what == "projects") words = completion_projects();
  else if (what == "runs" && args.size() > 1) words = completion_runs(args[1]);
  else if (what == "profiles") words = completion_profiles();
  for (const auto& w : words) std::cout << w << '\n';
  return 0;
}

}  // namespace batman::cli
