// libFuzzer harness: a supervisord.conf (src/taskmaster/supervisord_config.cpp): the INI
// syntax, the [program:x] keys read through the YAML reader, groups, http servers. Any text
// gives a config or one error line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "src/taskmaster/supervisord_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  batman::cli::ConfigWarnings warnings;
  auto config = batman::cli::parse_supervisord_config(text, "fuzz.conf", "/nonexistent/batman-fuzz", &warnings);
  if (!config && config.error().message.empty()) std::abort();
  (void)batman::cli::looks_like_supervisord(text);
  (void)batman::cli::parse_environment_pairs(text);
  return 0;
}
