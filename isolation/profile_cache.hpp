// Parsed profiles kept under $BATMAN_HOME/.cache/profiles, as CBOR (nlohmann's binary JSON,
// read without lexing text), with the profile's compiled seccomp program. yaml-cpp and
// libseccomp take most of a millisecond for a shipped profile, which every
// batman-parallel/isolated run would otherwise pay.
#pragma once
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "isolation/profile.hpp"

namespace batman::isolation {

// load_profile through the cache in `batman_home`/.cache/profiles (created when
// missing, in a $BATMAN_HOME that exists already; otherwise no cache). An entry is
// used only when this batman version wrote it from the very same text at the very same path
// (and its seccomp program only when this very binary compiled it);
// anything else (missing, stale, unreadable, unwritable) parses the YAML as usual, and a
// profile with an error is never cached (its error is reported as load_profile reports it).
Result<isolation::Profile> load_profile_cached(std::string_view name_or_path, const std::string& batman_home);

// The JSON form of a profile and back (exposed for the tests).
std::string profile_to_json(const isolation::Profile& p);
Result<isolation::Profile> profile_from_json(const std::string& text);

}  // namespace batman::isolation
