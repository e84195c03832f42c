// The `systemd` tier: `systemd-run` with a transient service whose properties carry the
// profile, where systemd is the init system.
#pragma once
#include <string>
#include <vector>

#include "isolation/backend.hpp"

namespace batman::isolation {

// The full argv: systemd-run, its options and properties, "--", then request.argv. `user`
// is a per-user manager (--user) instead of the system one. Pure, for unit tests.
std::vector<std::string> systemd_run_argv(const std::string& systemd_run, const LaunchRequest& request,
                                          bool user, std::vector<std::string>& unenforced);
// The unit name batman gives a run: "batman-<unit_name>.service".
std::string systemd_unit(const LaunchRequest& request);

// Why not, when systemd is not PID 1 (init is X) or its manager is unreachable.
Availability probe_systemd();
std::unique_ptr<Backend> make_systemd_backend();

}  // namespace batman::isolation
