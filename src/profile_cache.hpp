// Parsed profiles kept as JSON under $BATMAN_HOME/.cache/profiles. yaml-cpp takes about half
// a millisecond to read a shipped profile, which every batman-parallel/isolated run would
// otherwise pay; the cached JSON reads in a few microseconds.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "isolation/profile.hpp"

namespace batman::cli {

// isolation::load_profile through the cache in `batman_home`/.cache/profiles (created when
// missing, in a $BATMAN_HOME that exists already; otherwise no cache). An entry is
// used only when this batman version wrote it from the very same text at the very same path;
// anything else (missing, stale, unreadable, unwritable) parses the YAML as usual, and a
// profile with an error is never cached (its error is reported as load_profile reports it).
Result<isolation::Profile> load_profile_cached(std::string_view name_or_path, const std::string& batman_home);

// The JSON form of a profile and back (exposed for the tests).
std::string profile_to_json(const isolation::Profile& p);
Result<isolation::Profile> profile_from_json(const std::string& text);

}  // namespace batman::cli
