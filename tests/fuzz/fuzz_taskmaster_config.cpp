// libFuzzer harness: a Taskmaster config's YAML text (src/taskmaster/supervisor_config.cpp, SPEC §9),
// and, when it is valid, the reload diff against the previous valid input.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "src/taskmaster/supervisor_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::optional<batman::runner::SupervisorConfig> previous;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = batman::cli::parse_supervisor_config(text, "fuzz.yaml", "/nonexistent/batman-fuzz");
  if (!config) return 0;
  if (previous) (void)batman::runner::plan_reload(*previous, *config).summary();
  (void)batman::runner::plan_reload(*config, *config);
  previous = std::move(*config);
  return 0;
}
