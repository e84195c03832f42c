// The network namespace: a new one has only lo, and it is down; "loopback" brings it up.
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "isolation/ns_plan.hpp"

namespace batman::isolation::ns {

int bring_loopback_up() {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ifreq request{};
  std::memcpy(request.ifr_name, "lo", 3);
  int rc = 0;
  if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
    rc = errno;
  } else {
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) rc = errno;
  }
  close(fd);
  return rc;
}

}  // namespace batman::isolation::ns
