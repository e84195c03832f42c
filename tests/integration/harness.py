"""Shared helpers for integration tests: they drive the installed batman binaries in a
temporary $BATMAN_HOME and check what a user would check."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

BINDIR = os.environ.get("BATMAN_BINDIR", "")
NOBODY = 65534


def bin_path(name="batman"):
    if not BINDIR:
        raise RuntimeError("BATMAN_BINDIR is not set: run through scripts/test")
    return os.path.join(BINDIR, name)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def comm(pid):
    """The command name of `pid`, or "" when it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def init_git_repo(path):
    """A git repository at `path` with one commit: file.txt, "committed\n"."""
    run = lambda *a: subprocess.run(["git", "-C", path] + list(a), check=True, capture_output=True)
    run("init", "-q")
    with open(os.path.join(path, "file.txt"), "w") as f:
        f.write("committed\n")
    run("add", "file.txt")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Wait for predicate() to be truthy, up to a generous deadline; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def sleeps(mark):
    """Pids of the live `sleep MARK...` processes (argv[1] starting with MARK): a job's own,
    not batman, its sandbox's child (which shares batman's command line until it execs) or a
    shell whose command line merely mentions MARK."""
    found = []
    for pid in processes_with_marker(mark):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if argv[0] == b"sleep" and len(argv) > 1 and argv[1].startswith(mark.encode()):
                found.append(pid)
        except OSError:
            pass
    return found


def processes_with_marker(marker):
    """Pids of live processes whose command line or environment contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if marker.encode() in cmd:
            found.append(int(entry))
    return found


class BatmanTestCase(unittest.TestCase):
    """A fresh $BATMAN_HOME per test, removed afterwards."""

    user = None  # set to NOBODY to run every batman command as an unprivileged user

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="batman-it-")
        os.chmod(self.tmp, 0o755)
        self.home = os.path.join(self.tmp, "home")
        self.work = os.path.join(self.tmp, "work")
        os.makedirs(self.work)
        if self.user is not None:
            os.chown(self.tmp, self.user, self.user)
            os.chown(self.work, self.user, self.user)
        self.env = dict(os.environ)
        self.env["BATMAN_HOME"] = self.home
        self.env.pop("BATMAN_PROFILES", None)
        if self.user is not None:
            self.env["HOME"] = self.tmp
        self.children = []

    def tearDown(self):
        for p in self.children:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    p.kill()
                except OSError:
                    pass
                p.wait()
        remove_home_cgroups(self.home)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def command(self, args, name="batman"):
        cmd = [bin_path(name)] + list(args)
        if self.user is not None:
            cmd = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups",
                   "--"] + cmd
        return cmd

    def batman(self, *args, name="batman", timeout=60, input=None, env=None, cwd=None, check=None):
        """Run a batman command to completion; returns CompletedProcess (text)."""
        run_env = dict(self.env)
        if env:
            run_env.update(env)
        proc = subprocess.run(self.command(args, name), env=run_env, cwd=cwd or self.work,
                              input=input, capture_output=True, text=True, timeout=timeout)
        if check is not None:
            self.assertEqual(proc.returncode, check,
                             f"{name} {' '.join(args)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def spawn(self, *args, name="batman", env=None, cwd=None, stdin=subprocess.DEVNULL, **kw):
        """Start a batman command in the background in its own session."""
        run_env = dict(self.env)
        if env:
            run_env.update(env)
        p = subprocess.Popen(self.command(args, name), env=run_env, cwd=cwd or self.work,
                             stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, **kw)
        self.children.append(p)
        return p

    def states(self, project):
        d = os.path.join(self.home, project, "state")
        out = []
        if not os.path.isdir(d):
            return out
        for name in sorted(os.listdir(d)):
            if name.endswith(".json") and not name.startswith("."):
                with open(os.path.join(d, name)) as f:
                    out.append(json.load(f))
        # Oldest first by start time: run-ids of one second differ only by random digits.
        out.sort(key=lambda s: (s.get("started_at") or "", s.get("run_id") or ""))
        return out

    def wait_state_file(self, project, run_id, accept, timeout=15, what=None):
        """Wait for state/<run_id>.json of `project` to hold a record `accept` takes; returns
        it. A record that is missing or half-read waits too."""
        path = os.path.join(self.home, project, "state", run_id + ".json")

        def accepted():
            try:
                with open(path) as f:
                    record = json.load(f)
            except (OSError, ValueError):
                return None
            return record if accept(record) else None
        return wait_for(accepted, timeout=timeout, what=what or f"{run_id}.json")

    def ps_json(self, *extra):
        proc = self.batman("ps", "--json", "--all", *extra, check=0)
        return json.loads(proc.stdout)


def cgroup_mounts():
    """Mount points of every cgroup hierarchy (v1 and v2)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.add(left.split()[4])
    return sorted(out)


def batman_cgroup_dirs(unit):
    """Every ".../batman/<unit>:<home tag>" directory in every cgroup hierarchy (a job's
    cgroup name ends in its $BATMAN_HOME's tag: isolation::home_tag), or named `unit` alone."""
    found = []
    name = re.compile(re.escape(unit) + r"(:[0-9a-f]{8})?")
    for mount in cgroup_mounts():
        for root, dirs, _ in os.walk(mount):
            if os.path.basename(root) == "batman":
                found += [os.path.join(root, d) for d in dirs if name.fullmatch(d)]
    return found


def own_cgroups():
    """This process's cgroup path by controller ("" for the cgroup2 hierarchy)."""
    own = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                own[c] = path
    return own


def cgroup_setup():
    """(version, writable) as batman sees it: 2 when the cgroup2 mount has memory, cpu or
    pids at this process's cgroup, else 1 for the v1 hierarchies (0: none); writable when
    a root process can make a job cgroup there."""
    own = own_cgroups()
    v1, v2 = {}, None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields = right.split()
            if fields[0] == "cgroup2" and v2 is None:
                v2 = left.split()[4]
            if fields[0] == "cgroup":
                for option in fields[2].split(","):
                    v1.setdefault(option, left.split()[4])
    root = os.geteuid() == 0
    if v2 is not None:
        path = v2 + ("" if own.get("", "/") == "/" else own[""])
        try:
            with open(os.path.join(path, "cgroup.controllers")) as f:
                available = f.read().split()
        except OSError:
            available = []
        if any(c in available for c in ("memory", "cpu", "pids")):
            return 2, root and os.access(path, os.W_OK)
    for c in ("memory", "cpu", "pids", "freezer"):
        if c in v1:
            path = v1[c] + ("" if own.get(c, "/") == "/" else own[c])
            return 1, root and os.access(path, os.W_OK)
    return 0, False


def home_tag(home):
    """The last part of a job's cgroup name: which $BATMAN_HOME it belongs to (as
    isolation::home_tag: FNV-1a 64 of "<st_dev>:<st_ino>", its two halves xor'd, 8 hex digits)."""
    st = os.stat(home)
    h = 14695981039346656037
    for c in f"{st.st_dev}:{st.st_ino}".encode():
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{((h >> 32) ^ h) & 0xFFFFFFFF:08x}"


def remove_home_cgroups(home):
    """rmdir the job cgroups that `home`'s batman processes left: a supervisor or batman a
    test killed with SIGKILL does not remove its jobs' cgroups, and each home's names are its
    own (they end in its tag), so no later test would reuse them. Only empty ones go; a job
    process still on its way out gets a moment."""
    if os.geteuid() != 0 or not os.path.isdir(home):
        return
    suffix = ":" + home_tag(home)
    dirs = []
    for mount in cgroup_mounts():
        for path in set(own_cgroups().values()):
            parent = os.path.join(mount, path.lstrip("/"), "batman")
            try:
                dirs += [os.path.join(parent, d) for d in os.listdir(parent) if d.endswith(suffix)]
            except OSError:
                pass
    deadline = time.monotonic() + 2
    while dirs and time.monotonic() < deadline:
        left = []
        for d in dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(d)
        dirs = left
        if dirs:
            time.sleep(0.05)
