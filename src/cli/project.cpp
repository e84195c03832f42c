// Opening and creating project trees under $BATMAN_HOME.
#include "src/cli/project.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/fs.hpp"
#include "common/names.hpp"
#include "src/cli/cli.hpp"

namespace batman::cli {

Result<std::string> home_dir(bool create) {
  std::string home = batman_home();
  if (home.empty()) return fail("no home directory: set HOME or BATMAN_HOME");
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(home, ec);
  if (ec) return fail("BATMAN_HOME '" + home + "': " + ec.message());
  home = abs.lexically_normal().string();
  while (home.size() > 1 && home.back() == '/') home.pop_back();
  if (create) {
    struct stat st{};
    if (::stat(home.c_str(), &st) != 0) {
      auto parent = std::filesystem::path(home).parent_path().string();
      if (auto made = open_dir_path(parent, true, 0755); !made)
        return std::unexpected(made.error().wrap("create BATMAN_HOME's parent"));
      if (::mkdir(home.c_str(), 0700) != 0 && errno != EEXIST)
        return sys_error("create BATMAN_HOME " + home);
    } else if (!S_ISDIR(st.st_mode)) {
      return fail("BATMAN_HOME " + home + " is not a directory: point BATMAN_HOME elsewhere");
    }
  }
  return home;
}

Result<ProjectTree> open_project(const std::string& name, bool create) {
  if (auto valid = validate_name(name, "project"); !valid) return std::unexpected(valid.error());
  auto home = home_dir(create);
  if (!home) return std::unexpected(home.error());
  ProjectTree tree;
  tree.home = *home;
  tree.name = name;
  tree.dir = *home + "/" + name;
  int hfd = ::open(home->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (hfd < 0) {
    if (errno == ENOENT && !create) return fail("no project '" + name + "': nothing has run under " + *home + " yet");
    return sys_error("open BATMAN_HOME " + *home);
  }
  tree.home_fd.reset(hfd);
  if (!create) {
    struct stat st{};
    if (::fstatat(hfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return fail("no project '" + name + "' under " + *home + ": check the name with 'batman ps --all'");
  }
  auto dir = open_dir_at(hfd, name, create);
  if (!dir) return std::unexpected(dir.error().wrap("project " + name));
  tree.dir_fd = std::move(*dir);
  struct Sub {
    const char* name;
    UniqueFd* fd;
  } subs[] = {{"logs", &tree.logs_fd}, {"state", &tree.state_fd}, {"tmp", &tree.tmp_fd},
              {"worktrees", &tree.worktrees_fd}};
  for (auto& sub : subs) {
    auto fd = open_dir_at(tree.dir_fd.get(), sub.name, create);
    if (!fd) return std::unexpected(fd.error().wrap("project " + name));
    *sub.fd = std::move(*fd);
  }
  return tree;
}

std::vector<std::string> list_projects() {
  std::vector<std::string> out;
  auto home = home_dir(false);
  if (!home) return out;
  int hfd = ::open(home->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (hfd < 0) return out;
  UniqueFd owner(hfd);
  auto names = list_dir(hfd);
  if (!names) return out;
  for (auto& n : *names) {
    struct stat st{};
    if (!validate_name(n, "project")) continue;
    if (::fstatat(hfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> config_project(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  if (auto ok = validate_name(stem, "project"); !ok)
    return fail("config " + path + ": its file name gives the project name: " + ok.error().message);
  return stem;
}

}  // namespace batman::cli
