"""What batman does with runs it no longer watches (issue 11): `stop` and `clean` act only on
what can be shown to be the run's own (pid start times, batman's own worktree and cgroup
names), a run whose batman was killed with -9 can still be stopped whole (setsid children
included), its cgroups are cleaned, and the env tier holds --memory/--cpus/--pids."""
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

from harness import (NOBODY, BatmanTestCase, batman_cgroup_dirs, cgroup_setup, pid_alive,
                     processes_with_marker, wait_for)


def marker():
    return "9" + str(uuid.uuid4().int % 10**8).zfill(8)


def sleeps(mark):
    """Pids of live `sleep MARK...` processes (not the shell whose command line names them)."""
    found = []
    for pid in processes_with_marker(mark):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0] == b"sleep":
                    found.append(pid)
        except OSError:
            pass
    return found


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def cgroups_writable():
    """Whether this (root) test can make cgroups (v1 hierarchies or a cgroup2 with controllers)."""
    return cgroup_setup()[1]


class LostRunBase(BatmanTestCase):
    def setUp(self):
        super().setUp()
        self.hosts = []

    def tearDown(self):
        for p in self.hosts:
            if p.poll() is None:
                p.kill()
                p.wait()
        super().tearDown()

    def host_sleep(self, new_session):
        """A process that has nothing to do with batman (started outside it)."""
        p = subprocess.Popen(["sleep", "1000"], start_new_session=new_session)
        self.hosts.append(p)
        wait_for(lambda: start_time(p.pid) > 0)
        return p

    def make_project(self, project):
        self.batman(project, "true", "--isolation", "env", name="batman-parallel", check=0)

    def plant(self, project, run_id, **fields):
        """Write a state file as a job that can write $BATMAN_HOME/<project>/state could."""
        state = {"schema": 1, "project": project, "run_id": run_id, "kind": "parallel",
                 "command": "sleep 1000", "cwd": "/", "status": "running",
                 "started_at": "2026-01-01T00:00:00Z", "log": f"logs/{run_id}.log",
                 "isolation": {"tier": "env", "profile": "host", "skipped": [], "unenforced": []}}
        state.update(fields)
        state = {k: v for k, v in state.items() if v is not None}
        path = os.path.join(self.home, project, "state", run_id + ".json")
        with open(path, "w") as f:
            json.dump(state, f)
        if self.user is not None:
            os.chown(path, self.user, self.user)
        return path

    def dead_pid(self):
        p = subprocess.Popen(["true"])
        p.wait()
        return p.pid


class Stop(LostRunBase):
    def test_stop_never_signals_a_pid_the_record_cannot_vouch_for(self):
        self.make_project("fake")
        me = os.getpid()
        for leader in (True, False):
            host = self.host_sleep(new_session=leader)
            real = start_time(host.pid)
            variants = {
                "zero": {"pid_start_time": 0},
                "missing": {"pid_start_time": None},
                "wrong": {"pid_start_time": real + 7},
                # Its true start time (anyone can read it): its environment names no run.
                "right": {"pid_start_time": real},
            }
            batmen = {
                "dead": {"batman_pid": self.dead_pid(), "batman_start_time": 1},
                "live0": {"batman_pid": me, "batman_start_time": 0},
                # The right start time of a live process that is not a batman.
                "livereal": {"batman_pid": me, "batman_start_time": start_time(me)},
            }
            for vname, v in variants.items():
                for bname, b in batmen.items():
                    with self.subTest(leader=leader, pid_start_time=vname, batman=bname):
                        run_id = f"f{vname}{bname}"
                        self.plant("fake", run_id, pid=host.pid, **v, **b)
                        p = self.batman("stop", "fake", run_id, "--grace", "1s")
                        lines = [l for l in p.stderr.splitlines() if l.strip()]
                        self.assertNotEqual(p.returncode, 0, p.stderr)
                        self.assertEqual(len(lines), 1, p.stderr)
                        self.assertIn("nothing signalled" if bname != "livereal" else "not a batman of project",
                                      lines[0])
                        if vname == "right" and bname != "livereal":
                            self.assertIn("does not name run", lines[0])
                        # --all must not reach it either.
                        self.batman("stop", "fake", "--all", "--grace", "1s")
                        self.assertTrue(pid_alive(host.pid), "the host process was killed")
                        os.unlink(os.path.join(self.home, "fake", "state", run_id + ".json"))
            self.assertIsNone(host.poll())

    def test_lost_run_whose_pid_was_reused_is_not_killed(self):
        m = marker()
        p = self.batman("reuse", f"exec sleep {m}", "--detach", "--isolation", "env", name="batman-parallel", check=0)
        run_id = p.stdout.strip()
        wait_for(lambda: processes_with_marker(m), what="the job")
        st = self.states("reuse")[0]
        os.kill(st["batman_pid"], signal.SIGKILL)
        wait_for(lambda: processes_with_marker(m) == [], what="the job to die with its batman")
        # The pid the record names now belongs to someone else (as after a pid wrap): the
        # record keeps the job's start time.
        host = self.host_sleep(new_session=True)
        path = os.path.join(self.home, "reuse", "state", run_id + ".json")
        with open(path) as f:
            state = json.load(f)
        state["pid"] = host.pid
        with open(path, "w") as f:
            json.dump(state, f)
        self.assertEqual(self.ps_json()[0]["status"], "lost")
        p = self.batman("stop", "reuse", run_id, "--grace", "1s")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another process now", p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertTrue(pid_alive(host.pid))
        # clean takes the run and the cgroups its killed batman left.
        self.batman("clean", "reuse", check=0)
        self.assertEqual(self.states("reuse"), [])
        self.assertEqual(batman_cgroup_dirs(f"batman:reuse:{run_id}"), [])
        self.assertTrue(pid_alive(host.pid))


class Clean(LostRunBase):
    def git(self, cwd, *args):
        return subprocess.run(["git", "-C", cwd] + list(args), check=True, capture_output=True, text=True)

    def setUp(self):
        super().setUp()
        self.git(self.work, "init", "-q")
        with open(os.path.join(self.work, "file.txt"), "w") as f:
            f.write("committed\n")
        self.git(self.work, "add", "file.txt")
        self.git(self.work, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")

    def test_clean_removes_only_the_runs_own_registered_worktree(self):
        host_wt = os.path.join(self.tmp, "hostwt")
        self.git(self.work, "worktree", "add", "-q", "--detach", host_wt)
        with open(os.path.join(host_wt, "precious.txt"), "w") as f:
            f.write("uncommitted\n")
        # A real run whose worktree is kept (it failed), and a forged record naming the host's.
        p = self.batman("wt", "pwd; exit 3", "--worktree", "--isolation", "env", name="batman-parallel")
        self.assertEqual(p.returncode, 3, p.stderr)
        kept = p.stdout.strip()
        self.assertTrue(os.path.isdir(kept))
        self.plant("wt", "forged", status="failed", exit_code=1, ended_at="2026-01-01T00:00:01Z",
                   pid=self.dead_pid(), pid_start_time=1, worktree=host_wt)
        c = self.batman("clean", "wt", check=0)
        self.assertIn("left alone", c.stderr)
        self.assertTrue(os.path.isfile(os.path.join(host_wt, "precious.txt")))
        listed = self.git(self.work, "worktree", "list", "--porcelain").stdout
        self.assertIn(f"worktree {host_wt}", listed)
        self.assertNotIn(kept, listed)
        self.assertFalse(os.path.exists(kept))
        self.assertEqual(self.states("wt"), [])

    def test_a_symlinked_own_worktree_is_not_followed(self):
        host_wt = os.path.join(self.tmp, "hostwt")
        self.git(self.work, "worktree", "add", "-q", "--detach", host_wt)
        with open(os.path.join(host_wt, "precious.txt"), "w") as f:
            f.write("uncommitted\n")
        self.make_project("ln")
        os.symlink(host_wt, os.path.join(self.home, "ln", "worktrees", "linked"))
        self.plant("ln", "linked", status="failed", exit_code=1, ended_at="2026-01-01T00:00:01Z",
                   pid=self.dead_pid(), pid_start_time=1,
                   worktree=os.path.join(self.home, "ln", "worktrees", "linked"))
        c = self.batman("clean", "ln", check=0)
        self.assertIn("not a directory", c.stderr)
        self.assertTrue(os.path.isfile(os.path.join(host_wt, "precious.txt")))
        self.assertIn(f"worktree {host_wt}", self.git(self.work, "worktree", "list", "--porcelain").stdout)


class KilledBatman(LostRunBase):
    """kill -9 of an env-tier batman: the run reads as lost, and `stop` takes down every
    process of its job, the setsid one included."""

    def run_and_kill(self, project):
        m = marker()
        # The shell waits (it does not exec its last command): it is the leader that the
        # parent-death signal takes down with batman; both sleeps outlive it.
        p = self.batman(project, f"setsid sleep {m} & sleep {m}1 & wait", "--detach", "--isolation", "env",
                        name="batman-parallel", check=0)
        run_id = p.stdout.strip()
        wait_for(lambda: len(sleeps(m)) == 2, what="both sleeps")
        st = self.states(project)[0]
        os.kill(st["batman_pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(st["batman_pid"]))
        wait_for(lambda: not pid_alive(st["pid"]), what="the job's leader to die with batman")
        self.assertEqual(len(sleeps(m)), 2, "both sleeps outlive batman")
        rows = self.ps_json()
        self.assertEqual([r["status"] for r in rows], ["lost"])
        return m, run_id

    def test_stop_of_a_killed_env_run_leaves_nothing(self):
        m, run_id = self.run_and_kill("kill9")
        if self.user is None and cgroups_writable():
            # Every process of the job is in its own cgroup.
            dirs = batman_cgroup_dirs(f"batman:kill9:{run_id}")
            self.assertTrue(dirs)
            for pid in processes_with_marker(m):
                with open(f"/proc/{pid}/cgroup") as f:
                    self.assertIn(f"/batman/batman:kill9:{run_id}", f.read())
        self.batman("clean", "kill9", check=0)  # a live lost run is left alone
        self.assertEqual(len(self.states("kill9")), 1)
        self.batman("stop", "kill9", run_id, "--grace", "1s", check=0)
        wait_for(lambda: processes_with_marker(m) == [], timeout=10, what="every sleep gone")
        self.assertEqual(self.states("kill9")[0]["status"], "killed")
        self.assertEqual(batman_cgroup_dirs(f"batman:kill9:{run_id}"), [])


class KilledBatmanNobody(KilledBatman):
    """The same without any writable cgroup: the job's session and its environment
    (BATMAN_PROJECT/BATMAN_RUN_ID) find the setsid child."""
    user = NOBODY


class StaleCgroups(LostRunBase):
    def test_clean_removes_a_killed_firejail_runs_cgroups(self):
        if not cgroups_writable():
            self.skipTest("needs root and writable cgroups")
        probe = self.batman("fjprobe", "true", "--isolation", "firejail", name="batman-parallel")
        if probe.returncode != 0:
            self.skipTest(f"firejail tier unavailable: {probe.stderr.strip()}")
        m = marker()
        p = self.batman("fj", f"sleep {m}", "--detach", "--isolation", "firejail", "--memory", "64M",
                        name="batman-parallel", check=0)
        run_id = p.stdout.strip()
        unit = f"batman:fj:{run_id}"
        wait_for(lambda: processes_with_marker(m), what="the job")
        dirs = wait_for(lambda: batman_cgroup_dirs(unit), what="the job's cgroups")
        # v1: the freezer (to find and kill the job) and memory (the limit); v2: one directory.
        self.assertEqual(len(dirs), 2 if cgroup_setup()[0] == 1 else 1, dirs)
        st = self.states("fj")[0]
        os.kill(st["batman_pid"], signal.SIGKILL)
        # ... and its job: every process of its cgroup.
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs")) as f:
                for pid in f.read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        wait_for(lambda: processes_with_marker(m) == [] and not pid_alive(st["batman_pid"]))

        def empty():
            for d in dirs:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    if f.read().strip():
                        return False
            return True
        wait_for(empty, what="the cgroups to empty")
        self.assertEqual(batman_cgroup_dirs(unit), dirs, "batman -9 leaves its cgroups")
        self.batman("clean", "fj", check=0)
        self.assertEqual(batman_cgroup_dirs(unit), [])
        self.assertEqual(self.states("fj"), [])


# A profile the env tier can apply in full, so that `unenforced` can only be about limits.
PLAIN_PROFILE = """name: plain
description: nothing but the limits given on the command line
namespaces: []
network: host
filesystem: {read_only: [], read_write: [/], tmpfs: [], hide: []}
capabilities: {drop: none, keep: []}
no_new_privs: false
limits: {memory: null, cpus: null, pids: null, nofile: null}
env: {clear: false, keep: [], set: {}}
die_with_parent: true
"""


class EnvLimits(BatmanTestCase):
    def setUp(self):
        super().setUp()
        if not cgroups_writable():
            self.skipTest("needs root and writable cgroups")
        self.profile = os.path.join(self.tmp, "plain.yaml")
        with open(self.profile, "w") as f:
            f.write(PLAIN_PROFILE)

    def batman(self, *args, **kw):
        if kw.get("name") == "batman-parallel":
            args = args + ("--profile", self.profile)
        return super().batman(*args, **kw)

    def test_pids_limit_holds_a_fork_loop(self):
        m = marker()
        loop = f"i=0; while [ $i -lt 40 ]; do sleep {m} & i=$((i+1)); done; echo all-started"
        p = self.batman("lim", loop, "--isolation", "env", "--pids", "5", "--timeout", "30s",
                        name="batman-parallel", timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertNotIn("all-started", p.stdout)
        self.assertIn("fork", p.stderr.lower())
        st = self.states("lim")[0]
        self.assertEqual(st["isolation"]["unenforced"], [])
        self.assertEqual(st["limits"]["pids"], "5")
        wait_for(lambda: processes_with_marker(m) == [], what="the job's sleeps gone")
        # The same loop without the limit gets all its processes.
        p = self.batman("lim", loop, "--isolation", "env", "--pids", "100",
                        name="batman-parallel", timeout=60)
        self.assertIn("all-started", p.stdout, p.stderr)

    def test_memory_limit_kills_a_big_allocation(self):
        if not shutil.which("python3"):
            self.skipTest("python3 is not installed for the job to use")
        p = self.batman("mem", "exec python3 -c \"b = b'x' * (256 << 20); print('allocated')\"",
                        "--isolation", "env", "--memory", "32M", name="batman-parallel", timeout=60)
        self.assertEqual(p.returncode, 128 + signal.SIGKILL, (p.stdout, p.stderr))
        self.assertNotIn("allocated", p.stdout)
        self.assertEqual(self.states("mem")[0]["isolation"]["unenforced"], [])

    def test_cpu_limit_is_enforced_and_too_small_is_refused(self):
        p = self.batman("cpu", "true", "--isolation", "env", "--cpus", "0.001", name="batman-parallel")
        self.assertEqual(p.returncode, 125)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("--cpus", lines[0])
        self.assertIn("0.01", lines[0])
        p = self.batman("cpu", "cat /proc/self/cgroup", "--isolation", "env", "--cpus", "0.5",
                        name="batman-parallel", check=0)
        st = self.states("cpu")[0]
        self.assertEqual(st["isolation"]["unenforced"], [])
        # v1: the cpu hierarchy's line; v2: the unified one ("0::/...").
        cpu_line = [l for l in p.stdout.splitlines()
                    if "cpu" in l.split(":")[1].split(",") or l.startswith("0::")]
        self.assertTrue(any("/batman/batman:cpu:" in l for l in cpu_line), p.stdout)
