"""Issue 13, the taskmaster habits a new user brings from supervisord, and `batman stop` on
the right thing: an instance through its supervisor, one task of a running batch, a whole
supervisor or batch; supervisord's %(...)s expansions and BATMAN_PROCESS_NUM; one name for an
instance everywhere; autorestart true/false; Ctrl-C in `batman ctl`'s shell ends `tail -f`."""
import glob
import http.client
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import textwrap
import time
import unittest
import urllib.request

from harness import BatmanTestCase, bin_path, pid_alive, processes_with_marker, wait_for
from test_taskmaster import TaskmasterCase


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


class StopInstance(TaskmasterCase):
    CONFIG = ("programs:\n"
              "  web:\n    cmd: \"sleep MARK\"\n    numprocs: 2\n    starttime: 0\n    autorestart: true\n"
              "  api:\n    cmd: \"sleep MARK\"\n    starttime: 0\n")

    def test_stop_an_instance_named_as_ps_lists_it_stops_only_that_one_and_restarts_nothing(self):
        supervisor = self.start_daemon(self.config(self.CONFIG))
        self.wait_state("web:01", "RUNNING")
        before = self.status()
        self.wait_state("api", "RUNNING")
        self.wait_record("web:01")  # ps reads the state file, written after ctl shows RUNNING
        ps_ids = {r["run_id"] for r in self.ps_json("--project", "tm")}
        self.assertIn("web_01", ps_ids)
        r = self.batman("stop", "tm", "web_01", check=0)
        self.assertIn("web:01: stopped", r.stderr)
        # autorestart: true restarts an exit, never a stop.
        time.sleep(0.5)
        after = self.status()
        self.assertEqual(after["web:01"]["state"], "STOPPED")
        self.assertFalse(pid_alive(before["web:01"]["pid"]))
        self.assertEqual(after["web:00"]["state"], "RUNNING")
        self.assertEqual(after["web:00"]["pid"], before["web:00"]["pid"])
        self.assertEqual(after["api"]["state"], "RUNNING")
        self.assertTrue(pid_alive(supervisor))
        # As ctl names it, too; and a program name means every instance of it.
        self.assertIn("web:00: stopped", self.batman("stop", "tm", "web:00", check=0).stderr)
        self.assertEqual(self.status()["web:00"]["state"], "STOPPED")
        self.ctl("start", "web")
        r = self.batman("stop", "tm", "web", check=0)
        self.assertIn("web:00: stopped", r.stderr)
        self.assertIn("web:01: stopped", r.stderr)
        self.assertEqual(self.status()["api"]["state"], "RUNNING")
        self.assertTrue(pid_alive(supervisor))

    def test_what_cannot_be_done_is_refused_with_the_reason(self):
        supervisor = self.start_daemon(self.config(self.CONFIG))
        self.wait_state("web:01", "RUNNING")
        # What follows reads web_00's state file (the names listed, the instance of a
        # supervisor that does not answer), written after ctl shows RUNNING.
        self.wait_record("web:00")
        r = self.batman("stop", "tm", "web_07")
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("no run, instance or task 'web_07'", r.stderr)
        self.assertIn("web_00", r.stderr)
        self.assertNotIn("stopped", r.stderr.replace("not stopped", ""))
        # A stop sequence of our own cannot go through the supervisor.
        r = self.batman("stop", "tm", "web_00", "--signal", "KILL")
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("--signal and --grace apply to whole runs", r.stderr)
        # A supervisor that does not answer: nothing is reported as done, nothing changes.
        os.unlink(os.path.join(self.state_dir(), "control.sock"))
        r = self.batman("stop", "tm", "web_00")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not stopped", r.stderr)
        self.assertIn("does not answer", r.stderr)
        self.assertTrue(pid_alive(supervisor))
        row = json.load(open(os.path.join(self.state_dir(), "web_00.json")))
        self.assertEqual(row["status"], "running")
        self.assertTrue(pid_alive(row["pid"]))

    def test_stop_without_an_instance_stops_the_whole_supervisor(self):
        supervisor = self.start_daemon(self.config(self.CONFIG))
        self.wait_state("web:01", "RUNNING")
        r = self.batman("stop", "tm", check=0)
        self.assertIn(f"supervisor pid {supervisor}", r.stderr)
        self.assertFalse(pid_alive(supervisor))
        self.assertEqual(processes_with_marker(self.mark), [])

    def test_a_supervisor_with_its_own_socket_is_found_too(self):
        sock = os.path.join(self.tmp, "own.sock")
        supervisor = self.start_daemon(self.config(f"socket: {sock}\n" + self.CONFIG))
        self.wait_state("web:00", "RUNNING")
        self.assertIn("web:00: stopped", self.batman("stop", "tm", "web_00", check=0).stderr)
        self.assertEqual(self.status()["web:01"]["state"], "RUNNING")
        self.assertTrue(pid_alive(supervisor))


class StopBatchTask(BatmanTestCase):
    def test_stop_one_task_of_a_running_batch_and_the_batch_goes_on(self):
        mark = str(random.randint(1_000_000, 9_999_999))
        done = os.path.join(self.work, "other.done")
        plan = os.path.join(self.work, "ci.yaml")
        with open(plan, "w") as f:
            f.write(textwrap.dedent(f"""\
                defaults: {{retries: 3, rate_limit: 0, timeout: 0}}
                tasks:
                  docs: {{cmd: "sleep {mark}"}}
                  after: {{cmd: "true", needs: [docs]}}
                  other: {{cmd: "while [ ! -e {self.work}/go ]; do sleep 0.05; done; touch {done}"}}
                """))
        report = os.path.join(self.tmp, "r.json")
        batch = self.spawn("batch", plan, "--isolation", "env", "--report", report)
        # A batch's tasks are recorded as <batch-run-id>.<task> (test_everyday_batch).
        def docs_state():
            found = glob.glob(os.path.join(self.home, "ci", "state", "*.docs.json"))
            return found[0] if found else ""
        wait_for(lambda: docs_state() and json.loads(read_text(docs_state()))["status"] == "running",
                 timeout=20, what="docs running")
        state = docs_state()
        r = self.batman("stop", "ci", "docs", check=0)
        self.assertIn("stopped ci docs", r.stderr)
        # Done means done: the task's processes are gone when stop returns, the batch is not.
        self.assertEqual(processes_with_marker(mark), [])
        self.assertIsNone(batch.poll())
        self.assertNotEqual(json.loads(read_text(state))["status"], "running")
        open(os.path.join(self.work, "go"), "w").close()
        out, err = batch.communicate(timeout=60)
        self.assertEqual(batch.returncode, 1, err)
        self.assertTrue(os.path.exists(done), err)
        with open(report) as f:
            doc = json.load(f)
        tasks = {t["name"]: t for b in doc["batches"] for t in b["tasks"]}
        self.assertEqual(doc["summary"]["stopped"], 1)
        self.assertEqual(doc["summary"]["failed"], 0)
        self.assertIn("1 stopped", err)
        self.assertEqual(tasks["docs"]["status"], "stopped")
        self.assertEqual(len(tasks["docs"]["attempts"]), 1)  # never retried
        self.assertEqual(tasks["after"]["status"], "skipped")
        self.assertEqual(tasks["after"]["reason"], "dependency stopped: docs")
        self.assertEqual(tasks["other"]["status"], "succeeded")

    def test_stop_without_a_task_stops_the_whole_batch(self):
        mark = str(random.randint(1_000_000, 9_999_999))
        plan = os.path.join(self.work, "ci.yaml")
        with open(plan, "w") as f:
            f.write(f"defaults: {{rate_limit: 0}}\ntasks:\n  a: {{cmd: 'sleep {mark}'}}\n  b: {{cmd: 'sleep {mark}'}}\n")
        batch = self.spawn("batch", plan, "--isolation", "env")
        def running(name):
            found = glob.glob(os.path.join(self.home, "ci", "state", "*." + name + ".json"))
            text = found and read_text(found[0])
            return text and json.loads(text)["status"] == "running"
        wait_for(lambda: running("a") and running("b"), timeout=20, what="both tasks running")
        r = self.batman("stop", "ci", check=0)
        self.assertIn(f"batch pid {batch.pid}", r.stderr)
        batch.wait(timeout=30)
        self.assertEqual(processes_with_marker(mark), [])


class Expansions(TaskmasterCase):
    def test_numprocs_2_servers_take_different_ports(self):
        base = self.free_base()
        for i in (0, 1):
            os.makedirs(os.path.join(self.work, f"site{i}"))
            with open(os.path.join(self.work, f"site{i}", "who"), "w") as f:
                f.write(f"site {i}\n")
        self.start_daemon(self.config(textwrap.dedent(f"""\
            programs:
              web:
                cmd: "echo %(program_name)s-%(process_num)02d $BATMAN_PROCESS_NUM $PORT; exec python3 -m http.server --bind 127.0.0.1 $PORT"
                numprocs: 2
                starttime: 1
                env: {{PORT: "{base}%(process_num)d", MARK: "MARK"}}
                workingdir: "%(here)s/site%(process_num)d"
                stdout: "%(here)s/out-%(program_name)s-%(process_num)d.log"
            """)))
        self.wait_state("web:00", "RUNNING")
        self.wait_state("web:01", "RUNNING")
        for i in (0, 1):
            port = int(f"{base}{i}")
            body = wait_for(lambda: self.fetch(port), timeout=15, what=f"port {port}")
            self.assertEqual(body, f"site {i}\n")
            out = os.path.join(self.work, f"out-web-{i}.log")
            wait_for(lambda: read_text(out).startswith(f"web-0{i} {i} {port}\n"), what=out)
        self.assertFalse(os.path.exists(os.path.join(self.work, "out-web-0_00.log")))

    @staticmethod
    def free_base():
        """BASE such that ports BASE0 and BASE1 are free now."""
        for _ in range(100):
            base = str(random.randint(2000, 5999))
            try:
                with socket.socket() as a, socket.socket() as b:
                    a.bind(("127.0.0.1", int(base + "0")))
                    b.bind(("127.0.0.1", int(base + "1")))
                return base
            except OSError:
                continue
        raise AssertionError("no two free ports")

    @staticmethod
    def fetch(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/who", timeout=2) as r:
                return r.read().decode()
        except (OSError, http.client.HTTPException):
            return None

    def test_an_unknown_key_is_a_config_error_with_file_and_line(self):
        config = self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n    env:\n      X: \"%(nope)s\"\n")
        r = self.batman(config, "--daemon", name="taskmaster", check=125)
        self.assertIn(f"{config}:5: key 'programs.a.env.X'", r.stderr)
        self.assertIn("unknown expansion '%(nope)s'", r.stderr)
        config = self.config("programs:\n  a:\n    cmd: \"sleep %(process_num)s %(here)d\"\n")
        r = self.batman(config, "--daemon", name="taskmaster", check=125)
        self.assertIn(f"{config}:3: key 'programs.a.cmd'", r.stderr)
        self.assertIn("here is text", r.stderr)
        self.assertEqual(processes_with_marker(self.mark), [])

    def test_reload_sees_an_expanded_change_as_a_change(self):
        text = ("programs:\n  w:\n    cmd: \"echo v$V; exec sleep MARK\"\n    numprocs: 2\n    starttime: 0\n"
                "    env: {V: \"1-%(process_num)d\"}\n")
        config = self.config(text)
        self.start_daemon(config)
        old = {n: self.wait_state(n, "RUNNING")["pid"] for n in ("w:00", "w:01")}
        self.config(text.replace("1-%(process_num)d", "2-%(process_num)d"))
        self.ctl("reload")
        for n, i in (("w:00", 0), ("w:01", 1)):
            wait_for(lambda: (r := self.status()[n])["state"] == "RUNNING" and r["pid"] != old[n],
                     what=f"{n} restarted")
            log = os.path.join(self.logs_dir(), f"w_0{i}.out.log")
            wait_for(lambda: f"v2-{i}\n" in read_text(log), what=f"{log} to show v2-{i}")
        # numprocs itself, when %(numprocs)d is used.
        text = "programs:\n  n:\n    cmd: \"echo of %(numprocs)d; exec sleep MARK\"\n    starttime: 0\n"
        self.config(text)
        self.ctl("reload")
        first = self.wait_state("n", "RUNNING")["pid"]
        self.config(text + "    numprocs: 2\n")
        self.ctl("reload")
        wait_for(lambda: (r := self.status().get("n:00")) and r["state"] == "RUNNING" and r["pid"] != first,
                 what="n:00 restarted")
        wait_for(lambda: "of 2\n" in read_text(os.path.join(self.logs_dir(), "n_00.out.log")), what="of 2")


class Names(TaskmasterCase):
    def test_either_instance_name_works_in_ctl_logs_and_stop(self):
        self.start_daemon(self.config(
            "programs:\n  web:\n    cmd: \"echo hi $BATMAN_PROCESS_NUM; exec sleep MARK\"\n    numprocs: 2\n"
            "    starttime: 0\n"))
        self.wait_state("web:01", "RUNNING")
        self.assertEqual(self.ctl("status", "web_01").stdout.split()[:2], ["web:01", "RUNNING"])
        self.assertEqual(self.ctl("stop", "web_01").stdout, "web:01: stopped\n")
        self.assertEqual(self.ctl("start", "web_01").stdout, "web:01: started\n")
        wait_for(lambda: "hi 1" in self.ctl("tail", "web_01").stdout, what="tail web_01")
        # Nothing above waited for web:00's output: it reaches its log when the supervisor reads it.
        wait_for(lambda: "hi 0" in self.ctl("tail", "web:00").stdout, what="tail web:00")
        self.assertRegex(self.ctl("pid", "web_00").stdout.strip(), r"^\d+$")
        # `batman logs` finds instances by their state files (both, for "web" to be ambiguous),
        # written on the supervisor's state writer thread: output can come before them.
        self.wait_record("web:00")
        self.wait_record("web:01")
        self.assertIn("hi 1", self.batman("logs", "tm", "web:01", check=0).stdout)
        self.assertIn("hi 1", self.batman("logs", "tm", "web_01", check=0).stdout)
        self.assertIn("web_00", self.batman("logs", "tm", "web", check=125).stderr)
        self.assertIn("no such instance 'web_02'", self.ctl("stop", "web_02", check=125).stderr)


class AutorestartSynonyms(TaskmasterCase):
    def test_true_restarts_an_expected_exit_and_false_leaves_it_exited(self):
        self.start_daemon(self.config(
            "programs:\n"
            "  yes:\n    cmd: \"sleep 0.2\"\n    starttime: 0\n    autorestart: true\n"
            "  no:\n    cmd: \"sleep 0.2\"\n    starttime: 0\n    autorestart: false\n"))
        wait_for(lambda: self.status()["yes"]["restarts"] >= 2, timeout=20, what="yes restarted twice")
        row = self.wait_state("no", "EXITED")
        self.assertEqual(row["restarts"], 0)
        self.assertIn("exit code 0 (expected)", row["detail"])


class CtlCtrlC(TaskmasterCase):
    def test_ctrl_c_during_tail_f_returns_to_the_prompt(self):
        config = self.config(
            "programs:\n  talk:\n    cmd: \"while true; do echo tick; sleep 0.2; done # MARK\"\n    starttime: 0\n")
        self.start_daemon(config)
        self.wait_state("talk", "RUNNING")
        pid, fd = pty.fork()
        if pid == 0:
            env = dict(self.env)
            env["TERM"] = "xterm"
            os.execve(self.command(["ctl", "--config", config])[0], self.command(["ctl", "--config", config]), env)
        def cleanup():
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
            os.close(fd)
        self.addCleanup(cleanup)
        seen = [b""]

        def expect(pattern, timeout=15):
            deadline = time.monotonic() + timeout
            while not re.search(pattern, seen[0]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {pattern!r}; the terminal shows:\n{seen[0][-2000:]!r}")
                ready, _, _ = select.select([fd], [], [], left)
                if ready:
                    try:
                        seen[0] += os.read(fd, 65536)
                    except OSError:
                        break
            return True

        expect(rb"taskmaster> ")
        seen[0] = b""
        os.write(fd, b"tail -f talk\r")
        expect(rb"tick\r?\n.*tick")
        seen[0] = b""  # the prompt must come back after Ctrl-C, not be the one echoed before
        os.write(fd, b"\x03")
        expect(rb"taskmaster> ")
        self.assertTrue(pid_alive(pid))
        seen[0] = b""
        os.write(fd, b"status talk\r")
        expect(rb"talk\s+RUNNING")
        os.write(fd, b"exit\r")
        deadline = time.monotonic() + 15
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            self.assertLess(time.monotonic(), deadline, "ctl did not exit")
            select.select([fd], [], [], 0.1)
            try:
                os.read(fd, 65536)
            except OSError:
                pass
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(self.status()["talk"]["state"], "RUNNING")


if __name__ == "__main__":
    unittest.main()


def start_time_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


class StopChecksItsTarget(TaskmasterCase):
    """`batman stop` signals only a batman of the project it was given, whatever its state
    files say; it still finds that project's supervisor after an upgrade, with nothing running,
    and what a killed supervisor left."""
    CONFIG = ("programs:\n"
              "  c:\n    cmd: \"sleep MARK; true\"\n    numprocs: 2\n    starttime: 0\n"
              "  api:\n    cmd: \"sleep MARK\"\n    starttime: 0\n")

    def forge(self, project, run_id, kind, pid):
        """A state record of `project` naming `pid` (another project's supervisor) as its batman."""
        for sub in ("state", "logs", "tmp", "worktrees"):
            os.makedirs(os.path.join(self.home, project, sub), exist_ok=True)
        model = json.load(open(glob.glob(os.path.join(self.state_dir("other"), "api_00.json"))[0]))
        model.update(project=project, run_id=run_id, kind=kind, status="running", batman_pid=pid,
                     batman_start_time=start_time_of(pid), pid=pid, pid_start_time=start_time_of(pid))
        with open(os.path.join(self.home, project, "state", run_id + ".json"), "w") as f:
            json.dump(model, f)

    def test_forged_records_and_socket_never_get_another_projects_supervisor_signalled(self):
        other_cfg = self.config(self.CONFIG, name="other")
        victim = self.start_daemon(other_cfg, project="other")
        self.wait_state("api", "RUNNING", config=other_cfg)
        self.wait_record("api", project="other")  # forge() copies its state file
        before = self.status(other_cfg)
        self.forge("evil", "R", "batch", victim)
        self.forge("evil", "R.t", "batch", victim)
        self.forge("evil", "api_00", "program", victim)
        os.symlink(os.path.join(self.state_dir("other"), "control.sock"),
                   os.path.join(self.home, "evil", "state", "control.sock"))
        for args in (["t"], ["R.t"], ["R"], ["api"], ["api_00"], [], ["--all"]):
            r = self.batman("stop", "evil", *args)
            self.assertNotEqual(r.returncode, 0, f"stop evil {args}: {r.stderr}")
            self.assertTrue(pid_alive(victim), f"stop evil {args} killed the other supervisor: {r.stderr}")
        self.assertIn("not a batman of project 'evil'", r.stderr)
        after = self.status(other_cfg)
        for name in ("api", "c:00", "c:01"):
            self.assertEqual(after[name]["state"], "RUNNING")
            self.assertEqual(after[name]["pid"], before[name]["pid"])

    def test_after_an_upgrade_the_old_supervisor_is_stopped_without_complaint(self):
        # An install of its own: bin/batman and its two programs in libexec/batman/ (the
        # supervisor runs batman-services, which `batman` execs).
        bindir = os.path.join(self.tmp, "bin")
        libexec = os.path.join(self.tmp, "libexec", "batman")
        os.makedirs(bindir)
        os.makedirs(libexec)
        installed = os.path.join(os.path.dirname(os.path.realpath(bin_path("batman"))), "..", "libexec", "batman")
        exe = os.path.join(bindir, "batman")
        services = os.path.join(libexec, "batman-services")
        shutil.copy2(bin_path("batman"), exe)
        shutil.copy2(os.path.join(installed, "batman-services"), services)
        shutil.copy2(os.path.join(installed, "batman-init"), os.path.join(libexec, "batman-init"))
        os.symlink("batman", os.path.join(bindir, "taskmaster"))
        cfg = self.config(self.CONFIG)
        subprocess.run([os.path.join(bindir, "taskmaster"), cfg, "--daemon"], env=self.env, cwd=self.work,
                       check=True, capture_output=True, timeout=60)
        pidfile = os.path.join(self.state_dir(), "supervisor.pid")
        self.daemons.append(pidfile)
        supervisor = int(open(pidfile).read())
        self.wait_state("api", "RUNNING")
        # The upgrade: the binaries are replaced while the supervisor runs.
        for new, path in ((bin_path("batman"), exe), (os.path.join(installed, "batman-services"), services)):
            os.unlink(path)
            shutil.copy2(new, path)
        self.assertTrue(os.readlink(f"/proc/{supervisor}/exe").endswith(" (deleted)"))
        r = subprocess.run([exe, "stop", "tm"], env=self.env, cwd=self.work, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("not a batman", r.stderr)
        self.assertIn(f"supervisor pid {supervisor}", r.stderr)
        self.wait_gone(supervisor)
        wait_for(lambda: processes_with_marker(self.mark) == [], timeout=15, what="its programs gone")

    def test_a_supervisor_running_nothing_is_stopped_whole(self):
        supervisor = self.start_daemon(self.config(
            "programs:\n  idle:\n    cmd: \"sleep MARK\"\n    autostart: false\n"))
        self.wait_state("idle", "STOPPED")
        r = self.batman("stop", "tm", check=0)
        self.assertIn(f"supervisor pid {supervisor}", r.stderr)
        self.wait_gone(supervisor)
        # Every instance stopped by hand: the same, with --all.
        supervisor = self.start_daemon(self.config(self.CONFIG))
        self.wait_state("api", "RUNNING")
        self.ctl("stop", "all")
        self.wait_state("c:01", "STOPPED")
        r = self.batman("stop", "tm", "--all", check=0)
        self.assertIn(f"supervisor pid {supervisor}", r.stderr)
        self.wait_gone(supervisor)

    def test_a_program_name_stops_every_instance_a_killed_supervisor_left(self):
        supervisor = self.start_daemon(self.config(
            "programs:\n"
            "  c:\n    cmd: \"sleep MARK; true\"\n    numprocs: 2\n    starttime: 0\n"
            "  api:\n    cmd: \"sleep 0MARK; true\"\n    starttime: 0\n"))
        self.wait_state("c:01", "RUNNING")
        self.wait_state("api", "RUNNING")
        def sleeps(arg):  # the programs' own sleeps (not their sh -c leaders)
            return [p for p in processes_with_marker(arg)
                    if read_text(f"/proc/{p}/cmdline").split("\0")[:2] == ["sleep", arg]]
        c_left = lambda: sleeps(self.mark)
        api_left = lambda: sleeps("0" + self.mark)
        wait_for(lambda: len(c_left()) == 2 and api_left(), timeout=15, what="every sleep started")
        # Without a supervisor, `stop` finds what it left by the state files: those its
        # writer thread had written before the kill.
        for name in ("c:00", "c:01", "api"):
            self.wait_record(name)
        os.kill(supervisor, signal.SIGKILL)
        self.wait_gone(supervisor)
        self.assertEqual(len(c_left()), 2)  # the leftovers run on
        r = self.batman("stop", "tm", "c", check=0)
        self.assertIn("stopped tm c_00", r.stderr)
        self.assertIn("stopped tm c_01", r.stderr)
        self.assertEqual(c_left(), [])
        self.assertTrue(api_left())  # only what was named
        self.batman("stop", "tm", "api_00", check=0)
        self.assertEqual(api_left(), [])

    def test_a_program_named_like_an_instance_is_chosen_as_ctl_chooses_it(self):
        self.start_daemon(self.config(
            "programs:\n"
            "  web:\n    cmd: \"sleep MARK\"\n    numprocs: 2\n    starttime: 0\n"
            "  web_01:\n    cmd: \"sleep MARK\"\n    starttime: 0\n"))
        self.wait_state("web:01", "RUNNING")
        self.wait_state("web_01", "RUNNING")
        r = self.batman("stop", "tm", "web_01", check=0)
        self.assertIn("web_01: stopped", r.stderr)
        rows = self.status()
        self.assertEqual(rows["web_01"]["state"], "STOPPED")
        self.assertEqual(rows["web:01"]["state"], "RUNNING")
        # web:01 names the instance, in both.
        self.batman("stop", "tm", "web:01", check=0)
        self.assertEqual(self.status()["web:01"]["state"], "STOPPED")
        self.assertEqual(self.status()["web:00"]["state"], "RUNNING")


class CtlChoice(TaskmasterCase):
    def test_ctl_without_socket_ignores_supervisors_that_were_killed(self):
        dead = self.start_daemon(self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n", name="gone"),
                                 project="gone")
        os.kill(dead, signal.SIGKILL)
        self.wait_gone(dead)
        self.assertTrue(os.path.exists(os.path.join(self.state_dir("gone"), "control.sock")))
        self.start_daemon(self.config("programs:\n  live:\n    cmd: \"sleep MARK\"\n    starttime: 0\n"))
        self.wait_state("live", "RUNNING")
        r = self.batman("ctl", "status", check=0)
        self.assertIn("live", r.stdout)
        self.assertNotIn("several supervisors", r.stderr)

    def test_ctl_prints_the_version(self):
        version = self.batman("-V", check=0).stdout
        self.assertTrue(version.startswith("batman "))
        for flag in ("-V", "--version"):
            self.assertEqual(self.batman("ctl", flag, check=0).stdout, version)
