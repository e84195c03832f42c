// --monitor on a run (batman-parallel, batman-isolated, batman-multi): the home's dashboard,
// started by `batman dashboard --detach` when none runs, and the run's page on it. Kept out of
// the dashboard's library so that the launch path does not link the server (src/meson.build).
#pragma once
#include <string>

#include "common/error.hpp"

namespace batman::dashboard {

// The URL of this home's dashboard ("http://127.0.0.1:PORT/"), started in the background
// on `port` (0: a free one) when none runs; a running one is reused whatever its port.
Result<std::string> ensure_dashboard(int port);

// The page of one run: the dashboard's URL + "#/run/PROJECT/RUN-ID".
std::string run_page_url(const std::string& base, const std::string& project, const std::string& run_id);

}  // namespace batman::dashboard
