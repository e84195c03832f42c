// The constructors of each tier's Backend (one file each), for make_backend in tiers.cpp.
#pragma once
#include <memory>

#include "isolation/backend.hpp"

namespace batman::isolation {

std::unique_ptr<Backend> make_env_backend();  // env_backend.cpp

}  // namespace batman::isolation
