// Part of common/pch/app.hpp: the standard headers, nlohmann/json and spdlog.
#ifndef BATMAN_PCH_CORE_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_CORE_HPP
#include "common/pch/std.hpp"

#include <nlohmann/json.hpp>

#include "common/pch/fmt.hpp"

#endif  // BATMAN_PCH_CORE_HPP
