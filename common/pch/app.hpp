// Precompiled header (meson cpp_pch) of src/taskmaster/, whose every unit includes
// supervisor.hpp (nlohmann/json, spdlog) and most CLI11: parsed once, not once per unit.
// Parsing them was about a third of such a unit's compile time. See std.hpp.
#ifndef BATMAN_PCH_APP_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_APP_HPP
#include "common/pch/core.hpp"

#include <CLI/CLI.hpp>

#endif  // BATMAN_PCH_APP_HPP
