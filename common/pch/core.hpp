// Precompiled header (meson cpp_pch) of runner/: the standard headers, nlohmann/json and
// spdlog. See common/pch/std.hpp.
#ifndef BATMAN_PCH_CORE_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_CORE_HPP
#include "common/pch/std.hpp"

#include <nlohmann/json.hpp>

#include "common/pch/fmt.hpp"

#endif  // BATMAN_PCH_CORE_HPP
