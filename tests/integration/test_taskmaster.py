"""Taskmaster (SPEC §8, §9): the installed `taskmaster` and `batman ctl` driven the way a
user would, through the Taskmaster defence: restart rules, stop sequences, output rotation,
the program's environment, reload, quit, the control socket and the interactive shell."""
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
import unittest

from harness import (NOBODY, BatmanTestCase, batman_cgroup_dirs, bin_path, cgroup_setup, home_tag,
                     pid_alive, processes_with_marker, wait_for)


class TaskmasterCase(BatmanTestCase):
    def setUp(self):
        super().setUp()
        # A sleep length no other test uses marks this test's processes in /proc.
        self.mark = str(random.randint(1_000_000, 9_999_999))
        self.daemons = []

    def tearDown(self):
        for pidfile in self.daemons:
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # Supervisors started in a terminal (the shell tests) carry the config path.
        for pid in processes_with_marker(self.work) + processes_with_marker(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().tearDown()

    def config(self, text, name="tm"):
        path = os.path.join(self.work, name + ".yaml")
        with open(path, "w") as f:
            f.write(text.replace("MARK", self.mark))
        return path

    def state_dir(self, project="tm", home=None):
        return os.path.join(home or self.home, project, "state")

    def logs_dir(self, project="tm"):
        return os.path.join(self.home, project, "logs")

    def start_daemon(self, config, project="tm", home=None):
        """`home`: another $BATMAN_HOME than the test's own."""
        proc = self.batman(config, "--daemon", name="taskmaster", check=0,
                           env={"BATMAN_HOME": home} if home else None)
        pidfile = os.path.join(self.state_dir(project, home), "supervisor.pid")
        self.daemons.append(pidfile)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        self.assertTrue(pid_alive(pid), proc.stderr)
        return pid

    def ctl(self, *args, check=0, config=None, home=None):
        return self.batman("ctl", "--config", config or os.path.join(self.work, "tm.yaml"), *args, check=check,
                           env={"BATMAN_HOME": home} if home else None)

    def status(self, config=None, home=None):
        rows = json.loads(self.ctl("status", "--json", config=config, home=home).stdout)
        return {r["name"]: r for r in rows}

    def wait_state(self, name, state, timeout=15, config=None):
        def reached():
            row = self.status(config).get(name)
            return row if row and row["state"] == state else None
        return wait_for(reached, timeout=timeout, what=f"{name} to be {state}")

    def wait_record(self, name, status="running", project="tm", timeout=15):
        """Wait for instance `name` (web:01, or api for api_00) to have its state file say
        `status`. The supervisor writes state/<name>_NN.json on its state writer's thread
        (runner/state_writer.cpp), after `ctl status` already shows the change: `ps`, `logs`,
        `stop` without a live supervisor and a restarted supervisor's clean-up read the file."""
        stem = name.replace(":", "_") if ":" in name else name + "_00"
        return self.wait_state_file(project, stem, lambda r: r.get("status") == status, timeout=timeout,
                                    what=f"{stem}.json to say {status}")

    def events(self, project="tm"):
        with open(os.path.join(self.logs_dir(project), "events.log")) as f:
            return f.read()

    def wait_gone(self, pid, timeout=15):
        wait_for(lambda: not pid_alive(pid), timeout=timeout, what=f"pid {pid} to exit")


class RestartRules(TaskmasterCase):
    def test_crash_at_once_goes_backoff_then_fatal_after_startretries(self):
        self.start_daemon(self.config("programs:\n  crash:\n    cmd: \"exit 3\"\n    startretries: 2\n"))
        row = self.wait_state("crash", "FATAL", timeout=20)
        self.assertIn("exited too quickly", row["detail"])
        self.assertEqual(row["restarts"], 2)  # 1 start + 2 retries
        ev = self.events()
        self.assertEqual(ev.count("crash STARTING -> BACKOFF"), 2, ev)
        self.assertIn("crash STARTING -> FATAL", ev)
        line = self.ctl("status", "crash").stdout
        self.assertRegex(line, r"^crash\s+FATAL\s+exited too quickly")

    def test_kill_9_brings_it_back_running_with_a_new_pid_within_milliseconds(self):
        self.start_daemon(self.config("programs:\n  app:\n    cmd: \"sleep MARK\"\n    starttime: 0\n"))
        first = self.wait_state("app", "RUNNING")["pid"]
        os.kill(first, signal.SIGKILL)
        row = wait_for(lambda: (r := self.status()["app"])["state"] == "RUNNING" and r["pid"] != first and r,
                       what="a new pid")
        self.assertNotEqual(row["pid"], first)
        self.assertTrue(pid_alive(row["pid"]))
        # The event log shows the exit and the next spawn: no polling loop between them.
        stamps = {}
        for line in self.events().splitlines():
            m = re.match(r"(\S+)Z \[\w+\] app (.*)", line)
            if not m:
                continue
            t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + m.group(1)[19:])
            if "RUNNING -> EXITED" in m.group(2):
                stamps["exit"] = t
            elif "spawned pid %d" % row["pid"] in m.group(2):
                stamps["spawn"] = t
        self.assertIn("exit", stamps)
        self.assertLess(stamps["spawn"] - stamps["exit"], 0.5, self.events())

    def test_expected_exit_is_not_restarted_unexpected_is(self):
        self.start_daemon(self.config(
            "programs:\n"
            "  ok:\n    cmd: \"sleep 1.2; exit 2\"\n    exitcodes: [0, 2]\n    starttime: 1\n"
            "  bad:\n    cmd: \"sleep 1.2; exit 1\"\n    starttime: 1\n    startretries: 0\n"))
        row = self.wait_state("ok", "EXITED")
        self.assertIn("exit code 2 (expected)", row["detail"])
        wait_for(lambda: self.status()["bad"]["restarts"] >= 1, what="bad to be restarted")
        self.assertIn("bad RUNNING -> EXITED: exit status 1 (not expected)", self.events())

    def test_program_ignoring_its_stopsignal_is_killed_after_stoptime(self):
        self.start_daemon(self.config(
            "programs:\n  stubborn:\n    cmd: \"trap '' TERM; while :; do sleep MARK; done\"\n"
            "    starttime: 0\n    stoptime: 1\n"))
        pid = self.wait_state("stubborn", "RUNNING")["pid"]
        started = time.monotonic()
        out = self.ctl("stop", "stubborn").stdout
        took = time.monotonic() - started
        self.assertIn("stubborn: stopped", out)
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 8)
        self.assertFalse(pid_alive(pid))
        self.assertIn("stubborn killed with SIGKILL after stoptime", self.events())
        self.assertEqual(self.status()["stubborn"]["state"], "STOPPED")

    def test_stop_leaves_no_child_behind(self):
        self.start_daemon(self.config(
            "programs:\n  family:\n"
            "    cmd: \"sleep MARK & (sleep MARK &) ; setsid sleep MARK & sleep MARK\"\n    starttime: 0\n"))
        self.wait_state("family", "RUNNING")
        wait_for(lambda: len(processes_with_marker(self.mark)) >= 4, what="the family to start")
        self.ctl("stop", "family")
        wait_for(lambda: not processes_with_marker(self.mark), timeout=5, what="every child to be gone")

    def test_stop_all_of_families_leaves_no_child_behind(self):
        # One stop of many reads batman's children once (isolation::SignalBatch): each
        # family's orphan, reparented to taskmaster while its leader lives, is still its own.
        family = "    cmd: \"sleep MARK & (sleep MARK &) ; setsid sleep MARK & sleep MARK\"\n    starttime: 0\n"
        self.start_daemon(self.config("programs:\n" + "".join(f"  f{i}:\n" + family for i in range(6))))
        wait_for(lambda: len(processes_with_marker(self.mark)) >= 24, what="every family to start")
        r = self.ctl("stop", "all")
        self.assertEqual(len(r.stdout.splitlines()), 6, r.stdout)
        wait_for(lambda: not processes_with_marker(self.mark), timeout=5, what="every child to be gone")


class ManyPrograms(TaskmasterCase):
    def test_stop_all_of_500_programs_ends_every_process_and_each_reads_stopped(self):
        n = 500
        programs = "".join(f"  p{i:03d}:\n    cmd: \"sleep MARK\"\n    starttime: 0\n" for i in range(n))
        programs += ("  stubborn:\n    cmd: \"trap '' TERM; while :; do sleep MARK; done\"\n"
                     "    starttime: 0\n    stoptime: 1\n")
        self.start_daemon(self.config("programs:\n" + programs))
        wait_for(lambda: sum(r["state"] == "RUNNING" for r in self.status().values()) == n + 1, timeout=120,
                 what="every program RUNNING")
        wait_for(lambda: len(processes_with_marker(self.mark)) >= n + 1, what="every process")
        t = time.monotonic()
        r = self.ctl("stop", "all")
        took = time.monotonic() - t
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), n + 1, r.stdout[-300:])
        self.assertTrue(all(line.endswith(": stopped") for line in lines), r.stdout[-300:])
        self.assertGreaterEqual(took, 1, "the stubborn one had its stoptime")
        self.assertEqual(processes_with_marker(self.mark), [], "every process is gone when stop all answers")
        rows = self.status()
        self.assertEqual({row["state"] for row in rows.values()}, {"STOPPED"})
        self.assertEqual(rows["p000"]["signal"], "TERM")
        self.assertEqual(rows["stubborn"]["signal"], "KILL")
        self.assertRegex(self.ctl("status", "p499").stdout, r"^p499\s+STOPPED\s+stopped \(killed by SIGTERM\)")


class TwoHomes(TaskmasterCase):
    """Two supervisors side by side, each in its own $BATMAN_HOME, with the same project and
    program names (two CI pipelines of one repository on one machine)."""

    def test_stopping_a_program_in_one_home_leaves_the_same_named_program_of_another_home_running(self):
        if not cgroup_setup()[1]:
            self.skipTest("no cgroup this process may create here (needs root and a writable "
                          "cgroup hierarchy): the env tier then finds a job by its session, "
                          "which no other home shares")
        text = "programs:\n  web:\n    cmd: \"sleep MARK\"\n    starttime: 0\n    isolation: env\n"
        config = self.config(text)
        other_home = os.path.join(self.tmp, "other-home")
        self.start_daemon(config)
        self.start_daemon(config, home=other_home)
        mine = self.wait_state("web", "RUNNING")["pid"]

        def theirs():
            row = self.status(config, home=other_home).get("web")
            return row if row and row["state"] == "RUNNING" else None
        their_pid = wait_for(theirs, what="the other home's web RUNNING")["pid"]
        self.assertNotEqual(mine, their_pid)
        # Both in a cgroup of their own: each name ends in its home's tag.
        units = [f"batman:tm:web_00:{home_tag(h)}" for h in (self.home, other_home)]
        self.assertNotEqual(units[0], units[1])
        for unit in units:
            self.assertTrue(batman_cgroup_dirs(unit), f"no cgroup {unit}")

        self.ctl("stop", "web")
        self.wait_gone(mine)
        time.sleep(0.5)  # a kill of the other one would have landed by now
        self.assertTrue(pid_alive(their_pid), "stopping web in one home killed the other home's web")
        row = theirs()
        self.assertIsNotNone(row, "the other home's web is not RUNNING any more")
        self.assertEqual(row["pid"], their_pid, "the other home's web was killed and restarted")
        self.assertEqual(row["restarts"], 0)
        # Quit, not SIGKILL (tearDown): each supervisor removes its own cgroups on the way out.
        self.ctl("quit")
        self.ctl("quit", config=config, home=other_home)
        for unit in units:
            self.assertEqual(batman_cgroup_dirs(unit), [])


class Output(TaskmasterCase):
    def test_spammer_fills_rotated_files_of_the_configured_size_and_count(self):
        self.start_daemon(self.config(
            "programs:\n  spam:\n    cmd: \"yes spam-spam-spam\"\n"
            "    stdout_maxbytes: 64KB\n    stdout_backups: 2\n"))
        base = os.path.join(self.logs_dir(), "spam_00.out.log")
        wait_for(lambda: os.path.exists(base + ".2"), what="two rotated backups")
        self.ctl("stop", "spam")
        self.assertFalse(os.path.exists(base + ".3"))
        for name in (base + ".1", base + ".2"):
            self.assertEqual(os.path.getsize(name), 64 * 1024, name)
        self.assertLessEqual(os.path.getsize(base), 64 * 1024)
        # Rotation cuts at a byte count, so only the first and last lines may be partial.
        with open(base + ".1") as f:
            self.assertEqual(set(f.read().split("\n")[1:-1]), {"spam-spam-spam"})

    def test_stdout_and_stderr_to_their_files_or_discarded(self):
        out = os.path.join(self.work, "out.log")
        self.start_daemon(self.config(
            f"programs:\n  talk:\n    cmd: \"echo to-out; echo to-err >&2; sleep MARK\"\n"
            f"    stdout: {out}\n    stderr: null\n"))
        self.wait_state("talk", "RUNNING")
        wait_for(lambda: os.path.exists(out) and "to-out" in open(out).read(), what="stdout in its file")
        self.assertFalse(os.path.exists(os.path.join(self.logs_dir(), "talk_00.err.log")))
        self.assertIn("to-out", self.ctl("tail", "talk").stdout)
        r = self.ctl("tail", "talk", "stderr", check=1)
        self.assertIn("discarded", r.stderr)

    def test_tail_follows_new_output(self):
        self.start_daemon(self.config(
            "programs:\n  ticker:\n    cmd: \"i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.1; done\"\n"))
        self.wait_state("ticker", "RUNNING")
        p = subprocess.Popen([bin_path(), "ctl", "--config", os.path.join(self.work, "tm.yaml"), "tail", "ticker", "-f"],
                             env=self.env, stdout=subprocess.PIPE, text=True)
        self.children.append(p)
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(seen) < 15:
            seen.append(p.stdout.readline())
        # A one-shot command to a supervisor that answers is the `batman` launcher's own: no
        # batman-services exec'd (README, batman ctl).
        self.assertEqual(os.path.realpath(f"/proc/{p.pid}/exe"), os.path.realpath(bin_path()))
        p.kill()
        numbers = [int(x) for x in re.findall(r"tick-(\d+)", "".join(seen))]
        self.assertGreaterEqual(len(numbers), 15)
        self.assertEqual(numbers, sorted(numbers))


    def test_log_keeps_every_byte_in_order_while_tail_joins_and_leaves(self):
        # Bursts of numbered lines: the first and last reach the log alone (zero-copy), the
        # middle one while `tail -f` follows (copied to both). Nothing lost, nothing twice.
        self.every_byte_while_tail_follows("")

    def test_a_log_that_never_rotates_is_written_by_the_program_and_tail_f_reads_it(self):
        # stdout_maxbytes 0: the program's stdout is the file itself; `tail -f` reads the
        # file as it grows. The same bursts, the same bytes.
        self.every_byte_while_tail_follows("    stdout_maxbytes: 0\n")
        log = os.path.join(self.logs_dir(), "count_00.out.log")
        self.assertIn(log, [os.readlink(f"/proc/{p}/fd/1") for p in processes_with_marker(self.mark)])

    def every_byte_while_tail_follows(self, extra):
        n = 1_000_000
        self.start_daemon(self.config(
            "programs:\n  count:\n"
            f"    cmd: \"seq 1 {n}; sleep 3; seq {n + 1} {2 * n}; sleep 3; seq {2 * n + 1} {3 * n}; sleep MARK\"\n"
            + extra))
        log = os.path.join(self.logs_dir(), "count_00.out.log")
        first = "".join(f"{i}\n" for i in range(1, n + 1)).encode()
        wait_for(lambda: os.path.exists(log) and os.path.getsize(log) == len(first), what="the first burst")
        p = subprocess.Popen([bin_path(), "ctl", "--config", os.path.join(self.work, "tm.yaml"), "tail", "count", "-f"],
                             env=self.env, stdout=subprocess.PIPE, text=True)
        self.children.append(p)
        guard = threading.Timer(30, p.kill)  # a tail that misses the burst fails, not hangs
        guard.start()
        lines = [p.stdout.readline()]  # the end of the log so far: now it follows
        while lines[-1] and lines[-1] != f"{2 * n}\n":
            lines.append(p.stdout.readline())
        guard.cancel()
        p.kill()
        p.wait()
        self.assertEqual(lines[-1], f"{2 * n}\n", "tail -f did not see the second burst")
        followed = [int(x) for x in lines[1:]]
        self.assertLessEqual(followed[0], n + 1)
        self.assertEqual(followed, list(range(followed[0], 2 * n + 1)))
        expected = "".join(f"{i}\n" for i in range(1, 3 * n + 1)).encode()
        wait_for(lambda: os.path.getsize(log) >= len(expected), what="the last burst")
        with open(log, "rb") as f:
            self.assertTrue(f.read() == expected, "the log is not seq 1..3000000")


class ProgramSees(TaskmasterCase):
    def test_env_workingdir_and_umask_are_what_the_program_sees(self):
        wd = os.path.join(self.work, "wd")
        os.makedirs(wd)
        self.start_daemon(self.config(
            f"programs:\n  look:\n"
            f"    cmd: \"echo FOO=$FOO; echo PORT=$PORT; echo CWD=$(pwd); echo UMASK=$(umask); touch made; sleep MARK\"\n"
            f"    env: {{FOO: bar baz, PORT: 8000}}\n    workingdir: {wd}\n    umask: \"027\"\n"))
        self.wait_state("look", "RUNNING")
        log = os.path.join(self.logs_dir(), "look_00.out.log")
        text = wait_for(lambda: os.path.exists(log) and "UMASK" in (t := open(log).read()) and t, what="output")
        self.assertIn("FOO=bar baz\n", text)
        self.assertIn("PORT=8000\n", text)
        self.assertIn(f"CWD={wd}\n", text)
        self.assertIn("UMASK=0027\n", text)
        made = os.path.join(wd, "made")
        wait_for(lambda: os.path.exists(made), what="the file")
        self.assertEqual(stat.S_IMODE(os.stat(made).st_mode), 0o640)

    def test_user_runs_the_program_as_that_user(self):
        if os.getuid() != 0:
            self.skipTest("running as another user needs root")
        self.start_daemon(self.config("programs:\n  who:\n    cmd: \"id -u; sleep MARK\"\n    user: nobody\n"))
        self.wait_state("who", "RUNNING")
        log = os.path.join(self.logs_dir(), "who_00.out.log")
        text = wait_for(lambda: os.path.exists(log) and open(log).read(), what="output")
        self.assertEqual(text.strip(), str(NOBODY))


RELOAD_BEFORE = """programs:
  keep:
    cmd: "sleep MARK"
    numprocs: 2
  change:
    cmd: "sleep MARK"
  drop:
    cmd: "sleep MARK"
"""
RELOAD_AFTER = """programs:
  keep:
    cmd: "sleep MARK"
    numprocs: 3
  change:
    cmd: "sleep MARK; echo changed"
  add:
    cmd: "sleep MARK"
"""


class Reload(TaskmasterCase):
    def pids(self):
        return {name: row["pid"] for name, row in self.status().items()}

    def wait_all_running(self, names):
        wait_for(lambda: all(self.status().get(n, {}).get("state") == "RUNNING" for n in names),
                 what=f"{names} running")

    def test_reload_keeps_unchanged_restarts_changed_adds_and_removes(self):
        config = self.config(RELOAD_BEFORE)
        daemon = self.start_daemon(config)
        self.wait_all_running(["keep:00", "keep:01", "change", "drop"])
        before = self.pids()
        self.config(RELOAD_AFTER)
        out = self.ctl("reload").stdout
        self.assertIn("added: add", out)
        self.assertIn("removed: drop", out)
        self.wait_all_running(["keep:00", "keep:01", "keep:02", "change", "add"])
        after = self.pids()
        self.assertEqual(after["keep:00"], before["keep:00"])
        self.assertEqual(after["keep:01"], before["keep:01"])
        self.assertNotEqual(after["change"], before["change"])
        self.assertNotIn("drop", after)
        self.wait_gone(before["drop"])
        self.wait_gone(before["change"])
        ev = self.events()
        self.assertIn("reload: added: add; changed: keep, change; removed: drop", ev)

        # numprocs down by SIGHUP: the extra instances stop, the first keeps its pid.
        self.config(RELOAD_AFTER.replace("numprocs: 3", "numprocs: 1"))
        os.kill(daemon, signal.SIGHUP)
        wait_for(lambda: set(self.status()) == {"keep", "change", "add"}, what="keep:01 and keep:02 removed")
        self.assertEqual(self.pids()["keep"], before["keep:00"])
        self.wait_gone(after["keep:01"])
        self.wait_gone(after["keep:02"])

    def test_invalid_config_is_reported_with_file_line_key_and_changes_nothing(self):
        config = self.config(RELOAD_BEFORE)
        self.start_daemon(config)
        self.wait_all_running(["keep:00", "keep:01", "change", "drop"])
        before = self.pids()
        self.config(RELOAD_AFTER.replace("numprocs: 3", "numprocs: many"))
        r = self.ctl("reload", check=1)
        self.assertIn(f"{config}:4: key 'programs.keep.numprocs'", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(self.pids(), before)


class Lifecycle(TaskmasterCase):
    def test_quit_stops_every_program_and_exits(self):
        self.start_daemon(self.config(
            "programs:\n  a:\n    cmd: \"sleep MARK\"\n    numprocs: 3\n  b:\n    cmd: \"sleep MARK & sleep MARK\"\n"))
        wait_for(lambda: len(processes_with_marker(self.mark)) >= 5, what="programs up")
        pid = int(open(os.path.join(self.state_dir(), "supervisor.pid")).read())
        out = self.ctl("quit").stdout
        self.assertIn("stopped every program", out)
        self.wait_gone(pid)
        self.assertEqual(processes_with_marker(self.mark), [])
        self.assertFalse(os.path.exists(os.path.join(self.state_dir(), "control.sock")))
        self.assertFalse(os.path.exists(os.path.join(self.state_dir(), "supervisor.pid")))

    def test_a_supervisor_started_the_moment_quit_returns_is_served_and_keeps_its_pid_file(self):
        # quit returns once the supervisor has closed the connection, which it does after it
        # removed its pid file and stopped listening: the next one, started at once, is not
        # refused as "already serving", and its pid file is not removed by the one before.
        # (20 instances: 20 last states for the writer to flush after quit has answered.)
        config = self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n    numprocs: 20\n    starttime: 0\n")
        pidfile = os.path.join(self.state_dir(), "supervisor.pid")
        pid = self.start_daemon(config)
        for _ in range(5):
            self.wait_state("a:19", "RUNNING")
            self.assertIn("stopped every program", self.ctl("quit").stdout)
            new = self.start_daemon(config)
            self.assertNotEqual(new, pid)
            self.wait_gone(pid)
            with open(pidfile) as f:
                self.assertEqual(int(f.read()), new)
            pid = new
        self.wait_state("a:19", "RUNNING")
        self.assertEqual(len(processes_with_marker(self.mark)), 20)

    def test_quit_while_a_shutdown_is_under_way_returns_when_the_supervisor_is_done(self):
        # SIGTERM starts the shutdown; a program that ignores its stop signal holds it up for
        # stoptime (6 s, past the control socket's 5 s idle timeout). A quit asked meanwhile
        # is answered when every program has stopped, and returns once the supervisor is gone.
        config = self.config("programs:\n  a:\n    cmd: \"trap '' TERM; sleep MARK\"\n"
                             "    starttime: 0\n    stoptime: 6\n")
        pid = self.start_daemon(config)
        self.wait_state("a", "RUNNING")
        started = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        self.assertIn("stopped every program", self.ctl("quit").stdout)
        self.assertGreater(time.monotonic() - started, 5.5)
        self.assertEqual(processes_with_marker(self.mark), [])
        self.start_daemon(config)  # not refused: the old one's sockets are closed

    def test_sigterm_to_the_foreground_supervisor_stops_everything_and_exits_0(self):
        config = self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n    numprocs: 2\n")
        p = self.spawn(config, name="taskmaster")
        wait_for(lambda: len(processes_with_marker(self.mark)) >= 2, what="programs up")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=20), 0)
        self.assertEqual(processes_with_marker(self.mark), [])

    def test_start_stop_restart_answer_per_instance(self):
        self.start_daemon(self.config(
            "programs:\n  w:\n    cmd: \"sleep MARK\"\n    numprocs: 2\n    autostart: false\n    starttime: 0\n"))
        self.assertEqual(self.status()["w:00"]["state"], "STOPPED")
        self.assertEqual(self.ctl("start", "w:01").stdout, "w:01: started\n")
        self.assertEqual(self.status()["w:00"]["state"], "STOPPED")
        out = self.ctl("start", "all", check=1).stdout
        self.assertIn("w:00: started", out)
        self.assertIn("w:01: ERROR (already started)", out)
        old = self.status()["w:00"]["pid"]
        self.assertEqual(self.ctl("restart", "w:00").stdout, "w:00: started\n")
        self.assertNotEqual(self.status()["w:00"]["pid"], old)
        self.assertEqual(self.ctl("stop", "w").stdout, "w:00: stopped\nw:01: stopped\n")
        pid = self.ctl("pid").stdout.strip()
        self.assertEqual(pid, open(os.path.join(self.state_dir(), "supervisor.pid")).read().strip())

    def test_a_pool_of_200_is_accepted_and_instances_past_99_are_named_selected_and_logged(self):
        # numprocs had a cap of 100 (issue 12); instances NAME:100 and up print with 3 digits.
        self.start_daemon(self.config(
            "programs:\n  w:\n    cmd: \"echo hello; exec sleep MARK\"\n    numprocs: 200\n"
            "    autostart: false\n    starttime: 0\n"))
        rows = self.status()
        self.assertEqual(len(rows), 200)
        self.assertIn("w:00", rows)
        self.assertIn("w:199", rows)
        self.assertEqual(self.ctl("start", "w:100", "w:199").stdout, "w:100: started\nw:199: started\n")
        self.wait_state("w:100", "RUNNING")
        self.assertEqual(self.status()["w:99"]["state"], "STOPPED")
        self.assertIn("no such instance 'w:200': w has 200 instance(s), w:00 to w:199",
                      self.ctl("start", "w:200", check=125).stderr)
        wait_for(lambda: os.path.exists(os.path.join(self.state_dir(), "w_100.json")), what="w_100.json")
        log = os.path.join(self.logs_dir(), "w_100.out.log")
        wait_for(lambda: os.path.exists(log) and open(log).read() == "hello\n", what="w_100.out.log")
        self.assertEqual(self.ctl("stop", "w:100", "w:199").stdout, "w:100: stopped\nw:199: stopped\n")

    def test_second_supervisor_for_the_same_config_is_refused(self):
        config = self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n")
        self.start_daemon(config)
        r = self.batman(config, name="taskmaster", check=125)
        self.assertIn("already serving", r.stderr)

    def test_bad_config_at_start_names_file_line_key_and_starts_nothing(self):
        config = self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n    stopsignal: BOGUS\n")
        r = self.batman(config, "--daemon", name="taskmaster", check=125)
        self.assertIn(f"{config}:4: key 'programs.a.stopsignal'", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertEqual(processes_with_marker(self.mark), [])


class ControlSocket(TaskmasterCase):
    def test_socket_is_0600_and_other_users_are_refused(self):
        sock_dir = os.path.join(self.tmp, "sock")
        os.makedirs(sock_dir)
        os.chmod(sock_dir, 0o755)
        sock = os.path.join(sock_dir, "ctl.sock")
        self.start_daemon(self.config(f"socket: {sock}\nprograms:\n  a:\n    cmd: \"sleep MARK\"\n"))
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)
        if os.getuid() != 0:
            return
        # Even with the file opened up, SO_PEERCRED keeps other users out.
        os.chmod(sock, 0o666)
        r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
                            bin_path(), "ctl", "--socket", sock, "status"],
                           env=self.env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("permission denied", r.stderr)
        self.assertEqual(r.stdout, "")

    def test_ctl_config_finds_the_configs_own_socket_with_or_without_the_pointer(self):
        sock = os.path.join(self.tmp, "own.sock")
        config = self.config(f"socket: {sock}\nprograms:\n  a:\n    cmd: \"sleep MARK\"\n")
        self.start_daemon(config)
        pointer = os.path.join(self.state_dir(), "control.sock")
        self.assertEqual(os.readlink(pointer), sock)
        self.assertIn("a ", self.ctl("status").stdout)
        # The pointer gone (removed by hand, or never made): ctl reads the config's socket.
        os.unlink(pointer)
        self.assertIn("a ", self.ctl("status").stdout)
        # A config that no longer parses still names the socket the pointer leads to.
        os.symlink(sock, pointer)
        self.config(f"socket: {sock}\nprograms:\n  a:\n    cmd: \"sleep MARK\"\n    frobnicate: 1\n")
        self.assertIn("a ", self.ctl("status").stdout)

    def test_ctl_config_with_its_own_socket_never_talks_to_another_supervisor_of_its_project(self):
        # tm.yaml's supervisor listens on state/control.sock; another tm.yaml (same project)
        # that sets its own socket is asked there, not at the project's socket.
        supervisor = self.start_daemon(self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n"))
        other_dir = os.path.join(self.work, "other")
        os.makedirs(other_dir)
        other = os.path.join(other_dir, "tm.yaml")
        nowhere = os.path.join(self.tmp, "nowhere.sock")
        with open(other, "w") as f:
            f.write(f"socket: {nowhere}\nprograms:\n  a:\n    cmd: \"sleep {self.mark}\"\n")
        r = self.ctl("quit", config=other, check=125)
        self.assertIn(f"no supervisor is listening on {nowhere}", r.stderr)
        self.assertTrue(pid_alive(supervisor))
        # The same for a socket spelled with escapes, or in UTF-16, as YAML allows.
        text = f"\nprograms:\n  a:\n    cmd: \"sleep {self.mark}\"\n"
        for raw in (('"soc\\x6bet": ' + nowhere + text).encode(), (f"socket: {nowhere}" + text).encode("utf-16")):
            with open(other, "wb") as f:
                f.write(raw)
            r = self.ctl("quit", config=other, check=125)
            self.assertIn(f"no supervisor is listening on {nowhere}", r.stderr)
            self.assertTrue(pid_alive(supervisor))

    def test_a_ctl_ignores_the_signal_that_stops_a_batch_task(self):
        # `batman stop PROJECT TASK` sends SIGRTMIN+2 to a batch; any other batman ignores it,
        # the launcher's own ctl too.
        self.start_daemon(self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n"))
        self.wait_state("a", "RUNNING")
        p = subprocess.Popen([bin_path(), "ctl", "--config", os.path.join(self.work, "tm.yaml"), "tail", "a", "-f"],
                             env=self.env, stdout=subprocess.DEVNULL)
        self.children.append(p)
        wait_for(lambda: os.path.realpath(f"/proc/{p.pid}/exe") == os.path.realpath(bin_path()) and
                 "ctl" in open(f"/proc/{p.pid}/cmdline").read(), what="ctl running")
        time.sleep(0.2)
        os.kill(p.pid, signal.SIGRTMIN + 2)
        time.sleep(0.2)
        self.assertIsNone(p.poll(), "ctl died of SIGRTMIN+2")
        p.kill()
        p.wait()

    def test_bad_requests_get_one_line_and_the_supervisor_keeps_serving(self):
        self.start_daemon(self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n"))
        r = self.ctl("frobnicate", check=125)
        self.assertIn("unknown command 'frobnicate'", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        r = self.ctl("start", "nosuch", check=125)
        self.assertIn("no such program 'nosuch'", r.stderr)
        r = self.ctl("stop", "a:07", check=125)
        self.assertIn("no such instance 'a:07'", r.stderr)
        # Raw garbage and an endless line straight on the socket.
        import socket as socketlib
        path = os.path.join(self.state_dir(), "control.sock")
        s = socketlib.socket(socketlib.AF_UNIX)
        s.connect(path)
        s.sendall(b"\xff\xfe\x00garbage\n" + b"x" * 10000)
        data = b""
        s.settimeout(10)
        while b"longer than" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        replies = [json.loads(line) for line in data.decode().splitlines()]
        self.assertEqual(replies[0]["exit"], 125)
        self.assertIn("longer than", replies[-1]["error"])
        self.wait_state("a", "RUNNING")

    def test_status_json_and_text_agree(self):
        self.start_daemon(self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n    numprocs: 2\n    starttime: 0\n"))
        self.wait_state("a:01", "RUNNING")
        rows = json.loads(self.ctl("status", "--json").stdout)
        text = self.ctl("status").stdout.splitlines()
        self.assertEqual(len(rows), 2)
        for row, line in zip(rows, text):
            self.assertEqual(line.split()[:2], [row["name"], row["state"]])
            self.assertIn(f"pid {row['pid']}, uptime", line)

    def test_ctl_without_a_supervisor_says_how_to_start_one(self):
        self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n")
        r = self.ctl("status", check=125)
        self.assertIn("no supervisor is listening", r.stderr)


@unittest.skipUnless(shutil.which("tmux"), "tmux is not installed")
class Shell(TaskmasterCase):
    def setUp(self):
        super().setUp()
        # Not the marker: the tmux server's command line holds its socket name.
        self.tmux_socket = "batman-test-%d" % random.randint(1, 1 << 30)

    def tearDown(self):
        subprocess.run(["tmux", "-L", self.tmux_socket, "kill-server"], capture_output=True)
        super().tearDown()

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.tmux_socket] + list(args), capture_output=True, text=True,
                              check=True).stdout

    session = "tm"

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def wait_screen(self, pattern, timeout=15):
        try:
            return wait_for(lambda: re.search(pattern, self.screen(), re.M), timeout=timeout,
                            what=f"{pattern!r} on the terminal")
        except AssertionError as e:
            raise AssertionError(f"{e}; the terminal shows:\n{self.screen()}") from None

    def open_shell(self, config):
        cmd = f"env BATMAN_HOME={self.home} {bin_path('taskmaster')} {config}; echo EXITED=$?; sleep 60"
        self.tmux("new-session", "-d", "-s", self.session, "-x", "150", "-y", "40", cmd)
        self.wait_screen(r"^taskmaster>")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", self.session, *keys)

    def test_prompt_commands_completion_and_history_across_runs(self):
        config = self.config(
            "programs:\n  webserver:\n    cmd: \"sleep MARK\"\n    starttime: 0\n  worker:\n    cmd: \"sleep MARK\"\n")
        self.open_shell(config)
        self.keys("status", "Enter")
        self.wait_screen(r"^webserver\s+RUNNING\s+pid \d+, uptime")
        # Tab completes a command, then a program name.
        self.keys("resta", "Tab")
        self.wait_screen(r"taskmaster> restart\s*$")
        self.keys("webs", "Tab")
        self.wait_screen(r"taskmaster> restart webserver")
        self.keys("Enter")
        self.wait_screen(r"^webserver: started")
        self.keys("quit", "Enter")
        self.wait_screen(r"^EXITED=0")
        self.assertEqual(processes_with_marker(self.mark), [])
        # A second run finds the first run's commands in its history.
        self.session = "tm2"
        self.open_shell(config)
        self.keys("Up", "Up")
        self.wait_screen(r"taskmaster> restart webserver")
        self.keys("C-u", "C-d")
        self.wait_screen(r"^EXITED=0")
        self.assertEqual(processes_with_marker(self.mark), [])

    def test_ctl_interactive_shell(self):
        config = self.config("programs:\n  api:\n    cmd: \"sleep MARK\"\n    starttime: 0\n")
        self.start_daemon(config)
        self.wait_state("api", "RUNNING")
        cmd = f"env BATMAN_HOME={self.home} {bin_path()} ctl --config {config}; echo EXITED=$?; sleep 60"
        self.tmux("new-session", "-d", "-s", "tm", "-x", "150", "-y", "40", cmd)
        self.wait_screen(r"^taskmaster>")
        self.keys("stop ap", "Tab")
        self.wait_screen(r"taskmaster> stop api")
        self.keys("Enter")
        self.wait_screen(r"^api: stopped")
        self.keys("status", "Enter")
        self.wait_screen(r"^api\s+STOPPED")
        self.keys("exit", "Enter")
        self.wait_screen(r"^EXITED=0")
        self.assertEqual(self.status()["api"]["state"], "STOPPED")


if __name__ == "__main__":
    unittest.main()
