"""`batman batch`: limits, rate, backoff, timeouts, needs, batches, precedence, exit codes and
reports, checked from timestamps the tasks record themselves."""
import json
import os
import shutil
import signal
import subprocess
import textwrap
import xml.etree.ElementTree as ET

from harness import BatmanTestCase, pid_alive, wait_for

# A task that records "start T" and "end T" (epoch seconds) in $DIR/<name>.
RECORD = 'echo start $(date +%s.%N) >> {dir}/{name}; {body}; rc=$?; echo end $(date +%s.%N) >> {dir}/{name}; exit $rc'


class BatchTest(BatmanTestCase):
    def setUp(self):
        super().setUp()
        self.marks = os.path.join(self.work, "marks")
        os.makedirs(self.marks)

    def task(self, name, body="true"):
        return RECORD.format(dir=self.marks, name=name, body=body)

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def spans(self, name):
        """[(start, end)] per attempt recorded by task `name`."""
        path = os.path.join(self.marks, name)
        if not os.path.exists(path):
            return []
        starts, ends = [], []
        with open(path) as f:
            for line in f:
                kind, value = line.split()
                (starts if kind == "start" else ends).append(float(value))
        return list(zip(starts, ends))

    def all_spans(self, names):
        return [s for n in names for s in self.spans(n)]

    @staticmethod
    def max_overlap(spans):
        events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        most = now = 0
        for _, delta in events:
            now += delta
            most = max(most, now)
        return most

    def run_lines(self, lines, *args, env=None, check=None):
        return self.batman("batch", "-", "--isolation", "env", *args, input="\n".join(lines) + "\n",
                           env=env, check=check)

    def report(self, path):
        with open(path) as f:
            return json.load(f)

    def tasks_of(self, report):
        return {t["name"]: t for b in report["batches"] for t in b["tasks"]}

    # --- limits ---------------------------------------------------------------------------

    def test_a_task_never_sees_what_an_earlier_task_left_in_its_tmpdir(self):
        # Task `leaves` leaves a process behind (in a session of its own) that writes into its
        # TMPDIR by its working directory after the task has ended; `looks`, two tasks later
        # (after the first one's directory was dealt with), must find nothing in its own.
        out = os.path.join(self.work, "seen")
        leave = ('cd $TMPDIR && touch left && setsid sh -c \\"sleep 1; touch late\\" </dev/null >/dev/null 2>&1 & '
                 'sleep 0.3')
        plan = self.write("leak.yaml", f"""\
            defaults: {{max_concurrency: 1, rate_limit: 0, retries: 0}}
            tasks:
              leaves: {{cmd: "{leave}"}}
              between: {{cmd: "sleep 0.2", needs: [leaves]}}
              looks: {{cmd: "sleep 1.2; ls -A $TMPDIR > {out}", needs: [between]}}
            """)
        p = self.batman("batch", plan, "--isolation", "env")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            self.assertEqual(f.read(), "")
        # Short tasks that leave nothing behind reuse the directories: still empty every time.
        lines = [f'ls -A "$TMPDIR" >> {out}; touch "$TMPDIR/mine"' for _ in range(20)]
        p = self.run_lines(lines, "-j2", "--rate-limit", "0", "--retries", "0")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            self.assertEqual(f.read(), "")

    def test_never_more_tasks_at_once_than_the_limit(self):
        names = [str(i) for i in range(1, 10)]
        self.run_lines([self.task(n, "sleep 0.3") for n in names], "-j", "3", "--rate-limit", "0", check=0)
        spans = self.all_spans(names)
        self.assertEqual(len(spans), 9)
        most = self.max_overlap(spans)
        self.assertLessEqual(most, 3)
        self.assertGreaterEqual(most, 2, "tasks ran one at a time: the limit was not used")

    def test_never_more_starts_in_a_second_than_the_rate(self):
        names = [str(i) for i in range(1, 13)]
        joblog = os.path.join(self.tmp, "joblog")
        self.run_lines([self.task(n) for n in names], "-j", "12", "--rate-limit", "4", "--joblog", joblog, check=0)
        starts = sorted(s for s, _ in self.all_spans(names))
        self.assertEqual(len(starts), 12)
        # The tasks' own clocks lag batman's starts by their exec time: allow 150 ms of it.
        for t in starts:
            self.assertLessEqual(sum(1 for u in starts if t <= u < t + 0.85), 4, starts)
        self.assertGreaterEqual(starts[-1] - starts[0], 1.8, "12 starts at 4/s take at least 2 s")
        # batman's own start times, from the joblog, hold the rule to the millisecond.
        with open(joblog) as f:
            rows = [line.rstrip("\n").split("\t") for line in f][1:]
        logged = sorted(float(r[2]) for r in rows)
        for t in logged:
            self.assertLessEqual(sum(1 for u in logged if t <= u < t + 0.998), 4, logged)

    def test_retries_wait_the_backoff_between_attempts(self):
        plan = self.write("retry.yaml", f"""\
            defaults:
              retries: 3
              backoff: {{initial: 300ms, factor: 2, max: 10s, jitter: false}}
            tasks:
              flaky: {{cmd: "{self.task('flaky', '(exit 7)')}"}}
            """)
        proc = self.batman("batch", plan, "--isolation", "env", check=1)
        spans = self.spans("flaky")
        self.assertEqual(len(spans), 4, proc.stderr)
        for i, expected in enumerate([0.3, 0.6, 1.2]):
            gap = spans[i + 1][0] - spans[i][1]
            self.assertGreaterEqual(gap, expected - 0.02, f"retry {i + 1}: {gap:.3f}s")
            self.assertLess(gap, expected + 0.5, f"retry {i + 1}: {gap:.3f}s")
        self.assertIn("retry 1 of 3 in 300ms", proc.stderr)

    def test_a_timed_out_task_loses_its_whole_tree(self):
        pidfile = os.path.join(self.marks, "child.pid")
        report = os.path.join(self.tmp, "r.json")
        proc = self.run_lines([f"sleep 300 & echo $! > {pidfile}; sleep 300"], "--timeout", "500ms",
                              "--retries", "0", "--report", report, check=1)
        child = int(wait_for(lambda: open(pidfile).read().strip(), what="the child's pid"))
        wait_for(lambda: not pid_alive(child), timeout=5, what=f"the timed-out task's child {child} to die")
        task = self.tasks_of(self.report(report))["1"]
        self.assertEqual(task["status"], "failed")
        self.assertTrue(task["attempts"][0]["timed_out"], proc.stderr)
        self.assertLess(task["attempts"][0]["seconds"], 3)
        # A task's state is <run-id>.<task> (each batch run keeps its own files).
        [state] = [s for s in self.states("batch") if s["run_id"].endswith(".1")]
        self.assertEqual(state["status"], "timeout")

    def test_dependents_of_a_failed_task_are_skipped(self):
        report = os.path.join(self.tmp, "r.json")
        plan = self.write("deps.yaml", f"""\
            defaults: {{retries: 0}}
            tasks:
              build: {{cmd: "{self.task('build', 'exit 2')}"}}
              test: {{cmd: "{self.task('test')}", needs: [build]}}
              deploy: {{cmd: "{self.task('deploy')}", needs: [test]}}
              docs: {{cmd: "{self.task('docs')}"}}
            """)
        self.batman("batch", plan, "--isolation", "env", "--report", report, check=1)
        tasks = self.tasks_of(self.report(report))
        self.assertEqual(tasks["build"]["status"], "failed")
        self.assertEqual(tasks["test"]["status"], "skipped")
        self.assertEqual(tasks["test"]["reason"], "dependency failed: build")
        self.assertEqual(tasks["deploy"]["reason"], "dependency failed: test")
        self.assertEqual(tasks["docs"]["status"], "succeeded")
        self.assertEqual(self.spans("test"), [])
        self.assertEqual(self.spans("deploy"), [])

    def test_delay_between_batches_is_held(self):
        plan = self.write("weeks.yaml", f"""\
            tasks:
              a: {{cmd: "{self.task('a', 'sleep 0.2')}"}}
              b: {{cmd: "{self.task('b', 'sleep 0.1')}"}}
              c: {{cmd: "{self.task('c')}"}}
            batches:
              - {{name: "Week 1", tasks: [a, b]}}
              - {{name: "Week 2", tasks: [c]}}
            delays: {{between_batches: 1s}}
            """)
        self.batman("batch", plan, "--isolation", "env", check=0)
        first_done = max(e for _, e in self.all_spans(["a", "b"]))
        second_start = self.spans("c")[0][0]
        self.assertGreaterEqual(second_start - first_done, 0.95)
        self.assertLess(second_start - first_done, 3)

    def test_environment_overrides_the_file_and_flags_override_the_environment(self):
        names = ["a", "b", "c"]
        plan = self.write("env.yaml", "defaults: {max_concurrency: 1, rate_limit: 0, timeout: 10s, retries: 0}\ntasks:\n" +
                          "".join(f'  {n}: {{cmd: "{self.task(n, "sleep 0.4")}"}}\n' for n in names) +
                          '  slow: {cmd: "sleep 5", timeout: 20s}\n')
        report = os.path.join(self.tmp, "r.json")
        self.batman("batch", plan, "a", "b", "c", "slow", "--isolation", "env", "--report", report,
                    env={"MAX_CONCURRENCY": "4", "TASK_TIMEOUT": "700"}, check=1)
        self.assertGreaterEqual(self.max_overlap(self.all_spans(names)), 2, "MAX_CONCURRENCY was ignored")
        slow = self.tasks_of(self.report(report))["slow"]
        self.assertTrue(slow["attempts"][0]["timed_out"], "TASK_TIMEOUT (ms) beats the task's timeout")
        shutil.rmtree(self.marks)
        os.makedirs(self.marks)
        self.batman("batch", plan, "a", "b", "c", "--isolation", "env", "-j", "1",
                    env={"MAX_CONCURRENCY": "4"}, check=0)
        self.assertEqual(self.max_overlap(self.all_spans(names)), 1, "-j beats MAX_CONCURRENCY")

    # --- exit codes and errors ------------------------------------------------------------

    def test_exit_codes(self):
        self.run_lines(["true", "echo ok"], check=0)
        self.run_lines(["true", "exit 3"], "--retries", "0", check=1)
        bad = self.write("bad.yaml", """\
            tasks:
              a: {cmd: "true"}
              b:
                cmd: "true"
                timeout: soon
            """)
        proc = self.batman("batch", bad, check=125)
        self.assertEqual(proc.stderr.strip().splitlines()[-1],
                         f"batman: {bad}:5: key 'tasks.b.timeout': expected a duration such as 1500ms, 30s, 5m or 1h")
        typo = self.write("typo.yaml", "tasks:\n  a: {cmd: x, retires: 2}\n")
        proc = self.batman("batch", typo, check=125)
        self.assertIn(f"{typo}:2: key 'tasks.a.retires': unknown key", proc.stderr)
        proc = self.run_lines(["true"], env={"MAX_CONCURRENCY": "many"}, check=125)
        self.assertIn("MAX_CONCURRENCY='many'", proc.stderr)
        self.run_lines(["true"], "--halt", "sometimes", check=125)
        self.batman("batch", os.path.join(self.work, "missing.yaml"), check=125)
        self.batman("batch", bad, "--rate-limit", "fast", check=125)
        nowhere = self.write("nowhere.yaml", "tasks:\n  a: {cmd: 'true', cwd: /no/such/dir}\n")
        proc = self.batman("batch", nowhere, check=125)
        self.assertIn("key 'tasks.a.cwd': /no/such/dir is not a directory", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "bad")), "a config error creates nothing")

    def test_halt_now_stops_at_the_first_failure(self):
        proc = self.run_lines(["sleep 30", "exit 1", "sleep 30", "sleep 30"], "-j", "2", "--retries", "0",
                              "--rate-limit", "0", "--halt", "now,fail=1", check=1)
        self.assertIn("halting now", proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        self.assertRegex(last, r"4 tasks: 0 succeeded, 2 failed, 2 skipped")

    def test_a_failed_health_check_is_a_failed_attempt_and_adjustments_are_logged(self):
        plan = self.write("health.yaml", f"""\
            defaults: {{retries: 0, rate_limit: 0}}
            tasks:
              a: {{cmd: "{self.task('a')}"}}
            health: {{check: "exit 1"}}
            """)
        proc = self.batman("batch", plan, "--isolation", "env", check=1)
        self.assertIn("health check failed before task a attempt 1: exit 1", proc.stderr)
        self.assertEqual(self.spans("a"), [], "the task must not start after a failed check")
        lines = [self.task(f"t{i}", "sleep 0.4; exit 1") for i in range(16)]
        plan = self.write("aimd.yaml", "defaults: {retries: 0, rate_limit: 0, max_concurrency: 4}\n"
                          "health: {interval: 1s, min_concurrency: 1, max_concurrency: 8}\ntasks:\n" +
                          "".join(f'  t{i}: {{cmd: "{line}"}}\n' for i, line in enumerate(lines)))
        proc = self.batman("batch", plan, "--isolation", "env", check=1)
        self.assertRegex(proc.stderr, r"concurrency 4 -> 2: failure rate 100% \(\d+ of \d+ recent attempts\) is above 50%")
        events = open(os.path.join(self.home, "aimd", "logs", "events.log")).read()
        self.assertIn("concurrency 4 -> 2", events)

    def test_ctrl_c_stops_running_tasks_and_skips_the_rest(self):
        pidfile = os.path.join(self.marks, "child.pid")
        proc = self.spawn("batch", "-", "--isolation", "env", "-j", "1", stdin=subprocess.PIPE)
        proc.stdin.write(f"sleep 300 & echo $! > {pidfile}; wait\nsleep 300\n")
        proc.stdin.close()
        child = int(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(),
                             what="the first task to start"))
        os.kill(proc.pid, signal.SIGINT)
        # 130 as other tools (issue 13; it was 1), the running task `interrupted`, not failed.
        self.assertEqual(proc.wait(timeout=15), 130)
        err = proc.stderr.read()
        self.assertIn("interrupted by SIGINT", err)
        self.assertRegex(err, r"2 tasks: 0 succeeded, 0 failed, 1 skipped, 1 interrupted")
        wait_for(lambda: not pid_alive(child), timeout=5, what=f"the task's child {child} to die")

    # --- output and reports ---------------------------------------------------------------

    def test_stdin_lines_are_tasks_with_prefixed_output_logs_and_state(self):
        # Prefixed output is asked for now (grouped is the default since issue 13).
        proc = self.run_lines(["echo one", "echo two >&2; echo three"], "--output", "prefixed", check=0)
        self.assertIn("[1] one\n", proc.stdout)
        self.assertIn("[2] three\n", proc.stdout)
        self.assertIn("[2] two\n", proc.stderr)
        # Files are named after the batch's run-id: <run-id>.<task>[.<attempt>.log].
        [run] = [s["run_id"] for s in self.states("batch") if "." not in s["run_id"]]
        logs = os.path.join(self.home, "batch", "logs")
        self.assertEqual(open(os.path.join(logs, f"{run}.1.1.log")).read(), "one\n")
        states = {s["run_id"]: s for s in self.states("batch")}
        self.assertEqual(states[f"{run}.2"]["kind"], "batch")
        self.assertEqual(states[f"{run}.2"]["status"], "succeeded")
        self.assertEqual(states[f"{run}.2"]["log"], f"logs/{run}.2.1.log")

    def test_junit_joblog_and_json_reports(self):
        junit = os.path.join(self.tmp, "junit.xml")
        joblog = os.path.join(self.tmp, "joblog")
        plan = self.write("ci.yaml", """\
            defaults: {retries: 0}
            tasks:
              lint: {cmd: "echo clean"}
              unit: {cmd: "echo 'expected <1> & got 2'; echo the last line; exit 4"}
              e2e: {cmd: "true", needs: [unit]}
            batches:
              - {name: "fast checks", tasks: [lint, unit]}
              - {name: slow, tasks: [e2e]}
            """)
        self.batman("batch", plan, "--isolation", "env", "--junit", junit, "--joblog", joblog, check=1)
        if shutil.which("xmllint"):
            subprocess.run(["xmllint", "--noout", junit], check=True)
        root = ET.parse(junit).getroot()
        self.assertEqual(root.tag, "testsuites")
        suites = root.findall("testsuite")
        self.assertEqual([s.get("name") for s in suites], ["fast checks", "slow"])
        self.assertEqual(suites[0].get("tests"), "2")
        self.assertEqual(suites[0].get("failures"), "1")
        cases = {c.get("name"): c for s in suites for c in s.findall("testcase")}
        self.assertEqual(set(cases), {"lint", "unit", "e2e"})
        failure = cases["unit"].find("failure")
        self.assertEqual(failure.get("message"), "exit 4")
        self.assertIn("expected <1> & got 2\nthe last line", failure.text)
        self.assertIsNotNone(cases["e2e"].find("skipped"))
        self.assertIsNone(cases["lint"].find("failure"))
        with open(joblog) as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
        self.assertEqual(rows[0], ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval",
                                   "Signal", "Command"])
        by_command = {r[8]: r for r in rows[1:]}
        self.assertEqual(by_command["echo clean"][6], "0")
        self.assertEqual(by_command["echo clean"][5], "6")  # bytes received
        self.assertEqual(len(rows), 3, "skipped tasks did not run and are not in the joblog")
