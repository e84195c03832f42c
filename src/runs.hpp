// Reading runs back: every state file of a project (or of all), newest last, with `lost`
// applied. Shared by ps, logs, stop and clean.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "runner/state_store.hpp"

namespace batman::cli {

// All runs of `project` (nullopt: every project), sorted by started_at then run-id.
std::vector<runner::RunState> load_runs(const std::optional<std::string>& project);
// True when the run's batman is alive, or (lost) its job's first process still is.
bool run_is_live(const runner::RunState& s);

}  // namespace batman::cli
