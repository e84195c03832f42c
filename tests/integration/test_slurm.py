"""`batman batch --executor slurm` against a real Slurm cluster on this machine
(scripts/slurm-local: munged, slurmctld, slurmd), started once for the module: a 50-task batch
with needs, a retried failure and a timeout whose reports have the local executor's shape,
--halt now, Ctrl-C cancelling queued work, and a node without batman. Skipped, with the
reason, where the cluster cannot start (not root, Slurm not installed)."""
import json
import os
import shutil
import re
import signal
import subprocess
import textwrap
import time
import xml.etree.ElementTree as ET

from harness import BatmanTestCase, processes_with_marker, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLURM_LOCAL = os.path.join(ROOT, "scripts", "slurm-local")
CLUSTER = {"conf": None, "why": None}


def start_cluster():
    if os.geteuid() != 0:
        CLUSTER["why"] = "scripts/slurm-local needs root"
        return
    env = dict(os.environ, SLURM_LOCAL_CPUS="8")
    proc = subprocess.run([SLURM_LOCAL, "start"], capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        CLUSTER["why"] = "scripts/slurm-local start failed: " + (proc.stderr.strip() or proc.stdout.strip())
        return
    for line in proc.stdout.splitlines():
        if line.startswith("export SLURM_CONF="):
            CLUSTER["conf"] = line.split("=", 1)[1]


def stop_cluster():
    if CLUSTER["conf"]:
        subprocess.run([SLURM_LOCAL, "stop"], capture_output=True, timeout=120)


def keyset(value):
    """The shape of a JSON value: its keys, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {k: keyset(v) for k, v in value.items()}
    if isinstance(value, list):
        return [keyset(value[0])] if value else []
    return type(value).__name__ if value is not None else "null"


class SlurmTest(BatmanTestCase):
    # One cluster for every test here (run.py loads modules outside sys.modules, where
    # unittest's module fixtures are not run: the class's are).
    @classmethod
    def setUpClass(cls):
        start_cluster()

    @classmethod
    def tearDownClass(cls):
        stop_cluster()

    def setUp(self):
        if not CLUSTER["conf"]:
            # Where the cluster can run (root, with Debian's slurm-wlm and munge installed,
            # as on the machines .ci/run uses), failing to start it is a failure, not a skip.
            if os.geteuid() == 0 and shutil.which("slurmctld") and shutil.which("munged"):
                self.fail(CLUSTER["why"] or "no cluster")
            self.skipTest(CLUSTER["why"] or "no cluster")
        super().setUp()
        self.env["SLURM_CONF"] = CLUSTER["conf"]
        self.marks = os.path.join(self.work, "marks")
        os.makedirs(self.marks)

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def queue(self, run_id=None):
        """This test's jobs still in Slurm's queue (squeue -h -r -o '%i %T %j')."""
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T %j"], capture_output=True, text=True,
                             env=self.env).stdout
        return [line for line in out.splitlines() if (run_id or self.tmp.split("/")[-1]) in line
                or (run_id is None and ".batman." in line)]

    def jobs_of(self, project):
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %j"], capture_output=True, text=True,
                             env=self.env).stdout
        return [line for line in out.splitlines() if f"batman.{project}." in line]

    def reports(self, tag):
        return [os.path.join(self.work, f"{tag}.{ext}") for ext in ("json", "xml", "joblog")]

    def test_fifty_tasks_with_needs_a_retry_and_a_timeout_report_as_locally(self):
        # 46 quick tasks, each of t10..t45 needing the one ten before it; `flaky` fails its
        # first attempt and succeeds its second; `slow` times out after 2 s (no retry) and
        # `after_slow`, which needs it, is skipped.
        lines = ["defaults: {max_concurrency: 8, rate_limit: 0, retries: 0, timeout: 60s,",
                 "           backoff: {initial: 100ms, factor: 2, max: 1s}}", "tasks:"]
        for i in range(46):
            needs = f", needs: [t{i - 10:02d}]" if i >= 10 else ""
            lines.append(f'  t{i:02d}: {{cmd: "echo out-t{i:02d}; date +%s.%N > {self.marks}/t{i:02d}"{needs}}}')
        flag = os.path.join(self.marks, "flaky-once")
        lines.append(f'  flaky: {{cmd: "if [ -e {flag} ]; then echo second; else touch {flag}; echo first; exit 3; fi",'
                     ' retries: 2}')
        lines.append('  slow: {cmd: "echo slow-start; sleep 30", timeout: 2s}')
        lines.append('  after_slow: {cmd: "true", needs: [slow]}')
        lines.append('  last: {cmd: "echo last-one"}')
        plan = self.write("fifty.yaml", "\n".join(lines) + "\n")

        started = time.monotonic()
        slurm = self.batman("batch", plan, "--executor", "slurm", "--isolation", "env", "--report",
                            self.reports("slurm")[0], "--junit", self.reports("slurm")[1], "--joblog",
                            self.reports("slurm")[2], timeout=180)
        took = time.monotonic() - started
        self.assertEqual(slurm.returncode, 1, slurm.stderr[-3000:])
        with open(self.reports("slurm")[0]) as f:
            report = json.load(f)
        tasks = {t["name"]: t for b in report["batches"] for t in b["tasks"]}
        self.assertEqual(len(tasks), 50)
        for i in range(46):
            self.assertEqual(tasks[f"t{i:02d}"]["status"], "succeeded", tasks[f"t{i:02d}"])
        # needs: each t10..t45 ran after the task it needs had finished (marks written at the end)
        for i in range(10, 46):
            with open(os.path.join(self.marks, f"t{i - 10:02d}")) as f:
                before = float(f.read())
            with open(os.path.join(self.marks, f"t{i:02d}")) as f:
                after = float(f.read())
            self.assertLess(before, after, f"t{i:02d} ran before t{i - 10:02d} ended")
        self.assertEqual(tasks["flaky"]["status"], "succeeded")
        self.assertEqual([a["exit_code"] for a in tasks["flaky"]["attempts"]], [3, 0])
        self.assertEqual(tasks["slow"]["status"], "failed")
        self.assertTrue(tasks["slow"]["attempts"][-1]["timed_out"], tasks["slow"])
        self.assertLess(tasks["slow"]["attempts"][-1]["seconds"], 15)
        self.assertEqual(tasks["after_slow"]["status"], "skipped")
        self.assertIn("dependency failed: slow", tasks["after_slow"]["reason"])
        self.assertLess(took, 150)
        # Each task's output came back: on batman's stdout and in its log in the project tree.
        self.assertIn("out-t07", slurm.stdout)
        run_id = report["run_id"]
        with open(os.path.join(self.home, "fifty", "logs", f"{run_id}.flaky.1.log")) as f:
            self.assertEqual(f.read(), "first\n")
        logs = self.batman("logs", "fifty", f"{run_id}.t05", check=0)
        self.assertIn("out-t05", logs.stdout)
        # State files and `batman ps` name each task's Slurm job and node.
        ps = {s["run_id"]: s for s in self.ps_json("--project", "fifty")}
        t05 = ps[f"{run_id}.t05"]
        self.assertEqual(t05["status"], "succeeded")
        self.assertRegex(t05.get("slurm_job", ""), r"^\d+(_\d+)?$")
        self.assertTrue(t05.get("node"))
        self.assertEqual(ps[f"{run_id}.slow"]["status"], "timeout")
        self.assertEqual(ps[run_id]["status"], "failed")
        table = self.batman("ps", "--all", "--project", "fifty", "--wide", check=0).stdout
        self.assertIn("slurm:" + t05["slurm_job"], table)
        # The first eight went out as one job array (throttled to -j 8); retries as jobs of their own.
        jobs = [s.get("slurm_job", "") for s in self.states("fifty") if s["run_id"].startswith(run_id + ".")]
        self.assertTrue(any("_" in j for j in jobs), jobs)
        self.assertEqual(tasks["flaky"]["status"], "succeeded")
        self.assertNotIn("_", ps[f"{run_id}.flaky"]["slurm_job"])
        with open(os.path.join(self.home, "fifty", "logs", f"{run_id}.log")) as f:
            calls = int(re.search(r"slurm: (\d+) sbatch", f.read()).group(1))
        self.assertLess(calls, 50)
        # Nothing of the run is left in the queue.
        self.assertEqual(self.jobs_of("fifty"), [])

        # The same file locally: reports of the same shape, task by task the same outcome.
        local = self.batman("batch", plan, "--executor", "local", "--isolation", "env", "--report",
                            self.reports("local")[0], "--junit", self.reports("local")[1], "--joblog",
                            self.reports("local")[2], timeout=180)
        self.assertEqual(local.returncode, 1, local.stderr[-2000:])
        with open(self.reports("local")[0]) as f:
            local_report = json.load(f)
        self.assertEqual(keyset(report), keyset(local_report))
        local_tasks = {t["name"]: t for b in local_report["batches"] for t in b["tasks"]}
        self.assertEqual({n: t["status"] for n, t in tasks.items()}, {n: t["status"] for n, t in local_tasks.items()})
        junit = [ET.parse(p).getroot() for p in (self.reports("slurm")[1], self.reports("local")[1])]
        self.assertEqual([len(r.findall(".//testcase")) for r in junit], [50, 50])
        self.assertEqual(len(junit[0].findall(".//failure")), len(junit[1].findall(".//failure")))
        joblogs = []
        for p in (self.reports("slurm")[2], self.reports("local")[2]):
            with open(p) as f:
                joblogs.append(f.read().splitlines())
        self.assertEqual(joblogs[0][0], joblogs[1][0])  # the header
        self.assertEqual(len(joblogs[0]), len(joblogs[1]))
        self.assertEqual(sorted(len(l.split("\t")) for l in joblogs[0]), sorted(len(l.split("\t")) for l in joblogs[1]))

    def test_halt_now_cancels_the_running_jobs(self):
        plan = self.write("halt.yaml", """\
            defaults: {max_concurrency: 6, rate_limit: 0, retries: 0}
            tasks:
              bad: {cmd: "echo pid=$$; grep ^Seccomp: /proc/self/status; sleep 1; exit 1"}
              s1: "sleep 60"
              s2: "sleep 60"
              s3: "sleep 60"
              s4: "sleep 60"
            """)
        started = time.monotonic()
        # The default isolation (auto): on the node, as here, the task gets a pid namespace of
        # its own and a seccomp filter.
        proc = self.batman("batch", plan, "--executor", "slurm", "--halt", "now,fail=1",
                           "--report", os.path.join(self.work, "r.json"), timeout=120)
        self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
        if "isolation: namespaces" in proc.stderr:
            self.assertRegex(proc.stdout, r"pid=[1-9]\n")
            self.assertRegex(proc.stdout, r"Seccomp:\s+2")
        self.assertLess(time.monotonic() - started, 40)
        with open(os.path.join(self.work, "r.json")) as f:
            tasks = {t["name"]: t for b in json.load(f)["batches"] for t in b["tasks"]}
        self.assertEqual(tasks["bad"]["status"], "failed")
        for name in ("s1", "s2", "s3", "s4"):
            self.assertIn(tasks[name]["status"], ("failed", "skipped"), tasks[name])
        self.assertIn("scancel", proc.stderr)
        wait_for(lambda: self.jobs_of("halt") == [], timeout=30, interval=0.5, what="the halted jobs to leave the queue")

    def test_ctrl_c_cancels_running_and_queued_jobs(self):
        # 16 one-minute tasks on an 8-CPU node: 8 run, 8 wait in Slurm's queue.
        tasks = "".join(f"  s{i:02d}: \"sleep 60\"\n" for i in range(16))
        plan = self.write("stopme.yaml", "defaults: {max_concurrency: 16, rate_limit: 0, retries: 0}\ntasks:\n" + tasks)
        p = self.spawn("batch", plan, "--executor", "slurm", "--isolation", "env")
        wait_for(lambda: len(self.jobs_of("stopme")) >= 16, timeout=60, interval=0.2, what="16 submitted jobs")
        wait_for(lambda: any(s.get("status") == "running" for s in self.states("stopme")), timeout=60,
                 interval=0.2, what="a task running on the node")
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, err[-2000:])
        self.assertIn("scancel", err)
        wait_for(lambda: self.jobs_of("stopme") == [], timeout=30, interval=0.5, what="the queue to empty")
        states = self.states("stopme")
        batch = [s for s in states if "." not in s["run_id"]]
        self.assertEqual(batch[0]["status"], "killed")
        task_states = [s for s in states if "." in s["run_id"]]
        self.assertEqual(len(task_states), 16)
        for s in task_states:
            self.assertEqual(s["status"], "killed", s)
            self.assertTrue(s.get("slurm_job"), s)
        with open(os.path.join(self.home, "stopme", "logs", batch[0]["run_id"] + ".log")) as f:
            self.assertIn("scancel", f.read())
        # The run's job script, manifests and Slurm's output stay for a look, until `clean`.
        kept = os.path.join(self.home, "stopme", "slurm", batch[0]["run_id"])
        self.assertTrue(os.path.exists(os.path.join(kept, "job.sh")))
        self.batman("clean", "stopme", check=0)
        self.assertFalse(os.path.exists(kept))
        self.assertEqual(self.states("stopme"), [])

    def test_a_node_without_batman_is_an_error_before_any_task(self):
        plan = self.write("nobatman.yaml", "tasks:\n  a: \"touch %s/ran\"\n" % self.marks)
        proc = self.batman("batch", plan, "--executor", "slurm", env={"BATMAN_SLURM_BATMAN": "/nonexistent/batman"},
                           timeout=120)
        self.assertEqual(proc.returncode, 125, proc.stderr)
        self.assertIn("not installed on node", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.marks, "ran")))
        # An option sbatch refuses is the same kind of error, with sbatch's words.
        bad = self.batman("batch", plan, "--executor", "slurm", "--partition", "nosuchpartition", timeout=120)
        self.assertEqual(bad.returncode, 125, bad.stderr)
        self.assertIn("partition", bad.stderr)
        self.assertEqual(self.jobs_of("nobatman"), [])
        # BATMAN_EXECUTOR chooses the executor; the flag still wins over it.
        env_chosen = self.batman("batch", plan, env={"BATMAN_EXECUTOR": "slurm",
                                                     "BATMAN_SLURM_BATMAN": "/nonexistent/batman"}, timeout=120)
        self.assertEqual(env_chosen.returncode, 125, env_chosen.stderr)
        flag_wins = self.batman("batch", plan, "--executor", "local", "--isolation", "env",
                                env={"BATMAN_EXECUTOR": "slurm"}, timeout=60)
        self.assertEqual(flag_wins.returncode, 0, flag_wins.stderr)

    def test_a_job_killed_behind_batmans_back_is_a_failed_attempt(self):
        # The wrapper is SIGKILLed on the node (as by the OOM killer) before it can write a
        # result: the job ends, squeue stops listing it, and batman, after a few polls, fails the
        # attempt with Slurm's words.
        plan = self.write("lost.yaml", "defaults: {rate_limit: 0, retries: 0}\ntasks:\n  victim: \"sleep 60\"\n")
        p = self.spawn("batch", plan, "--executor", "slurm", "--isolation", "env", "--report",
                       os.path.join(self.work, "r.json"))
        job = wait_for(lambda: next((s.get("slurm_job") for s in self.states("lost")
                                     if s.get("status") == "running" and s.get("slurm_job")), None),
                       timeout=60, interval=0.2, what="the task running on the node")
        wrapper = os.path.join(self.home, "lost", "slurm")
        pids = wait_for(lambda: processes_with_marker(wrapper), timeout=30, what="the wrapper of job " + job)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 1, err[-2000:])
        with open(os.path.join(self.work, "r.json")) as f:
            victim = json.load(f)["batches"][0]["tasks"][0]
        self.assertEqual(victim["status"], "failed")
        self.assertIn("left the queue without a result", victim["attempts"][-1].get("error", ""), victim)
