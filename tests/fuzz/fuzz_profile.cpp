// libFuzzer harness: an isolation profile's YAML text (isolation/profile.cpp, SPEC §7).
// Whatever the text, parse_profile returns a profile or an error; it never crashes, leaks
// or takes long.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "isolation/profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto profile = batman::isolation::parse_profile(text, "fuzz.yaml");
  if (profile) (void)batman::isolation::network_name(profile->network);
  return 0;
}
