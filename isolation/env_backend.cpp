// The `env` tier: separate directories and environment only. The job gets its own session
// and process group; batman, a child subreaper, finds and kills what the job leaves behind.
// Where a cgroup is writable (root, or a delegated cgroup) the job also starts in a cgroup
// of its own (only the hierarchies it needs: see create_job_cgroup): it holds
// --memory/--cpus/--pids, and it is how `batman stop` finds every process of the job, setsid
// daemons included, after batman itself was killed. taskmaster programs without a profile
// come through here too, so this is on the path of every such start.
#include <sys/prctl.h>

#include <csignal>

#include "isolation/backends.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/spawn.hpp"

namespace batman::isolation {
namespace {

class EnvBackend final : public Backend {
 public:
  Tier tier() const override { return Tier::Env; }

  Result<std::vector<std::string>> prepare(const LaunchRequest& request) override {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    std::vector<std::string> unenforced;
    const Profile& p = request.profile;
    for (const auto& ns : p.namespaces) unenforced.push_back("namespace " + ns + " (env tier)");
    if (p.seccomp.enabled) unenforced.push_back("seccomp (env tier)");
    if (p.capabilities.drop_all) unenforced.push_back("capability drop (env tier)");
    if (p.no_new_privs) unenforced.push_back("no_new_privs (env tier)");
    if (p.network != Network::Host) unenforced.push_back("network " + std::string(network_name(p.network)) + " (env tier)");
    if (!p.filesystem.read_only.empty() || !p.filesystem.hide.empty())
      unenforced.push_back("read-only and hidden paths (env tier)");
    if (!p.filesystem.tmpfs.empty()) unenforced.push_back("private /tmp (env tier; TMPDIR is private)");
    // create_job_cgroup says why when there is none (or a limit it could not set).
    if (!cgroup_) cgroup_ = create_job_cgroup(request.unit_name, request.limits, unenforced);
    const Cgroup::Enforced held = cgroup_ ? cgroup_->enforced : Cgroup::Enforced{};
    if (request.limits.memory_bytes && !held.memory) unenforced.push_back("memory limit (env tier, no cgroup)");
    if (request.limits.cpus && !held.cpu) unenforced.push_back("cpu limit (env tier, no cgroup)");
    if (request.limits.pids && !held.pids) unenforced.push_back("pids limit (env tier, no cgroup)");
    return unenforced;
  }

  Result<Child> spawn(const LaunchRequest& request) override {
    if (!cgroup_) return spawn_plain(request, request.argv, {}, request.shell_argv);
    auto fds = cgroup_->open_procs();
    if (!fds) return std::unexpected(fds.error());
    std::vector<int> raw;
    for (const auto& fd : *fds) raw.push_back(fd.get());
    return spawn_plain(request, request.argv, raw, request.shell_argv);
  }

  void signal_tree(const Child& child, int sig) override {
    if (child.pid <= 0) return;
    // The cgroup also holds what left the session (setsid); SIGKILL through the freezer so
    // nothing forks away between reading the members and the kill.
    if (cgroup_ && sig == SIGKILL) cgroup_->kill_all();
    signal_session(child.pid, sig);
    if (cgroup_ && sig != SIGKILL) cgroup_->signal_all(sig);
  }

  void kill_leftovers(const Child& child) override {
    if (cgroup_) cgroup_->kill_all();
    if (child.pid > 0) signal_session(child.pid, SIGKILL);
  }

  void release() override { release_cgroup(cgroup_, true); }
  bool try_release() override { return release_cgroup(cgroup_, false); }

  ~EnvBackend() override { release(); }

 private:
  std::unique_ptr<Cgroup> cgroup_;
};

}  // namespace

std::unique_ptr<Backend> make_env_backend() { return std::make_unique<EnvBackend>(); }

}  // namespace batman::isolation
