// The project tree of SPEC §3: $BATMAN_HOME/<project>/{logs,state,tmp,worktrees}, opened by
// directory fds so nothing planted inside $BATMAN_HOME is ever followed.
#pragma once
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace batman::cli {

struct ProjectTree {
  std::string home;  // absolute $BATMAN_HOME
  std::string name;
  std::string dir;   // absolute $BATMAN_HOME/<name>
  UniqueFd home_fd, dir_fd, logs_fd, state_fd, tmp_fd, worktrees_fd;

  std::string logs_path() const { return dir + "/logs"; }
  std::string state_path() const { return dir + "/state"; }
  std::string tmp_path() const { return dir + "/tmp"; }
  std::string worktrees_path() const { return dir + "/worktrees"; }
};

// Validate `name` (exit-125 material on failure) and open, or create, its tree.
// With create=false a missing project is an error naming it.
Result<ProjectTree> open_project(const std::string& name, bool create);
// Every project directory under $BATMAN_HOME (valid names only).
std::vector<std::string> list_projects();
// Absolute form of $BATMAN_HOME (created 0700 when `create`).
Result<std::string> home_dir(bool create);
// The project a taskmaster config belongs to: its file name without directory and extension.
Result<std::string> config_project(const std::string& path);

}  // namespace batman::cli
