// `batman clean [PROJECT] [--older-than DURATION] [--dry-run] [--json]`: remove finished runs' logs,
// state, tmp and worktrees; a running run is never touched.
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/time_format.hpp"
#include "isolation/cgroups.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"
#include "src/cli/runs.hpp"
#include "src/cli/subprocess.hpp"

namespace batman::cli {
namespace {

// Canonical form of `path`, or "" when it does not resolve.
std::string canonical_or_empty(const std::string& path) {
  std::error_code ec;
  auto c = std::filesystem::canonical(path, ec);
  return ec ? std::string() : c.string();
}

// A kept worktree is registered in its repository: let git remove it (and its registration),
// but only when it is this run's own `worktrees/<run-id>` (a real directory, not a link)
// and that repository lists it as one of its worktrees. The state file may have been
// written by the job: nothing it says decides what is removed. Returns why it was left to
// a plain removal of worktrees/<run-id>, or "" when git removed it.
std::string forget_worktree(const ProjectTree& tree, const runner::RunState& s) {
  const std::string own = tree.worktrees_path() + "/" + s.run_id;
  // The same directory under another spelling of $BATMAN_HOME (a symlink in its path) is ok.
  const std::string real_recorded = canonical_or_empty(*s.worktree);
  if (*s.worktree != own && (real_recorded.empty() || real_recorded != canonical_or_empty(own)))
    return "its recorded worktree " + *s.worktree + " is not " + own + ": left alone";
  struct stat st{};
  if (::fstatat(tree.worktrees_fd.get(), s.run_id.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return "";  // already gone
  if (!S_ISDIR(st.st_mode)) return own + " is not a directory";
  const std::string real_own = canonical_or_empty(own);
  const std::string real_parent = canonical_or_empty(tree.worktrees_path());
  if (real_own.empty() || real_parent.empty() || real_own != real_parent + "/" + s.run_id)
    return own + " does not resolve inside " + tree.worktrees_path();
  // Its .git file names the repository's record of it ("gitdir: <repo>/.git/worktrees/X"),
  // which names the repository (commondir). Read, not asked of git inside the job's tree.
  UniqueFd dir(::openat(tree.worktrees_fd.get(), s.run_id.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return "";
  auto dotgit = read_file_at(dir.get(), ".git", 4096);  // the job wrote it: bounded
  if (!dotgit || !dotgit->starts_with("gitdir: ")) return own + "/.git does not name a repository";
  std::string gitdir = dotgit->substr(8);
  while (!gitdir.empty() && (gitdir.back() == '\n' || gitdir.back() == '\r')) gitdir.pop_back();
  if (gitdir.empty() || gitdir[0] != '/') return own + "/.git does not name a repository";
  auto commondir = read_file(gitdir + "/commondir", 4096);
  if (!commondir) return own + "/.git does not name a linked worktree";
  std::string common = *commondir;
  while (!common.empty() && (common.back() == '\n' || common.back() == '\r')) common.pop_back();
  if (common.empty()) return own + "/.git does not name a linked worktree";
  if (common[0] != '/') common = gitdir + "/" + common;
  common = canonical_or_empty(common);
  if (common.empty()) return "its repository is gone";
  auto list = run_capture({"git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "--git-dir=" + common, "worktree", "list", "--porcelain", "-z"});
  if (!list || list->exit_code != 0) return "git worktree list failed in " + common;
  bool registered = false;
  for (std::size_t start = 0; start < list->out.size();) {
    std::size_t end = list->out.find('\0', start);
    if (end == std::string::npos) end = list->out.size();
    const std::string_view entry(list->out.data() + start, end - start);
    if (entry.starts_with("worktree ") && canonical_or_empty(std::string(entry.substr(9))) == real_own)
      registered = true;
    start = end + 1;
  }
  if (!registered) return own + " is not a registered worktree of " + common;
  auto rm = run_capture({"git", "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "--git-dir=" + common, "worktree", "remove", "--force", real_own});
  if (!rm || rm->exit_code != 0) return "git worktree remove failed";
  return "";
}

// A batch task's attempt logs, <run-id>.<N>.log for N = 1, 2, ... (its state counts its
// restarts; a batman killed mid-run may have left one more than it says).
bool remove_attempt_logs(const ProjectTree& tree, const runner::RunState& s) {
  bool ok = true;
  for (int n = 1; n < 100000; ++n) {
    const std::string name = s.run_id + "." + std::to_string(n) + ".log";
    struct stat st{};
    if (::fstatat(tree.logs_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (n > s.restarts + 1) break;
      continue;
    }
    ok &= remove_tree_at(tree.logs_fd.get(), name).has_value();
  }
  return ok;
}

// A task of a batch that still runs stays with its batch (--resume reads it afterwards).
bool batch_still_runs(const runner::RunState& s) {
  return s.kind == "batch" && s.batman_pid > 0 && s.batman_start_time != 0 &&
         runner::process_matches(s.batman_pid, s.batman_start_time);
}

// Asks on the terminal whether to remove every finished run of every project. 0 to go on,
// else the exit code (1: the user said no; 125: no terminal to ask).
int confirm_clean_everything() {
  if (!::isatty(0) || !::isatty(2)) {
    error("clean: with no PROJECT and no --older-than this removes every finished run of every project; "
          "add --all to do so, or name a PROJECT, or give --older-than D");
    return kExitBatmanError;
  }
  std::size_t finished = 0;
  std::set<std::string> projects;
  for (const auto& s : load_runs(std::nullopt)) {
    if (s.live_status()) continue;
    ++finished;
    projects.insert(s.project);
  }
  if (finished == 0) return 0;
  std::cerr << "batman: remove all " << finished << " finished run(s) of " << projects.size()
            << " project(s)? [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
    std::cerr << "batman: nothing removed\n";
    return 1;
  }
  return 0;
}

}  // namespace

int command_clean(const std::vector<std::string>& args) {
  std::string project, older_text;
  bool dry_run = false, everything = false, as_json = false;
  CLI::App app{"Remove finished runs' logs, state, tmp and worktrees.", "batman clean"};
  app.add_option("PROJECT", project, "only this project (default: every project)");
  app.add_option("--older-than", older_text, "only runs that ended longer ago than DURATION: 30m, 12h, 7d, 2w");
  app.add_flag("-n,--dry-run", dry_run, "print what would be removed");
  app.add_flag("--all", everything, "every finished run of every project, without asking");
  app.add_flag("--json", as_json, "print the runs removed (or, with --dry-run, that would be) as JSON");
  if (auto rc = parse(app, args)) return *rc;
  if (!project.empty() && everything) {
    error("clean: PROJECT and --all contradict each other: give one");
    return kExitBatmanError;
  }
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
    auto d = parse_age(older_text);
    if (!d) {
      error(d.error().wrap("clean --older-than").message);
      return kExitBatmanError;
    }
    older = *d;
  }
  // No filter at all removes every finished run of every project: asked first on a terminal,
  // refused without one unless --all says so.
  if (project.empty() && older_text.empty() && !everything && !dry_run) {
    if (auto go = confirm_clean_everything(); go != 0) return go;
  }
  auto now = std::chrono::system_clock::now();
  int removed = 0, kept_live = 0, failures = 0;
  std::set<std::string> cleaned;  // projects whose parked tmp directories go too
  std::vector<std::string> stale_units;  // the removed runs' job cgroup names
  nlohmann::json listed = nlohmann::json::array();  // --json: one object per run
  for (const auto& s : load_runs(only)) {
    if (run_is_live(s) || batch_still_runs(s)) {
      ++kept_live;
      continue;
    }
    auto ended = parse_rfc3339(s.ended_at.value_or(s.started_at));
    if (older > Duration::zero() && ended && now - *ended < older) continue;
    auto tree = open_project(s.project, false);
    if (!tree) continue;
    if (validate_name(s.run_id, "run-id").has_value() == false) continue;
    if (dry_run) {
      if (as_json) listed.push_back({{"project", s.project}, {"run_id", s.run_id}, {"removed", false}});
      else std::cout << "would remove " << s.project << " " << s.run_id << "\n";
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
    if (s.kind == "batch") ok &= remove_attempt_logs(*tree, s);
    // A slurm executor's run kept slurm/<run-id>/ (job script, manifests, Slurm's output).
    if (s.kind == "batch" && s.run_id.find('.') == std::string::npos)
      if (auto slurm = open_dir_at(tree->dir_fd.get(), "slurm", false)) ok &= remove_tree_at(slurm->get(), s.run_id).has_value();
    ok &= remove_tree_at(tree->tmp_fd.get(), s.run_id).has_value();
    if (s.worktree) {
      if (auto why = forget_worktree(*tree, s); !why.empty()) info("clean " + s.project + " " + s.run_id + ": " + why);
    }
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
    if (as_json) listed.push_back({{"project", s.project}, {"run_id", s.run_id}, {"removed", true}});
    else std::cout << "removed " << s.project << " " << s.run_id << "\n";
    ++removed;
    cleaned.insert(s.project);
    for (auto& unit : job_cgroup_units(s)) stale_units.push_back(std::move(unit));
  }
  // The job cgroups a killed batman could not remove (it removes them itself at the end of
  // a run): only batman's own names of the runs removed above, only empty ones.
  if (!stale_units.empty()) {
    for (const auto& left : isolation::remove_empty_cgroup_dirs(isolation::find_job_cgroup_dirs(stale_units)))
      error("clean: cgroup " + left);
  }
  // The empty TMPDIRs batman 0.1 kept for its next runs.
  for (const auto& name : cleaned) {
    if (auto tree = open_project(name, false)) {
      if (auto r = remove_legacy_parked_dirs(tree->tmp_fd.get()); !r) error("clean " + name + ": " + r.error().message);
    }
  }
  if (as_json) std::cout << listed.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  info(std::to_string(removed) + (dry_run ? " run(s) would be removed" : " run(s) removed") +
       (kept_live ? ", " + std::to_string(kept_live) + " running left alone" : ""));
  return failures ? 1 : 0;
}

}  // namespace batman::cli
