"""The supervisor against faults and hostile clients (issue 11): a taskmaster killed with
SIGKILL, control-socket clients that idle, pipeline without reading or half-close, a config
that needs more fds than the limit, a batman-multi start race, idle HTTP connections to the
--monitor page."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from harness import NOBODY, BatmanTestCase, comm, pid_alive, wait_for
from test_taskmaster import TaskmasterCase


def sleeps_with(mark):
    """Live `sleep MARK` processes (not the shells around them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", mark.encode()] and pid_alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class KilledSupervisor(TaskmasterCase):
    CONFIG = ("programs:\n"
              "  a:\n    cmd: 'sh -c \"sleep MARK\"'\n    starttime: 0\n"
              "  b:\n    cmd: 'sh -c \"sleep MARK\"'\n    starttime: 0\n")

    def test_kill_9_then_restart_kills_the_leftovers_says_so_and_runs_only_new_instances(self):
        config = self.config(self.CONFIG)
        # A bystander with the same command line, started by nobody's supervisor.
        bystander = subprocess.Popen(["sleep", self.mark], start_new_session=True)
        self.addCleanup(bystander.wait)
        self.addCleanup(bystander.kill)
        first = self.start_daemon(config)
        self.wait_state("a", "RUNNING")
        self.wait_state("b", "RUNNING")
        old = wait_for(lambda: [p for p in sleeps_with(self.mark) if p != bystander.pid] if
                       len(sleeps_with(self.mark)) == 3 else None, what="both programs' sleeps")
        # The next supervisor finds the leftovers through the state files, which the first
        # writes on its state writer's thread after ctl shows RUNNING: written before the kill.
        self.wait_record("a")
        self.wait_record("b")
        os.kill(first, signal.SIGKILL)
        self.wait_gone(first)
        # The fault: the programs' own shells die with the supervisor, their sleeps do not.
        time.sleep(0.2)
        self.assertEqual([p for p in old if pid_alive(p)], old)

        r = self.batman(config, "--daemon", name="taskmaster", check=0)
        # Each program left its inner shell and that shell's sleep.
        said = re.search(r"killed (\d+) processes left running .*", r.stderr)
        self.assertTrue(said, r.stderr)
        self.assertEqual(int(said.group(1)), 4, r.stderr)
        for pid in old:
            self.assertIn(f"sleep (pid {pid})", said.group(0))
        self.wait_state("a", "RUNNING")
        self.wait_state("b", "RUNNING")
        for pid in old:
            self.assertFalse(pid_alive(pid), f"leftover sleep {pid} survived the restart")
        now = wait_for(lambda: [p for p in sleeps_with(self.mark) if p != bystander.pid] if
                       len(sleeps_with(self.mark)) == 3 else None, what="the new instances' sleeps")
        self.assertEqual(len(now), 2)
        self.assertTrue(pid_alive(bystander.pid), "a process batman did not start was killed")
        self.assertRegex(self.events(), r"killed 4 processes left running by a supervisor that did not stop "
                                        rf"its programs \(pid {first}\)")
        # A clean restart has nothing to report. ctl quit returns once the supervisor has
        # closed its sockets; its pid is waited for too, as a script would.
        with open(os.path.join(self.state_dir(), "supervisor.pid")) as f:
            second = int(f.read())
        self.ctl("quit")
        self.wait_gone(second)
        r = self.batman(config, "--daemon", name="taskmaster", check=0)
        self.assertNotIn("killed", r.stderr)


class KilledSupervisorUnprivileged(KilledSupervisor):
    user = NOBODY


class HostileControlClients(TaskmasterCase):
    CONFIG = "programs:\n  a:\n    cmd: \"sleep MARK\"\n    numprocs: 2\n    starttime: 0\n"

    def socket_path(self):
        return os.path.join(self.state_dir(), "control.sock")

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.socket_path())
        return s

    def timed_status(self):
        started = time.monotonic()
        r = self.ctl("status")
        return time.monotonic() - started, r

    def test_200_idle_and_pipelining_connections_neither_lock_out_ctl_nor_grow_the_supervisor(self):
        pid = self.start_daemon(self.config(self.CONFIG))
        self.wait_state("a:01", "RUNNING")
        for _ in range(20):
            self.ctl("status")
        rss_start = rss_kb(pid)
        fds_start = fd_count(pid)

        idle = [self.connect() for _ in range(190)]
        stop = threading.Event()
        pipeliners = []
        sent = [0]

        def pipeline(s):
            s.setblocking(False)
            chunk = b"status\n" * 512
            while not stop.is_set():
                try:
                    sent[0] += s.send(chunk)
                except BlockingIOError:
                    time.sleep(0.02)
                except OSError:
                    return  # dropped by the supervisor

        for _ in range(10):
            s = self.connect()
            t = threading.Thread(target=pipeline, args=(s,), daemon=True)
            t.start()
            pipeliners.append((s, t))
        try:
            # Pipeliners that never read their answers are throttled (their replies fill the
            # socket): 256 KB of requests (36,000 commands) is enough to keep the supervisor
            # busy, and a loaded CI machine got no further than ~1 MB in 20 s.
            wait_for(lambda: sent[0] > 256_000, timeout=20, what="the pipeliners to send 256 KB")
            took, r = min((self.timed_status() for _ in range(3)), key=lambda x: x[0])
            self.assertLess(took, 1.0, f"ctl status took {took:.2f}s with 200 hostile connections")
            self.assertEqual(len(r.stdout.splitlines()), 2)
            self.assertIn("RUNNING", r.stdout)

            # Idle connections are closed after a few seconds: the peer sees EOF.
            first = idle[0]
            first.settimeout(15)
            self.assertEqual(first.recv(100), b"")

            # 10 s of pipelining later, the supervisor has not grown.
            time.sleep(10)
            rss_now = rss_kb(pid)
            self.assertLess(rss_now, 2 * rss_start, f"RSS grew from {rss_start} kB to {rss_now} kB")
            # The ones that never read are dropped: the supervisor's fds come back down.
            wait_for(lambda: fd_count(pid) <= fds_start + 2, timeout=20,
                     what=f"hostile connections to be closed ({fd_count(pid)} fds, {fds_start} at start)")
            took, r = self.timed_status()
            self.assertLess(took, 1.0)
        finally:
            stop.set()
            for s, t in pipeliners:
                t.join(5)
                s.close()
            for s in idle:
                s.close()
        self.assertTrue(pid_alive(pid))

    def test_half_close_after_an_unterminated_line_gets_its_answer(self):
        self.start_daemon(self.config(self.CONFIG))
        self.wait_state("a:01", "RUNNING")
        s = self.connect()
        s.settimeout(10)
        s.sendall(b"status --json")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        replies = [json.loads(line) for line in data.decode().splitlines()]
        self.assertEqual(replies[-1], {"exit": 0})
        rows = json.loads(replies[0]["out"])
        self.assertEqual([r["name"] for r in rows], ["a:00", "a:01"])

    def test_a_command_then_idle_keeps_the_answer_and_closes_later(self):
        self.start_daemon(self.config(self.CONFIG))
        s = self.connect()
        s.settimeout(20)
        s.sendall(b"version\n")
        reply = b""
        while b'"exit"' not in reply:
            chunk = s.recv(65536)
            self.assertTrue(chunk, reply)
            reply += chunk
        self.assertIn(b'"exit":0', reply)
        started = time.monotonic()
        self.assertEqual(s.recv(100), b"")
        waited = time.monotonic() - started
        self.assertGreater(waited, 2.0)
        self.assertLess(waited, 15.0)
        s.close()


class FdLimit(TaskmasterCase):
    def limited(self, *args, nofile=256, check=None):
        cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + self.command(args, "taskmaster")
        r = subprocess.run(cmd, env=self.env, cwd=self.work, capture_output=True, text=True, timeout=60)
        if check is not None:
            self.assertEqual(r.returncode, check, r.stderr)
        return r

    # Three programs of 100 instances each: 300 instances.
    BIG = "".join(f"  {n}:\n    cmd: \"sleep MARK\"\n    numprocs: 100\n    starttime: 0\n" for n in "abc")

    def test_a_config_needing_more_fds_than_allowed_is_refused_before_any_file_is_made(self):
        config = self.config("programs:\n" + self.BIG)
        r = self.limited(config, "--daemon", check=125)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertRegex(lines[0], r"300 instances need about \d+ file descriptors, but the limit "
                                   r"\(RLIMIT_NOFILE\) is 256")
        self.assertFalse(os.path.exists(os.path.join(self.home, "tm")), "files were created")
        self.assertEqual(sleeps_with(self.mark), [])

    def test_a_reload_that_would_exceed_the_limit_is_refused_and_changes_nothing(self):
        config = self.config("programs:\n  a:\n    cmd: \"sleep MARK\"\n    numprocs: 20\n    starttime: 0\n")
        r = self.limited(config, "--daemon", check=0)
        self.daemons.append(os.path.join(self.state_dir(), "supervisor.pid"))
        self.wait_state("a:19", "RUNNING")
        before = {n: row["pid"] for n, row in self.status().items()}
        logs_before = sorted(os.listdir(self.logs_dir()))
        self.config("programs:\n" + self.BIG)
        r = self.ctl("reload", check=1)
        self.assertIn("file descriptors", r.stderr)
        self.assertIn("nothing was changed", r.stderr)
        after = {n: row["pid"] for n, row in self.status().items()}
        self.assertEqual(after, before)
        self.assertEqual(sorted(os.listdir(self.logs_dir())), logs_before)
        self.assertEqual(len(sleeps_with(self.mark)), 20)


class MultiRace(BatmanTestCase):
    def test_losers_of_a_start_race_name_the_winner(self):
        racers = [self.spawn("same", "sleep 5", name="batman-multi") for _ in range(5)]
        deadline = time.monotonic() + 30
        while sum(p.poll() is not None for p in racers) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        running = [p for p in racers if p.poll() is None]
        self.assertEqual(len(running), 1, [p.returncode for p in racers])
        winner = running[0]
        for p in racers:
            if p is winner:
                continue
            err = p.stderr.read()
            self.assertEqual(p.returncode, 125, err)
            self.assertIn(f"batman pid {winner.pid}", err)
            self.assertRegex(err, r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
            refusals = [line for line in err.splitlines() if "already running" in line]
            self.assertEqual(len(refusals), 1, err)
        self.assertEqual(winner.wait(30), 0)


class MonitorIdleConnections(BatmanTestCase):
    def test_eight_idle_connections_do_not_delay_the_page(self):
        p = self.batman("mon", "sleep 300", "--detach", "--monitor", name="batman-parallel")
        self.assertEqual(p.returncode, 0, p.stderr)
        try:
            self.check_page_with_idle_connections()
        finally:
            self.batman("stop", "mon")
            self.batman("dashboard", "--stop")

    def check_page_with_idle_connections(self):
        url = wait_for(lambda: self.states("mon")[0].get("monitor_url"))
        port = int(re.search(r":(\d+)/", url).group(1))
        held = []
        for i in range(8):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                # Half of them keep-alive connections that had one request answered.
                s.sendall(f"GET /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                s.settimeout(5)
                self.assertIn(b"200", s.recv(65536))
            held.append(s)
        try:
            started = time.monotonic()
            with urllib.request.urlopen(url, timeout=10) as r:
                self.assertIn(b"batman", r.read())
            took = time.monotonic() - started
            self.assertLess(took, 1.0, f"the page took {took:.2f}s with 8 idle connections")
        finally:
            for s in held:
                s.close()
