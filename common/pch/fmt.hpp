// spdlog through fmt, for the precompiled headers: fmt's formatting core is instantiated once,
// in common/fmt_spdlog.cpp (static build) or libfmt.so (shared), not in every unit that logs.
#ifndef BATMAN_PCH_FMT_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_FMT_HPP
#include <spdlog/logger.h>

extern template FMT_API void fmt::detail::vformat_to(
    fmt::detail::buffer<char>&, fmt::string_view, fmt::basic_format_args<FMT_BUFFER_CONTEXT(char)>,
    fmt::detail::locale_ref);

#endif  // BATMAN_PCH_FMT_HPP
