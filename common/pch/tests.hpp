// Precompiled header (meson cpp_pch) of tests/unit: the front ends' one and GoogleTest.
#ifndef BATMAN_PCH_TESTS_HPP  // include guard: #pragma once warns in a precompiled main file
#define BATMAN_PCH_TESTS_HPP
#include "common/pch/app.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#endif  // BATMAN_PCH_TESTS_HPP
