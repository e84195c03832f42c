// `batman clean [PROJECT] [--older-than DURATION] [--dry-run]`: remove finished runs' logs,
// state, tmp and worktrees; a running run is never touched.
#include <sys/file.h>
#include <fcntl.h>

#include <chrono>
#include <iostream>
#include <set>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/time_format.hpp"
#include "src/cli.hpp"
#include "src/project.hpp"
#include "src/runs.hpp"
#include "src/subprocess.hpp"

namespace batman::cli {
namespace {

// A kept worktree is registered in its repository: let git remove it (and its registration).
void forget_worktree(const std::string& path) {
  auto top = run_capture({"git", "-C", path, "rev-parse", "--git-common-dir"});
  if (!top || top->exit_code != 0) return;
  std::string common = top->out;
  while (!common.empty() && (common.back() == '\n' || common.back() == '\r')) common.pop_back();
  if (!common.empty() && common[0] != '/') common = path + "/" + common;
  (void)run_capture({"git", "--git-dir=" + common, "worktree", "remove", "--force", path});
}

}  // namespace

int command_clean(const std::vector<std::string>& args) {
  std::string project, older_text;
  bool dry_run = false;
  CLI::App app{"Remove finished runs' logs, state, tmp and worktrees.", "batman clean"};
  app.add_option("PROJECT", project, "only this project (default: every project)");
  app.add_option("--older-than", older_text, "only runs that ended longer ago than DURATION");
  app.add_flag("-n,--dry-run", dry_run, "print what would be removed");
  if (auto rc = parse(app, args)) return *rc;
  std::optional<std::string> only;
  if (!project.empty()) {
    auto tree = open_project(project, false);  // validates the name first
    if (!tree) {
      error(tree.error().message);
      return kExitBatmanError;
    }
    only = project;
  }
  Duration older{};
  if (!older_text.empty()) {
    auto d = parse_duration(older_text);
    if (!d) {
      error(d.error().wrap("--older-than").message);
      return kExitBatmanError;
    }
    older = *d;
  }
  auto now = std::chrono::system_clock::now();
  int removed = 0, kept_live = 0, failures = 0;
  std::set<std::string> cleaned;  // projects whose parked tmp directories go too
  for (const auto& s : load_runs(only)) {
    if (run_is_live(s)) {
      ++kept_live;
      continue;
    }
    auto ended = parse_rfc3339(s.ended_at.value_or(s.started_at));
    if (older > Duration::zero() && ended && now - *ended < older) continue;
    auto tree = open_project(s.project, false);
    if (!tree) continue;
    if (validate_name(s.run_id, "run-id").has_value() == false) continue;
    if (dry_run) {
      std::cout << "would remove " << s.project << " " << s.run_id << "\n";
      ++removed;
      continue;
    }
    // A multi instance being started right now holds its lock: leave it alone.
    UniqueFd lock(::openat(tree->state_fd.get(), (s.run_id + ".lock").c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (lock && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      ++kept_live;
      continue;
    }
    bool ok = true;
    ok &= remove_tree_at(tree->logs_fd.get(), s.run_id + ".log").has_value();
    ok &= remove_tree_at(tree->tmp_fd.get(), s.run_id).has_value();
    if (s.worktree) forget_worktree(*s.worktree);
    ok &= remove_tree_at(tree->worktrees_fd.get(), s.run_id).has_value();
    ok &= remove_tree_at(tree->state_fd.get(), s.run_id + ".json").has_value();
    // A batman killed mid-run leaves the final state's temporary file (.RUN.json.tmp.PID.X).
    if (auto names = list_dir(tree->state_fd.get())) {
      const std::string temp_prefix = "." + s.run_id + ".json.tmp.";
      for (const auto& name : *names)
        if (name.starts_with(temp_prefix)) ok &= remove_tree_at(tree->state_fd.get(), name).has_value();
    }
    // The .lock file stays: unlinking it would let two instances lock two different files.
    if (!ok) {
      error("could not remove everything of " + s.project + " " + s.run_id);
      ++failures;
      continue;
    }
    std::cout << "removed " << s.project << " " << s.run_id << "\n";
    ++removed;
    cleaned.insert(s.project);
  }
  // The emptied TMPDIRs parked for the next run (see make_dir_reusing); one a starting run
  // takes first is its own, and stays.
  for (const auto& name : cleaned) {
    if (auto tree = open_project(name, false)) {
      if (auto r = remove_parked_dirs(tree->tmp_fd.get()); !r) error("clean " + name + ": " + r.error().message);
    }
  }
  info(std::to_string(removed) + (dry_run ? " run(s) would be removed" : " run(s) removed") +
       (kept_live ? ", " + std::to_string(kept_live) + " running left alone" : ""));
  return failures ? 1 : 0;
}

}  // namespace batman::cli
