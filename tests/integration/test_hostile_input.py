"""Hostile files and faults (issue 11, README "Bad input and faults"): a user missing from
/etc/passwd, FIFOs and devices where batman opens a file, oversized configs, duplicate YAML
keys, names with control characters, and a full disk. batman never crashes, hangs or loses
the record: each case runs under a deadline and checks the exit code, the one-line message
and what is on disk."""
import json
import os
import shutil
import pwd
import random
import signal
import socket
import stat
import subprocess
import threading
import time
import unittest

from harness import BatmanTestCase, bin_path, pid_alive, processes_with_marker, wait_for

DEADLINE = 10  # seconds: every refusal here is immediate; a hang fails the test


def unknown_uid():
    """A uid with no passwd entry."""
    for uid in range(12345, 13000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise unittest.SkipTest("no free uid")


class HostileCase(BatmanTestCase):
    def setUp(self):
        super().setUp()
        # A sleep length no other test uses marks this test's processes in /proc.
        self.mark = str(random.randint(1_000_000, 9_999_999))
        self.pidfiles = []

    def tearDown(self):
        for pidfile in self.pidfiles:
            try:
                with open(pidfile) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        for pid in processes_with_marker(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().tearDown()

    def refused(self, *args, name="batman", code=125, contains=(), env=None):
        """Run a command that must be refused at once: exit `code`, one line on stderr."""
        r = self.batman(*args, name=name, timeout=DEADLINE, env=env)
        self.assertEqual(r.returncode, code, f"{name} {args}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr}")
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        for text in contains:
            self.assertIn(text, r.stderr)
        return r

    def project_dir(self, project, *sub):
        path = os.path.join(self.home, project, *sub)
        os.makedirs(path, exist_ok=True)
        return path

    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text.replace("MARK", self.mark))
        return path

    def fifo(self, path):
        os.mkfifo(path, 0o600)
        return path

    def start_daemon(self, config, project="tm"):
        self.pidfiles.append(os.path.join(self.home, project, "state", "supervisor.pid"))
        r = self.batman(config, "--daemon", name="taskmaster", timeout=DEADLINE, check=0)
        with open(self.pidfiles[-1]) as f:
            pid = int(f.read().strip())
        self.assertTrue(pid_alive(pid), r.stderr)
        return pid

    def ctl(self, *args, check=0, project="tm"):
        sock = os.path.join(self.home, project, "state", "control.sock")
        return self.batman("ctl", "--socket", sock, *args, timeout=DEADLINE, check=check)

    def status(self, project="tm"):
        return {row["name"]: row for row in json.loads(self.ctl("status", "--json", project=project).stdout)}

    def wait_running(self, names, project="tm"):
        def all_running():
            rows = self.status(project)
            return rows if all(rows.get(n, {}).get("state") == "RUNNING" for n in names) else None
        return wait_for(all_running, timeout=15, what=f"{names} RUNNING")


SLEEPERS = """programs:
  one:
    cmd: "sleep MARK"
  two:
    cmd: "sh -c 'sleep MARK'"
"""


class UnknownUsers(HostileCase):
    """`user:` naming no one crashed the static glibc's NSS (exit 139)."""

    def test_unknown_user_by_name_or_uid_is_exit_125_naming_file_line_key(self):
        for user in ("nosuchuser", str(unknown_uid())):
            config = self.write("tm.yaml", f"programs:\n  a:\n    cmd: \"sleep MARK\"\n    user: {user}\n")
            self.refused(config, name="taskmaster",
                         contains=(f"{config}:4: key 'programs.a.user': no such user '{user}'",))
            self.assertEqual(processes_with_marker(self.mark), [])
            # ctl reads the config to find the socket: no crash, the usual answer (no supervisor).
            r = self.batman("ctl", "--config", config, "status", timeout=DEADLINE)
            self.assertNotEqual(r.returncode, -signal.SIGSEGV, r.stderr)
            self.assertIn(r.returncode, (1, 125), r.stderr)

    def test_a_reload_with_an_unknown_user_is_refused_and_nothing_changes(self):
        config = self.write("tm.yaml", SLEEPERS)
        daemon = self.start_daemon(config)
        before = {n: row["pid"] for n, row in self.wait_running(["one", "two"]).items()}
        self.write("tm.yaml", SLEEPERS + "    user: nosuchuser\n")
        r = self.ctl("reload", check=1)
        self.assertIn(f"{config}:6: key 'programs.two.user': no such user 'nosuchuser'", r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(pid_alive(daemon))
        self.assertEqual({n: row["pid"] for n, row in self.status().items()}, before)
        for pid in before.values():
            self.assertTrue(pid_alive(pid))

    def test_ps_as_a_uid_without_a_passwd_entry(self):
        uid = unknown_uid()
        self.batman("parallel", "p", "true", check=0)
        os.chmod(self.home, 0o755)
        for root, dirs, files in os.walk(self.home):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        base = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env", "-u", "HOME"]
        # With $BATMAN_HOME: it lists (another user's runs: nothing of its own to fail on).
        r = subprocess.run(base + [bin_path(), "ps", "--all"], env=self.env, capture_output=True, text=True,
                           timeout=DEADLINE, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("PROJECT", r.stdout)
        # Without $BATMAN_HOME or $HOME (getpwuid finds no one: this crashed): ps has no runs
        # to list, a run is told there is no home.
        env = dict(self.env)
        env.pop("BATMAN_HOME")
        r = subprocess.run(base + [bin_path(), "ps"], env=env, capture_output=True, text=True,
                           timeout=DEADLINE, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("PROJECT", r.stdout)
        r = subprocess.run(base + [bin_path("batman-parallel"), "p", "true"], env=env, capture_output=True,
                           text=True, timeout=DEADLINE, cwd="/")
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("no home directory: set HOME or BATMAN_HOME", r.stderr)


class HostileFiles(HostileCase):
    """A FIFO (or /dev/zero, or a directory) where batman opens a file blocked open() forever
    or grew without bound: refused at once, or the log skipped with one warning."""

    def test_a_fifo_or_device_as_the_events_log_is_skipped_with_one_warning(self):
        logs = self.project_dir("p", "logs")
        kinds = [("fifo", lambda path: self.fifo(path)), ("dir", lambda path: os.mkdir(path))]
        if os.geteuid() == 0:
            kinds.append(("zero", lambda path: os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))))
        for kind, make in kinds:
            path = os.path.join(logs, "events.log")
            make(path)
            r = self.batman("parallel", "p", "echo hi", timeout=DEADLINE)
            self.assertEqual(r.returncode, 0, f"{kind}: {r.stderr}")
            self.assertEqual(r.stdout, "hi\n")
            said = [line for line in r.stderr.splitlines() if "events.log" in line]
            self.assertEqual(len(said), 1, r.stderr)
            self.assertIn(f"{path}: not a regular file", said[0])
            self.assertEqual(self.ps_json("--project", "p")[-1]["status"], "succeeded")
            (os.rmdir if kind == "dir" else os.unlink)(path)

    def test_a_fifo_as_the_run_log_is_refused(self):
        logs = self.project_dir("web", "logs")
        path = self.fifo(os.path.join(logs, "web.log"))  # a multi instance's log: logs/<ID>.log
        r = self.batman("multi", "web", "echo hi", timeout=DEADLINE)
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn(f"could not start the job: cannot create log: {path}: not a regular file (a FIFO)", r.stderr)
        if os.geteuid() == 0:  # a /dev/zero there (O_TRUNC on a device would do nothing good)
            os.unlink(path)
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
            r = self.batman("multi", "web", "echo hi", timeout=DEADLINE)
            self.assertEqual(r.returncode, 125, r.stderr)
            self.assertIn(f"{path}: not a regular file (a character device)", r.stderr)

    def test_a_tmpdir_that_cannot_be_made_is_a_failed_start(self):
        # The TMPDIR is made before the plan (the namespaces tier's early child mounts it beside
        # batman); one that cannot be made still fails the start as before: said, recorded.
        tmp = self.project_dir("web", "tmp")
        if subprocess.run(["chattr", "+i", tmp], capture_output=True).returncode != 0:
            self.skipTest("chattr +i is not supported here (needs root and ext4, xfs or btrfs)")
        self.addCleanup(subprocess.run, ["chattr", "-i", tmp])
        for tier in ("namespaces", "env"):
            r = self.batman("multi", "web", "echo hi", "--isolation", tier, timeout=DEADLINE)
            self.assertEqual((r.returncode, r.stdout), (125, ""), r.stderr)
            self.assertIn(f"could not start the job: cannot create {tmp}/web: Operation not permitted", r.stderr)
            self.assertEqual(self.ps_json("--project", "web", "--all")[-1]["status"], "failed", tier)
        # Retried once it can be made: the job gets the new TMPDIR (not mounts the early child
        # made for the first attempt, when there was none).
        p = self.spawn("multi", "web", "--restart", "unexpected", "--startretries", "1", "--starttime", "0",
                       "--isolation", "namespaces",
                       "touch $TMPDIR/x /tmp/y && echo ran")
        time.sleep(0.3)  # the first retry comes a second after the first attempt (supervisord's backoff)
        subprocess.run(["chattr", "-i", tmp], check=True)
        out, err = p.communicate(timeout=DEADLINE)
        self.assertEqual((p.returncode, out), (0, "ran\n"), err)
        self.assertIn("cannot create", err)

    def test_sigchld_ignored_by_the_caller_loses_no_exit_status(self):
        # A caller that ignores SIGCHLD (inherited across exec) must not have the kernel reap
        # the job unseen: the env tier reported exit 0, the namespaces tier hung.
        ignore = lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # noqa: E731
        for tier in ("namespaces", "env"):
            r = subprocess.run(self.command(("exit 3", "--isolation", tier), "batman-isolated"), env=self.env,
                               cwd=self.work, capture_output=True, text=True, timeout=DEADLINE, preexec_fn=ignore)
            self.assertEqual(r.returncode, 3, f"{tier}: {r.stderr}")
            self.assertEqual(self.ps_json("--project", "isolated", "--all")[-1]["status"], "failed", tier)

    def test_a_fifo_or_device_as_a_profile_is_refused(self):
        fifo = self.fifo(os.path.join(self.work, "fifo.yaml"))
        self.refused("isolated", "--profile", fifo, "true", contains=(f"{fifo}: not a regular file (a FIFO)",))
        self.refused("isolated", "--profile", "/dev/zero", "true",
                     contains=("/dev/zero: not a regular file (a character device)",))
        big = self.write("big.yaml", "# " + "x" * 1000 + "\n" * 1 + ("# " + "x" * 1000 + "\n") * 5000)
        self.refused("isolated", "--profile", big, "true", contains=(f"{big}: larger than 4 MiB",))

    def test_a_fifo_device_or_oversized_batch_file_is_refused(self):
        fifo = self.fifo(os.path.join(self.work, "b.yaml"))
        self.refused("batch", fifo, contains=(f"{fifo}: not a regular file (a FIFO)",))
        self.refused("batch", "/dev/zero", contains=("/dev/zero: not a regular file",))
        big = self.write("big.yaml", "tasks:\n  a: true\n" + ("# " + "x" * 1000 + "\n") * 5000)
        self.refused("batch", big, contains=(f"{big}: larger than 4 MiB",))
        # A batch's task log that is a FIFO: that attempt fails with the reason, nothing hangs.
        # (Log names carry the batch's random run-id: the task plants one for its next attempt.)
        plant = "test $BATMAN_ATTEMPT = 1 || exit 0; mkfifo $BATMAN_PROJECT_DIR/logs/$BATMAN_RUN_ID.2.log; exit 1"
        batch = self.write("b2.yaml", f"tasks:\n  a: \"{plant}\"\n  b: \"true\"\n")
        r = self.batman("batch", batch, "--isolation", "env", timeout=DEADLINE)
        self.assertIn("task a attempt 2 could not start: create log: ", r.stderr)
        self.assertIn(".a.2.log: not a regular file (a FIFO); retry 2 of", r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)  # the next retry got a log of its own

    def test_a_fifo_or_oversized_taskmaster_config_is_refused_at_start_and_at_reload(self):
        fifo = self.fifo(os.path.join(self.work, "f.yaml"))
        self.refused(fifo, name="taskmaster", contains=(f"{fifo}: not a regular file (a FIFO)",))
        big = self.write("big.yaml", "programs: {}\n" + ("# " + "x" * 1000 + "\n") * 5000)
        self.refused(big, name="taskmaster", contains=(f"{big}: larger than 4 MiB",))
        self.refused("/dev/zero", name="taskmaster", contains=("/dev/zero: not a regular file (a character device)",))
        # A live supervisor whose config became a FIFO: the reload is refused, it keeps serving.
        config = self.write("tm.yaml", SLEEPERS)
        daemon = self.start_daemon(config)
        before = {n: row["pid"] for n, row in self.wait_running(["one", "two"]).items()}
        os.unlink(config)
        self.fifo(config)
        r = self.ctl("reload", check=1)
        self.assertIn(f"{config}: not a regular file (a FIFO)", r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        os.kill(daemon, signal.SIGHUP)  # the same through SIGHUP
        self.assertEqual({n: row["pid"] for n, row in self.status().items()}, before)
        self.assertTrue(pid_alive(daemon))

    def test_a_fifo_as_a_programs_log_keeps_that_program_down_not_the_supervisor(self):
        logs = self.project_dir("tm", "logs")
        fifo = self.fifo(os.path.join(logs, "one_00.out.log"))
        config = self.write("tm.yaml", SLEEPERS)
        daemon = self.start_daemon(config)
        self.wait_running(["two"])
        row = self.status()["one"]
        self.assertEqual(row["state"], "FATAL", row)
        with open(os.path.join(logs, "events.log")) as f:
            self.assertIn(f"{fifo}: not a regular file (a FIFO)", f.read())
        self.assertTrue(pid_alive(daemon))
        # `ctl tail` of it cannot block the supervisor either.
        self.ctl("tail", "one", check=None)
        self.assertEqual(self.status()["two"]["state"], "RUNNING")

    def test_a_fifo_or_directory_as_a_state_file_does_not_hang_ps(self):
        self.batman("parallel", "p", "true", check=0)
        state = self.project_dir("p", "state")
        self.fifo(os.path.join(state, "20260101T000000-abcdef.json"))
        os.mkdir(os.path.join(state, "20260101T000000-fedcba.json"))
        r = self.batman("ps", "--all", "--json", timeout=DEADLINE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([run["status"] for run in json.loads(r.stdout)], ["succeeded"])


class HostileSupervisor(HostileCase):
    """ctl against a server that is not a supervisor, and against a reader that goes away."""

    def serve(self, reply):
        """A Unix socket answering every connection with `reply` (bytes, or a callable given
        the connection), in a thread; its path."""
        path = os.path.join(self.tmp, "fake.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(4)
        self.addCleanup(server.close)

        def run():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    try:
                        conn.recv(4096)
                        reply(conn) if callable(reply) else conn.sendall(reply)
                    except OSError:
                        pass
        threading.Thread(target=run, daemon=True).start()
        return path

    def test_an_exit_code_outside_0_to_255_is_a_malformed_reply_not_success(self):
        for code in ("256", "-1", str(2**64 - 1), "0.0", '"0"'):
            sock = self.serve(('{"exit": %s}\n' % code).encode())
            r = self.batman("ctl", "--socket", sock, "status", timeout=DEADLINE)
            self.assertEqual(r.returncode, 125, r.stderr)
            self.assertIn("malformed reply from the supervisor", r.stderr)
            os.unlink(sock)

    def test_a_line_that_never_ends_is_refused_before_memory_runs_out(self):
        def flood(conn):
            chunk = b"x" * 65536
            for _ in range(1024):  # 64 MiB, no newline
                conn.sendall(chunk)
        sock = self.serve(flood)
        r = self.batman("ctl", "--socket", sock, "status", timeout=DEADLINE)
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("a line longer than 32 MiB", r.stderr)

    def test_output_that_cannot_be_written_is_an_error_and_a_gone_reader_ends_ctl(self):
        config = self.write("tm.yaml", "programs:\n  ticker:\n    cmd: \"while :; do echo MARK; sleep 0.05; done\"\n")
        self.start_daemon(config)
        self.wait_running(["ticker"])
        with open("/dev/full", "w") as full:
            r = subprocess.run([bin_path(), "ctl", "--config", config, "status"], env=self.env, stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=DEADLINE)
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertIn("write the output", r.stderr)
        for words in (["-V"], ["--help"]):  # what ctl prints itself, with no supervisor asked
            with open("/dev/full", "w") as full:
                r = subprocess.run([bin_path(), "ctl", *words], env=self.env, stdout=full,
                                   stderr=subprocess.PIPE, text=True, timeout=DEADLINE)
            self.assertEqual(r.returncode, 125, r.stderr)
            self.assertIn("write the output", r.stderr)
        # `ctl tail -f | head -c1`: once the reader is gone ctl ends (as SIGPIPE would end a
        # tool), it does not follow for ever.
        p = subprocess.Popen([bin_path(), "ctl", "--config", config, "tail", "ticker", "-f"], env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(p.stdout.read(1))
        p.stdout.close()
        try:
            self.assertEqual(p.wait(timeout=DEADLINE), 141)
        finally:
            p.kill()
            p.wait()
        self.assertEqual(p.stderr.read(), b"")
        p.stderr.close()


class BadText(HostileCase):
    def test_a_name_with_a_newline_is_refused_in_one_line(self):
        self.refused("a\nb", "true", name="batman-parallel", contains=("invalid project name 'a\\nb'",))
        r = self.refused("a\x1b[31mb", "true", name="batman-parallel", contains=("'a\\e[31mb'",))
        self.assertNotIn("\x1b", r.stderr)

    def test_duplicate_keys_are_refused_by_every_reader(self):
        config = self.write("tm.yaml", "programs:\n  a:\n    cmd: x\n    cmd: y\n")
        self.refused(config, name="taskmaster", contains=(f"{config}:4: key 'programs.a.cmd': duplicate key",))
        batch = self.write("b.yaml", "tasks:\n  a: \"true\"\n  a: \"false\"\n")
        self.refused("batch", batch, contains=(f"{batch}:3: key 'tasks.a': duplicate key",))
        profile = self.write("p.yaml", "network: none\nnetwork: host\n")
        self.refused("isolated", "--profile", profile, "true",
                     contains=(f"{profile}:2: key 'network': duplicate key",))


    def test_endless_stdin_for_batch_is_refused_not_read(self):
        with open("/dev/zero", "rb") as zero:
            r = subprocess.run([bin_path("batman"), "batch", "-"], stdin=zero, capture_output=True,
                               text=True, env=self.env, timeout=DEADLINE)
        self.assertEqual(r.returncode, 125, r.stderr)
        self.assertEqual(r.stderr.strip(),
                         "batman: <stdin>:1: a line longer than 131072 bytes (the kernel's limit for one command)")

    def test_ps_shows_a_commands_escape_sequences_as_text(self):
        self.batman("parallel", "p", "true \x1b]0;pwned\x07\x1b[2J", check=None)  # exit 127: fine
        r = self.batman("ps", "--all", check=0)
        self.assertNotIn("\x1b", r.stdout)
        self.assertNotIn("\x07", r.stdout)
        self.assertIn("\\e]0;pwned", r.stdout)

    def test_a_deeply_nested_state_file_is_skipped_at_once(self):
        self.batman("parallel", "p", "true", check=0)
        with open(os.path.join(self.project_dir("p", "state"), "20260101T000000-abcdef.json"), "w") as f:
            f.write("[" * 3_000_000)
        started = time.monotonic()
        r = self.batman("ps", "--all", "--json", timeout=DEADLINE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([run["status"] for run in json.loads(r.stdout)], ["succeeded"])
        self.assertLess(time.monotonic() - started, 5)


@unittest.skipUnless(os.geteuid() == 0, "needs root to mount a 2 MB tmpfs as BATMAN_HOME")
class PlantedStateFile(HostileCase):
    """An env-tier job may write its project's state/ (README: the trust boundary's limits),
    where a run still going after 5 ms has its final state's file under a temporary name.
    The end publishes only the file batman wrote and synced: what the job put at that name
    (a forged record, a symlink) is not taken for it. Fails with a plain rename at the end."""

    SWAP = ("sleep 0.3; S=$BATMAN_PROJECT_DIR/state; n=0; "
            "for t in $S/.*.json.tmp.*; do [ -e \"$t\" ] || continue; n=$((n+1)); {}; done; "
            "echo swapped=$n; exit 3")

    def check_end(self, r):
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("swapped=1", r.stdout)
        [run] = self.ps_json("--project", "p")
        self.assertEqual((run["status"], run["exit_code"]), ("failed", 3), run)
        self.assertIsNotNone(run.get("ended_at"), run)
        st = os.lstat(os.path.join(self.home, "p", "state", run["run_id"] + ".json"))
        self.assertTrue(stat.S_ISREG(st.st_mode), oct(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    def test_a_forged_record_at_the_temporary_name_is_not_published(self):
        forge = ("printf '{\"schema\":1,\"status\":\"succeeded\",\"exit_code\":0}' > $S/forged; "
                 "mv -f $S/forged \"$t\"")
        self.check_end(self.batman("parallel", "--isolation", "env", "p", self.SWAP.format(forge), timeout=DEADLINE))

    def test_a_symlink_at_the_temporary_name_is_not_published(self):
        outside = os.path.join(self.tmp, "outside")
        with open(outside, "w") as f:
            f.write("untouched\n")
        self.check_end(self.batman("parallel", "--isolation", "env", "p",
                                   self.SWAP.format(f"ln -sf {outside} \"$t\""), timeout=DEADLINE))
        with open(outside) as f:
            self.assertEqual(f.read(), "untouched\n")


class FullDisk(HostileCase):
    """ENOSPC: a job fills BATMAN_HOME's file system with its log."""

    SPAM = "yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 10000000; exit 7"

    def setUp(self):
        super().setUp()
        os.makedirs(self.home)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", self.home],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs: {r.stderr.strip()}")
        # Cleanups run after tearDown, last first: the tmpfs goes, then the directory that
        # tearDown could not remove while it was a mount point (else left behind in /tmp).
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.home], capture_output=True)

    def test_the_end_of_a_run_is_recorded_and_the_lost_log_said_once(self):
        r = self.batman("parallel", "p", self.SPAM, timeout=60)
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertEqual(len(r.stdout), 10_000_000)  # the terminal got every byte
        lines = r.stderr.splitlines()
        log_lines = [l for l in lines if "the log is incomplete" in l]
        self.assertEqual(len(log_lines), 1, r.stderr)
        self.assertIn("No space left on device", log_lines[0])
        [run] = self.ps_json("--project", "p")
        self.assertEqual(run["status"], "failed", run)
        self.assertEqual(run["exit_code"], 7, run)
        self.assertIsNotNone(run.get("ended_at"), run)

    def test_a_run_on_a_disk_already_full_is_refused_before_its_job_starts(self):
        self.batman("parallel", "p", "true", check=0)  # the project tree exists
        with open(os.path.join(self.home, "filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"f" * 65536)
            except OSError:
                pass
        marker = os.path.join(self.tmp, "ran")
        for detach in ((), ("-d",)):
            r = self.batman("parallel", *detach, "p", f"touch {marker}; sleep {self.mark}", timeout=DEADLINE)
            self.assertEqual(r.returncode, 125, r.stderr)
            self.assertIn("No space left on device", r.stderr)
            self.assertNotIn(": ould not", r.stderr)  # the detached reply keeps its first letter
        self.assertFalse(os.path.exists(marker), "the job ran with no record")
        # The detached batman (its command line carries the mark) may still be exiting.
        wait_for(lambda: processes_with_marker(self.mark) == [], timeout=10, what="no process of the run left")

    def test_a_programs_end_is_recorded_on_a_full_disk(self):
        config = self.write("tm.yaml", f"""programs:
  spam:
    cmd: "{self.SPAM}"
    autorestart: false
    starttime: 0
  sleeper:
    cmd: "sleep MARK"
""")
        daemon = self.start_daemon(config)
        s = self.wait_state_file("tm", "spam_00", lambda r: r.get("status") not in ("running", "starting"),
                                 timeout=30, what="spam's end in its state file")
        self.assertEqual(s["status"], "failed", s)
        self.assertEqual(s["exit_code"], 7, s)
        self.assertEqual(self.status()["spam"]["state"], "EXITED")
        self.assertTrue(pid_alive(daemon))
        self.ctl("quit", check=None)
        wait_for(lambda: not pid_alive(daemon), timeout=30, what="the supervisor to quit")
        with open(os.path.join(self.home, "tm", "state", "sleeper_00.json")) as f:
            self.assertNotIn(json.load(f)["status"], ("running", "starting"))


if __name__ == "__main__":
    unittest.main()
