"""`batman batch -` as a stream (issue 17): a task starts as soon as its line is read, stdin is
read only while the queue has room, memory stays flat as lines go by, and an interruption
or a bad line mid-stream ends the run cleanly."""
import os
import signal
import subprocess
import threading
import time

from harness import BatmanTestCase, wait_for


class BatchStreamTest(BatmanTestCase):
    def setUp(self):
        super().setUp()
        self.marks = os.path.join(self.work, "marks")
        os.makedirs(self.marks)

    def mark(self, name):
        return os.path.join(self.marks, name)

    def stream(self, *args):
        return self.spawn("batch", "-", "--isolation", "env", *args, stdin=subprocess.PIPE)

    def test_the_first_task_starts_before_stdin_is_closed(self):
        proc = self.stream("-j", "1")
        proc.stdin.write(f"touch {self.mark('one')}\n")
        proc.stdin.flush()
        wait_for(lambda: os.path.exists(self.mark("one")), timeout=10, what="the first line's task, stdin still open")
        # Its state file says it succeeded, while batman still waits for more lines.
        wait_for(lambda: any(s["run_id"].endswith(".1") and s["status"] == "succeeded" for s in self.states("batch")),
                 timeout=10, what="task 1's final state")
        self.assertIsNone(proc.poll())
        proc.stdin.write(f"touch {self.mark('two')}\n")
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=20), 0)
        self.assertTrue(os.path.exists(self.mark("two")))
        self.assertIn("2 tasks: 2 succeeded, 0 failed, 0 skipped", proc.stderr.read())

    def test_stdin_is_read_only_while_the_queue_has_room_and_sigterm_leaves_the_rest_unread(self):
        # The first task blocks; 200,000 lines of 100 bytes (20 MB) wait behind it. batman takes
        # at most its queue (100 lines) and one 64 KiB read beyond what the pipe holds.
        proc = self.stream("-j", "1")
        line = f"touch {self.mark('blocker')}; sleep 300\n"
        filler = "true " + "#" * 94 + "\n"
        written = [0]

        def writer():
            try:
                proc.stdin.write(line)
                for _ in range(200000):
                    proc.stdin.write(filler)
                    written[0] += len(filler)
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        wait_for(lambda: os.path.exists(self.mark("blocker")), timeout=10, what="the first task")
        time.sleep(1.5)
        self.assertLess(written[0], 1 << 20, "batman read far more of stdin than its queue takes")
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=20), 143)
        err = proc.stderr.read()
        # The queued lines are skipped; the lines never read are not tasks at all.
        summary = [l for l in err.splitlines() if " tasks: " in l][-1]
        total = int(summary.split()[0])
        self.assertLess(total, 2000, summary)
        self.assertIn(" 1 interrupted", summary)
        self.assertIn("(interrupted)", summary)
        thread.join(timeout=5)

    def test_a_line_too_long_mid_stream_ends_the_run_125_after_the_lines_before_it(self):
        proc = self.stream("-j", "1")
        proc.stdin.write(f"touch {self.mark('first')}\n")
        proc.stdin.flush()
        wait_for(lambda: os.path.exists(self.mark("first")), timeout=10, what="the first task")
        proc.stdin.write("echo " + "x" * 200000 + "\n" + f"touch {self.mark('after')}\n")
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=20), 125)
        err = proc.stderr.read()
        self.assertIn("batman: <stdin>:2: a line longer than 131072 bytes (the kernel's limit for one command): "
                      "the commands before it run, none after it\n", err)
        self.assertIn("1 task: 1 succeeded", err)
        self.assertFalse(os.path.exists(self.mark("after")))

    def test_memory_stays_flat_as_thousands_of_lines_go_by(self):
        # 4,000 lines of `true` (the 50,000-line figure, 7 MB, is scripts/bench/batch-stream's:
        # it takes minutes). The peak after the first 500 tasks and at the end are the same
        # within 4 MB: nothing is kept per line that went by.
        n = 4000
        proc = self.stream("-q", "-j", "4")

        def writer():
            try:
                for _ in range(n // 500):
                    proc.stdin.write("true\n" * 500)
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        status = f"/proc/{proc.pid}/status"
        high, early = 0, 0
        while proc.poll() is None:
            try:
                with open(status) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            high = max(high, int(line.split()[1]))
            except OSError:
                break
            state_dir = os.path.join(self.home, "batch", "state")
            if not early and os.path.isdir(state_dir) and len(os.listdir(state_dir)) > 500:
                early = high
            time.sleep(0.2)
        self.assertEqual(proc.wait(timeout=600), 0, proc.stderr.read())
        thread.join(timeout=5)
        self.assertGreater(early, 0)
        self.assertLess(high, 64 * 1024, f"peak RSS {high} KiB over {n} lines")
        self.assertLess(high - early, 4 * 1024, f"peak RSS grew from {early} to {high} KiB over {n} lines")
