// libFuzzer harness: a batch file's YAML text (src/batch/batch_config.cpp, SPEC §10), and, when it
// is valid, its resolution into a scheduler plan (dependencies, batches, limits).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "src/batch/batch_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto file = batman::cli::parse_batch_file(text, "fuzz.yaml");
  if (!file) return 0;
  (void)batman::cli::resolve_batch(*file, {}, {}, {});
  if (!file->tasks.empty()) {
    // One task selected, as `batman batch FILE NAME` does.
    std::vector<std::string> one = {file->tasks.back().name};
    (void)batman::cli::resolve_batch(*file, one, {}, {});
  }
  return 0;
}
