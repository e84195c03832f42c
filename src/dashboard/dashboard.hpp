// `batman dashboard [--port N] [--bind ADDR] [--open] [--url] [--token] [--detach] [--stop]`:
// one server per $BATMAN_HOME, found by the others through $BATMAN_HOME/dashboard.json (0600)
// and held by a lock on $BATMAN_HOME/dashboard.lock; and what `--monitor` on a run uses.
#pragma once
#include <string>
#include <vector>

#include "common/error.hpp"

namespace batman::dashboard {

int command_dashboard(const std::vector<std::string>& args);

// --monitor's side (the dashboard started or found, a run's page): src/cli/monitor.hpp.

}  // namespace batman::dashboard
