"""`batman batch` as users of xargs and GNU parallel use it (issue 13): runs that keep their own
files, reports on stdout, Ctrl-C, xargs' defaults for `batch -`, why a task failed, what a task
prints, --resume after a kill -9, and named tasks that pull in what they need."""
import json
import os
import signal
import subprocess
import textwrap
import xml.etree.ElementTree as ET

from harness import BatmanTestCase, pid_alive, wait_for


class EverydayBatchTest(BatmanTestCase):
    def setUp(self):
        super().setUp()
        self.marks = os.path.join(self.work, "marks")
        os.makedirs(self.marks)

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def lines(self, lines, *args, env=None, check=None):
        return self.batman("batch", "-", "--isolation", "env", *args, input="\n".join(lines) + "\n",
                           env=env, check=check)

    def mark(self, name):
        """A shell snippet appending one line to marks/<name> (one per run of the task)."""
        return f"echo ran >> {self.marks}/{name}"

    def runs_of(self, name):
        path = os.path.join(self.marks, name)
        return len(open(path).read().splitlines()) if os.path.exists(path) else 0

    def batch_runs(self, project):
        """The batch runs' own state records (a task's run-id is <run-id>.<task>)."""
        return [s for s in self.states(project) if s["kind"] == "batch" and "." not in s["run_id"]]

    def tasks_of(self, report):
        return {t["name"]: t for b in report["batches"] for t in b["tasks"]}

    # --- 1. every batch run has its own run id and files ---------------------------------

    def test_two_stdin_batches_keep_their_own_states_and_logs_and_clean_removes_them(self):
        self.lines(["echo first"], check=0)
        self.lines(["echo second"], check=0)
        runs = self.batch_runs("batch")
        self.assertEqual(len(runs), 2, [s["run_id"] for s in self.states("batch")])
        first, second = runs[0]["run_id"], runs[1]["run_id"]
        self.assertNotEqual(first, second)
        self.assertEqual([r["status"] for r in runs], ["succeeded", "succeeded"])
        logs = os.path.join(self.home, "batch", "logs")
        self.assertEqual(open(os.path.join(logs, f"{first}.1.1.log")).read(), "first\n")
        self.assertEqual(open(os.path.join(logs, f"{second}.1.1.log")).read(), "second\n")
        tasks = {s["run_id"]: s for s in self.states("batch")}
        self.assertEqual(tasks[f"{first}.1"]["command"], "echo first")
        self.assertEqual(tasks[f"{first}.1"]["log"], f"logs/{first}.1.1.log")
        # ps, logs and stop's lookups go by these ids.
        listed = {r["run_id"] for r in self.ps_json("--project", "batch")}
        self.assertTrue({first, second, f"{first}.1", f"{second}.1"} <= listed, listed)
        self.assertEqual(self.batman("logs", "batch", f"{first}.1", check=0).stdout, "first\n")
        # A task named as the batch names it: its latest run's log.
        self.assertEqual(self.batman("logs", "batch", "1", check=0).stdout, "second\n")
        # The batch's own log: its messages and its summary.
        self.assertIn("1 task: 1 succeeded", self.batman("logs", "batch", second, check=0).stdout)
        # Two runs of one batch file keep theirs apart too.
        plan = self.write("ci.yaml", f"tasks:\n  t: {{cmd: 'echo $BATMAN_RUN_ID'}}\n")
        self.batman("batch", plan, "--isolation", "env", check=0)
        self.batman("batch", plan, "--isolation", "env", check=0)
        ci = self.batch_runs("ci")
        self.assertEqual(len(ci), 2)
        for r in ci:
            rid = r["run_id"] + ".t"
            self.assertEqual(open(os.path.join(self.home, "ci", "logs", rid + ".1.log")).read(), rid + "\n")
        # clean removes every file of those runs.
        self.batman("clean", "batch", check=0)
        self.assertEqual(os.listdir(os.path.join(self.home, "batch", "state")), [])
        self.assertEqual(sorted(os.listdir(logs)), ["events.log"])

    # --- 2. `-` is stdout for every report -----------------------------------------------

    def test_a_report_given_dash_goes_to_stdout_and_no_file_named_dash_is_made(self):
        p = self.lines(["echo out-of-task", "exit 3"], "--report", "-", check=1)
        report = json.loads(p.stdout)  # stdout holds the report only: task output went to stderr
        self.assertEqual(self.tasks_of(report)["2"]["status"], "failed")
        self.assertIn("out-of-task", p.stderr)
        p = self.lines(["true"], "--junit", "-", check=0)
        self.assertEqual(ET.fromstring(p.stdout).tag, "testsuites")
        p = self.lines(["true"], "--joblog", "-", check=0)
        self.assertTrue(p.stdout.startswith("Seq\tHost\tStarttime"), p.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.work, "-")))

    # --- 3. Ctrl-C and SIGTERM -----------------------------------------------------------

    def interrupt(self, sig, expected):
        pidfile = os.path.join(self.marks, f"child.{sig}")
        report = os.path.join(self.tmp, f"report.{sig}.json")
        proc = self.spawn("batch", "-", "--isolation", "env", "-j", "1", "--report", report,
                          stdin=subprocess.PIPE)
        proc.stdin.write(f"sleep 300 & echo $! > {pidfile}; wait\nsleep 300\n")
        proc.stdin.close()
        child = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(),
                             what="the first task to start"))
        os.kill(proc.pid, sig)
        self.assertEqual(proc.wait(timeout=20), expected)
        err = proc.stderr.read()
        self.assertNotIn("--halt", err)
        self.assertRegex(err, r"2 tasks: 0 succeeded, 0 failed, 1 skipped, 1 interrupted")
        tasks = self.tasks_of(json.load(open(report)))
        self.assertEqual(tasks["1"]["status"], "interrupted")
        self.assertIn(f"interrupted by SIG{signal.Signals(sig).name[3:]}", tasks["1"]["reason"])
        self.assertEqual(tasks["2"]["status"], "skipped")
        wait_for(lambda: not pid_alive(child), timeout=5, what=f"the task's child {child} to die")

    def test_ctrl_c_labels_tasks_interrupted_and_exits_130_and_sigterm_143(self):
        self.interrupt(signal.SIGINT, 130)
        self.interrupt(signal.SIGTERM, 143)
        self.assertEqual([r["status"] for r in self.batch_runs("batch")], ["killed", "killed"])

    def test_batman_stop_on_the_batch_run_id_stops_the_whole_batch(self):
        proc = self.spawn("batch", "-", "--isolation", "env", "-j", "2", stdin=subprocess.PIPE)
        proc.stdin.write("sleep 300\nsleep 300\n")
        proc.stdin.close()

        def running():
            live = [s for s in self.states("batch") if s["status"] == "running"]
            return len(live) == 3 and live
        live = wait_for(running, timeout=20, what="the batch and its two tasks to run")
        [run] = [s["run_id"] for s in live if "." not in s["run_id"]]
        self.batman("stop", "batch", run, check=0)
        self.assertEqual(proc.wait(timeout=20), 143)
        states = {s["run_id"]: s for s in self.states("batch")}
        self.assertEqual(states[run]["status"], "killed")
        self.assertEqual(states[run]["exit_code"], 143)
        self.assertEqual({states[f"{run}.{t}"]["status"] for t in (1, 2)}, {"killed"})

    # --- 4. xargs' defaults for `batch -`, SPEC's for a file -----------------------------

    def test_stdin_batches_have_no_retries_no_rate_limit_and_nproc_at_once(self):
        report = os.path.join(self.tmp, "r.json")
        self.lines(["exit 3"], "--report", report, check=1)
        self.assertEqual(len(self.tasks_of(json.load(open(report)))["1"]["attempts"]), 1, "no retries")
        # 30 starts: at a batch file's 10 a second they would span 2 s at least (the joblog
        # has batman's own start times).
        joblog = os.path.join(self.tmp, "joblog")
        self.lines(["true"] * 30, "--joblog", joblog, check=0)
        starts = sorted(float(l.split("\t")[2]) for l in open(joblog).read().splitlines()[1:])
        self.assertEqual(len(starts), 30)
        self.assertLess(starts[-1] - starts[0], 1.8, starts)
        # As many at once as there are CPUs (and no more), unless told otherwise.
        cpus = len(os.sched_getaffinity(0))
        spans = os.path.join(self.marks, "spans")
        body = f"echo start $(date +%s.%N) >> {spans}; sleep 1; echo end $(date +%s.%N) >> {spans}"
        self.lines([body] * (cpus + 2), check=0)
        events = sorted((float(v), 1 if k == "start" else -1)
                        for k, v in (l.split() for l in open(spans).read().splitlines()))
        most = now = 0
        for _, d in events:
            now += d
            most = max(most, now)
        self.assertEqual(most, cpus, events)
        # The flags and environment still apply: a retry and a timeout when asked for.
        p = self.lines(["sleep 5"], "--timeout", "300ms", "--report", report, env={"MAX_CONCURRENCY": "1"},
                       check=1)
        attempts = self.tasks_of(json.load(open(report)))["1"]["attempts"]
        self.assertTrue(attempts[0]["timed_out"], p.stderr)
        self.lines(["exit 3"], "--retries", "1", "--report", report, check=1)
        self.assertEqual(len(self.tasks_of(json.load(open(report)))["1"]["attempts"]), 2)

    # --- 5. why a task failed, and what tasks print --------------------------------------

    def test_the_summary_shows_a_failed_tasks_last_log_lines_and_its_path(self):
        plan = self.write("why.yaml", """\
            defaults: {retries: 0}
            tasks:
              ok: "echo fine"
              broken: "for i in $(seq 1 15); do echo line $i; done; exit 2"
            """)
        p = self.batman("batch", plan, "--isolation", "env", check=1)
        runs = self.batch_runs("why")
        log = os.path.join(self.home, "why", "logs", runs[-1]["run_id"] + ".broken.1.log")
        self.assertIn(f"task broken failed (exit 2): {log}\n", p.stderr)
        self.assertTrue(os.path.exists(log))
        for i in range(6, 16):
            self.assertIn(f"  | line {i}\n", p.stderr)
        self.assertNotIn("  | line 5\n", p.stderr)
        p = self.batman("batch", plan, "--isolation", "env", "--tail", "0", check=1)
        self.assertIn("task broken failed (exit 2): ", p.stderr)
        self.assertNotIn("  | line", p.stderr)
        p = self.batman("batch", plan, "--isolation", "env", "--tail", "2", check=1)
        self.assertIn("  | line 14\n  | line 15\n", p.stderr)
        self.assertNotIn("  | line 13\n", p.stderr)
        self.batman("batch", plan, "--tail", "-1", check=125)

    def test_output_is_grouped_per_task_by_default_prefixed_or_none_on_request(self):
        a = "echo a1; sleep 1; echo a2; echo a-err >&2"
        b = "sleep 0.5; echo b1; sleep 1; echo b2"
        p = self.lines([a, b], "-j", "2", check=0)
        # Each task's output as one block: never a1 b1 a2 b2.
        self.assertIn(p.stdout, ["a1\na2\nb1\nb2\n", "b1\nb2\na1\na2\n"])
        self.assertIn("a-err\n", p.stderr)
        p = self.lines([a, b], "-j", "2", "--output", "prefixed", check=0)
        self.assertEqual(p.stdout, "[1] a1\n[2] b1\n[1] a2\n[2] b2\n")
        self.assertIn("[1] a-err\n", p.stderr)
        p = self.lines([a, b], "-j", "2", "--output", "none", check=0)
        self.assertEqual(p.stdout, "")
        self.assertNotIn("a-err", p.stderr)
        self.lines(["true"], "--output", "sideways", check=125)

    def test_on_a_terminal_the_live_view_makes_way_for_each_task_block(self):
        import pty
        import re
        import select
        import time
        master, slave = pty.openpty()
        proc = subprocess.Popen(self.command(["batch", "-", "--isolation", "env", "-j", "2"]),
                                env=dict(self.env, TERM="xterm"), cwd=self.work, stdin=subprocess.PIPE, stdout=slave, stderr=slave, text=True,
                                start_new_session=True)
        self.children.append(proc)
        os.close(slave)
        proc.stdin.write("echo a1; sleep 1; echo a2\nsleep 0.5; echo b1; sleep 1; printf b2\n")
        proc.stdin.close()
        out = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal is gone
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        os.close(master)
        self.assertEqual(proc.wait(timeout=10), 0)
        text = out.decode(errors="replace")
        self.assertIn("running 2/2", text, "the live view was drawn")
        # Each task's block arrives whole, right after the view was taken down ("ESC[J").
        self.assertRegex(text, r"\x1b\[Ja1\r\na2\r\n")
        self.assertRegex(text, r"\x1b\[Jb1\r\nb2\r\n")  # the missing final newline added
        plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
        self.assertIn("2 tasks: 2 succeeded, 0 failed, 0 skipped", plain)

    def test_output_never_interleaves_mid_line(self):
        # One task writes its lines in pieces while others write whole lines meanwhile.
        pieces = "for i in 1 2 3 4 5; do printf 'piece-'; sleep 0.05; printf 'of-line-%s\\n' $i; done"
        chatty = "for i in $(seq 1 200); do echo chatty-line-$i; done"
        for mode in ("grouped", "prefixed"):
            p = self.lines([pieces, chatty, chatty], "-j", "3", "--output", mode, check=0)
            lines = p.stdout.splitlines()
            self.assertEqual(len(lines), 405, mode)
            for line in lines:
                self.assertRegex(line, r"^(\[\d\] )?(piece-of-line-\d|chatty-line-\d+)$", mode)

    # --- 6. --resume and --resume-failed -------------------------------------------------

    def test_resume_after_kill_9_runs_only_what_did_not_finish(self):
        go = os.path.join(self.marks, "go")
        pidfile = os.path.join(self.marks, "slow.pid")
        slow = (f"{self.mark('slow')}; if [ -e {go} ]; then echo done; else sleep 300 & echo $! > {pidfile}; "
                f"wait; fi")
        plan = self.write("nightly.yaml", f"""\
            defaults: {{retries: 0, rate_limit: 0}}
            tasks:
              fetch: "{self.mark('fetch')}"
              build: {{cmd: "{self.mark('build')}", needs: [fetch]}}
              slow: {{cmd: "{slow}", needs: [build]}}
              after: {{cmd: "{self.mark('after')}", needs: [slow]}}
            """)
        proc = self.spawn("batch", plan, "--isolation", "env")
        sleeper = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(),
                               timeout=20, what="the slow task to start"))

        def settled():
            states = {s["run_id"].split(".")[-1]: s["status"] for s in self.states("nightly") if "." in s["run_id"]}
            return states.get("fetch") == "succeeded" and states.get("build") == "succeeded"
        wait_for(settled, what="fetch and build to be recorded as succeeded")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        try:
            os.kill(sleeper, signal.SIGKILL)
        except ProcessLookupError:
            pass
        open(go, "w").close()
        report = os.path.join(self.tmp, "resume.json")
        p = self.batman("batch", plan, "--isolation", "env", "--resume", "--report", report, check=0)
        tasks = self.tasks_of(json.load(open(report)))
        self.assertEqual(tasks["fetch"]["status"], "done", p.stderr)
        self.assertRegex(tasks["fetch"]["reason"], r"^succeeded in run \d{8}T\d{6}-[0-9a-f]{6}$")
        self.assertEqual(tasks["build"]["status"], "done")
        self.assertEqual(tasks["slow"]["status"], "succeeded")
        self.assertEqual(tasks["after"]["status"], "succeeded")
        self.assertEqual([self.runs_of(n) for n in ("fetch", "build", "slow", "after")], [1, 1, 2, 1])
        self.assertRegex(p.stderr, r"4 tasks: 2 succeeded, 0 failed, 0 skipped, 2 done in an earlier run")
        self.assertIn("task fetch not run: succeeded in run", p.stderr)
        # Resuming a run that resumed: everything is done now.
        self.batman("batch", plan, "--isolation", "env", "--resume", check=0)
        self.assertEqual([self.runs_of(n) for n in ("fetch", "build", "slow", "after")], [1, 1, 2, 1])

    def test_resume_keeps_failures_resume_failed_reruns_them_and_a_changed_command_runs(self):
        fixed = os.path.join(self.marks, "fixed")
        flaky = f"{self.mark('flaky')}; test -e {fixed}"
        text = f"""\
            defaults: {{retries: 0}}
            tasks:
              flaky: "{flaky}"
              steady: "{self.mark('steady')}"
              later: {{cmd: "{self.mark('later')}", needs: [flaky]}}
            """
        plan = self.write("suite.yaml", text)
        self.batman("batch", plan, "--isolation", "env", check=1)
        open(fixed, "w").close()
        report = os.path.join(self.tmp, "r.json")
        p = self.batman("batch", plan, "--isolation", "env", "--resume", "--report", report, check=1)
        tasks = self.tasks_of(json.load(open(report)))
        self.assertEqual(tasks["flaky"]["status"], "skipped", p.stderr)
        self.assertIn("--resume-failed runs it again", tasks["flaky"]["reason"])
        self.assertEqual(tasks["later"]["reason"], "dependency failed: flaky")
        self.assertEqual([self.runs_of(n) for n in ("flaky", "steady", "later")], [1, 1, 0])
        self.batman("batch", plan, "--isolation", "env", "--resume-failed", check=0)
        self.assertEqual([self.runs_of(n) for n in ("flaky", "steady", "later")], [2, 1, 1])
        # A task whose command changed counts as not run.
        self.write("suite.yaml", text.replace(self.mark("steady"), self.mark("steady") + "; true"))
        self.batman("batch", plan, "--isolation", "env", "--resume", check=0)
        self.assertEqual([self.runs_of(n) for n in ("flaky", "steady", "later")], [2, 2, 1])
        self.lines(["true"], "--resume", check=125)

    # --- 7. named tasks pull in what they need -------------------------------------------

    def test_a_named_task_pulls_in_what_it_needs_and_no_deps_runs_only_it(self):
        plan = self.write("app.yaml", f"""\
            defaults: {{retries: 0}}
            tasks:
              build: "{self.mark('build')}"
              lint: "{self.mark('lint')}"
              unit: {{cmd: "{self.mark('unit')}", needs: [build]}}
              e2e: {{cmd: "{self.mark('e2e')}", needs: [unit]}}
            """)
        self.batman("batch", plan, "e2e", "--isolation", "env", check=0)
        self.assertEqual([self.runs_of(n) for n in ("build", "lint", "unit", "e2e")], [1, 0, 1, 1])
        report = os.path.join(self.tmp, "r.json")
        self.batman("batch", plan, "e2e", "--no-deps", "--isolation", "env", "--report", report, check=1)
        tasks = self.tasks_of(json.load(open(report)))
        self.assertEqual(list(tasks), ["e2e"])
        self.assertEqual(tasks["e2e"]["status"], "skipped")
        self.assertEqual(tasks["e2e"]["reason"], "dependency unit is not part of this run")
        self.assertEqual([self.runs_of(n) for n in ("build", "lint", "unit", "e2e")], [1, 0, 1, 1])
