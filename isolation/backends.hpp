// The constructors and probes of each tier's Backend (one file each), for tiers.cpp.
#pragma once
#include <memory>

#include "isolation/backend.hpp"

namespace batman::isolation {

std::unique_ptr<Backend> make_env_backend();         // env_backend.cpp
std::unique_ptr<Backend> make_namespaces_backend();  // namespaces.cpp
Availability probe_namespaces();                     // a real clone into new namespaces

// A profile path with $CWD, $PROJECT_DIR, $TMPDIR and $HOME replaced (mounts.cpp).
std::string expand_profile_path(const std::string& path, const LaunchRequest& request);

}  // namespace batman::isolation
