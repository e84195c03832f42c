// Supervisor: the Taskmaster daemon's core. Program instances (NAME:NN) as runner::Job
// objects, start/stop/restart with completion callbacks, status, and the reload diff.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

#include "common/clock.hpp"
#include "common/error.hpp"
#include "isolation/backend.hpp"
#include "isolation/profile.hpp"
#include "runner/event_loop.hpp"
#include "runner/job.hpp"
#include "runner/job_set.hpp"
#include "runner/output.hpp"
#include "runner/process.hpp"
#include "runner/state_writer.hpp"

namespace batman::runner {

// Where one of a program's streams goes.
struct OutputTarget {
  enum class Kind { Default, Discard, Path };
  Kind kind = Kind::Default;     // Default: the project's logs/<program>_<NN>.<out|err>.log
  std::string path;              // Kind::Path: absolute; NN-suffixed when numprocs > 1
  std::uint64_t max_bytes = 50ull * 1024 * 1024;  // supervisord's 50MB; 0 = never rotate
  int backups = 10;
  // The path names %(process_num)...: each instance's differs already, no _NN is added.
  bool per_instance = false;
  bool operator==(const OutputTarget&) const = default;
};

// One `programs:` entry of SPEC §9, validated and resolved (paths absolute, user looked up).
// `command`, `env` values, the stdout/stderr paths and `workingdir` may hold supervisord's
// %(...)s expansions, applied per instance (expand_instance in supervisor_config.hpp): the
// supervisor's instances hold the expanded copy, the config the text as written.
struct ProgramConfig {
  std::string name;
  std::string here;  // the config file's directory: %(here)s, and what relative paths are from
  std::string command;
  int numprocs = 1;
  bool autostart = true;
  RestartRules rules;
  OutputTarget stdout_log, stderr_log;
  std::map<std::string, std::string> env;
  std::string workingdir;               // absolute; empty = the supervisor's own
  std::optional<mode_t> umask;          // nullopt = inherited
  std::optional<std::string> isolation; // tier name as written ("auto", "namespaces", ...)
  isolation::Tier tier = isolation::Tier::Env;
  std::optional<std::string> profile;   // name or path as written
  isolation::Profile resolved_profile;  // loaded when `profile` is set
  std::optional<std::string> user;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // supervisord.conf's own notions (the YAML format leaves them at these defaults):
  std::string process_name;  // the instances' names over XML-RPC (%(process_num)02d...); "": taskmaster's
  int numprocs_start = 0;    // %(process_num)d of the first instance
  int priority = 999;        // start order, lowest first; stopped in reverse on shutdown
  bool redirect_stderr = false;  // stderr goes to the stdout log (stderr_log unused)
  std::string group;         // its [group:x], or "" (a group of its own)
};

// A supervisord [group:x]: programs controlled together as GROUP:NAME.
struct ProgramGroup {
  std::string name;
  std::vector<std::string> programs;
  int priority = 999;
};

// Where supervisord's XML-RPC interface is served ([unix_http_server], [inet_http_server]).
struct RpcSettings {
  std::optional<std::string> socket;  // absolute; nullopt = state/supervisor.sock
  std::optional<mode_t> socket_mode;  // chmod=; nullopt = 0600
  struct Owner {
    uid_t uid = 0;
    gid_t gid = 0;
  };
  std::optional<Owner> socket_owner;  // chown=
  std::optional<std::string> username, password;  // Basic auth asked on the socket too
  struct Inet {
    std::string host;
    int port = 0;
    std::string username, password;  // required
  };
  std::optional<Inet> inet;
};

// True when an instance started under `a` would run exactly as under `b`; numprocs is not
// compared (raising or lowering it leaves existing instances alone).
bool same_program(const ProgramConfig& a, const ProgramConfig& b);

struct SupervisorConfig {
  std::string source;                  // the config file, as given
  std::string project;                 // the file's stem
  std::optional<std::string> logfile;  // absolute; nullopt = the project's logs/events.log
  std::optional<std::string> socket;   // absolute; nullopt = state/control.sock
  std::vector<ProgramConfig> programs; // in file order (supervisord.conf: by priority)
  std::vector<ProgramGroup> groups;    // supervisord.conf's [group:x]
  RpcSettings rpc;
  std::string format = "yaml";         // "yaml" | "supervisord"
  const ProgramConfig* find(const std::string& name) const;
};

// An instance's identity: program name and index (0-based).
struct InstanceKey {
  std::string program;
  int index = 0;
  auto operator<=>(const InstanceKey&) const = default;
};
// "web" when the program has one instance, else "web:00", "web:01"...
std::string instance_name(const std::string& program, int index, int numprocs);
// The name used for files and state: "web_00" (a valid run-id, no ':').
std::string instance_file_stem(const InstanceKey& key);

// What a reload does, instance by instance (SPEC §9). Pure: computed from two configs.
struct ReloadPlan {
  std::vector<std::string> added_programs, changed_programs, removed_programs;
  std::vector<InstanceKey> start;     // new instances (added programs, numprocs raised)
  std::vector<InstanceKey> restart;   // instances of changed programs that stay
  std::vector<InstanceKey> stop;      // removed programs, numprocs lowered
  std::vector<InstanceKey> keep;      // untouched
  bool empty() const { return start.empty() && restart.empty() && stop.empty(); }
  std::string summary() const;        // "added: a; changed: b; removed: c" or "no changes"
};
ReloadPlan plan_reload(const SupervisorConfig& before, const SupervisorConfig& after);

// One line of `status`, as data.
struct InstanceStatus {
  std::string name;      // display name
  std::string program;
  int index = 0;
  ProcState state = ProcState::Stopped;
  pid_t pid = 0;
  Duration uptime{};
  std::optional<ExitInfo> last_exit;
  std::string reason;    // BACKOFF/FATAL reason
  int restarts = 0;
  bool started = false;  // ever started
};
// "pid 1234, uptime 0:01:05", "exit code 1", the reason, ... (SPEC §9).
std::string status_detail(const InstanceStatus& s);
// Aligned "NAME  STATE  detail" lines, one per instance, each ending in '\n'.
std::string format_status(const std::vector<InstanceStatus>& rows);
nlohmann::json status_json(const std::vector<InstanceStatus>& rows);

// What the supervisor needs from its surroundings (the project tree, the event log).
struct SupervisorContext {
  std::string project;
  std::string home;          // $BATMAN_HOME, absolute
  std::string project_dir;   // $BATMAN_HOME/<project>
  std::string batman_home;   // $BATMAN_HOME, absolute
  std::string logs_dir;      // absolute
  std::string tmp_dir;       // absolute
  int tmp_fd = -1;           // the same, open (not owned): instances' TMPDIRs are removed in it
  StateWriter* state_writer = nullptr;  // writes state/<instance>.json off the loop; null: none
  std::shared_ptr<spdlog::logger> events;
  std::vector<std::string> base_env;  // the supervisor's own environment, "K=V"
  std::string default_cwd;            // where programs run without `workingdir`
};

class Supervisor final : public JobSet::Owner {
 public:
  // One result line per instance ("web:00: started", "web:01: ERROR (spawn error)").
  using Done = std::function<void(std::vector<std::string> lines)>;

  Supervisor(EventLoop& loop, SupervisorContext context, SupervisorConfig config);
  ~Supervisor() override;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Start every instance of every autostart program.
  void start_autostart();

  // NAME (every instance), NAME:NN, or "all" → instance keys; unknown names are an error.
  Result<std::vector<InstanceKey>> select(const std::vector<std::string>& names) const;
  void start(const std::vector<InstanceKey>& keys, Done done);
  void stop(const std::vector<InstanceKey>& keys, Done done);
  void restart(const std::vector<InstanceKey>& keys, Done done);

  std::vector<InstanceStatus> status(const std::vector<InstanceKey>& keys) const;
  std::vector<InstanceStatus> status() const;

  // Apply a new, already validated config with the per-instance diff.
  ReloadPlan reload(SupervisorConfig next);
  // Stop every instance with its stop sequence; `done` runs once all have settled.
  void shutdown(std::function<void()> done);

  // Reap processes reparented to us (we are the programs' subreaper) that are no
  // instance's own process: call on SIGCHLD, or they stay zombies.
  void reap_orphans();

  const SupervisorConfig& config() const { return config_; }
  // Every state change of an instance, after the supervisor's own bookkeeping (the XML-RPC
  // interface's start/stop times and waiting calls). It must not call back into the
  // supervisor: it runs inside a Job's transition (defer work to the loop).
  using Observer = std::function<void(const InstanceKey&, ProcState from, ProcState to)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }
  // Send `sig` to an instance's process tree (supervisorctl signal); an error when it has none.
  Result<void> signal(const InstanceKey& key, int sig);
  // Program names and instance names (for completion and `pid`).
  std::vector<std::string> names() const;
  // The file an instance's stream is written to (stream: "stdout"|"stderr"); nullopt when
  // discarded.
  std::optional<std::string> log_path(const InstanceKey& key, const std::string& stream) const;
  // Follow an instance's stream: `on_data` gets every captured byte until unsubscribed.
  // A log the program writes itself (maxbytes 0) is read as it grows, from offset `from`
  // (where the caller's read of its tail ended; nullopt: its end now).
  using SubscriptionId = std::uint64_t;
  Result<SubscriptionId> subscribe(const InstanceKey& key, const std::string& stream,
                                   std::function<void(std::string_view)> on_data,
                                   std::optional<std::uint64_t> from = std::nullopt);
  void unsubscribe(SubscriptionId id);

  // JobSet::Owner
  void on_transition(Job& job, ProcState from, ProcState to, const std::string& why) override;
  void on_spawned(Job& job, pid_t pid) override;
  void on_settled(Job&) override {}  // commands look at every change: after_changes()
  void after_changes() override { check_operations(); }

 private:
  struct Instance;
  // A start/stop/restart command waiting for its instances to get where they were sent.
  struct Operation {
    enum class Kind { Start, Stop, Restart };
    struct Item {
      InstanceKey key;
      std::string name;
      bool stopping_phase = false;  // restart: waiting for the stop to finish
      std::uint64_t running_mark = 0, fatal_mark = 0, stopped_mark = 0;
      std::optional<std::string> line;
    };
    Kind kind = Kind::Start;
    std::vector<Item> items;
    Done done;
  };
  class TeeSink;

  Instance* find(const InstanceKey& key) const;
  Instance* find(const Job& job) const;
  std::unique_ptr<Instance> make_instance(const ProgramConfig& program, int index);
  Result<void> build_job(Instance& instance);
  void drop_job(Instance& instance);
  void remove_tmp(const Instance& instance);
  void start_instance(Instance& instance);
  void begin(Operation::Kind kind, const std::vector<InstanceKey>& keys, Done done);
  void start_for(Instance& instance, Operation::Item& item);
  void write_state(Instance& instance);
  void settle(Instance& instance);
  void check_operations();
  void stop_tiers(std::shared_ptr<std::vector<std::vector<InstanceKey>>> tiers, std::size_t at,
                  std::function<void()> done);
  void log_event(const std::string& line, bool warning = false);
  static std::pair<std::vector<Sink*>, std::vector<Sink*>> sinks_of(Instance& instance);
  // Followers of a direct log: an inotify watch on it, read from the offset they start at.
  void start_follow(Instance& instance, bool err, std::optional<std::uint64_t> from);
  void stop_follow(TeeSink& tee);
  void catch_up(const InstanceKey& key, bool err);

  EventLoop& loop_;
  SupervisorContext context_;
  SupervisorConfig config_;
  std::map<InstanceKey, std::unique_ptr<Instance>> instances_;
  std::unordered_map<const Job*, Instance*> by_job_;  // the instance of each live Job
  // Every instance's Job; declared after the instances, whose log sinks the jobs write into.
  JobSet jobs_;
  std::vector<std::unique_ptr<Operation>> operations_;
  SubscriptionId next_subscription_ = 1;
  std::map<SubscriptionId, std::pair<InstanceKey, std::string>> subscriptions_;
  Observer observer_;
};

}  // namespace batman::runner
