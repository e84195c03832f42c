// Part of common/pch/app.hpp: the standard headers most units include. A precompiled header
// is force-included (-include), so every unit still includes what it uses (-Db_pch=false
// builds without it).
#ifndef BATMAN_PCH_STD_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_STD_HPP
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <expected>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#endif  // BATMAN_PCH_STD_HPP
