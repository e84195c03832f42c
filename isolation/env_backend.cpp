// The `env` tier: separate directories and environment only. The job gets its own session
// and process group; batman, a child subreaper, finds and kills what the job leaves behind.
#include <sys/prctl.h>

#include <csignal>

#include "isolation/backends.hpp"
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
    if (request.limits.memory_bytes) unenforced.push_back("memory limit (env tier)");
    if (request.limits.cpus) unenforced.push_back("cpu limit (env tier)");
    if (request.limits.pids) unenforced.push_back("pids limit (env tier)");
    return unenforced;
  }

  Result<Child> spawn(const LaunchRequest& request) override {
    return spawn_plain(request, request.argv);
  }

  void signal_tree(const Child& child, int sig) override {
    if (child.pid > 0) signal_session(child.pid, sig);
  }

  void kill_leftovers(const Child& child) override {
    if (child.pid > 0) signal_session(child.pid, SIGKILL);
  }

  void release() override {}
};

}  // namespace

std::unique_ptr<Backend> make_env_backend() { return std::make_unique<EnvBackend>(); }

}  // namespace batman::isolation
