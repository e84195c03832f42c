"""batman-parallel / batman-multi / ps / logs / stop / clean, driven as a user would (issue 2)."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid

from harness import NOBODY, BatmanTestCase, init_git_repo, pid_alive, processes_with_marker, sleeps, wait_for


# The env tier (process group + subreaper) and whatever `auto` picks on this machine.
TIERS = ("env", "auto")


def marker():
    """A number unique to the test, used as `sleep MARKER` so the job's processes can be
    found by their command line."""
    return "9" + str(uuid.uuid4().int % 10**8).zfill(8)


class ExitCodes(BatmanTestCase):
    def test_success_is_zero(self):
        p = self.batman("p", "true", name="batman-parallel")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_job_code_passes_through(self):
        self.assertEqual(self.batman("p", "exit 3", name="batman-parallel").returncode, 3)

    def test_killed_by_signal_is_128_plus_n(self):
        self.assertEqual(self.batman("p", "kill -TERM $$", name="batman-parallel").returncode, 128 + 15)

    def test_timeout_is_124_and_tree_gone(self):
        for tier in TIERS:
            with self.subTest(tier=tier):
                m = marker()
                p = self.batman("p", f"sleep {m} & sleep {m}1; echo never", "--timeout", "300ms",
                                "--isolation", tier, name="batman-parallel")
                self.assertEqual(p.returncode, 124, p.stderr)
                self.assertNotIn("never", p.stdout)
                self.assertEqual(processes_with_marker(m), [])
                st = self.states("p")[-1]
                self.assertEqual(st["status"], "timeout")

    def test_not_found_127_not_executable_126(self):
        self.assertEqual(self.batman("p", "no-such-command-xyz", name="batman-parallel").returncode, 127)
        script = os.path.join(self.work, "script.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho hi\n")
        os.chmod(script, 0o644)
        self.assertEqual(self.batman("p", script, name="batman-parallel").returncode, 126)

    def test_batman_errors_are_125_with_one_line(self):
        for args in (["p", "true", "--timeout", "soon"], ["p", "true", "--isolation", "magic"],
                     ["p", "true", "--restart", "sometimes"], ["p", "true", "--memory", "lots"],
                     ["p", "true", "--stopsignal", "NOPE"], ["p", "true", "--env", "NOEQUALS"],
                     ["p", "true", "--profile", "no-such-profile"], ["p"], ["p", "echo hi", "--bogus"],
                     ["--bogus", "p", "true"]):
            p = self.batman(*args, name="batman-parallel")
            self.assertEqual(p.returncode, 125, (args, p.stderr))
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, (args, p.stderr))
            self.assertTrue(lines[0].startswith("batman: "), lines[0])

    def test_repeatable_and_optional_value_options_do_not_swallow_positionals(self):
        p = self.batman("--env", "A=1", "p", "echo $A", "-q", name="batman-parallel")
        self.assertEqual((p.returncode, p.stdout), (0, "1\n"), p.stderr)
        p = self.batman("--monitor", "p", "echo hi", "-q", name="batman-parallel")
        self.assertEqual((p.returncode, p.stdout), (0, "hi\n"), p.stderr)

    def test_reader_going_away_ends_the_job(self):
        p = subprocess.run(f"{self.command(['p', 'yes', '--isolation', 'env'], 'batman-parallel')[0]} p yes "
                           f"--isolation env | head -1", shell=True, env=self.env, cwd=self.work,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.stdout, "y\n")
        self.assertEqual(self.states("p")[0]["status"], "killed")

    def test_daemonized_grandchildren_do_not_outlive_the_run(self):
        for tier in TIERS:
            with self.subTest(tier=tier):
                m = marker()
                p = self.batman("dz", f"setsid sh -c 'sleep {m} & sleep {m}1 & wait' & sleep 0.3",
                                "--isolation", tier, name="batman-parallel")
                self.assertEqual(p.returncode, 0, p.stderr)
                wait_for(lambda: processes_with_marker(m) == [], timeout=5, what="no daemon left")

    def test_failed_start_leaves_nothing_behind(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = self.batman("fsl", "true", f"--monitor={port}", name="batman-parallel")
        s.close()
        self.assertEqual(p.returncode, 125)
        self.assertIn(str(port), p.stderr)
        for sub in ("logs", "tmp", "state"):
            d = os.path.join(self.home, "fsl", sub)
            left = [f for f in os.listdir(d) if f != "events.log"] if os.path.isdir(d) else []
            self.assertEqual(left, [], sub)
        d = self.batman("fsl", "true", "--detach", "--worktree", "--cwd", "/", name="batman-parallel")
        self.assertEqual(d.returncode, 125)
        self.assertIn("not inside a git repository", d.stderr)

    def test_options_after_positionals_and_double_dash(self):
        p = self.batman("p", "echo $FOO", "--env", "FOO=after", name="batman-parallel")
        self.assertEqual(p.stdout.strip(), "after")
        p = self.batman("--env", "FOO=before", "--", "p", "echo $FOO", name="batman-parallel")
        self.assertEqual(p.stdout.strip(), "before")


class Names(BatmanTestCase):
    def test_bad_names_refused_with_nothing_created(self):
        for bad in ["../x", "a/b", ".", "..", "-x", "", "x" * 65, "a b"]:
            p = self.batman(bad, "true", name="batman-parallel")
            self.assertEqual(p.returncode, 125, (bad, p.stderr))
            self.assertIn("unknown option '-x'" if bad == "-x" else "1-64 letters", p.stderr)
            p = self.batman(bad, "true", name="batman-multi")
            self.assertEqual(p.returncode, 125, (bad, p.stderr))
        self.assertFalse(os.path.exists(self.home), os.listdir(self.home) if os.path.exists(self.home) else "")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x")))

    def test_planted_symlink_is_not_followed(self):
        os.makedirs(self.home, mode=0o700)
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(outside)
        os.symlink(outside, os.path.join(self.home, "evil"))
        p = self.batman("evil", "true", name="batman-parallel")
        self.assertEqual(p.returncode, 125)
        self.assertIn("symlink", p.stderr)
        self.assertEqual(os.listdir(outside), [])


class ProjectTree(BatmanTestCase):
    def test_tree_state_and_log(self):
        p = self.batman("web", "echo out; echo err >&2; exit 2", name="batman-parallel")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stdout, "out\n")
        self.assertIn("err\n", p.stderr)
        self.assertEqual(os.stat(self.home).st_mode & 0o777, 0o700)
        for sub in ("logs", "state", "tmp", "worktrees"):
            self.assertTrue(os.path.isdir(os.path.join(self.home, "web", sub)))
        st = self.states("web")[0]
        for key in ("schema", "project", "run_id", "kind", "command", "cwd", "pid", "pid_start_time",
                    "batman_pid", "isolation", "limits", "status", "started_at", "ended_at", "exit_code",
                    "signal", "restarts", "log", "monitor_url", "worktree"):
            self.assertIn(key, st)
        self.assertEqual(st["status"], "failed")
        self.assertEqual(st["exit_code"], 2)
        self.assertEqual(st["kind"], "parallel")
        self.assertRegex(st["run_id"], r"^\d{8}T\d{6}-[0-9a-f]{6}$")
        with open(os.path.join(self.home, "web", st["log"])) as f:
            log = f.read()
        self.assertIn("out\n", log)
        self.assertIn("err\n", log)
        # tmp/<run-id> is removed at the end unless --keep-tmp
        self.assertEqual(os.listdir(os.path.join(self.home, "web", "tmp")), [])
        p = self.batman("web", "touch $TMPDIR/kept", "--keep-tmp", name="batman-parallel")
        st = self.states("web")[-1] if self.states("web")[-1]["run_id"] != st["run_id"] else self.states("web")[0]
        kept = os.listdir(os.path.join(self.home, "web", "tmp"))
        self.assertEqual(len(kept), 1)
        self.assertTrue(os.path.exists(os.path.join(self.home, "web", "tmp", kept[0], "kept")))

    def test_a_run_never_sees_what_an_earlier_run_left_in_its_tmpdir(self):
        for tier in TIERS:
            with self.subTest(tier=tier):
                self.batman("reuse", "mkdir -p $TMPDIR/d/e && touch $TMPDIR/secret $TMPDIR/d/e/f && chmod 500 $TMPDIR/d",
                            "--isolation", tier, name="batman-parallel")
                p = self.batman("reuse", "ls -A $TMPDIR; stat -c %a $TMPDIR", "--isolation", tier,
                                name="batman-parallel")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stdout, "700\n", "a fresh, empty TMPDIR of mode 0700")
                # `clean` also removes the empty directories batman 0.1 parked there
                os.mkdir(os.path.join(self.home, "reuse", "tmp", ".spare.3"))
                c = self.batman("clean", "reuse")
                self.assertEqual(c.returncode, 0, c.stderr)
                self.assertEqual(os.listdir(os.path.join(self.home, "reuse", "tmp")), [])

    def test_environment_of_the_job(self):
        p = self.batman("envp", "env", "--env", "EXTRA=1", "--cwd", self.tmp, "--isolation", "env",
                        name="batman-parallel")
        env = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
        self.assertEqual(env["BATMAN_PROJECT"], "envp")
        self.assertEqual(env["BATMAN_HOME"], self.home)
        self.assertEqual(env["BATMAN_PROJECT_DIR"], os.path.join(self.home, "envp"))
        self.assertEqual(env["BATMAN_ISOLATION"], "env")
        self.assertEqual(env["EXTRA"], "1")
        self.assertEqual(env["TMPDIR"], os.path.join(self.home, "envp", "tmp", env["BATMAN_RUN_ID"]))
        self.assertEqual(self.states("envp")[0]["cwd"], self.tmp)

    def test_three_projects_side_by_side(self):
        procs = {}
        for name in ("disk", "api", "web"):
            procs[name] = self.spawn(
                name, f"echo {name}-out; ls -A $TMPDIR; echo {name} > $TMPDIR/mine; sleep 0.5; "
                      f"cat $TMPDIR/mine; ls -A $TMPDIR",
                name="batman-parallel")
        outs = {n: p.communicate(timeout=30) for n, p in procs.items()}
        tmpdirs = set()
        for name, (out, err) in outs.items():
            self.assertEqual(procs[name].returncode, 0, err)
            lines = out.split()
            self.assertEqual(lines, [f"{name}-out", name, "mine"], out)
            st = self.states(name)[0]
            with open(os.path.join(self.home, name, st["log"])) as f:
                log = f.read()
            for other in ("disk", "api", "web"):
                if other != name:
                    self.assertNotIn(other, log)
            tmpdirs.add(os.path.join(self.home, name, "tmp", st["run_id"]))
        self.assertEqual(len(tmpdirs), 3)

    def test_many_runs_of_one_project_get_unique_ids(self):
        procs = [self.spawn("same", "true", name="batman-parallel") for _ in range(6)]
        for p in procs:
            p.communicate(timeout=30)
            self.assertEqual(p.returncode, 0)
        ids = {s["run_id"] for s in self.states("same")}
        self.assertEqual(len(ids), 6)


class StopAndSignals(BatmanTestCase):
    def test_detach_then_stop_leaves_nothing(self):
        for tier in TIERS:
            with self.subTest(tier=tier):
                m = marker()
                p = self.batman("bg" + tier, f"sh -c 'sleep {m}; true' & (setsid sleep {m}1) & sleep {m}2",
                                "--detach", "--isolation", tier, name="batman-parallel")
                self.assertEqual(p.returncode, 0, p.stderr)
                run_id = p.stdout.strip()
                self.assertRegex(run_id, r"^\d{8}T\d{6}-[0-9a-f]{6}$")
                wait_for(lambda: len(sleeps(m)) >= 3, what="the job's processes")
                ps = self.ps_json("--project", "bg" + tier)
                self.assertEqual([r["run_id"] for r in ps if r["status"] == "running"], [run_id])
                st = self.batman("stop", "bg" + tier, run_id, "--grace", "2s")
                self.assertEqual(st.returncode, 0, st.stderr)
                wait_for(lambda: processes_with_marker(m) == [], timeout=10, what="no process of the job")
                state = self.states("bg" + tier)[0]
                self.assertEqual(state["status"], "killed")
                self.assertFalse(pid_alive(state["batman_pid"]))

    def test_ctrl_c_stops_the_whole_tree(self):
        for tier in TIERS:
            with self.subTest(tier=tier):
                m = marker()
                p = self.spawn("cc" + tier, f"sleep {m} & sleep {m}1 & echo started; wait",
                               "--isolation", tier, name="batman-parallel")
                wait_for(lambda: len(sleeps(m)) >= 2, what="running")
                os.killpg(p.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
                out, err = p.communicate(timeout=20)
                self.assertEqual(p.returncode, 130, err)
                wait_for(lambda: processes_with_marker(m) == [], timeout=10, what="no process of the job")

    def test_stopsignal_ignored_is_killed_after_stoptime(self):
        m = marker()
        p = self.batman("stub", f"trap '' TERM; echo ready; sleep {m} & wait", "--detach", "--stoptime", "500ms",
                        name="batman-parallel")
        run_id = p.stdout.strip()
        wait_for(lambda: self.states("stub")[0]["status"] == "running")
        t = time.monotonic()
        self.batman("stop", "stub", check=0)
        self.assertLess(time.monotonic() - t, 8)
        st = self.states("stub")[0]
        self.assertEqual(st["status"], "killed")
        self.assertEqual(st["signal"], 9)
        self.assertEqual(st["run_id"], run_id)
        self.assertEqual(processes_with_marker(m), [])

    def test_sighup_is_forwarded(self):
        flag = os.path.join(self.work, "got-hup")
        armed = os.path.join(self.work, "armed")
        p = self.spawn("hup", f"trap 'touch {flag}; exit 0' HUP; touch {armed}; while :; do sleep 0.05; done",
                       name="batman-parallel")
        wait_for(lambda: os.path.exists(armed), what="the trap to be set")
        os.kill(p.pid, signal.SIGHUP)
        p.communicate(timeout=20)
        self.assertTrue(os.path.exists(flag))
        self.assertEqual(p.returncode, 0)

    def test_restart_unexpected_until_it_succeeds(self):
        counter = os.path.join(self.work, "count")
        cmd = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; sleep 0.2; [ $n -ge 3 ]"
        p = self.batman("rs", cmd, "--restart", "unexpected", "--starttime", "100ms", name="batman-parallel")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(counter) as f:
            self.assertEqual(f.read().strip(), "3")
        self.assertEqual(self.states("rs")[0]["restarts"], 2)

    def test_failed_starts_go_fatal(self):
        p = self.batman("fs", "exit 1", "--restart", "always", "--startretries", "1", "--starttime", "1s",
                        name="batman-parallel")
        self.assertEqual(p.returncode, 1)
        self.assertIn("FATAL", p.stderr)


class Multi(BatmanTestCase):
    def test_second_live_instance_is_refused(self):
        p = self.batman("svc", "sleep 300", "--detach", name="batman-multi")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "svc")
        st = self.states("svc")[0]
        second = self.batman("svc", "true", name="batman-multi")
        self.assertEqual(second.returncode, 125)
        self.assertIn(f"pid {st['pid']}", second.stderr)
        self.assertIn(st["started_at"], second.stderr)
        self.batman("stop", "svc", check=0)
        again = self.batman("svc", "echo again", name="batman-multi")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout, "again\n")
        self.assertEqual(self.states("svc")[0]["kind"], "multi")


class Inspect(BatmanTestCase):
    def test_logs_latest_specific_and_tail(self):
        self.batman("lg", "echo first", name="batman-parallel", check=0)
        time.sleep(0.01)
        self.batman("lg", "seq 1 10", name="batman-parallel", check=0)
        first = self.states("lg")
        first_id = [s for s in first if s["command"] == "echo first"][0]["run_id"]
        self.assertEqual(self.batman("logs", "lg", check=0).stdout, "".join(f"{i}\n" for i in range(1, 11)))
        self.assertEqual(self.batman("logs", "lg", first_id, check=0).stdout, "first\n")
        self.assertEqual(self.batman("logs", "lg", "-n", "2", check=0).stdout, "9\n10\n")
        self.assertEqual(self.batman("logs", "lg", "-n", "0", check=0).stdout, "")
        self.assertEqual(self.batman("logs", "nope").returncode, 125)
        self.assertEqual(self.batman("logs", "lg", "no-such-run").returncode, 125)

    def test_logs_follow_until_the_run_ends(self):
        p = self.batman("fl", "for i in 1 2 3; do echo line$i; sleep 0.3; done", "--detach",
                        name="batman-parallel")
        self.assertEqual(p.returncode, 0)
        f = self.batman("logs", "fl", "-f", timeout=30)
        self.assertEqual(f.stdout, "line1\nline2\nline3\n")

    def test_ps_lists_running_and_all(self):
        self.batman("done", "true", name="batman-parallel", check=0)
        run = self.batman("live", "sleep 300", "--detach", name="batman-parallel").stdout.strip()
        table = self.batman("ps", check=0).stdout
        self.assertIn(run, table)
        self.assertNotIn("done ", table)
        self.assertIn("PROJECT", table.splitlines()[0])
        everything = self.ps_json()
        self.assertEqual(sorted(r["project"] for r in everything), ["done", "live"])
        self.assertEqual(len(self.ps_json("--project", "live")), 1)
        self.batman("stop", "live", "--all", check=0)

    def test_killed_batman_reads_as_lost(self):
        m = marker()
        self.batman("lost", f"sleep {m} & sleep {m}1", "--detach", "--isolation", "env",
                    name="batman-parallel", check=0)
        wait_for(lambda: len(sleeps(m)) >= 2, what="the job's sleeps")
        st = self.states("lost")[0]
        os.kill(st["batman_pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(st["batman_pid"]))
        rows = self.ps_json()
        self.assertEqual(rows[0]["status"], "lost")
        # The env tier cannot take the job down with batman: its processes outlive it, and
        # clean leaves such a run alone while stop finds them through the job's session.
        wait_for(lambda: not pid_alive(st["pid"]), what="the job's leader to die with batman")
        self.assertGreaterEqual(len(processes_with_marker(m)), 1)
        self.batman("clean", "lost", check=0)
        self.assertEqual(len(self.states("lost")), 1)
        self.batman("stop", "lost", "--grace", "1s", check=0)
        wait_for(lambda: processes_with_marker(m) == [], what="job gone")

    def test_clean_never_touches_a_running_run(self):
        self.batman("cl", "true", name="batman-parallel", check=0)
        live = self.batman("cl", "sleep 300", "--detach", name="batman-parallel").stdout.strip()
        dry = self.batman("clean", "cl", "--dry-run", check=0)
        self.assertIn("would remove", dry.stdout)
        self.assertEqual(len(self.states("cl")), 2)
        self.batman("clean", "cl", check=0)
        left = self.states("cl")
        self.assertEqual([s["run_id"] for s in left], [live])
        logs = os.listdir(os.path.join(self.home, "cl", "logs"))
        self.assertIn(f"{live}.log", logs)
        self.assertEqual(len([l for l in logs if l != "events.log"]), 1)
        self.assertEqual(self.batman("clean", "cl", "--older-than", "1h", check=0).returncode, 0)
        self.assertEqual(self.batman("clean", "../x").returncode, 125)
        self.batman("stop", "cl", check=0)


class Worktree(BatmanTestCase):
    def setUp(self):
        super().setUp()
        init_git_repo(self.work)

    def test_success_removes_failure_keeps(self):
        p = self.batman("wt", "cat file.txt; pwd", "--worktree", name="batman-parallel")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.splitlines()
        self.assertEqual(out[0], "committed")
        self.assertIn(os.path.join(self.home, "wt", "worktrees"), out[1])
        self.assertFalse(os.path.exists(out[1]))
        p = self.batman("wt", "pwd; exit 4", "--worktree", name="batman-parallel")
        self.assertEqual(p.returncode, 4)
        kept = p.stdout.strip()
        self.assertTrue(os.path.isdir(kept))
        self.assertIn(kept, p.stderr)

    def test_outside_a_repository_is_an_error(self):
        p = self.batman("wt", "true", "--worktree", "--cwd", self.home if os.path.isdir(self.home) else "/",
                        name="batman-parallel")
        self.assertEqual(p.returncode, 125)
        self.assertIn("git", p.stderr)


class Monitor(BatmanTestCase):
    def test_status_page(self):
        p = self.batman("mon", "sleep 300", "--detach", "--monitor", name="batman-parallel")
        self.assertEqual(p.returncode, 0, p.stderr)
        st = wait_for(lambda: self.states("mon")[0].get("monitor_url"))
        # The run's page on the home's dashboard (src/dashboard/), and the run in its API.
        base, _, page = st.partition("#")
        self.assertEqual(page, "/run/mon/" + p.stdout.strip())
        def run_record():
            try:
                with urllib.request.urlopen(base + "api/v1/runs/mon/" + p.stdout.strip(), timeout=5) as r:
                    return json.load(r)
            except urllib.error.HTTPError:
                return None  # the dashboard reads a new state file within 40 ms of it
        data = wait_for(run_record, what="the run in the dashboard's API")
        self.assertEqual(data["project"], "mon")
        with urllib.request.urlopen(base, timeout=5) as r:
            self.assertIn(b"batman", r.read())
        self.batman("stop", "mon", check=0)


class Unprivileged(BatmanTestCase):
    user = NOBODY

    def test_rootless_run_stop_and_ps(self):
        p = self.batman("u", "id -u; echo $TMPDIR", name="batman-parallel")
        self.assertEqual(p.returncode, 0, p.stderr)
        uid, tmpdir = p.stdout.split()
        self.assertEqual(uid, str(NOBODY))
        self.assertTrue(tmpdir.startswith(os.path.join(self.home, "u", "tmp")))
        m = marker()
        self.batman("u", f"sleep {m} & sleep {m}1", "--detach", name="batman-parallel", check=0)
        wait_for(lambda: len(sleeps(m)) >= 2, what="the job's sleeps")
        self.batman("stop", "u", check=0)
        wait_for(lambda: processes_with_marker(m) == [], what="no process of the job")
        self.assertEqual(os.stat(self.home).st_uid, NOBODY)
