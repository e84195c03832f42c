// The `firejail` tier: a profile translated into firejail options around `/bin/sh -c CMD`.
#pragma once
#include <string>
#include <vector>

#include "isolation/backend.hpp"

namespace batman::isolation {

// The full argv: firejail, its options, "--", then request.argv. What firejail cannot
// express is appended to `unenforced`. Pure: no probing, so it can be unit-tested.
std::vector<std::string> firejail_argv(const std::string& firejail, const LaunchRequest& request,
                                       std::vector<std::string>& unenforced);

// Installed, and allowed for this user (checked by running `firejail --noprofile true`)?
Availability probe_firejail();
std::unique_ptr<Backend> make_firejail_backend();

}  // namespace batman::isolation
