// The `systemd` tier: `systemd-run --pipe --wait` starts a transient service whose properties
// carry the profile (PrivateTmp, ProtectSystem, PrivateNetwork, SystemCallFilter, ...); the
// unit's cgroup holds the job's whole tree, so stopping the unit stops everything.
#include "isolation/systemd.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <filesystem>

#include "common/fs.hpp"
#include "common/signals.hpp"
#include "isolation/backends.hpp"
#include "isolation/spawn.hpp"

namespace batman::isolation {

namespace {

std::string find_tool(const char* name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/local/bin"}) {
    const std::string path = std::string(dir) + "/" + name;
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

std::string space_joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

// Run `argv` to completion with no input or output; its exit status.
int run_quietly(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string systemd_unit(const LaunchRequest& request) {
  return "batman-" + (request.unit_name.empty() ? request.run_id : request.unit_name) + ".service";
}

std::vector<std::string> systemd_run_argv(const std::string& systemd_run, const LaunchRequest& request,
                                          bool user, std::vector<std::string>& unenforced) {
  const Profile& p = request.profile;
  std::vector<std::string> argv = {systemd_run};
  if (user) argv.push_back("--user");
  // --pipe: the job's stdio is batman's pipes; --wait: systemd-run exits with the job's code.
  for (const char* flag : {"--quiet", "--collect", "--pipe", "--wait"}) argv.push_back(flag);
  argv.push_back("--unit=" + systemd_unit(request));
  argv.push_back("--working-directory=" + (request.cwd.empty() ? std::string("/") : request.cwd));
  for (const auto& kv : request.env) argv.push_back("--setenv=" + kv);
  auto property = [&](const std::string& text) { argv.push_back("--property=" + text); };
  if (request.uid) {
    property("User=" + std::to_string(*request.uid));
    if (request.gid) property("Group=" + std::to_string(*request.gid));
  } else if (const auto ids = job_ids(request)) {
    // root_user (batman is root): the job runs as that user; its TMPDIR is not its own, so
    // it writes the private /tmp.
    property("User=" + std::to_string(ids->uid));
    property("Group=" + std::to_string(ids->gid));
  }
  if (request.umask) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(*request.umask));
    property(std::string("UMask=") + text);
  }

  if (p.network != Network::Host) property("PrivateNetwork=yes");  // lo only
  if (p.network == Network::None) unenforced.push_back("network none: systemd keeps lo up");
  if (p.has_namespace("ipc")) property("PrivateIPC=yes");
  if (p.has_namespace("uts")) {
    property("ProtectHostname=yes");
    if (!p.hostname.empty()) unenforced.push_back("hostname (systemd gives a uts namespace, not a name)");
  }
  if (p.has_namespace("pid")) unenforced.push_back("pid namespace (systemd tier: the unit's cgroup groups the tree)");
  if (p.has_namespace("cgroup")) property("ProtectControlGroups=yes");
  // batman's tree (SPEC §7): what a profile says of paths inside it is dropped; the tree is
  // read-only, the job's TMPDIR and worktree writable, every other entry inaccessible (for
  // systemd the most specific path wins, whatever the order).
  const BatmanTree tree = batman_tree(request, true);
  for (const auto& raw : p.filesystem.read_only) {
    const auto path = expand_profile_path(raw, request);
    if (path == "/") property("ProtectSystem=strict");
    else if (!tree.holds_records(path)) property("ReadOnlyPaths=" + path);
  }
  for (const auto& raw : p.filesystem.read_write) {
    const auto path = expand_profile_path(raw, request);
    if (tree.holds_records(path)) {
      unenforced.push_back("read_write " + raw + ": inside batman's own tree, which a job never "
                           "writes (only its TMPDIR and --worktree)");
    } else if (path != "/") {
      property("ReadWritePaths=" + path);
    }
  }
  if (!tree.home.empty()) {
    property("ReadOnlyPaths=" + tree.home);
    for (const auto* mine : {&tree.tmp_dir, &tree.worktree})
      if (!mine->empty()) property("ReadWritePaths=-" + *mine);
    for (const auto& path : tree.hidden) property("InaccessiblePaths=-" + path);
  }
  for (const auto& dir : tree.config_dirs) property("ReadOnlyPaths=-" + dir);
  for (const auto& raw : p.filesystem.tmpfs) {
    const auto path = expand_profile_path(raw, request);
    if (path == "/tmp") property("PrivateTmp=yes");
    else property("TemporaryFileSystem=" + path);
  }
  for (const auto& raw : p.filesystem.hide) {
    const auto path = expand_profile_path(raw, request);
    if (!tree.holds_records(path)) property("InaccessiblePaths=-" + path);
  }

  if (p.capabilities.drop_all) {
    std::vector<std::string> keep;
    for (auto name : p.capabilities.keep) {
      for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      keep.push_back(name.starts_with("CAP_") ? name : "CAP_" + name);
    }
    property("CapabilityBoundingSet=" + space_joined(keep));
    property("AmbientCapabilities=" + space_joined(keep));
  }
  if (p.no_new_privs || p.seccomp.enabled) property("NoNewPrivileges=yes");
  if (p.seccomp.enabled && !p.seccomp.deny.empty()) {
    property("SystemCallFilter=~" + space_joined(p.seccomp.deny));
    property("SystemCallArchitectures=native");
    switch (p.seccomp.action) {
      case SeccompAction::Errno: property("SystemCallErrorNumber=EPERM"); break;
      case SeccompAction::Kill: break;  // systemd's default for a filtered call
      case SeccompAction::Log: property("SystemCallLog=" + space_joined(p.seccomp.deny)); break;
    }
  }
  if (request.limits.memory_bytes) property("MemoryMax=" + std::to_string(*request.limits.memory_bytes));
  if (request.limits.cpus)
    property("CPUQuota=" + std::to_string(std::llround(*request.limits.cpus * 100)) + "%");
  if (request.limits.pids) property("TasksMax=" + std::to_string(*request.limits.pids));
  if (request.limits.nofile) property("LimitNOFILE=" + std::to_string(*request.limits.nofile));
  // The unit's whole cgroup goes on stop; SIGKILL after batman's own stop sequence.
  property("KillMode=control-group");
  property("SendSIGKILL=yes");
  argv.push_back("--");
  const auto& job = request.shell_argv.empty() ? request.argv : request.shell_argv;
  argv.insert(argv.end(), job.begin(), job.end());
  return argv;
}

Availability probe_systemd() {
  Availability a{Tier::Systemd, false, {}};
  std::string init = "unknown";
  if (auto comm = read_file("/proc/1/comm")) {
    init = *comm;
    while (!init.empty() && (init.back() == '\n' || init.back() == ' ')) init.pop_back();
  }
  if (init != "systemd") {
    a.reason = "systemd is not PID 1 (init is " + init + ")";
    return a;
  }
  if (find_tool("systemd-run").empty()) {
    a.reason = "systemd-run is not installed";
    return a;
  }
  if (geteuid() != 0) {
    // A user manager is reachable through $XDG_RUNTIME_DIR/systemd/private.
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    const std::string socket = std::string(runtime ? runtime : "") + "/systemd/private";
    if (!runtime || access(socket.c_str(), F_OK) != 0) {
      a.reason = "no systemd user manager for uid " + std::to_string(getuid()) +
                 " (no $XDG_RUNTIME_DIR/systemd/private; log in through a session, or "
                 "loginctl enable-linger)";
      return a;
    }
    a.available = true;
    a.reason = "systemd-run --user";
    return a;
  }
  if (access("/run/systemd/system", F_OK) != 0) {
    a.reason = "systemd is PID 1 but /run/systemd/system is missing";
    return a;
  }
  a.available = true;
  a.reason = "systemd-run (system manager)";
  return a;
}

namespace {

class SystemdBackend final : public Backend {
 public:
  Tier tier() const override { return Tier::Systemd; }

  Result<std::vector<std::string>> prepare(const LaunchRequest& request) override {
    std::vector<std::string> unenforced;
    const std::string systemd_run = find_tool("systemd-run");
    if (systemd_run.empty()) return fail("systemd: systemd-run is not installed");
    user_ = geteuid() != 0;
    unit_ = systemd_unit(request);
    argv_ = systemd_run_argv(systemd_run, request, user_, unenforced);
    return unenforced;
  }

  Result<Child> spawn(const LaunchRequest& request) override {
    if (argv_.empty()) {
      if (auto ok = prepare(request); !ok) return std::unexpected(ok.error());
    }
    auto child = spawn_plain(request, argv_);
    if (!child) return std::unexpected(child.error().wrap("systemd"));
    return child;
  }

  void signal_tree(const Child& child, int sig) override {
    // The unit's cgroup is the tree; systemd signals every process of it.
    std::vector<std::string> argv = {find_tool("systemctl")};
    if (user_) argv.push_back("--user");
    argv.insert(argv.end(), {"kill", "--kill-who=all", "--signal=" + signal_name(sig), unit_});
    if (argv.front().empty() || run_quietly(argv) != 0) {
      if (child.pid > 0) signal_session(child.pid, sig);
    }
  }

  void kill_leftovers(const Child& child) override { signal_tree(child, SIGKILL); }

  void release() override {}

 private:
  bool user_ = false;
  std::string unit_;
  std::vector<std::string> argv_;
};

}  // namespace

std::unique_ptr<Backend> make_systemd_backend() { return std::make_unique<SystemdBackend>(); }

}  // namespace batman::isolation
