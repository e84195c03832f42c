// libFuzzer harness: the small value parsers of common/ (durations, sizes, integers, signal
// names). The first byte picks the parser, the rest is the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/duration.hpp"
#include "common/signals.hpp"

using namespace batman;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      if (auto d = parse_duration(text)) {
        (void)format_duration(*d);
        (void)format_uptime(*d);
      }
      break;
    case 1:
      (void)parse_size(text);
      break;
    case 2:
      (void)parse_integer(text, "--jobs", 1, 1000000);
      break;
    case 3:
      if (auto sig = parse_signal(text)) {
        // A parsed signal's name reads back as the same signal.
        auto again = parse_signal(signal_name(*sig));
        if (!again || *again != *sig) std::abort();
      }
      break;
  }
  return 0;
}
