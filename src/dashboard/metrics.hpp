// GET /metrics: the home in Prometheus' text exposition format 0.0.4. Names are batman_*,
// in base units (seconds), counters end in _total; labels are project, status, program,
// state and version only: never a pid, run-id or task name (one series per run would grow
// without bound).
#pragma once
#include <map>
#include <string>
#include <string_view>

#include "src/dashboard/home_model.hpp"

namespace batman::dashboard {

// The value of a label, escaped as the format wants (\\, \", \n).
std::string escape_label_value(std::string_view value);

// The exposition's content type.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Every metric of the home: batman_runs{project,status}, batman_program_state{project,
// program,state} (one 0/1 series per state for each instance), batman_program_restarts_total
// {project,program}, batman_job_duration_seconds{project} (a histogram of the finished runs
// and tasks on disk), batman_batch_tasks{project,state}, batman_build_info{version}, and
// batman_dashboard_clients (live event streams).
std::string metrics_text(const std::map<std::string, Project>& projects, WallTime now, std::string_view version,
                         std::size_t stream_clients);

}  // namespace batman::dashboard
