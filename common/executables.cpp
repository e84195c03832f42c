// batman's two executables (common/executables.hpp).
#include "common/executables.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string_view>
#include <vector>

#include "batman_config.h"

namespace batman {

std::string self_executable() {
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  return n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string();
}

std::string launcher_executable() {
  static const std::string launcher = [] {
    std::string self = self_executable();
    // A batman-services replaced while it runs (an upgrade) reads as "PATH (deleted)".
    if (constexpr std::string_view gone = " (deleted)"; self.ends_with(gone)) self.resize(self.size() - gone.size());
    const auto slash = self.rfind('/');
    if (slash == std::string::npos || self.substr(slash + 1) != "batman-services") return self;
    const std::string dir = self.substr(0, slash + 1);
    std::vector<std::string> candidates{dir + "batman"};  // a build tree
    if (*BATMAN_BINDIR_FROM_LIBEXEC) candidates.insert(candidates.begin(), dir + BATMAN_BINDIR_FROM_LIBEXEC "/batman");
    for (const std::string& candidate : candidates) {
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
