// --monitor: the home's dashboard and a run's page on it (src/cli/monitor.hpp).
#include "src/cli/monitor.hpp"

#include <unistd.h>

#include "common/executables.hpp"
#include "src/cli/subprocess.hpp"

namespace batman::dashboard {

std::string run_page_url(const std::string& base, const std::string& project, const std::string& run_id) {
  return base + "#/run/" + project + "/" + run_id;
}

Result<std::string> ensure_dashboard(int port) {
  std::string self = self_executable();
  if (self.empty()) self = "/proc/self/exe";
  auto ran = cli::run_capture({"batman", "dashboard", "--detach", "--port", std::to_string(port)}, self);
  if (!ran) return std::unexpected(ran.error().wrap("--monitor: start the dashboard"));
  const std::string& out = ran->out;
  // The URL is the line that is one; batman's own notes start with "batman: ".
  std::string url, notes;
  for (std::size_t at = 0; at < out.size();) {
    auto nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    std::string line = out.substr(at, nl - at);
    at = nl + 1;
    if (line.starts_with("http://")) url = line;
    else if (!line.empty()) notes += (notes.empty() ? "" : "; ") + (line.starts_with("batman: ") ? line.substr(8) : line);
  }
  if (ran->exit_code != 0 || url.empty())
    return fail("--monitor: " + (notes.empty() ? std::string("the dashboard did not start") : notes));
  if (auto login = url.find("login?code="); login != std::string::npos) url.resize(login);
  return url;
}

}  // namespace batman::dashboard
