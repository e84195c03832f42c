// libFuzzer harness: a run's state file (runner/state_store.cpp, SPEC §5).
// - Read: a state that reads back is written out and read again: what batman writes, it can
//   read, unchanged.
// - Write: the input as the command, cwd and log of a run (a job's command line is whatever
//   bytes the user typed): to_json writes it, and it reads back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runner/state_store.hpp"

using batman::runner::from_json;
using batman::runner::to_json;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto state = from_json(text, "fuzz.json")) {
    std::string written = to_json(*state);
    auto again = from_json(written, "fuzz.json");
    if (!again || to_json(*again) != written) std::abort();
  }
  batman::runner::RunState run;
  run.command = text;
  run.cwd = text;
  run.worktree = text;
  if (!from_json(to_json(run), "fuzz.json")) std::abort();
  return 0;
}
