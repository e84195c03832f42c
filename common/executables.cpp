// batman's two executables (common/executables.hpp).
#include "common/executables.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "batman_config.h"

namespace batman {

std::string self_executable() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  return n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string();
}

std::string launcher_executable() {
  static const std::string launcher = [] {
    const std::string self = self_executable();
    const auto slash = self.rfind('/');
    if (slash == std::string::npos || self.substr(slash + 1) != "batman-services") return self;
    const std::string dir = self.substr(0, slash + 1);
    for (const std::string& candidate : {dir + BATMAN_BINDIR_FROM_LIBEXEC "/batman", dir + "batman"}) {
      std::error_code ec;
      const auto path = std::filesystem::weakly_canonical(candidate, ec);
      struct stat st{};
      if (!ec && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return path.string();
    }
    return self;
  }();
  return launcher;
}

}  // namespace batman
