// Precompiled header (meson cpp_pch) of the front ends' libraries (src/): the core one and
// CLI11, which every unit of src/ parses otherwise (several seconds each). See std.hpp.
#ifndef BATMAN_PCH_APP_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_APP_HPP
#include "common/pch/core.hpp"

#include <CLI/CLI.hpp>

#endif  // BATMAN_PCH_APP_HPP
