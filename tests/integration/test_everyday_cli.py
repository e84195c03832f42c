"""Everyday command-line habits (issue 13, "Command-line ergonomics" and `clean`): a command
as several words, did-you-mean, help and --version, `--monitor PORT`, `-t/--tty`, OOM kills
said as such, `--worktree` notes, `ps` that fits 80 columns, and `clean` that asks first."""
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import fcntl
import termios
import time

from harness import BatmanTestCase, bin_path, init_git_repo, pid_alive, sleeps, wait_for

JOB_COMMANDS = ("batman-parallel", "batman-isolated", "batman-multi")
EXECUTABLES = ("batman",) + JOB_COMMANDS + ("taskmaster",)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_on_terminal(cmd, env, cwd, rows=30, cols=100, answer=None, prompt=None, timeout=60, resize=None):
    """Run `cmd` with a pseudo-terminal of rows x cols as stdin, stdout and stderr; type
    `answer` once `prompt` shows (or, with `resize` = (rows, cols), resize the terminal then).
    Returns (exit code, everything it printed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                         start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    answered = answer is None and resize is None
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out += chunk
        if not answered and prompt.encode() in out:
            if resize:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", resize[0], resize[1], 0, 0))
            else:
                os.write(master, answer.encode())
            answered = True
        if p.poll() is not None and not r:
            break
    # What is left once it exited.
    while select.select([master], [], [], 0.2)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    code = p.wait(timeout=max(1, deadline - time.monotonic()))
    return code, out.decode(errors="replace")


class CommandAsWords(BatmanTestCase):
    def test_words_after_project_run_as_argv_not_resplit(self):
        p = self.batman("web", "printf", "%s|", "a b", "$HOME", "-j4", "it's", name="batman-parallel", check=0)
        self.assertEqual(p.stdout, "a b|$HOME|-j4|it's|")
        st = self.states("web")[-1]
        self.assertEqual(st["command"], "printf '%s|' 'a b' '$HOME' -j4 'it'\\''s'")

    def test_make_style_short_options_belong_to_the_command(self):
        # -q and -d are batman's too, but after the command's first word they are the command's.
        p = self.batman("web", "echo", "-q", "-d", name="batman-parallel", check=0)
        self.assertEqual(p.stdout, "-q -d\n")

    def test_a_single_quoted_argument_keeps_working_as_sh_c(self):
        p = self.batman("web", "echo $((1+2)); exit 3", name="batman-parallel")
        self.assertEqual((p.returncode, p.stdout), (3, "3\n"))
        # ... with batman's options after it, as before.
        p = self.batman("web", "echo hi", "-q", "--isolation", "env", name="batman-parallel", check=0)
        self.assertEqual((p.stdout, p.stderr), ("hi\n", ""))
        p = self.batman("web", "true", "--isolation", "nosuch", name="batman-parallel")
        self.assertEqual(p.returncode, 125)

    def test_after_double_dash_every_word_is_the_commands(self):
        p = self.batman("--isolation", "env", "web", "--", "echo", "--isolation", "nosuch", name="batman-parallel",
                        check=0)
        self.assertEqual(p.stdout, "--isolation nosuch\n")

    def test_exit_codes_are_those_of_the_command(self):
        self.assertEqual(self.batman("web", "sh", "-c", "exit 7", name="batman-parallel").returncode, 7)
        self.assertEqual(self.batman("web", "no-such-command-xyz", "arg", name="batman-parallel").returncode, 127)

    def test_isolated_and_multi_take_words_too(self):
        p = self.batman("--isolation", "env", "printf", "%s\\n", "x y", "z", name="batman-isolated", check=0)
        self.assertEqual(p.stdout, "x y\nz\n")
        p = self.batman("inst", "printf", "%s\\n", "a b", name="batman-multi", check=0)
        self.assertEqual(p.stdout, "a b\n")

    def test_a_mistyped_batman_option_passed_to_the_command_gets_a_hint(self):
        p = self.batman("web", "echo", "--timout", "5s", name="batman-parallel", check=0)
        self.assertEqual(p.stdout, "--timout 5s\n")
        self.assertIn("did you mean batman's --timeout?", p.stderr)


class DidYouMeanHelpVersion(BatmanTestCase):
    def test_a_mistyped_option_suggests_the_right_one(self):
        for name in JOB_COMMANDS:
            args = ("--timout", "5s", "web", "true") if name != "batman-isolated" else ("--timout", "5s", "true")
            p = self.batman(*args, name=name)
            self.assertEqual(p.returncode, 125, p.stderr)
            self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
            self.assertIn("did you mean --timeout?", p.stderr)
        p = self.batman("clean", "--older-then", "1d")
        self.assertEqual(p.returncode, 125)
        self.assertIn("did you mean --older-than?", p.stderr)
        p = self.batman("ps", "--wdie")
        self.assertIn("did you mean --wide?", p.stderr)

    def test_a_mistyped_subcommand_suggests_the_right_one(self):
        p = self.batman("paralel", "web", "true")
        self.assertEqual(p.returncode, 125)
        self.assertEqual(p.stderr.strip(), "batman: unknown command 'paralel': did you mean 'parallel'? "
                                           "(run 'batman help' for the list)")
        self.assertIn("did you mean 'clean'", self.batman("help", "claen").stderr)
        p = self.batman("profiles", "lsit")
        self.assertEqual(p.returncode, 125)
        self.assertIn("did you mean 'list'?", p.stderr)

    def test_help_subcommand_prints_that_subcommands_help(self):
        p = self.batman("help", "clean", check=0)
        self.assertIn("--older-than", p.stdout)
        self.assertIn("--all", p.stdout)
        p = self.batman("help", "parallel", check=0)
        self.assertIn("--timeout", p.stdout)
        self.assertIn("COMMAND", p.stdout)
        self.assertIn("COMMAND", self.batman("help", check=0).stdout)

    def test_every_executable_has_version_and_V(self):
        for name in EXECUTABLES:
            for flag in ("--version", "-V"):
                p = self.batman(flag, name=name)
                self.assertEqual(p.returncode, 0, f"{name} {flag}: {p.stderr}")
                self.assertRegex(p.stdout, r"^batman \d+\.\d+", f"{name} {flag}")
        self.assertRegex(self.batman("ps", "--version", check=0).stdout, r"^batman \d")


class TwoExecutables(BatmanTestCase):
    """`batman` runs jobs itself and execs libexec/batman/batman-services for every other
    command (README "Layout"): the same commands through either name, argv[0] included (the
    taskmaster link), and without batman-services a clear line and 125, jobs still running."""

    def copy_install(self):
        """The installed tree (bin/ and its ../libexec, ../share), copied whole."""
        prefix = os.path.dirname(os.path.realpath(bin_path("batman")).rstrip("/"))
        prefix = os.path.dirname(prefix)
        copy = os.path.join(self.tmp, "prefix")
        shutil.copytree(prefix, copy, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        return copy

    def test_every_command_through_batman_and_a_clear_error_without_batman_services(self):
        services = os.path.join(os.path.dirname(os.path.realpath(bin_path("batman"))), "..", "libexec",
                                "batman", "batman-services")
        self.assertTrue(os.access(services, os.X_OK), services)
        p = self.batman("-V")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, subprocess.run([services, "-V"], capture_output=True, text=True).stdout)
        p = self.batman("help", "supervise")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("CONFIG", p.stdout)
        p = self.batman("--help", name="taskmaster")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("CONFIG", p.stdout)

        # A relocated install (SPEC §2): batman-services, run by the copy's batman, finds the
        # copy's profiles beside `batman` (../share/batman/profiles), not the original's.
        copy = self.copy_install()
        bindir = os.path.join(copy, "bin")
        p = subprocess.run([os.path.join(bindir, "batman"), "profiles", "show", "isolated"], env=self.env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines()[0],
                         "# " + os.path.join(copy, "share", "batman", "profiles", "isolated.yaml"), p.stdout)
        # The one beside batman comes first, with batman's arguments (its argv[0] is the
        # taskmaster test above).
        helper = os.path.join(copy, "libexec", "batman", "batman-services")
        os.unlink(helper)
        shutil.copy2("/bin/echo", helper)  # a stand-in that shows the arguments it got
        p = subprocess.run([os.path.join(bindir, "taskmaster"), "x.yaml"], capture_output=True, text=True)
        self.assertEqual(p.stdout, "x.yaml\n", p.stderr)
        # One that others may write is passed over (here: for the install's own).
        os.chmod(helper, 0o777)
        p = subprocess.run([os.path.join(bindir, "batman"), "-V"], capture_output=True, text=True)
        self.assertTrue(p.stdout.startswith("batman "), (p.stdout, p.stderr))
        os.unlink(helper)
        # None at all: batman also looks in the libexecdir it was built for and, from a source
        # build, its build tree; those are hidden here (an empty tmpfs over each, in a mount
        # namespace of the test's own).
        if os.geteuid() != 0:
            self.skipTest("hiding the built-in places of batman-services needs a mount namespace (root)")
        with open(os.path.realpath(bin_path("batman")), "rb") as f:
            built_in = {m.decode() for m in re.findall(rb"/[\x21-\x7e]*/batman-services(?=\x00)", f.read())}
        hide = " ".join(f"mount -t tmpfs tmpfs '{os.path.dirname(p)}';" for p in sorted(built_in)
                        if os.path.exists(os.path.dirname(p)))
        for argv in (["batman", "ps"], ["batman", "ctl", "status"], ["taskmaster", "x.yaml"], ["batman"]):
            p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", hide + ' exec "$@"', "sh",
                                os.path.join(bindir, argv[0])] + argv[1:], env=self.env, capture_output=True,
                               text=True, cwd=self.work, timeout=30)
            self.assertEqual(p.returncode, 125, (argv, p.stderr))
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, (argv, p.stderr))
            self.assertIn("cannot run batman-services", lines[0])
            self.assertIn("reinstall batman", lines[0])
        p = subprocess.run([os.path.join(bindir, "batman-isolated"), "-q", "echo ran"], env=self.env,
                           capture_output=True, text=True, cwd=self.work, timeout=30)
        self.assertEqual((p.returncode, p.stdout), (0, "ran\n"), p.stderr)

    def test_stop_reaches_a_run_of_batman_replaced_since_by_an_upgrade(self):
        # `stop` runs in batman-services and a run in `batman`: it knows a run of either, even
        # once the binary that runs it has been replaced (its /proc/PID/exe: "PATH (deleted)").
        copy = self.copy_install()
        batman = os.path.join(copy, "bin", "batman")
        mark = str(random.randint(1_000_000, 9_999_999))
        p = subprocess.run([os.path.join(copy, "bin", "batman-parallel"), "--detach", "--isolation", "env", "p",
                            f"sleep {mark}"], env=self.env, capture_output=True, text=True, timeout=30, cwd=self.work)
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: sleeps(mark), what="the job's sleep")
        os.unlink(batman)
        shutil.copy2(bin_path("batman"), batman)
        p = subprocess.run([batman, "stop", "p"], env=self.env, capture_output=True, text=True, timeout=60, cwd=self.work)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("not a batman", p.stderr)
        wait_for(lambda: not sleeps(mark), what="the job's sleep gone")


class MonitorPort(BatmanTestCase):
    def test_monitor_with_a_space_takes_a_number_as_its_port(self):
        port = free_port()
        p = self.batman("--monitor", str(port), "web", "true", name="batman-parallel", check=0)
        self.assertIn(f"127.0.0.1:{port}", p.stderr)
        self.assertIn(f":{port}", self.states("web")[-1]["monitor_url"])

    def test_bare_monitor_and_monitor_equals_still_work(self):
        p = self.batman("--monitor", "web", "true", name="batman-parallel", check=0)
        self.assertIn("monitor: http://127.0.0.1:", p.stderr)
        # The home's dashboard is reused while it runs: stop it to start one on another port.
        self.batman("dashboard", "--stop", check=0)
        port = free_port()
        p = self.batman(f"--monitor={port}", "web2", "true", name="batman-parallel", check=0)
        self.assertIn(f"127.0.0.1:{port}", p.stderr)


class Tty(BatmanTestCase):
    PROBE = "for f in 0 1 2; do test -t $f && printf 'tty%s ' $f; done; stty size; ls --color=auto -d /"

    def raw(self, *args, stdin=b""):
        """batman-parallel ARGS with `stdin`, its output as bytes (no newline translation)."""
        return subprocess.run([bin_path("batman-parallel")] + list(args), input=stdin, capture_output=True,
                              env=dict(self.env, TERM="xterm"), cwd=self.work, timeout=60)

    def check_tty(self, tier):
        p = self.raw("-t", "--isolation", tier, "web", self.PROBE)
        if tier == "firejail" and p.returncode == 125:
            self.skipTest("firejail unavailable here: " + p.stderr.decode().strip())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"tty0 tty1 tty2 24 80\r\n", p.stdout)  # a terminal's bytes: \r\n
        self.assertIn(b"\x1b[", p.stdout)  # ls kept its colours
        st = self.states("web")[-1]
        with open(os.path.join(self.home, "web", st["log"]), "rb") as f:
            self.assertEqual(f.read(), p.stdout)  # the log has the same bytes

    def test_tty_env_tier(self):
        self.check_tty("env")

    def test_tty_strongest_tier(self):
        self.check_tty("auto")

    def test_tty_firejail_tier(self):
        self.check_tty("firejail")

    def test_without_tty_nothing_changes(self):
        p = self.batman("--isolation", "env", "web", "test -t 1 || echo pipe", name="batman-parallel", check=0)
        self.assertEqual(p.stdout, "pipe\n")

    def test_input_reaches_the_job_and_ends(self):
        p = self.raw("-t", "web", "read x; echo got:$x; cat; echo end", stdin=b"abc\nmore\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"got:abc\r\nmore\r\nend\r\n")  # no echo of the input
        # Input that cannot be watched (a regular file) is an end-of-file at once: no hang.
        with open(os.devnull) as devnull:
            p = subprocess.run([bin_path("batman-parallel"), "-t", "web", "cat; echo done"], stdin=devnull,
                               capture_output=True, text=True, env=self.env, cwd=self.work, timeout=30)
        self.assertIn("done", p.stdout)

    def test_the_job_follows_a_resize(self):
        # The job waits (up to 10 s) for its terminal to take the new size batman was told of.
        job = ('echo ready; i=0; while [ "$(stty size)" != "40 120" ] && [ $i -lt 200 ]; do sleep 0.05; '
               'i=$((i+1)); done; echo "size $(stty size)"')
        code, out = run_on_terminal([bin_path("batman-parallel"), "-t", "-q", "web", job], self.env, self.work,
                                    rows=30, cols=100, prompt="ready", resize=(40, 120))
        self.assertEqual(code, 0, out)
        self.assertIn("size 40 120", out)

    def test_the_terminal_size_is_passed_on(self):
        code, out = run_on_terminal([bin_path("batman-parallel"), "-t", "-q", "web", "stty size"], self.env,
                                    self.work, rows=30, cols=100)
        self.assertEqual(code, 0, out)
        self.assertIn("30 100", out)


class OomKill(BatmanTestCase):
    ALLOC = "python3 -c 'b = bytearray(256 * 1024 * 1024); print(len(b))'"

    def check_oom(self, tier):
        p = self.batman("--memory", "32M", "--isolation", tier, "web", self.ALLOC, name="batman-parallel",
                        timeout=60)
        if any(l.startswith("batman: not enforced: ") and "memory limit" in l for l in p.stderr.splitlines()):
            self.skipTest("no memory cgroup here: " + p.stderr.strip())
        self.assertEqual(p.returncode, 128 + 9, p.stderr)
        self.assertIn("batman: oom-killed: memory limit 32M reached", p.stderr)
        self.assertEqual(self.states("web")[-1]["status"], "oom")

    def test_oom_env_tier(self):
        self.check_oom("env")

    def test_oom_strongest_tier(self):
        self.check_oom("auto")

    def test_a_job_under_its_limit_is_not_oom(self):
        p = self.batman("--memory", "64M", "--isolation", "env", "web", "exit 3", name="batman-parallel")
        self.assertEqual(p.returncode, 3)
        self.assertNotIn("oom", p.stderr)
        self.assertEqual(self.states("web")[-1]["status"], "failed")


class WorktreeNotes(BatmanTestCase):
    def setUp(self):
        super().setUp()
        init_git_repo(self.work)

    def test_help_says_a_successful_runs_worktree_is_removed(self):
        out = self.batman("--help", name="batman-parallel", check=0).stdout
        self.assertIn("removed after a successful", " ".join(out.split()))
        self.assertIn("--keep-worktree", out)

    def test_keep_worktree_keeps_it(self):
        p = self.batman("--worktree", "--keep-worktree", "wt", "pwd", name="batman-parallel", check=0)
        kept = p.stdout.strip()
        self.assertTrue(os.path.isfile(os.path.join(kept, "file.txt")))
        self.assertIn(kept, p.stderr)
        self.assertEqual(self.batman("--keep-worktree", "wt", "true", name="batman-parallel").returncode, 125)

    def test_uncommitted_changes_are_mentioned(self):
        p = self.batman("--worktree", "wt", "cat file.txt", name="batman-parallel", check=0)
        self.assertNotIn("uncommitted", p.stderr)
        with open(os.path.join(self.work, "file.txt"), "w") as f:
            f.write("edited\n")
        p = self.batman("--worktree", "wt", "cat file.txt", name="batman-parallel", check=0)
        self.assertEqual(p.stdout, "committed\n")
        notes = [l for l in p.stderr.splitlines() if "uncommitted" in l]
        self.assertEqual(len(notes), 1, p.stderr)
        self.assertIn("not in the worktree", notes[0])


class PsAndProfiles(BatmanTestCase):
    def test_ps_fits_80_columns_and_wide_shows_all(self):
        long_project = "a-project-with-a-rather-long-name-for-a-table"
        command = "sleep 300; echo " + "x" * 100
        run = self.batman(long_project, command, "--detach", name="batman-parallel", check=0).stdout.strip()
        try:
            table = self.batman("ps", env={"COLUMNS": "80"}, check=0).stdout
            lines = table.splitlines()
            self.assertEqual(len(lines), 2, table)
            for line in lines:
                self.assertLessEqual(len(line), 80, table)
            self.assertIn(run, lines[1])  # the run-id is never cut
            self.assertIn("…", lines[1])
            wide = self.batman("ps", "--wide", env={"COLUMNS": "80"}, check=0).stdout
            self.assertIn(command, wide)
            self.assertIn(long_project, wide)
            self.assertIn("TIER", wide.splitlines()[0])
            self.assertEqual(self.batman("ps", "-q", check=0).stdout, run + "\n")
            runs = json.loads(self.batman("ps", "--format", "json", check=0).stdout)
            self.assertEqual([r["run_id"] for r in runs], [run])
            self.assertEqual(self.batman("ps", "--format", "xml").returncode, 125)
        finally:
            self.batman("stop", long_project, "--all")

    def test_profiles_list_columns_are_aligned(self):
        out = self.batman("profiles", "list", check=0).stdout
        rows = out.split("\n\n")[0].splitlines()
        self.assertGreaterEqual(len(rows), 3)
        header = rows[0]
        for column in ("DESCRIPTION", "FILE"):
            at = header.index(column)
            for row in rows[1:]:
                self.assertNotEqual(row[at - 1:at], "", row)
                self.assertEqual(row[at - 2:at], "  ", f"{column} not aligned in: {row!r}\n{out}")
                self.assertNotEqual(row[at], " ", f"{column} not aligned in: {row!r}\n{out}")


class Clean(BatmanTestCase):
    def finished_runs(self, n=2):
        for i in range(n):
            self.batman(f"p{i}", "true", "--isolation", "env", name="batman-parallel", check=0)

    def count(self):
        return sum(len(self.states(p)) for p in os.listdir(self.home) if os.path.isdir(os.path.join(self.home, p)))

    def test_a_bare_number_is_refused_and_weeks_are_accepted(self):
        self.finished_runs(1)
        p = self.batman("clean", "--older-than", "7")
        self.assertEqual(p.returncode, 125)
        self.assertIn("add a unit: s, m, h, d, w", p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1)
        self.assertEqual(self.count(), 1)
        self.batman("clean", "--older-than", "1w", check=0)
        self.assertEqual(self.count(), 1)  # a minute-old run is not a week old
        self.batman("clean", "--older-than", "0s", "--all", check=0)
        self.assertEqual(self.count(), 0)

    def test_everything_without_a_terminal_needs_all(self):
        self.finished_runs()
        p = self.batman("clean", input="")
        self.assertEqual(p.returncode, 125)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn("--all", p.stderr)
        self.assertEqual(self.count(), 2)
        self.batman("clean", "--all", input="", check=0)
        self.assertEqual(self.count(), 0)

    def test_everything_on_a_terminal_asks_first(self):
        self.finished_runs()
        code, out = run_on_terminal([bin_path(), "clean"], self.env, self.work, answer="n\n", prompt="[y/N]")
        self.assertEqual(code, 1, out)
        self.assertIn("remove all 2 finished run(s) of 2 project(s)?", out)
        self.assertEqual(self.count(), 2)
        code, out = run_on_terminal([bin_path(), "clean"], self.env, self.work, answer="y\n", prompt="[y/N]")
        self.assertEqual(code, 0, out)
        self.assertEqual(self.count(), 0)

    def test_a_project_or_an_age_needs_no_confirmation(self):
        self.finished_runs()
        self.batman("clean", "p0", input="", check=0)
        self.assertEqual(self.count(), 1)


class InstalledBinaries(BatmanTestCase):
    def test_installed_binaries_are_stripped(self):
        real = os.path.realpath(bin_path())
        services = os.path.join(os.path.dirname(real), "..", "libexec", "batman", "batman-services")
        for path in (real, services):
            out = subprocess.run(["readelf", "-S", path], capture_output=True, text=True, check=True).stdout
            self.assertNotIn(".debug_info", out, path)
            self.assertNotIn(".symtab", out, path)


class TesterFindings(BatmanTestCase):
    """What a tester of issue 13 found: each a user's command and what they expected."""

    def test_the_task_stop_signal_harms_no_batman_but_a_batch(self):
        # `batman stop PROJECT TASK` sends SIGRTMIN+2 to a batch; sent to any other batman (a
        # forged state file naming its pid), it must do nothing.
        mark = str(random.randint(1_000_000, 9_999_999))
        run = self.spawn("p", f"sleep {mark}", name="batman-parallel")
        config = os.path.join(self.work, "tmsig.yaml")
        with open(config, "w") as f:
            f.write(f"programs:\n  s:\n    cmd: exec sleep {mark}\n    isolation: env\n")
        self.batman(config, "--daemon", name="taskmaster", check=0)
        with open(os.path.join(self.home, "tmsig", "state", "supervisor.pid")) as f:
            daemon = int(f.read())
        try:
            wait_for(lambda: any(s["status"] == "running" for s in self.states("p")), what="the run started")
            for pid in (run.pid, daemon):
                os.kill(pid, signal.SIGRTMIN + 2)
            time.sleep(0.3)  # a signal's default action would have killed them by now
            self.assertIsNone(run.poll())
            self.assertTrue(pid_alive(daemon))
            self.assertEqual(self.states("p")[-1]["status"], "running")
        finally:
            self.batman("ctl", "--config", config, "shutdown", check=None)
            wait_for(lambda: not pid_alive(daemon), what="taskmaster gone")
            self.batman("stop", "p", check=None)
            run.wait(timeout=30)

    def test_an_empty_value_is_refused_not_taken_as_left_out(self):
        plan = os.path.join(self.work, "f.yaml")
        with open(plan, "w") as f:
            f.write("tasks:\n  a: 'true'\n")
        for args in (("batch", plan, "--report", ""), ("batch", plan, "--timeout", ""),
                     ("clean", "--older-than", "", "--dry-run"), ("clean", ""), ("logs", "p", ""),
                     ("ps", "--project", "")):
            r = self.batman(*args, check=125)
            self.assertIn("is empty", r.stderr, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = self.batman("--profile", "", "p", "true", name="batman-parallel", check=125)
        self.assertIn("is empty", r.stderr)
        with open(plan, "w") as f:
            f.write("tasks:\n  a: ''\n")
        r = self.batman("batch", plan, check=125)
        self.assertIn("tasks.a", r.stderr)

    def test_logs_of_a_program_whose_stdout_is_its_own_file(self):
        out = os.path.join(self.work, "b.out")
        config = os.path.join(self.work, "lt.yaml")
        with open(config, "w") as f:
            f.write(f"programs:\n  b:\n    cmd: echo hello-from-b; exec sleep 600\n    isolation: env\n"
                    f"    stdout: {out}\n")
        self.batman(config, "--daemon", name="taskmaster", check=0)
        with open(os.path.join(self.home, "lt", "state", "supervisor.pid")) as f:
            daemon = int(f.read())
        try:
            wait_for(lambda: os.path.exists(out) and "hello-from-b" in open(out).read(), what="the output")
            # The supervisor records a start on its state writer's thread, so the program's
            # first output can come before its record does (CI saw "no run 'b'" once).
            self.wait_state_file("lt", "b_00", lambda r: r.get("status") == "running", what="b's record")
            for name in ("b", "b:00", "b_00"):
                r = self.batman("logs", "lt", name, check=0)
                self.assertEqual(r.stdout, "hello-from-b\n", name)
        finally:
            self.batman("ctl", "--config", config, "shutdown", check=None)
            wait_for(lambda: not pid_alive(daemon), what="taskmaster gone")

    def test_a_monitor_port_in_use_is_refused_and_no_monitor_contradicts_monitor(self):
        # A port something else holds, with no dashboard of this home running: refused. (A
        # running dashboard of the home is reused, whatever its port: test_dashboard.py.)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            r = self.batman("--monitor", str(port), "q", "true", name="batman-parallel")
            self.assertEqual(r.returncode, 125, r.stderr)
            self.assertIn("in use", r.stderr)
        r = self.batman("--monitor", "--no-monitor", "p", "true", name="batman-parallel", check=125)
        self.assertIn("--no-monitor", r.stderr)
