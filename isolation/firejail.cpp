// The `firejail` tier: the profile as firejail options (--noprofile, so firejail's own
// per-program profiles do not mix in), started with spawn_plain; a job cgroup, when one can be
// made, holds the limits and kills the tree (firejail is setuid, so PDEATHSIG does not stick).
#include "isolation/firejail.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "common/fs.hpp"
#include "isolation/backends.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/spawn.hpp"

namespace batman::isolation {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

std::string find_firejail() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const std::string path = std::string(dir) + "/firejail";
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

// Descendants of `root` that are not firejail's own processes.
std::vector<pid_t> job_processes(pid_t root) {
  std::vector<pid_t> out, stack = {root};
  while (!stack.empty()) {
    const pid_t pid = stack.back();
    stack.pop_back();
    for (pid_t c : children_of(pid)) {
      stack.push_back(c);
      auto comm = read_file("/proc/" + std::to_string(c) + "/comm");
      if (comm && !comm->starts_with("firejail")) out.push_back(c);
    }
  }
  return out;
}

// Strictly below `base` (firejail refuses to whitelist /tmp itself).
bool below(const std::string& path, const std::string& base) {
  return path.size() > base.size() + 1 && path.starts_with(base) && path[base.size()] == '/';
}

}  // namespace

std::vector<std::string> firejail_argv(const std::string& firejail, const LaunchRequest& request,
                                       std::vector<std::string>& unenforced) {
  const Profile& p = request.profile;
  std::vector<std::string> argv = {firejail, "--quiet", "--noprofile"};
  // firejail always gives the sandbox its own pid and mount namespaces.
  if (p.network != Network::Host) argv.push_back("--net=none");  // lo only
  if (p.network == Network::None) unenforced.push_back("network none: firejail keeps lo up");
  if (p.has_namespace("ipc")) argv.push_back("--ipc-namespace");
  if (!p.hostname.empty() && p.has_namespace("uts")) argv.push_back("--hostname=" + p.hostname);
  if (p.has_namespace("cgroup")) unenforced.push_back("cgroup namespace (firejail tier)");

  // batman's tree (SPEC §7): what a profile says of paths inside it is dropped, and after the
  // profile's options (firejail applies read-only/read-write last-wins, in order) the tree is
  // read-only, the job's TMPDIR and worktree writable, and every other entry blacklisted.
  const BatmanTree tree = batman_tree(request, true);
  for (const auto& raw : p.filesystem.read_only) {
    const auto path = expand_profile_path(raw, request);
    if (!tree.holds_records(path)) argv.push_back("--read-only=" + path);
  }
  for (const auto& raw : p.filesystem.read_write) {
    const auto path = expand_profile_path(raw, request);
    if (!tree.holds_records(path)) argv.push_back("--read-write=" + path);
    else unenforced.push_back("read_write " + raw + ": inside batman's own tree, which a job never "
                              "writes (only its TMPDIR and --worktree)");
  }
  for (const auto& raw : p.filesystem.tmpfs) {
    const auto path = expand_profile_path(raw, request);
    if (path == "/tmp") {
      // A fresh tmpfs, not tmp/<run-id>; what the job needs under /tmp stays visible through
      // a whitelist.
      argv.push_back("--private-tmp");
      for (const auto* keep : {&tree.cwd, &tree.tmp_dir, &tree.worktree})
        if (below(*keep, "/tmp")) argv.push_back("--whitelist=" + *keep);
    } else {
      unenforced.push_back("tmpfs " + path + " (firejail allows only a private /tmp)");
    }
  }
  for (const auto& raw : p.filesystem.hide) {
    const auto path = expand_profile_path(raw, request);
    if (!tree.holds_records(path)) argv.push_back("--blacklist=" + path);
  }
  if (!tree.home.empty()) {
    argv.push_back("--read-only=" + tree.home);
    for (const auto* mine : {&tree.tmp_dir, &tree.worktree})
      if (!mine->empty()) argv.push_back("--read-write=" + *mine);
    // A whitelisted work dir is a mount of its own, which the read-only above does not reach.
    if (path_within(tree.cwd, tree.home) && !tree.owns(tree.cwd)) argv.push_back("--read-only=" + tree.cwd);
    for (const auto& path : tree.hidden) argv.push_back("--blacklist=" + path);
  }
  // batman's profile directories, where a job without capabilities could write them.
  for (const auto& dir : tree.config_dirs) argv.push_back("--read-only=" + dir);

  if (p.capabilities.drop_all) {
    if (p.capabilities.keep.empty()) {
      argv.push_back("--caps.drop=all");
    } else {
      std::vector<std::string> keep;
      for (auto name : p.capabilities.keep) {
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        keep.push_back(name.starts_with("cap_") ? name.substr(4) : name);
      }
      argv.push_back("--caps.keep=" + joined(keep));
    }
  }
  if (p.no_new_privs || p.seccomp.enabled) argv.push_back("--nonewprivs");
  if (p.seccomp.enabled && !p.seccomp.deny.empty()) {
    argv.push_back("--seccomp.drop=" + joined(p.seccomp.deny));
    argv.push_back("--seccomp.block-secondary");  // native architecture only
    switch (p.seccomp.action) {
      case SeccompAction::Errno: argv.push_back("--seccomp-error-action=EPERM"); break;
      case SeccompAction::Kill: argv.push_back("--seccomp-error-action=kill"); break;
      case SeccompAction::Log: argv.push_back("--seccomp-error-action=log"); break;
    }
  }
  if (request.limits.nofile) argv.push_back("--rlimit-nofile=" + std::to_string(*request.limits.nofile));
  argv.push_back("--deterministic-exit-code");
  // The job ends with its main process, as in the other tiers: firejail would otherwise wait
  // for whatever the job left behind (a setsid daemon), and the leftovers are killed.
  argv.push_back("--deterministic-shutdown");
  if (const auto ids = job_ids(request); ids && !request.uid)
    unenforced.push_back("root_user " + std::to_string(ids->uid) + " (firejail runs the job as its caller)");
  argv.push_back("--");
  const auto& job = request.shell_argv.empty() ? request.argv : request.shell_argv;
  argv.insert(argv.end(), job.begin(), job.end());
  return argv;
}

Availability probe_firejail() {
  Availability a{Tier::Firejail, false, {}};
  const std::string firejail = find_firejail();
  if (firejail.empty()) {
    a.reason = "firejail is not installed (apt-get install firejail)";
    return a;
  }
  // Whether this user may use it is firejail's own decision (firejail.users, firejail.config,
  // the setuid bit): ask it with the smallest sandbox and keep its first line of complaint.
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    a.reason = "pipe failed";
    return a;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execl(firejail.c_str(), "firejail", "--quiet", "--noprofile", "--", "/bin/true",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  UniqueFd reader(out[0]);
  std::string output;
  char buffer[512];
  ssize_t n;
  while ((n = read(reader.get(), buffer, sizeof buffer)) > 0) output.append(buffer, static_cast<std::size_t>(n));
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    a.available = true;
    a.reason = firejail;
    return a;
  }
  std::string first = output.substr(0, output.find('\n'));
  if (first.starts_with("Error: ")) first.erase(0, 7);
  if (!first.empty() && first.back() == '.') first.pop_back();
  if (output.find("not allowed") != std::string::npos)
    a.reason = "installed but not allowed for uid " + std::to_string(getuid()) + " (" + first +
               "; see /etc/firejail/firejail.users)";
  else
    a.reason = "installed but a test sandbox failed" + (first.empty() ? "" : ": " + first);
  return a;
}

namespace {

class FirejailBackend final : public Backend {
 public:
  Tier tier() const override { return Tier::Firejail; }

  Result<std::vector<std::string>> prepare(const LaunchRequest& request) override {
    std::vector<std::string> unenforced;
    firejail_ = find_firejail();
    if (firejail_.empty()) return fail("firejail: not installed");
    argv_ = firejail_argv(firejail_, request, unenforced);
    if (!cgroup_) cgroup_ = create_job_cgroup(request.unit_name, request.limits, unenforced);
    const bool cg_memory = cgroup_ && cgroup_->enforced.memory;
    if (request.limits.memory_bytes && !cg_memory) {
      // The per-process address-space limit is what firejail can do on its own.
      argv_.insert(argv_.begin() + 3, "--rlimit-as=" + std::to_string(*request.limits.memory_bytes));
      unenforced.push_back("memory limit: as an address-space rlimit (no writable cgroup)");
    }
    if (request.limits.pids && !(cgroup_ && cgroup_->enforced.pids))
      unenforced.push_back("pids limit: no writable cgroup with the pids controller");
    if (request.limits.cpus && !(cgroup_ && cgroup_->enforced.cpu))
      unenforced.push_back("cpu limit: no writable cgroup with the cpu controller");
    if (!cgroup_ && request.profile.die_with_parent)
      unenforced.push_back("die_with_parent: firejail is setuid, so only a cgroup (root) or "
                           "batman's own stop sequence ends the sandbox when batman is killed");
    return unenforced;
  }

  Result<Child> spawn(const LaunchRequest& request) override {
    if (argv_.empty()) {
      if (auto ok = prepare(request); !ok) return std::unexpected(ok.error());
    }
    auto child = spawn_plain(request, argv_);
    if (!child) return std::unexpected(child.error().wrap("firejail"));
    if (cgroup_) {
      // Early enough: firejail itself is still setting up the sandbox.
      if (auto ok = cgroup_->add(child->pid); !ok) {
        kill(child->pid, SIGKILL);
        return std::unexpected(ok.error().wrap("firejail"));
      }
    }
    return child;
  }

  void signal_tree(const Child& child, int sig) override {
    if (child.pid <= 0) return;
    if (sig == SIGKILL) {
      if (cgroup_) cgroup_->kill_all();
      signal_session(child.pid, sig);
      return;
    }
    // firejail answers a signal by tearing the sandbox down with SIGKILL, so the job would
    // never see it: signal the job's own processes instead, and firejail follows their exit.
    // Before the job exists (firejail still setting up), firejail itself is all there is.
    const auto pids = job_processes(child.pid);
    if (pids.empty()) signal_session(child.pid, sig);
    for (pid_t pid : pids) kill(pid, sig);
  }

  void kill_leftovers(const Child& child) override {
    if (cgroup_) cgroup_->kill_all();
    if (child.pid > 0) signal_session(child.pid, SIGKILL);
  }

  void release() override { release_cgroup(cgroup_, true); }
  bool try_release() override { return release_cgroup(cgroup_, false); }

  ~FirejailBackend() override { release(); }

 private:
  std::string firejail_;
  std::vector<std::string> argv_;
  std::unique_ptr<Cgroup> cgroup_;
};

}  // namespace

std::unique_ptr<Backend> make_firejail_backend() { return std::make_unique<FirejailBackend>(); }

}  // namespace batman::isolation
