// Cgroups: detecting v2 / v1 from /proc/self/mountinfo, and one job cgroup per run under
// this process's own cgroup, with a v2 driver (one directory, cgroup.kill) and a v1 driver
// (a directory per controller hierarchy, freezer to kill without races).
#include "isolation/cgroups.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include "common/fs.hpp"

namespace batman::isolation {

namespace {

const char* const kWanted[] = {"memory", "cpu", "pids", "freezer"};

struct Mounts {
  std::string v2;                            // cgroup2 mount point, if any
  std::map<std::string, std::string> v1;     // controller -> hierarchy mount point
};

// Calls f(field) for each `sep`-separated field of `text`, as std::getline splits it (an
// empty last field is not one), until f returns false. No copies: mountinfo and the cgroup
// file are read for every job given a cgroup (root's env-tier jobs, any job with limits);
// split into strings, mountinfo alone took a tenth of a batch's main-thread CPU, now 3.5%
// (`perf record` of `batch -` of 300 `true`, --isolation env, as root).
template <class F>
void each_field(std::string_view text, char sep, F f) {
  while (!text.empty()) {
    const auto end = text.find(sep);
    if (!f(text.substr(0, end)) || end == std::string_view::npos) return;
    text.remove_prefix(end + 1);
  }
}

// The n-th field (from 0), if there is one.
std::optional<std::string_view> field(std::string_view text, char sep, int n) {
  std::optional<std::string_view> out;
  each_field(text, sep, [&](std::string_view f) {
    if (n-- > 0) return true;
    out = f;
    return false;
  });
  return out;
}

Mounts read_mounts() {
  Mounts m;
  auto text = read_file("/proc/self/mountinfo");
  if (!text) return m;
  each_field(*text, '\n', [&](std::string_view line) {
    const auto dash = line.find(" - ");
    if (dash == std::string_view::npos) return true;
    // ID PARENT MAJOR:MINOR ROOT MOUNT-POINT ... - TYPE SOURCE OPTIONS
    const auto point = field(line.substr(0, dash), ' ', 4);
    const auto right = line.substr(dash + 3);
    const auto type = field(right, ' ', 0), options = field(right, ' ', 2);
    if (!point || !type || !options) return true;
    if (*type == "cgroup2" && m.v2.empty()) m.v2 = *point;
    if (*type == "cgroup") {
      each_field(*options, ',', [&](std::string_view option) {
        m.v1.try_emplace(std::string(option), *point);
        return true;
      });
    }
    return true;
  });
  return m;
}

// The cgroup mounts, read again only when the mount table changed since: poll(2) on an open
// mountinfo reports POLLPRI after any mount or unmount in our mount namespace (proc(5)).
// Reading it cost 0.04 ms of kernel time (show_mountinfo) for every task of a batch given a
// cgroup (root's env tier: `perf record` of `batch -` of 1000 `true`, 3 Dec 2026).
Mounts find_mounts() {
  static std::mutex lock;
  static UniqueFd watch;
  static pid_t owner = 0;  // a forked child shares the open file, and so its change events
  static std::optional<Mounts> cached;
  const std::lock_guard<std::mutex> hold(lock);
  if (owner != getpid()) {
    watch.reset(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
    owner = getpid();
    cached.reset();
  }
  pollfd changed{watch.get(), POLLPRI, 0};
  if (!watch || !cached || poll(&changed, 1, 0) != 0) cached = read_mounts();
  return *cached;
}

// This process's cgroup path per v1 controller, and "" for v2 ("0::/path").
std::map<std::string, std::string> own_paths() {
  std::map<std::string, std::string> out;
  auto text = read_file("/proc/self/cgroup");
  if (!text) return out;
  each_field(*text, '\n', [&](std::string_view line) {
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) return true;
    const std::string path(line.substr(second + 1));
    const auto controllers = line.substr(first + 1, second - first - 1);
    if (controllers.empty()) out[""] = path;
    each_field(controllers, ',', [&](std::string_view c) {
      out[std::string(c)] = path;
      return true;
    });
    return true;
  });
  return out;
}

std::string join(const std::string& mount, const std::string& path) {
  return path == "/" || path.empty() ? mount : mount + path;
}

std::vector<std::string> v2_controllers(const std::string& dir) {
  auto text = read_file(dir + "/cgroup.controllers");
  if (!text) return {};
  std::vector<std::string> out;
  std::istringstream in(*text);
  std::string c;
  while (in >> c) out.push_back(c);
  return out;
}

Result<void> write_text(const std::string& path, const std::string& text) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return sys_error("open " + path);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    return sys_error("write " + path);
  return {};
}

Result<void> make_dir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return sys_error("mkdir " + path);
  return {};
}

std::vector<pid_t> read_procs(const std::string& dir) {
  std::vector<pid_t> out;
  auto text = read_file(dir + "/cgroup.procs");
  if (!text) return out;
  std::istringstream in(*text);
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

std::string limit_name(const std::string& controller) {
  if (controller == "memory") return "memory limit";
  if (controller == "cpu") return "cpu limit";
  return "pids limit";
}

class JobCgroup final : public Cgroup {
 public:
  JobCgroup(int version, std::vector<std::string> dirs, std::string procs_dir, std::string freezer)
      : version_(version), dirs_(std::move(dirs)), procs_dir_(std::move(procs_dir)),
        freezer_(std::move(freezer)) {}
  ~JobCgroup() override { remove(); }

  Result<void> add(pid_t pid) override {
    for (const auto& dir : dirs_) {
      if (auto ok = write_text(dir + "/cgroup.procs", std::to_string(pid)); !ok)
        return std::unexpected(ok.error().wrap("cgroup"));
    }
    return {};
  }

  std::vector<pid_t> members() const override { return read_procs(procs_dir_); }

  Result<std::vector<UniqueFd>> open_procs() const override {
    std::vector<UniqueFd> fds;
    for (const auto& dir : dirs_) {
      const std::string path = dir + "/cgroup.procs";
      UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd) return sys_error("cgroup: open " + path);
      fds.push_back(std::move(fd));
    }
    return fds;
  }

  void signal_all(int sig) override {
    for (pid_t pid : members()) kill(pid, sig);
  }

  void kill_all() override {
    // Nothing in it, nothing can fork into it: skip the freezer, whose every state change
    // costs v1 about 5 ms (this runs at the end of every run).
    if (members().empty()) return;
    if (version_ == 2 && write_text(procs_dir_ + "/cgroup.kill", "1")) return;
    const std::string state = version_ == 2 ? "/cgroup.freeze" : "/freezer.state";
    const bool frozen = !freezer_.empty() &&
                        write_text(freezer_ + state, version_ == 2 ? "1" : "FROZEN").has_value();
    // Frozen, nobody can fork between reading the list and the kill; unfrozen, go round
    // until the cgroup is empty (bounded: a fork bomb is still stopped by the pids limit).
    for (int round = 0; round < (frozen ? 1 : 50); ++round) {
      const auto pids = members();
      if (pids.empty()) break;
      for (pid_t pid : pids) kill(pid, SIGKILL);
    }
    if (frozen) (void)write_text(freezer_ + state, version_ == 2 ? "0" : "THAWED");
  }

  bool try_remove() override {
    std::erase_if(dirs_, [](const std::string& dir) { return rmdir(dir.c_str()) == 0 || errno != EBUSY; });
    return dirs_.empty();
  }

  const std::vector<std::string>& directories() const override { return dirs_; }

  std::string describe() const override {
    return "v" + std::to_string(version_) + " " + (dirs_.empty() ? "" : dirs_.front());
  }

 private:
  int version_;
  std::vector<std::string> dirs_;
  std::string procs_dir_;
  std::string freezer_;
};

bool any_limit(const Limits& limits) {
  return limits.memory_bytes || limits.cpus || limits.pids;
}

}  // namespace

namespace {

CgroupSupport detect_with(const Mounts& mounts, const std::map<std::string, std::string>& own) {
  CgroupSupport s;
  if (!mounts.v2.empty()) {
    const auto path = join(mounts.v2, own.contains("") ? own.at("") : "/");
    auto available = v2_controllers(path);
    const bool useful = std::any_of(available.begin(), available.end(), [](const std::string& c) {
      return c == "memory" || c == "cpu" || c == "pids";
    });
    // A hybrid setup mounts an empty (or hugetlb-only) cgroup2 beside the v1 hierarchies.
    if (useful) {
      s.version = 2;
      s.mount = mounts.v2;
      for (const char* c : kWanted) {
        if (std::string(c) == "freezer") {
          if (access((path + "/cgroup.freeze").c_str(), F_OK) == 0 || path == mounts.v2)
            s.controllers.push_back(c);
        } else if (std::find(available.begin(), available.end(), c) != available.end()) {
          s.controllers.push_back(c);
        }
      }
      s.writable = access(path.c_str(), W_OK) == 0;
      s.note = s.writable ? "jobs' cgroups go under " + path + "/batman"
                          : path + " is not writable by uid " + std::to_string(geteuid()) +
                                " (run as root, or in a delegated cgroup)";
      return s;
    }
  }
  if (!mounts.v1.empty()) {
    s.version = 1;
    s.mount = "/sys/fs/cgroup";
    std::string first;
    for (const char* c : kWanted) {
      if (!mounts.v1.contains(c)) continue;
      s.controllers.push_back(c);
      const auto path = join(mounts.v1.at(c), own.contains(c) ? own.at(c) : "/");
      if (first.empty()) first = path;
    }
    s.writable = !first.empty() && access(first.c_str(), W_OK) == 0;
    s.note = first.empty() ? "no v1 hierarchy with memory, cpu, pids or freezer"
             : s.writable ? "jobs' cgroups go under " + first + "/batman (and the other hierarchies)"
                          : first + " is not writable by uid " + std::to_string(geteuid()) +
                                " (run as root, or in a delegated cgroup)";
    if (!mounts.v2.empty()) s.note += "; the cgroup2 mount at " + mounts.v2 + " has no controllers";
    return s;
  }
  s.note = "no cgroup file system is mounted";
  return s;
}

// mkdir `dir`, and its parent `base` first only when that is missing (one system call per
// run in the common case).
Result<void> make_job_dir(const std::string& base, const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return {};
  if (errno != ENOENT) return sys_error("mkdir " + dir);
  if (auto ok = make_dir(base); !ok) return ok;
  return make_dir(dir);
}

}  // namespace

CgroupSupport detect_cgroups() { return detect_with(find_mounts(), own_paths()); }

std::string job_unit_name(std::initializer_list<std::string_view> parts) {
  std::string out = "batman";
  for (const auto part : parts) {
    out += ':';
    out += part;
  }
  return out;
}

std::string home_tag(const std::string& batman_home) {
  struct stat st{};
  const std::string key = ::stat(batman_home.c_str(), &st) == 0
                              ? std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)
                              : batman_home;
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a, 64 bits
  for (const unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char out[9];
  std::snprintf(out, sizeof out, "%08x", static_cast<unsigned>((h >> 32) ^ h));
  return out;
}

void Cgroup::remove() {
  // Killed processes leave their cgroup as they exit, which can lag the kill briefly.
  for (int attempt = 0; attempt < 50 && !try_remove(); ++attempt)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

std::uint64_t job_oom_kills(const std::string& unit) {
  if (unit.empty()) return 0;
  const Mounts mounts = find_mounts();
  const auto own = own_paths();
  const CgroupSupport support = detect_with(mounts, own);
  std::string file;
  if (support.version == 2)
    file = join(mounts.v2, own.contains("") ? own.at("") : "/") + "/batman/" + unit + "/memory.events";
  else if (support.version == 1 && mounts.v1.contains("memory"))
    file = join(mounts.v1.at("memory"), own.contains("memory") ? own.at("memory") : "/") + "/batman/" + unit +
           "/memory.oom_control";
  if (file.empty()) return 0;
  auto text = read_file(file, 4096);
  if (!text) return 0;
  std::istringstream in(*text);
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value)
    if (key == "oom_kill") return value;
  return 0;
}

bool release_cgroup(std::unique_ptr<Cgroup>& cgroup, bool wait) {
  if (!cgroup) return true;
  if (wait) cgroup->remove();
  else if (!cgroup->try_remove()) return false;
  cgroup.reset();
  return true;
}

std::unique_ptr<Cgroup> create_job_cgroup(const std::string& unit, const Limits& limits,
                                          std::vector<std::string>& unenforced) {
  const Mounts mounts = find_mounts();
  const auto own = own_paths();
  const CgroupSupport support = detect_with(mounts, own);
  if (!support.writable || unit.empty()) {
    if (any_limit(limits)) unenforced.push_back("cgroups: " + support.note);
    return nullptr;
  }
  std::vector<std::string> dirs;
  std::string procs_dir, freezer;
  auto has = [&](const std::string& c) {
    return std::find(support.controllers.begin(), support.controllers.end(), c) !=
           support.controllers.end();
  };
  // Writes a limit; a failure is reported as unenforced, not fatal.
  auto set_limit = [&](const std::string& dir, const std::string& file, const std::string& value,
                       const std::string& controller) {
    if (auto ok = write_text(dir + "/" + file, value); !ok) {
      unenforced.push_back(limit_name(controller) + ": " + ok.error().message);
      return false;
    }
    return true;
  };
  // The controllers the limits need; nothing else is charged to the job (a memory cgroup
  // per run costs the most, and its memcg outlives the rmdir for a while).
  auto needed = [&](const std::string& c) {
    return (c == "memory" && limits.memory_bytes) || (c == "cpu" && limits.cpus) ||
           (c == "pids" && limits.pids);
  };
  bool enforced_memory = false, enforced_cpu = false, enforced_pids = false;
  if (support.version == 2) {
    const auto parent = join(mounts.v2, own.contains("") ? own.at("") : "/");
    const auto base = parent + "/batman";
    const auto dir = base + "/" + unit;
    std::string enable;
    for (const char* c : {"memory", "cpu", "pids"})
      if (needed(c) && has(c)) enable += std::string(enable.empty() ? "+" : " +") + c;
    if (!enable.empty() && !make_dir(base)) {
      unenforced.push_back("cgroups: cannot create " + base);
      return nullptr;
    }
    // Fails with EBUSY when batman's own cgroup holds processes (v2's no-internal-process
    // rule); the job's cgroup then still groups the tree, without limits.
    const bool delegated = !enable.empty() &&
                           write_text(parent + "/cgroup.subtree_control", enable).has_value() &&
                           write_text(base + "/cgroup.subtree_control", enable).has_value();
    if (auto ok = make_job_dir(base, dir); !ok) {
      if (any_limit(limits)) unenforced.push_back("cgroups: " + ok.error().message);
      return nullptr;
    }
    dirs.push_back(dir);
    procs_dir = freezer = dir;
    if (!delegated && !enable.empty())
      unenforced.push_back("cgroups: cannot enable controllers below " + parent +
                           " (it holds processes; run batman in a delegated cgroup)");
    if (delegated && limits.memory_bytes)
      enforced_memory = set_limit(dir, "memory.max", std::to_string(*limits.memory_bytes), "memory");
    if (delegated && limits.cpus)
      enforced_cpu = set_limit(dir, "cpu.max",
                               std::to_string(std::llround(*limits.cpus * kCpuPeriodUs)) + " " +
                                   std::to_string(kCpuPeriodUs), "cpu");
    if (delegated && limits.pids)
      enforced_pids = set_limit(dir, "pids.max", std::to_string(*limits.pids), "pids");
  } else {
    // The hierarchy that finds and kills the job: the freezer (frozen, nothing forks away
    // between reading the members and the kill), else pids, else whatever a limit uses.
    const std::string finder = has("freezer") ? "freezer" : has("pids") ? "pids" : "";
    for (const char* c : kWanted) {
      const std::string controller = c;
      if (!has(controller) || (controller != finder && !needed(controller))) continue;
      const auto base = join(mounts.v1.at(controller), own.contains(controller) ? own.at(controller) : "/") +
                        "/batman";
      const auto dir = base + "/" + unit;
      if (!make_job_dir(base, dir)) {
        unenforced.push_back("cgroups: cannot create " + dir);
        continue;
      }
      dirs.push_back(dir);
      if (procs_dir.empty() || controller == finder) procs_dir = dir;
      if (controller == "freezer") freezer = dir;
      if (controller == "memory" && limits.memory_bytes)
        enforced_memory = set_limit(dir, "memory.limit_in_bytes",
                                    std::to_string(*limits.memory_bytes), controller);
      if (controller == "cpu" && limits.cpus)
        enforced_cpu = set_limit(dir, "cpu.cfs_period_us", std::to_string(kCpuPeriodUs), controller) &&
                       set_limit(dir, "cpu.cfs_quota_us",
                                 std::to_string(std::llround(*limits.cpus * kCpuPeriodUs)), controller);
      if (controller == "pids" && limits.pids)
        enforced_pids = set_limit(dir, "pids.max", std::to_string(*limits.pids), controller);
    }
    if (dirs.empty()) return nullptr;
  }
  auto group = std::make_unique<JobCgroup>(support.version, std::move(dirs), procs_dir, freezer);
  group->enforced = {enforced_memory, enforced_cpu, enforced_pids};
  return group;
}

namespace {

// Every directory "<...>/batman/<unit>" below `root` whose <unit> is in `units`. Bounded: a
// cgroup tree is small, and a hostile one (a job with root that makes thousands) cannot keep
// `stop` or `clean` walking for long.
void walk_for_units(const std::string& root, const std::set<std::string>& units, int depth,
                    std::size_t& budget, std::vector<std::string>& out) {
  if (depth > 32 || budget == 0) return;
  DIR* dir = opendir(root.c_str());
  if (!dir) return;
  std::vector<std::string> subdirs;
  while (dirent* e = readdir(dir)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;  // cgroupfs fills d_type
    if (budget == 0) break;
    --budget;
    subdirs.emplace_back(e->d_name);
  }
  closedir(dir);
  const bool batman_dir = root.size() >= 7 && root.ends_with("/batman");
  for (const auto& name : subdirs) {
    const std::string path = root + "/" + name;
    if (batman_dir && units.contains(name)) {
      out.push_back(path);
      continue;  // what a job nests below its own cgroup is removed with it, not searched
    }
    walk_for_units(path, units, depth + 1, budget, out);
  }
}

bool under(const std::string& path, const std::string& mount) {
  return path.size() > mount.size() && path.starts_with(mount) && path[mount.size()] == '/';
}

// rmdir `dir` after the empty cgroups a job made below it; false (errno set) when one stays.
bool remove_cgroup_tree(const std::string& dir, int depth) {
  if (depth < 8) {
    if (DIR* d = opendir(dir.c_str())) {
      std::vector<std::string> subdirs;
      while (dirent* e = readdir(d))
        if (e->d_type == DT_DIR && e->d_name[0] != '.') subdirs.push_back(dir + "/" + e->d_name);
      closedir(d);
      for (const auto& sub : subdirs) (void)remove_cgroup_tree(sub, depth + 1);
    }
  }
  return rmdir(dir.c_str()) == 0 || errno == ENOENT;
}

}  // namespace

std::vector<std::string> find_job_cgroup_dirs(const std::vector<std::string>& units) {
  std::vector<std::string> out;
  if (units.empty()) return out;
  const std::set<std::string> wanted(units.begin(), units.end());
  const Mounts mounts = find_mounts();
  std::set<std::string> roots;
  if (!mounts.v2.empty()) roots.insert(mounts.v2);
  for (const auto& [controller, mount] : mounts.v1) roots.insert(mount);
  std::size_t budget = 100000;
  for (const auto& root : roots) walk_for_units(root, wanted, 0, budget, out);
  return out;
}

std::unique_ptr<Cgroup> open_job_cgroup(const std::vector<std::string>& dirs) {
  if (dirs.empty()) return nullptr;
  const Mounts mounts = find_mounts();
  int version = 1;
  std::string procs_dir, freezer;
  for (const auto& dir : dirs) {
    if (!mounts.v2.empty() && under(dir, mounts.v2)) {
      version = 2;
      procs_dir = freezer = dir;
      break;
    }
    if (mounts.v1.contains("freezer") && under(dir, mounts.v1.at("freezer"))) freezer = dir;
  }
  if (version == 1) procs_dir = freezer.empty() ? dirs.front() : freezer;
  return std::make_unique<JobCgroup>(version, dirs, procs_dir, freezer);
}

std::vector<std::string> remove_empty_cgroup_dirs(const std::vector<std::string>& dirs) {
  std::vector<std::string> kept;
  for (const auto& dir : dirs) {
    if (const auto procs = read_procs(dir); !procs.empty()) {
      kept.push_back(dir + ": holds " + std::to_string(procs.size()) + " process(es)");
      continue;
    }
    if (!remove_cgroup_tree(dir, 0)) kept.push_back(dir + ": rmdir: " + std::strerror(errno));
  }
  return kept;
}

}  // namespace batman::isolation
