// batman's two executables (src/meson.build, README "Layout"): `batman`, which runs jobs and
// which every name of SPEC §2 links to, and `batman-services` (every other command), which
// `batman` execs: in <prefix>/<libexecdir>/batman/ of an install, beside `batman` in a build
// tree. What an install keeps beside `batman` (../share/batman/profiles,
// ../libexec/batman/batman-init) is found from `batman`'s path, whichever of the two runs.
#pragma once
#include <string>

namespace batman {

// This process's executable (/proc/self/exe), "" if it cannot be read.
std::string self_executable();
// The path of `batman`: this executable, or, in batman-services, the `batman` of the same
// install (<prefix>/<bindir>/batman) or build tree (beside it); this executable when there
// is none.
std::string launcher_executable();

}  // namespace batman
