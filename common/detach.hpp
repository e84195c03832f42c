// Going into the background with an answer, for `batman-parallel --detach` and
// `taskmaster --daemon`: fork, the child leaves the caller's session with /dev/null for stdio,
// and the caller waits on a pipe until the child says it has started or why it has not, so a
// background start that fails fails loudly, with the reason, and a non-zero exit.
//
// The reply on the pipe: one byte, 0 = started or 1 = failed, then a message (may be empty),
// then EOF (the child closes its end; nothing else holds it: the pipe is close-on-exec).
#pragma once
#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace batman {

struct Detached {
  bool in_child = false;  // true in the background process
  // In the caller: the read end, for read_detach_reply. In the child: the write end, for
  // reply_started / reply_failed.
  UniqueFd reply;
};

// Fork. In the child: setsid(), then (with `second_fork`) fork again and go on in the
// grandchild, which as no session leader can never get a controlling terminal back; stdin,
// stdout and stderr on /dev/null. Pending stdio buffers are flushed first.
Result<Detached> detach(bool second_fork);

// The child's answer. Each writes once and closes `fd`; a negative fd is ignored.
void reply_started(int fd, std::string_view message = {});
void reply_failed(int fd, std::string_view message);

struct DetachReply {
  bool started = false;
  std::string message;  // empty when the child exited without a word
};
// Read the child's answer to EOF. No byte at all (the child died) is a failure.
DetachReply read_detach_reply(int fd);

}  // namespace batman
