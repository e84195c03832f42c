// PID 1 of a namespaces-tier job's pid namespace (pid_init.cpp), run by the small
// `batman-init` program (init_main.cpp) that the sandbox's first process execs once it has
// started the job: PID 1 then holds none of batman's memory.
#pragma once
#include <sys/types.h>

namespace batman::isolation::ns {

// Reap every process, forward termination signals to all of them; when `job` exits, kill
// and reap the rest, write the job's raw wait status (an int) to `status_fd`, and exit. The
// parent acts on the status at once instead of waiting for the kernel to take the
// namespaces down behind PID 1. Every signal must be blocked on entry (it is across the
// execve of batman-init: the mask survives it, and so do signals already pending).
[[noreturn]] void run_init(pid_t job, int status_fd);

}  // namespace batman::isolation::ns
