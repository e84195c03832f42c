// `batman dashboard [--port N] [--bind ADDR] [--open] [--url] [--token] [--detach] [--stop]`:
// one server per $BATMAN_HOME, found by the others through $BATMAN_HOME/dashboard.json (0600)
// and held by a lock on $BATMAN_HOME/dashboard.lock; and what `--monitor` on a run uses.
#pragma once
#include <string>
#include <vector>

#include "common/error.hpp"

namespace batman::dashboard {

int command_dashboard(const std::vector<std::string>& args);

// The URL of this home's dashboard ("http://127.0.0.1:PORT/"), started in the background
// on `port` (0: a free one) when none runs; a running one is reused whatever its port.
Result<std::string> ensure_dashboard(int port);

// The page of one run: the dashboard's URL + "#/run/PROJECT/RUN-ID".
std::string run_page_url(const std::string& base, const std::string& project, const std::string& run_id);

}  // namespace batman::dashboard
