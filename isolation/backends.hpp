// The constructors and probes of each tier's Backend (one file each), for tiers.cpp.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "isolation/backend.hpp"

namespace batman::isolation {

std::unique_ptr<Backend> make_env_backend();         // env_backend.cpp
std::unique_ptr<Backend> make_namespaces_backend();  // namespaces.cpp
Availability probe_namespaces();                     // a real clone into new namespaces
// The namespaces tier's child cloned ahead (README "The launch path"), one at a time, on
// x86-64 and arm64. prestart_clone, as a run's command line is about to be read: cloned into a
// pid namespace (and, without root, a user namespace mapping batman's ids), it is moved off
// batman's CPU and waits; prestart_hint once the arguments are read (below);
// prestart_namespaces does both. commit_prestart, once the profile and limits are known: it makes the rest of
// the profile's namespaces while batman prepares the run, and the next spawn hands it the
// plan; only for a profile with a pid namespace that dies with batman and no limits (a cgroup
// to join comes first), else it is taken down. false: no early child (the spawn then clones
// as usual). abort_prestart: not wanted after all (killed and reaped).
// With `batman_home`, the child reads a hint there (.cache/launch/, written by commit_prestart)
// naming the namespaces the last start with the same `options` (what decides the profile on
// the command line) needed, and makes those at once, before batman has the profile; a guess
// the profile does not want takes the child down at the commit (never the job's namespace).
// prestart_guess: what the child made so (0: nothing yet, or no guess).
bool prestart_namespaces(const std::string& batman_home = {}, std::string_view options = {});
bool prestart_clone();
void prestart_hint(const std::string& batman_home, std::string_view options);
bool commit_prestart(const Profile& profile, const Limits& limits);
void abort_prestart();
unsigned long prestart_guess();

// A profile path with $CWD, $PROJECT_DIR, $TMPDIR and $HOME replaced (mounts.cpp).
std::string expand_profile_path(const std::string& path, const LaunchRequest& request);

// `path` is `base` or below it (both canonical).
bool path_within(const std::string& path, const std::string& base);

// The trust boundary (SPEC §7) as the tiers with a mount namespace apply it (mounts.cpp).
// Paths are canonical (symlinks resolved), empty when the request has none.
struct BatmanTree {
  std::string home;                  // $BATMAN_HOME: never writable from inside
  std::string tmp_dir, worktree;     // the job's own parts of it: writable
  std::string cwd;
  // Every entry of `home` that is not on the way to tmp_dir or worktree (other projects,
  // .cache, this project's state/ and logs/, other runs' tmp/ and worktrees/): for tiers
  // that cannot cover `home` with an empty tmpfs and must hide entry by entry.
  std::vector<std::string> hidden;
  // batman's profile directories that exist, to keep read-only when the profile drops every
  // capability (empty otherwise: a job with capabilities could unmount the cover anyway).
  std::vector<std::string> config_dirs;
  // `path` (canonical) is the job's own TMPDIR or worktree, or below one of them.
  bool owns(const std::string& path) const;
  // `path` (as a profile names it, expanded) lies in batman's records: inside `home` and not
  // the job's own. A profile's word on such a path is dropped.
  bool holds_records(const std::string& path) const;
};
BatmanTree batman_tree(const LaunchRequest& request, bool list_hidden);

// Whom the job runs as when that is not batman's own user: the request's uid (taskmaster
// `user:`), or the profile's root_user when batman is root. nullopt: batman's user.
struct JobIds {
  uid_t uid;
  gid_t gid;
};
std::optional<JobIds> job_ids(const LaunchRequest& request);

}  // namespace batman::isolation
