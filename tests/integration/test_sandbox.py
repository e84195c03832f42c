"""The sandbox holds against the job inside it (issue 11): batman's own tree is out of the job's
reach in every tier with a mount namespace, the profile cache cannot weaken a later run,
`strict` as root runs the job as nobody with a cleared environment, a symlinked $BATMAN_HOME
works, and a firejail job ends with its main process. Each test does what the attacker did
and checks what a user relies on."""
import hashlib
import os
import signal
import subprocess
import time

from harness import NOBODY, BatmanTestCase, bin_path, wait_for
from test_isolation import PROBE, marker, parse, sleeps, tier_available

# What a hostile job tries against batman's tree; one line per attempt, "NAME=ok" when it
# got through (each attempt is a separate shell command, so one refusal does not stop the
# rest).
ATTACK = r"""
try() { name=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$name=ok"; else echo "$name=refused"; fi; }
try state sh -c 'echo "{\"status\":\"running\",\"pid\":1}" > "$BATMAN_PROJECT_DIR/state/20200101T000000-abcdef.json"'
try events sh -c 'echo forged >> "$BATMAN_PROJECT_DIR/logs/events.log"'
try cache sh -c 'mkdir -p "$BATMAN_HOME/.cache/profiles" && echo x > "$BATMAN_HOME/.cache/profiles/planted"'
try other_write sh -c 'echo x > "$BATMAN_HOME/other/state/planted.json"'
try other_read sh -c 'cat "$BATMAN_HOME"/other/logs/*.log | grep -q other-secret'
try tmpdir sh -c 'echo mine > "$TMPDIR/mine" && grep -q mine "$TMPDIR/mine"'
try tmp sh -c 'echo mine > /tmp/mine'
"""


class TrustBoundary(BatmanTestCase):
    """SPEC §7: whatever the profile says, the job writes only its TMPDIR (and worktree)."""

    tier = "namespaces"

    def setUp(self):
        super().setUp()
        ok, why = tier_available(self.tier, self.user)
        if not ok:
            self.skipTest(f"{self.tier} tier unavailable for uid {self.user or 0}: {why}")
        # Another project with a log that holds a secret, and a state dir of its own.
        self.batman("other", "echo other-secret", "--isolation", "env", name="batman-parallel", check=0)

    def attack(self, *args, name="batman-isolated", project=None):
        before = set(os.listdir(os.path.join(self.home, "other", "state")))
        cmd = ([project] if project else []) + [ATTACK] + ["--isolation", self.tier] + list(args)
        p = self.batman(*cmd, name=name, check=0)
        seen = parse(p.stdout)
        what = f"{name} {' '.join(args)}\n{p.stdout}{p.stderr}"
        for attempt in ("state", "events", "cache", "other_write", "other_read"):
            self.assertEqual(seen.get(attempt), "refused", f"{attempt}: {what}")
        self.assertEqual(seen.get("tmpdir"), "ok", what)
        self.assertEqual(seen.get("tmp"), "ok", what)
        proj = project or "isolated"
        self.assertFalse(os.path.exists(os.path.join(self.home, proj, "state", "20200101T000000-abcdef.json")))
        self.assertFalse(os.path.exists(os.path.join(self.home, ".cache", "profiles", "planted")))
        self.assertEqual(set(os.listdir(os.path.join(self.home, "other", "state"))), before)
        with open(os.path.join(self.home, proj, "logs", "events.log")) as f:
            self.assertNotIn("forged", f.read().splitlines())  # (the command itself is logged)
        # batman's own records of the run are intact.
        self.assertTrue(all(st["status"] in ("succeeded", "failed") for st in self.states(proj)), self.states(proj))
        return p

    def test_isolated_profile(self):
        self.attack()

    def test_strict_profile(self):
        self.attack("--profile", "strict")

    def test_build_profile_with_writable_home(self):
        self.attack("--profile", "build", name="batman-isolated")

    def test_parallel_profile_with_writable_root(self):
        # `parallel` binds all of / writable: batman's tree is still covered (against
        # accidents: `parallel` keeps capabilities and is no security boundary).
        self.attack(name="batman-parallel", project="p")

    def test_worktree_is_writable_the_rest_is_not(self):
        if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
            self.skipTest("git is not installed")
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "safe.directory=*"]
        subprocess.run(git + ["init", "-q", self.work], check=True)
        with open(os.path.join(self.work, "f"), "w") as f:
            f.write("x\n")
        subprocess.run(git + ["-C", self.work, "add", "f"], check=True)
        subprocess.run(git + ["-C", self.work, "commit", "-qm", "x"], check=True)
        if self.user is not None:
            subprocess.run(["chown", "-R", f"{self.user}:{self.user}", self.work], check=True)
            with open(os.path.join(self.tmp, ".gitconfig"), "w") as f:
                f.write("[safe]\n\tdirectory = *\n")
        mark = marker()
        p = self.spawn('echo new > ./made-in-worktree && echo wt=ok; '
                       'touch "$BATMAN_PROJECT_DIR/state/x.json" 2>/dev/null && echo state=ok; '
                       f'sleep {mark}', "--worktree", "--isolation", self.tier, name="batman-isolated")
        # The worktree goes when the run ends: the file is looked for on the host meanwhile.
        st = wait_for(lambda: [s for s in self.states("isolated") if s.get("worktree")], timeout=20,
                      what="the run's state with its worktree")[-1]
        wait_for(lambda: os.path.exists(os.path.join(st["worktree"], "made-in-worktree")), timeout=20,
                 what="the file the job wrote in its worktree")
        wait_for(lambda: sleeps(mark), timeout=20, what="the job to go on")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        seen = parse(out)
        self.assertEqual(seen.get("wt"), "ok", out + err)
        self.assertNotIn("state", seen, out)
        self.assertFalse(os.path.exists(os.path.join(self.home, "isolated", "state", "x.json")))


class TrustBoundaryNobody(TrustBoundary):
    user = NOBODY


class TrustBoundaryFirejail(TrustBoundary):
    tier = "firejail"


class ProfileCachePoisoning(BatmanTestCase):
    """A `build` job (writable $HOME) tries to rewrite the strict profile's cache entry and to
    plant a strict.yaml in the user's profile directory; the next strict run is strict."""

    def setUp(self):
        super().setUp()
        ok, why = tier_available("namespaces", self.user)
        if not ok:
            self.skipTest(f"namespaces tier unavailable: {why}")
        self.user_home = os.path.join(self.tmp, "user-home")
        self.profiles = os.path.join(self.user_home, ".config", "batman", "profiles")
        os.makedirs(self.profiles)
        if self.user is not None:
            subprocess.run(["chown", "-R", f"{self.user}:{self.user}", self.user_home], check=True)
        self.env["HOME"] = self.user_home
        self.env.pop("XDG_CONFIG_HOME", None)
        # As in the issue: batman's tree in the $HOME that `build` makes writable.
        self.home = os.path.join(self.user_home, ".batman-parallel")
        self.env["BATMAN_HOME"] = self.home

    def cache_entries(self):
        d = os.path.join(self.home, ".cache", "profiles")
        out = {}
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
        return out

    def test_build_job_cannot_weaken_the_next_strict_run(self):
        # The first run makes $BATMAN_HOME; the cache lives only in one that exists.
        for _ in range(2):
            self.batman("true", "--profile", "strict", name="batman-isolated", check=0)
        entries = self.cache_entries()
        self.assertTrue(entries)
        weak = "name: strict\\nnamespaces: []\\nnetwork: host\\ncapabilities: {drop: none}\\n"
        attack = (
            'for f in "$BATMAN_HOME"/.cache/profiles/*; do printf x > "$f" && echo poisoned=$f; done; '
            'mkdir -p "$BATMAN_HOME/.cache/profiles" && printf x > "$BATMAN_HOME/.cache/profiles/new" && echo planted-cache; '
            f'printf "{weak}" > "$HOME/.config/batman/profiles/strict.yaml" && echo planted-profile; '
            'echo home=$(touch "$HOME/home-is-writable" && echo writable)'
        )
        p = self.batman(attack, "--profile", "build", "--isolation", "namespaces",
                        name="batman-isolated", check=0)
        self.assertIn("home=writable", p.stdout, p.stderr)  # the attack had its chance
        self.assertNotIn("poisoned", p.stdout)
        self.assertNotIn("planted", p.stdout)
        after = self.cache_entries()  # (the build run added its own profile's entry)
        self.assertEqual({k: after.get(k) for k in entries}, entries)
        self.assertNotIn("new", after)
        self.assertFalse(os.path.exists(os.path.join(self.profiles, "strict.yaml")))

        mark = marker()
        p = self.batman(PROBE.replace("{mark}", mark), "--profile", "strict", "--isolation", "namespaces",
                        name="batman-isolated", check=0)
        seen = parse(p.stdout)
        self.assertEqual(int(seen.get("CapEff", "1"), 16), 0, p.stdout + p.stderr)
        self.assertEqual(seen.get("Seccomp"), "2", p.stdout)
        self.assertEqual(seen.get("rootfs"), "readonly", p.stdout)
        self.assertEqual(seen.get("ifaces", "").split(), ["lo"], p.stdout)
        self.assertFalse(os.path.exists(f"/usr/batman-ro-{mark}"))
        self.assertEqual(self.states("isolated")[-1]["isolation"]["profile"], "strict")


class ProfileCachePoisoningNobody(ProfileCachePoisoning):
    user = NOBODY


class ShadowingOnlyTightens(BatmanTestCase):
    """A `build` job (writable $HOME, no ~/.config/batman yet) plants a weaker strict.yaml in
    ~/.config/batman/profiles: found by name it shadows the shipped one and loosens it, so the
    next `--profile strict` run is refused in one line (125) and runs nothing; a user
    strict.yaml that only tightens the shipped one is accepted and used."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("as root only")
        ok, why = tier_available("namespaces", None)
        if not ok:
            self.skipTest(f"namespaces tier unavailable: {why}")
        self.user_home = os.path.join(self.tmp, "user-home")
        os.makedirs(self.user_home)
        self.env["HOME"] = self.user_home
        self.env.pop("XDG_CONFIG_HOME", None)
        self.planted = os.path.join(self.user_home, ".config", "batman", "profiles", "strict.yaml")

    def test_a_planted_weaker_strict_is_refused_a_tighter_one_used(self):
        attack = ("mkdir -p ~/.config/batman/profiles && printf 'name: strict\\nnamespaces: []\\n"
                  "capabilities: {drop: none}\\n' > ~/.config/batman/profiles/strict.yaml && echo planted")
        p = self.batman(attack, "--profile", "build", "--isolation", "namespaces", name="batman-isolated", check=0)
        self.assertIn("planted", p.stdout, p.stderr)
        self.assertTrue(os.path.exists(self.planted))

        mark = marker()
        p = self.batman(f"grep CapEff /proc/self/status; echo ran-{mark}", "--profile", "strict",
                        name="batman-isolated", check=125)
        self.assertNotIn("CapEff", p.stdout)
        self.assertNotIn(f"ran-{mark}", p.stdout + p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn(f"profile 'strict' in {self.planted} loosens the one in ", lines[0])
        self.assertIn("capabilities kept: all", lines[0])
        self.assertIn("no seccomp", lines[0])
        self.assertTrue(lines[0].endswith("): give it another name"), lines[0])
        shown = self.batman("profiles", "show", "strict", check=125)
        self.assertIn("loosens the one in", shown.stderr)

        # Only tightening: the shipped text with one more denied call.
        shipped = os.path.join(os.path.dirname(bin_path("batman")), "..", "share", "batman", "profiles",
                               "strict.yaml")
        with open(shipped) as f:
            text = f.read()
        self.assertIn("chroot,", text)
        with open(self.planted, "w") as f:
            f.write(text.replace("chroot,", "chroot, chmod, fchmodat,"))
        p = self.batman("grep CapEff /proc/self/status; chmod 600 $TMPDIR 2>/dev/null || echo chmod-denied",
                        "--profile", "strict", name="batman-isolated", check=0)
        caps = [line.split()[1] for line in p.stdout.splitlines() if line.startswith("CapEff:")]
        self.assertEqual([int(c, 16) for c in caps], [0], p.stdout + p.stderr)
        self.assertIn("chmod-denied", p.stdout)  # the user's file is the one used
        shown = self.batman("profiles", "show", "strict", check=0)
        self.assertIn(f"# {self.planted}", shown.stdout)
        self.assertIn("# shadows ", shown.stdout)


class ClosedStdio(BatmanTestCase):
    """batman started with 0, 1 or 2 closed: none of its own descriptors (a directory of
    $BATMAN_HOME, a pipe) may take that number and reach the job as its stdio."""

    def test_no_descriptor_of_batmans_becomes_the_jobs_stdio(self):
        job = ("readlink /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2 > fds.txt; "
               "echo x > /proc/self/fd/0/isolated/PWNED; echo x > /proc/self/fd/0/state/PWNED; true")
        for closed in ("<&-", ">&-", "2>&-"):
            for extra in ((), ("--pids", "100")):
                with self.subTest(closed=closed, extra=extra):
                    words = " ".join(["'" + w + "'" for w in self.command((job, "--isolation", "namespaces") + extra,
                                                                          "batman-isolated")])
                    p = subprocess.run(["sh", "-c", f"exec {words} {closed}"], capture_output=True, text=True,
                                       env=self.env, cwd=self.work, timeout=60)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    with open(os.path.join(self.work, "fds.txt")) as f:
                        fds = f.read().split()
                    self.assertEqual(len(fds), 3, fds)
                    self.assertEqual([fd for fd in fds if fd.startswith(self.home)], [], fds)
                    if closed == "<&-":
                        self.assertEqual(fds[0], "/dev/null", fds)
                    found = [os.path.join(d, n) for d, _, names in os.walk(self.home) for n in names if n == "PWNED"]
                    self.assertEqual(found, [])


class ClosedStdioNobody(ClosedStdio):
    user = NOBODY


class RootInStrict(BatmanTestCase):
    """As root, `strict` runs the job as nobody with a cleared environment: it cannot read
    /etc/shadow, /root or another project's log, nor see the caller's secrets; its TMPDIR and
    /tmp stay writable. `isolated` keeps root (a root-owned checkout stays buildable)."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("as root only")
        ok, why = tier_available("namespaces", None)
        if not ok:
            self.skipTest(f"namespaces tier unavailable: {why}")

    def test_strict_is_a_boundary_for_root(self):
        self.batman("other", "echo other-secret", "--isolation", "env", name="batman-parallel", check=0)
        os.chmod(self.work, 0o777)  # a directory the job's user may write
        script = (
            "echo uid=$(id -u) gid=$(id -g); "
            "head -c 200 /etc/shadow >/dev/null 2>&1 && echo shadow=read; "
            "ls /root/ >/dev/null 2>&1 && echo rootdir=$(ls -A /root | wc -l); "
            'cat "$BATMAN_HOME"/other/logs/*.log 2>/dev/null; '
            "env; "
            'echo x > "$TMPDIR/f" && echo tmpdir=ok; echo x > /tmp/f && echo tmp=ok; '
            "touch ./cwd-file && echo cwd=ok"
        )
        p = self.batman(script, "--profile", "strict", "--isolation", "namespaces",
                        name="batman-isolated", env={"SECRET_TOKEN": "hunter2-secret"}, check=0)
        seen = parse(p.stdout)
        what = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, what)
        self.assertEqual(seen.get("uid"), "65534 gid=65534", what)
        self.assertNotIn("shadow", seen, what)
        self.assertIn(seen.get("rootdir", "0"), ("0",), what)
        self.assertNotIn("other-secret", p.stdout)
        self.assertNotIn("hunter2-secret", p.stdout)
        self.assertNotIn("SECRET_TOKEN", p.stdout)
        self.assertIn("PATH=", p.stdout)
        self.assertIn("BATMAN_RUN_ID=", p.stdout)
        self.assertEqual(seen.get("tmpdir"), "ok", what)
        self.assertEqual(seen.get("tmp"), "ok", what)
        self.assertEqual(seen.get("cwd"), "ok", what)
        self.assertEqual(self.states("isolated")[-1]["status"], "succeeded")

    def test_isolated_keeps_root_and_writes_its_cwd(self):
        p = self.batman("id -u; touch ./built && echo built; echo $SECRET_TOKEN",
                        name="batman-isolated", env={"SECRET_TOKEN": "kept"}, check=0)
        self.assertEqual(p.stdout.split(), ["0", "built", "kept"], p.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.work, "built")))


class SymlinkedHome(BatmanTestCase):
    """Issue 11: any symlink in $BATMAN_HOME's path broke every namespaces run."""

    def test_symlinked_batman_home(self):
        ok, why = tier_available("namespaces", self.user)
        if not ok:
            self.skipTest(f"namespaces tier unavailable: {why}")
        real = os.path.join(self.tmp, "real")
        os.makedirs(real)
        if self.user is not None:
            os.chown(real, self.user, self.user)
        os.symlink(real, os.path.join(self.tmp, "link"))
        self.env["BATMAN_HOME"] = os.path.join(self.tmp, "link", "home")
        for name, args in (("batman-isolated", []), ("batman-parallel", ["p"]),
                           ("batman-isolated", ["--profile", "strict"])):
            p = self.batman(*args, 'echo hi > "$TMPDIR/x" && cat "$TMPDIR/x" && echo tmp > /tmp/y && cat /tmp/y',
                            "--isolation", "namespaces", name=name, check=0)
            self.assertEqual(p.returncode, 0, f"{name} {args}: {p.stderr}")
            self.assertEqual(p.stdout.split(), ["hi", "tmp"], p.stderr)
        self.assertTrue(os.path.isdir(os.path.join(real, "home", "isolated", "state")))


class SymlinkedHomeNobody(SymlinkedHome):
    user = NOBODY


class FirejailDaemon(BatmanTestCase):
    """Issue 11: under firejail, a job that left a setsid daemon did not end until the daemon
    did. It ends with its main process, and the daemon is killed."""

    def test_setsid_daemon_does_not_hold_the_job(self):
        ok, why = tier_available("firejail", self.user)
        if not ok:
            self.skipTest(f"firejail tier unavailable: {why}")
        mark = marker()
        started = time.monotonic()
        p = self.batman(f"(setsid sleep {mark} &); echo hi", "--isolation", "firejail",
                        name="batman-isolated", check=0)
        took = time.monotonic() - started
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "hi")
        self.assertLess(took, 10.0, p.stderr)  # the bug took 20 s (the daemon's sleep)
        wait_for(lambda: not sleeps(mark), timeout=5, what="the daemon to be killed")
