// Loading state files across projects.
#include "src/runs.hpp"

#include <algorithm>
#include <tuple>

#include "common/fs.hpp"
#include "isolation/spawn.hpp"
#include "src/project.hpp"

namespace batman::cli {

std::vector<runner::RunState> load_runs(const std::optional<std::string>& project) {
  std::vector<runner::RunState> runs;
  std::vector<std::string> projects = project ? std::vector<std::string>{*project} : list_projects();
  for (const auto& name : projects) {
    auto tree = open_project(name, false);
    if (!tree) continue;
    auto files = list_dir(tree->state_fd.get());
    if (!files) continue;
    for (const auto& f : *files) {
      if (f.size() < 6 || f[0] == '.' || f.substr(f.size() - 5) != ".json") continue;
      auto s = runner::read_state(tree->state_fd.get(), f.substr(0, f.size() - 5));
      if (!s || s->run_id.empty()) continue;
      runs.push_back(std::move(*s));
    }
  }
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    return std::tie(a.started_at, a.run_id) < std::tie(b.started_at, b.run_id);
  });
  return runs;
}

bool run_is_live(const runner::RunState& s) {
  if (s.live_status()) return true;
  // A lost run (its batman died) is live while anything of its job's session is: the
  // kernel does not hand out a pid that is still some session's id.
  return s.status == "lost" && s.pid > 1 && !isolation::session_members(s.pid).empty();
}

}  // namespace batman::cli
