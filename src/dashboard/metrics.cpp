// The Prometheus text format 0.0.4 of the home (see metrics.hpp).
#include "src/dashboard/metrics.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <vector>

namespace batman::dashboard {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

namespace {

// The states of SPEC §8, each a series of batman_program_state.
constexpr std::array<std::string_view, 8> kProgramStates = {"STOPPED", "STARTING", "RUNNING", "BACKOFF",
                                                            "STOPPING", "EXITED",   "FATAL",   "UNKNOWN"};
// Job durations, from a quick test to a long build (seconds).
constexpr std::array<double, 12> kDurationBuckets = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400};

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
              double value) {
    out_ += name;
    if (labels.size()) {
      out_ += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        out_ += escape_label_value(v);
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += number(value);
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// A program's instances as the page shows them: the live supervisor's rows, else the state
// files' statuses in the supervisor's words.
struct InstanceInfo {
  std::string name, state;
  int restarts = 0;
};
std::vector<InstanceInfo> instances_of(const Project& p) {
  std::vector<InstanceInfo> out;
  if (p.supervisor_rows) {
    for (const auto& r : *p.supervisor_rows) out.push_back({r.name, r.state, r.restarts});
    return out;
  }
  for (const auto& [stem, s] : p.runs) {
    if (s.kind != "program") continue;
    // A record left by a supervisor that is gone: its instance is not running now.
    std::string state = s.status == "succeeded" || s.status == "failed" ? "EXITED"
                        : s.status == "killed"                          ? "STOPPED"
                        : s.live_status()                               ? "RUNNING"
                                                                        : "UNKNOWN";
    out.push_back({stem, state, s.restarts});
  }
  return out;
}

}  // namespace

std::string metrics_text(const std::map<std::string, Project>& projects, WallTime now, std::string_view version,
                         std::size_t stream_clients) {
  Writer w;
  w.family("batman_build_info", "gauge", "The running batman's version (always 1).");
  w.sample("batman_build_info", {{"version", version}}, 1);

  w.family("batman_runs", "gauge", "Runs (batman-parallel, -isolated, -multi, and batches) on disk, by status.");
  for (const auto& [name, p] : projects) {
    std::map<std::string, long long> counts;
    for (const auto& [stem, s] : p.runs) {
      const Category c = category_of(s);
      if (c == Category::Run || c == Category::Batch) ++counts[s.status];
    }
    for (const auto& [status, n] : counts) w.sample("batman_runs", {{"project", name}, {"status", status}}, double(n));
  }

  w.family("batman_batch_tasks", "gauge", "Batch tasks on disk, by state.");
  for (const auto& [name, p] : projects) {
    std::map<std::string, long long> counts;
    for (const auto& [stem, s] : p.runs)
      if (category_of(s) == Category::Task) ++counts[s.status];
    for (const auto& [state, n] : counts)
      w.sample("batman_batch_tasks", {{"project", name}, {"state", state}}, double(n));
  }

  w.family("batman_program_state", "gauge",
           "Supervised program instances: 1 for the state each is in, 0 for the others.");
  std::vector<std::pair<std::string, std::vector<InstanceInfo>>> all_instances;
  for (const auto& [name, p] : projects) all_instances.emplace_back(name, instances_of(p));
  for (const auto& [project, instances] : all_instances)
    for (const auto& i : instances)
      for (auto state : kProgramStates)
        w.sample("batman_program_state", {{"project", project}, {"program", i.name}, {"state", state}},
                 i.state == state ? 1 : 0);

  w.family("batman_program_restarts_total", "counter", "Restarts of each supervised program instance.");
  for (const auto& [project, instances] : all_instances)
    for (const auto& i : instances)
      w.sample("batman_program_restarts_total", {{"project", project}, {"program", i.name}}, i.restarts);

  w.family("batman_job_duration_seconds", "histogram",
           "How long finished runs and batch tasks on disk ran, per project.");
  for (const auto& [name, p] : projects) {
    std::array<long long, kDurationBuckets.size()> buckets{};
    long long count = 0;
    double sum = 0;
    for (const auto& [stem, s] : p.runs) {
      const Category c = category_of(s);
      if (c == Category::Program || c == Category::Batch || s.live_status() || !s.ended_at) continue;
      auto d = duration_seconds(s, now);
      if (!d) continue;
      ++count;
      sum += *d;
      for (std::size_t i = 0; i < kDurationBuckets.size(); ++i)
        if (*d <= kDurationBuckets[i]) ++buckets[i];
    }
    if (count == 0) continue;
    for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
      const std::string le = number(kDurationBuckets[i]);
      w.sample("batman_job_duration_seconds_bucket", {{"project", name}, {"le", le}}, double(buckets[i]));
    }
    w.sample("batman_job_duration_seconds_bucket", {{"project", name}, {"le", "+Inf"}}, double(count));
    w.sample("batman_job_duration_seconds_sum", {{"project", name}}, sum);
    w.sample("batman_job_duration_seconds_count", {{"project", name}}, double(count));
  }

  w.family("batman_dashboard_clients", "gauge", "Browsers following the dashboard's event stream.");
  w.sample("batman_dashboard_clients", {}, double(stream_clients));
  return w.take();
}

}  // namespace batman::dashboard
