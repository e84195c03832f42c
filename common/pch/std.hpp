// Precompiled header (meson cpp_pch) of the libraries whose units are small: the standard
// headers most units include. Parsed once per library, not once per unit. A precompiled
// header is force-included (-include), so every unit still includes what it uses
// (-Db_pch=false builds without them).
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
