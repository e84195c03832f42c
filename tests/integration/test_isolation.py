"""Isolation tiers (issue 3), checked from inside the job: what it sees of processes, network,
hostname, /tmp, the file system, its privileges; and that nothing of it survives batman.
Every class runs as root and again as uid 65534 (the *Nobody subclasses)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

from harness import BINDIR, NOBODY, BatmanTestCase, processes_with_marker, sleeps, wait_for

# What the job reports about itself, one KEY=VALUE per line.
PROBE = r"""
grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status | tr -d '\t ' | sed 's/:/=/'
echo "pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "hostname=$(cat /proc/sys/kernel/hostname)"
echo private > /tmp/{mark} && echo "tmpwrite=ok"
if touch /usr/batman-ro-{mark} 2>&1 | grep -q 'Read-only file system'; then echo rootfs=readonly; else echo rootfs=other; rm -f /usr/batman-ro-{mark}; fi
touch ./cwd-{mark} && echo cwd=writable
echo "tier=$BATMAN_ISOLATION"
"""


# Run argv[1:] in a new user namespace (root and nobody mapped to themselves) whose
# user.max_user_namespaces is 0. The maps are written by the parent before the child execs, so
# the child keeps its capabilities in the namespace and may set the limit.
LIMITED_USERNS = r"""
import ctypes, os, sys
sysctl = sys.argv.pop(1)
libc = ctypes.CDLL(None, use_errno=True)
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        os._exit(99)
    os.write(ready_w, b"x")
    os.read(go_r, 1)
    try:
        with open(sysctl, "w") as f:
            f.write("0")
    except OSError as e:
        print(e, file=sys.stderr)
        os._exit(99)
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(ready_r, 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write("0 0 65536\n")
os.write(go_w, b"x")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def marker():
    return "9" + str(uuid.uuid4().int % 10**8).zfill(8)


def parse(stdout):
    out = {}
    for line in stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def tier_available(tier, user):
    """Ask batman doctor (as the test's user) whether a tier is available, and why not."""
    cmd = [os.path.join(os.environ["BATMAN_BINDIR"], "batman"), "doctor", "--json"]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"] + cmd
    report = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    for t in report["tiers"]:
        if t["tier"] == tier:
            return t["available"], t["reason"]
    return False, "unknown tier"


class InsideTheJob:
    """The issue's "Done when", from inside the job, for one tier (set `tier`)."""

    tier = "namespaces"
    # What this tier can express (firejail brings lo up even for `none`, has no cgroup ns...).
    private_pid_numbers = True

    def setUp(self):
        super().setUp()
        ok, why = tier_available(self.tier, self.user)
        if not ok:
            self.skipTest(f"{self.tier} tier unavailable for uid {self.user or 0}: {why}")

    def run_probe(self, *extra):
        mark = marker()
        p = self.batman(PROBE.replace("{mark}", mark), "--isolation", self.tier, *extra,
                        name="batman-isolated", check=0)
        return mark, p, parse(p.stdout)

    def test_privileges_dropped(self):
        _, p, seen = self.run_probe()
        self.assertEqual(seen.get("NoNewPrivs"), "1", p.stdout + p.stderr)
        self.assertEqual(seen.get("Seccomp"), "2", p.stdout)
        self.assertEqual(int(seen.get("CapEff", "1"), 16), 0, p.stdout)
        self.assertEqual(seen.get("tier"), self.tier)

    def test_own_processes_network_hostname(self):
        _, p, seen = self.run_probe()
        pids = [int(x) for x in seen["pids"].split()]
        # Its own pid namespace: a handful of processes, none of the host's (batman's own pid
        # is far above these numbers on any running system).
        self.assertLess(len(pids), 10, seen["pids"])
        if self.private_pid_numbers:
            self.assertIn(1, pids)
            self.assertTrue(all(pid < 100 for pid in pids), seen["pids"])
        self.assertEqual(seen["ifaces"].split(), ["lo"], p.stdout)
        self.assertEqual(seen["hostname"], "batman")
        self.assertNotEqual(seen["hostname"], os.uname().nodename)

    def test_private_tmp_readonly_system_writable_workdir(self):
        mark, p, seen = self.run_probe()
        self.assertEqual(seen.get("tmpwrite"), "ok", p.stdout + p.stderr)
        self.assertFalse(os.path.exists(f"/tmp/{mark}"), "the host saw the job's private /tmp")
        self.assertEqual(seen.get("rootfs"), "readonly", p.stdout + p.stderr)
        self.assertFalse(os.path.exists(f"/usr/batman-ro-{mark}"))
        self.assertEqual(seen.get("cwd"), "writable", p.stdout + p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.work, f"cwd-{mark}")))

    def test_state_records_the_tier(self):
        self.batman("true", "--isolation", self.tier, name="batman-isolated", check=0)
        st = self.states("isolated")[-1]
        self.assertEqual(st["isolation"]["tier"], self.tier)
        self.assertEqual(st["isolation"]["profile"], "isolated")

    def test_kill_9_of_batman_leaves_nothing(self):
        mark = marker()
        p = self.spawn(f"sleep {mark} & sleep {mark} & (sleep {mark} &) ; wait",
                       "--isolation", self.tier, name="batman-isolated")
        wait_for(lambda: len(sleeps(mark)) >= 3, timeout=20,
                 what="the job's three sleeps")
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        wait_for(lambda: not processes_with_marker(mark), timeout=20,
                 what="every process of the job to die with batman")

    def test_sigterm_reaches_the_job_and_tree_is_gone(self):
        mark = marker()
        p = self.spawn(f"trap 'echo got-term; exit 3' TERM; sleep {mark} & sleep {mark} & wait",
                       "--isolation", self.tier, name="batman-isolated")
        wait_for(lambda: len(sleeps(mark)) >= 2, timeout=20,
                 what="the job's sleeps")
        os.kill(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        self.assertIn("got-term", out, err)
        self.assertEqual(p.returncode, 3, err)
        wait_for(lambda: not processes_with_marker(mark), what="the tree to be gone")


class Namespaces(InsideTheJob, BatmanTestCase):
    tier = "namespaces"

    def test_auto_picks_namespaces_and_says_so(self):
        p = self.batman("true", name="batman-isolated", check=0)
        self.assertIn("batman: isolation: namespaces", p.stderr)

    def test_parallel_profile_private_tmp_and_pids_host_network(self):
        mark = marker()
        p = self.batman("p", PROBE.replace("{mark}", mark), "--isolation", "namespaces",
                        name="batman-parallel", check=0)
        seen = parse(p.stdout)
        self.assertIn(1, [int(x) for x in seen["pids"].split()], p.stdout + p.stderr)
        self.assertEqual(seen.get("tmpwrite"), "ok")
        self.assertFalse(os.path.exists(f"/tmp/{mark}"))
        self.assertIn("lo", seen["ifaces"].split())
        host_ifaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
        self.assertEqual(sorted(seen["ifaces"].split()), sorted(host_ifaces))
        self.assertEqual(seen.get("Seccomp"), "0")

    def test_no_net_and_net_override(self):
        p = self.batman("p", "tail -n +3 /proc/net/dev | cut -d: -f1", "--no-net",
                        "--isolation", "namespaces", name="batman-parallel", check=0)
        self.assertEqual(p.stdout.split(), ["lo"])
        p = self.batman("cat /proc/sys/kernel/hostname; tail -n +3 /proc/net/dev | wc -l", "--net",
                        "--isolation", "namespaces", name="batman-isolated", check=0)
        lines = p.stdout.split()
        self.assertEqual(int(lines[1]), len(open("/proc/net/dev").read().splitlines()) - 2)

    def test_seccomp_denies_with_eperm_and_clone3_enosys(self):
        script = ("python3 -c \"import ctypes,os;l=ctypes.CDLL(None,use_errno=True);"
                  "r=l.syscall(435,0,0);print('clone3',ctypes.get_errno());"
                  "r=l.syscall(169,0,0,0,0);print('reboot',ctypes.get_errno())\"")
        if not shutil.which("python3"):
            self.skipTest("python3 is not installed for the job to use")
        p = self.batman(script, "--isolation", "namespaces", name="batman-isolated", check=0)
        self.assertIn(f"clone3 {38}", p.stdout, p.stderr)   # ENOSYS
        self.assertIn(f"reboot {1}", p.stdout, p.stderr)    # EPERM

    def test_job_exit_code_and_signal_pass_through(self):
        self.assertEqual(self.batman("exit 7", "--isolation", "namespaces", name="batman-isolated").returncode, 7)
        self.assertEqual(self.batman("kill -TERM $$", "--isolation", "namespaces",
                                     name="batman-isolated").returncode, 128 + 15)
        # PID 1 hands over the raw wait status: the state says killed by 15, not exit 143.
        st = self.states("isolated")[-1]
        self.assertEqual((st["status"], st["signal"], st["exit_code"]), ("killed", 15, None), st)
        # A daemon the job left behind is gone once batman has returned.
        mark = marker()
        self.assertEqual(self.batman(f"(sleep {mark} &); echo started", "--isolation", "namespaces",
                                     name="batman-isolated").returncode, 0)
        self.assertEqual(processes_with_marker(mark), [])
        self.assertEqual(self.batman("no-such-command-xyz", "--isolation", "namespaces",
                                     name="batman-isolated").returncode, 127)

    def test_the_job_runs_on_batmans_cpus(self):
        # The namespaces are made by a child that moves off batman's CPU while batman
        # prepares the run (README "The launch path"): the job gets batman's CPUs back.
        def allowed(p):
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout.split(":")[1].strip()
        with open("/proc/self/status") as f:
            ours = [l.split(":")[1].strip() for l in f if l.startswith("Cpus_allowed_list")][0]
        probe = "grep Cpus_allowed_list /proc/self/status"
        self.assertEqual(allowed(self.batman(probe, "--isolation", "namespaces", name="batman-isolated", check=0)), ours)
        one = str(os.sched_getaffinity(0).pop())
        p = subprocess.run(["taskset", "-c", one] + self.command((probe, "--isolation", "namespaces"), "batman-isolated"),
                           capture_output=True, text=True, env=self.env, cwd=self.work, timeout=60)
        self.assertEqual(allowed(p), one)

    def test_a_run_refused_before_its_start_leaves_no_process(self):
        # The child cloned ahead of the start is taken down with a run refused after it.
        mark = marker()
        first = self.spawn("inst", f"sleep {mark}", "--isolation", "namespaces", name="batman-multi")
        wait_for(lambda: len(sleeps(mark)) >= 1, timeout=20, what="the first instance")
        refused = f"true {mark}"
        p = self.batman("inst", refused, "--isolation", "namespaces", name="batman-multi")
        self.assertEqual(p.returncode, 125, p.stderr)
        self.assertIn("already running", p.stderr)
        self.assertEqual([pid for pid in processes_with_marker(refused) if pid != first.pid], [])
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)

    def test_pid_1_is_the_small_batman_init_not_a_copy_of_batman(self):
        p = self.batman("p", "cat /proc/1/cmdline; echo; grep VmRSS /proc/1/status", "--isolation", "namespaces",
                        name="batman-parallel", check=0)
        self.assertEqual(p.returncode, 0, p.stderr)
        cmdline, rss = p.stdout.split("\n")[:2]
        self.assertEqual(cmdline.split("\0")[0], "batman-init", p.stdout)
        self.assertLess(int(rss.split()[1]), 4096, "PID 1 holds batman's memory: " + rss)
        # Run by hand it refuses, in one line.
        init = os.path.join(os.path.dirname(BINDIR), "libexec", "batman", "batman-init")
        r = subprocess.run([init], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 125)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        r = subprocess.run([init, "2", "5"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 125)
        self.assertIn("PID 1", r.stderr)

    def profile_file(self, name, text):
        """A profile file every user may read (the tests also run as nobody)."""
        profile = os.path.join(self.tmp, name)
        with open(profile, "w") as f:
            f.write(text)
        os.chmod(profile, 0o644)
        return profile

    def test_unenforced_paths_are_reported(self):
        profile = self.profile_file("odd.yaml", "namespaces: [user, mount, pid]\nfilesystem:\n  read_only: [/]\n"
                                    "  read_write: [$CWD, /no/such/dir]\n  tmpfs: [/tmp]\n")
        p = self.batman("true", "--isolation", "namespaces", "--profile", profile,
                        name="batman-isolated", check=0)
        self.assertIn("/no/such/dir", p.stderr)
        st = self.states("isolated")[-1]
        self.assertTrue(any("/no/such/dir" in u for u in st["isolation"]["unenforced"]), st)

    def test_a_mount_that_cannot_be_made_is_named_and_nothing_is_left(self):
        # The early child makes the mounts beside batman, before the rest of the plan: a
        # failure there is the start's, named as before, with nothing of the run left running.
        sandbox = "namespaces: [user, mount, pid, ipc, uts, net]\nnetwork: none\nfilesystem:\n" \
                  "  read_only: [/]\n  read_write: [$CWD]\n  tmpfs: [/tmp{}]\n"
        profile = self.profile_file("badmount.yaml", sandbox.format(", /proc/batman-no-such-dir"))
        mark = marker()
        for _ in range(2):  # the second start has the first one's hint: every namespace made ahead
            p = self.batman(f"true {mark}", "--isolation", "namespaces", "--profile", profile,
                            name="batman-isolated", check=125)
            self.assertIn("could not start the job: namespaces: create mount point /proc/batman-no-such-dir: ",
                          p.stderr)
            self.assertEqual(processes_with_marker(f"true {mark}"), [])
            self.assertEqual(os.listdir(os.path.join(self.home, "isolated", "tmp")), [], "its TMPDIR is gone")
            self.assertEqual(self.states("isolated")[-1]["status"], "failed")
        # The same profile without that mount runs: the mounts made ahead are the job's.
        profile = self.profile_file("goodmount.yaml", sandbox.format(""))
        p = self.batman("touch /tmp/in-tmpfs $TMPDIR/in-tmpdir && ls /tmp && touch /usr/x",
                        "--isolation", "namespaces", "--profile", profile, name="batman-isolated", check=1)
        self.assertIn("in-tmpfs", p.stdout.split(), p.stderr)
        self.assertIn("Read-only file system", p.stderr)

    def test_bad_profile_names_file_line_key(self):
        profile = self.profile_file("bad.yaml", "namespaces: [user]\nseccomp:\n  deny: [mount, not_a_call]\n")
        p = self.batman("true", "--profile", profile, name="batman-isolated", check=125)
        self.assertIn(f"{profile}:3: key 'seccomp.deny': unknown system call 'not_a_call'", p.stderr)

    def test_memory_limit(self):
        grab = "python3 -c 'b = bytearray(300 << 20); print(len(b))'"
        if not shutil.which("python3"):
            self.skipTest("python3 is not installed for the job to use")
        free = self.batman(grab, "--isolation", "namespaces", name="batman-isolated")
        self.assertEqual(free.returncode, 0, free.stderr)
        self.assertIn(str(300 << 20), free.stdout)
        p = self.batman(grab, "--memory", "64M", "--isolation", "namespaces", name="batman-isolated")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertNotIn(str(300 << 20), p.stdout)
        st = self.states("isolated")[-1]
        self.assertEqual(st["limits"]["memory"] is not None, True, st)

    def test_pids_limit(self):
        p = self.batman("for i in $(seq 40); do sleep 2 & done; wait; echo done",
                        "--pids", "16", "--isolation", "namespaces", name="batman-isolated")
        st = self.states("isolated")[-1]
        if any("pids" in u for u in st["isolation"]["unenforced"]):
            # As an unprivileged user there is no writable cgroup: said, and recorded.
            self.assertIn("pids limit", p.stderr)
        else:
            self.assertNotEqual(p.returncode, 0)
            self.assertRegex(p.stderr, "[Cc]annot fork|Resource temporarily unavailable")


class NamespacesNobody(Namespaces):
    user = NOBODY


class Firejail(InsideTheJob, BatmanTestCase):
    tier = "firejail"
    private_pid_numbers = False  # firejail's own helper processes sit beside the job


class FirejailNobody(BatmanTestCase):
    """firejail is installed but this user may not use it: the tier says so, exit 125."""
    user = NOBODY

    def test_not_allowed_is_detected(self):
        ok, why = tier_available("firejail", self.user)
        if ok:
            self.skipTest("firejail is allowed for uid 65534 on this machine")
        p = self.batman("true", "--isolation", "firejail", name="batman-isolated", check=125)
        self.assertIn("firejail", p.stderr)
        self.assertIn(why, p.stderr)


class Systemd(BatmanTestCase):
    def test_systemd_tier(self):
        ok, why = tier_available("systemd", self.user)
        p = self.batman("echo $BATMAN_ISOLATION", "--isolation", "systemd", name="batman-isolated")
        if not ok:
            # A forced tier that is unavailable is an error with the reason...
            self.assertEqual(p.returncode, 125, p.stderr)
            self.assertIn(why, p.stderr)
            # ...and the tier itself cannot be exercised here.
            self.skipTest(f"systemd tier unavailable: {why}")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "systemd")


class LimitedUserns:
    """Runs batman-isolated with the sysctl SYSCTL at 0 in a user namespace of the test's own
    (its root mapped to root), in which batman then runs and which it sees."""

    def run_in_limited_userns(self, *args):
        cmd = [sys.executable, "-c", LIMITED_USERNS, self.SYSCTL] + self.command(args, "batman-isolated")
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=self.work, timeout=60)
        self.assertNotEqual(p.returncode, 99, f"could not set {self.SYSCTL} in a user namespace: " + p.stderr)
        return p


class UserNamespacesDisabled(LimitedUserns, BatmanTestCase):
    """With unprivileged user namespaces off, `auto` as a non-root user falls back and says why."""
    user = NOBODY
    SYSCTL = "/proc/sys/user/max_user_namespaces"

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("changing user.max_user_namespaces needs root")

    def run_limited(self, *args):
        """Run a batman command with user.max_user_namespaces=0. The machine's own value is
        set (and restored in a finally) when root may; where root lacks CAP_SYS_RESOURCE (a
        container), the limit is set in a user namespace of our own, which is the namespace
        the command then runs in, so it sees and suffers the same 0."""
        with open(self.SYSCTL) as f:
            saved = f.read().strip()
        try:
            with open(self.SYSCTL, "w") as f:
                f.write("0")
        except PermissionError:
            return self.run_in_limited_userns(*args)
        try:
            return self.batman(*args, name="batman-isolated")
        finally:
            with open(self.SYSCTL, "w") as f:
                f.write(saved)


    def test_auto_falls_back_and_says_why(self):
        p = self.run_limited("echo tier=$BATMAN_ISOLATION")
        lines = [l for l in p.stderr.splitlines() if "isolation:" in l]
        self.assertTrue(lines, p.stderr)
        self.assertNotIn("isolation: namespaces", lines[0])
        self.assertIn("namespaces: unprivileged user namespaces are disabled "
                      "(user.max_user_namespaces is 0)", lines[0])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotEqual(parse(p.stdout)["tier"], "namespaces")

    def test_forced_namespaces_is_an_error_with_the_reason(self):
        p = self.run_limited("true", "--isolation", "namespaces")
        self.assertEqual(p.returncode, 125, p.stderr)
        self.assertIn("max_user_namespaces is 0", p.stderr)


class RefusedNamespace(LimitedUserns, BatmanTestCase):
    """A namespace the kernel refuses is reported in one line and exit 125: the namespaces
    are made by a child cloned while batman prepares the run, whose report must still reach
    batman. Here user.max_net_namespaces is 0 in a user namespace of the test's own, in which
    batman is root."""

    SYSCTL = "/proc/sys/user/max_net_namespaces"

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mapping root into a user namespace of the test's own needs root")

    def test_a_refused_network_namespace_is_an_error_and_net_still_runs(self):
        p = self.run_in_limited_userns("echo ran", "--isolation", "namespaces")
        self.assertEqual(p.returncode, 125, p.stderr)
        self.assertNotIn("ran", p.stdout)
        self.assertIn("namespaces: unshare the namespaces: No space left on device", p.stderr)
        st = self.states("isolated")[-1]
        self.assertEqual(st["status"], "failed", st)
        p = self.run_in_limited_userns("echo ran", "--isolation", "namespaces", "--net")
        self.assertEqual((p.returncode, p.stdout), (0, "ran\n"), p.stderr)


class EarlyChildKilled(BatmanTestCase):
    """The child that makes a run's namespaces ahead of its start, killed before the start: a
    start that failed (125, the reason), not a job killed by a signal."""

    def test_a_killed_early_child_is_a_failed_start(self):
        ok, why = tier_available("namespaces", None)
        if not ok:
            self.skipTest(f"namespaces tier unavailable: {why}")
        state = os.path.join(self.home, "m3", "state")
        os.makedirs(state, mode=0o700)
        lock = os.path.join(state, "m3.lock")
        open(lock, "w").close()
        # A holder that never writes its pid: batman-multi waits for the lock (up to 1 s),
        # with its early child made.
        holder = subprocess.Popen(["flock", lock, "sleep", "0.8"])
        self.addCleanup(holder.wait)
        wait_for(lambda: subprocess.run(["flock", "-n", lock, "true"]).returncode != 0, what="the holder's lock")
        p = self.spawn("m3", "echo ran", "--isolation", "namespaces", name="batman-multi")

        def children():
            found = []
            for entry in os.listdir("/proc"):
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == p.pid:
                            found.append(int(entry))
                except OSError:
                    pass
            return found
        for pid in wait_for(children, what="batman-multi's early child"):
            os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 125, err)
        self.assertIn("the child making the namespaces died before the start (killed by signal 9)", err)
        self.assertNotIn("ran", out)


class LaunchHints(BatmanTestCase):
    """The early child makes the namespaces the last start with the same options needed before
    batman has read the profile, from a hint in $BATMAN_HOME/.cache/launch. A hint is never
    trusted: one that names a network namespace for --net (host network) must not give the job
    one, garbage in it changes nothing, and the hint then names what the start needed."""

    NET = 0x40000000  # CLONE_NEWNET

    def test_a_wrong_hint_is_never_the_jobs_namespace(self):
        ok, why = tier_available("namespaces", self.user)
        if not ok:
            self.skipTest(f"namespaces tier unavailable: {why}")
        host_net = os.readlink("/proc/self/ns/net")
        hints = os.path.join(self.home, ".cache", "launch")
        show = ["--isolation", "namespaces", "--net", "readlink /proc/self/ns/net"]
        for _ in range(2):  # the first makes $BATMAN_HOME, the second leaves a hint in it
            p = self.batman(*show, name="batman-isolated")
            self.assertEqual((p.returncode, p.stdout), (0, host_net + "\n"), p.stderr)
        files = [os.path.join(hints, f) for f in os.listdir(hints)]
        self.assertEqual(len(files), 1, files)
        needed = int(open(files[0]).read())
        self.assertEqual(needed & self.NET, 0, "--net needs no network namespace")
        for lie in (str(needed | self.NET), "garbage\n", "99999999999999999999999999"):
            with open(files[0], "w") as f:
                f.write(lie)
            p = self.batman(*show, name="batman-isolated")
            self.assertEqual((p.returncode, p.stdout), (0, host_net + "\n"), (lie, p.stderr))
            self.assertEqual(int(open(files[0]).read()), needed, f"the hint {lie!r} is rewritten")
        # Without --net the job has every namespace of its own, whatever the hint names (here
        # only the network one: the child makes the others after the profile).
        kinds = ["net", "mnt", "uts", "ipc"]
        host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
        show_all = ["--isolation", "namespaces", " ".join(f"readlink /proc/self/ns/{k};" for k in kinds)]
        for _ in range(2):
            p = self.batman(*show_all, name="batman-isolated")
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(os.listdir(hints)), 2, "a hint per set of options")
        other = [os.path.join(hints, f) for f in os.listdir(hints) if os.path.join(hints, f) != files[0]][0]
        for lie in (str(self.NET), "0"):
            with open(other, "w") as f:
                f.write(lie)
            p = self.batman(*show_all, name="batman-isolated")
            self.assertEqual(p.returncode, 0, p.stderr)
            seen = p.stdout.split()
            self.assertEqual(len(seen), 4, p.stdout)
            for kind, inside, outside in zip(kinds, seen, host):
                self.assertNotEqual(inside, outside, f"hint {lie}: the job's {kind} namespace is the host's")


class LaunchHintsNobody(LaunchHints):
    user = NOBODY


class Doctor(BatmanTestCase):
    def test_doctor_json_and_text(self):
        report = json.loads(self.batman("doctor", "--json", check=0).stdout)
        self.assertEqual([t["tier"] for t in report["tiers"]], ["namespaces", "firejail", "systemd", "env"])
        self.assertTrue(report["tiers"][3]["available"])
        for t in report["tiers"]:
            self.assertTrue(t["reason"], t)
        self.assertIn(report["cgroups"]["version"], (0, 1, 2))
        self.assertIn("batman-isolated (profile isolated)", report["auto"])
        with open("/proc/1/comm") as f:
            init = f.read().strip()
        if init != "systemd":
            self.assertEqual(report["tiers"][2]["reason"], f"systemd is not PID 1 (init is {init})")
        text = self.batman("doctor", check=0).stdout
        self.assertIn("auto picks:", text)

    def test_profiles_list_and_show(self):
        listing = self.batman("profiles", "list", check=0).stdout
        for name in ("parallel", "isolated", "strict", "build", "ci"):
            self.assertIn(name, listing)
        shown = self.batman("profiles", "show", "isolated", check=0).stdout
        self.assertIn("namespaces: [user, mount, pid, ipc, uts, net, cgroup]", shown)
        p = self.batman("profiles", "show", "nope", check=125)
        self.assertIn("profile 'nope' not found", p.stderr)


class DoctorNobody(Doctor):
    user = NOBODY
