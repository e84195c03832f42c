"""One job model: run (batman-parallel), batch and taskmaster launch through one path, so a
profile's `env:` section gives the same environment under all three, and a taskmaster
reload restarts the programs whose profile file was edited."""
import json
import os
import random
import signal

from harness import BatmanTestCase, pid_alive, processes_with_marker, wait_for

PROFILE = """name: envcheck
description: the environment section under test, host everything else
namespaces: []
network: host
filesystem: {read_only: [], read_write: [/], tmpfs: [], hide: []}
capabilities: {drop: none, keep: []}
no_new_privs: false
limits: {memory: null, cpus: null, pids: null, nofile: null}
env:
  clear: true
  keep: [KEEPME, HOME]
  set: {SETME: VALUE}
die_with_parent: true
"""

# Variables that name the job itself (its run, task or program) and differ by design.
PER_JOB = {"BATMAN_RUN_ID", "BATMAN_TASK", "BATMAN_ATTEMPT", "BATMAN_PROGRAM", "BATMAN_PROCESS_NAME",
           "BATMAN_PROCESS_NUM",
           "BATMAN_PROJECT", "BATMAN_PROJECT_DIR", "TMPDIR", "PWD", "SHLVL", "_", "OLDPWD"}


def read_env(path):
    with open(path) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)


class ProfileEnvironment(BatmanTestCase):
    def setUp(self):
        super().setUp()
        self.mark = str(random.randint(1_000_000, 9_999_999))
        self.profile = os.path.join(self.work, "envcheck.yaml")
        with open(self.profile, "w") as f:
            f.write(PROFILE.replace("VALUE", "from-profile"))
        self.extra = {"KEEPME": "kept", "DROPME": "dropped", "SETME": "from-caller"}

    def tearDown(self):
        for pid in processes_with_marker(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        super().tearDown()

    def check(self, env, where):
        self.assertNotIn("DROPME", env, f"{where}: the profile clears the environment")
        self.assertEqual(env.get("KEEPME"), "kept", f"{where}: the profile keeps KEEPME")
        self.assertEqual(env.get("SETME"), "from-profile", f"{where}: the profile sets SETME")
        self.assertIn("PATH", env, where)
        self.assertEqual(env.get("BATMAN_ISOLATION"), "env", where)
        self.assertEqual(env.get("BATMAN_HOME"), self.home, where)
        self.assertTrue(env.get("TMPDIR", "").startswith(self.home + "/"), f"{where}: TMPDIR {env.get('TMPDIR')}")

    def test_same_environment_under_run_batch_and_taskmaster(self):
        run_out = os.path.join(self.work, "run.env")
        self.batman("envrun", f"env > {run_out}", "--isolation", "env", "--profile", self.profile,
                    name="batman-parallel", env=self.extra, check=0)

        batch_out = os.path.join(self.work, "batch.env")
        batch = os.path.join(self.work, "b.yaml")
        with open(batch, "w") as f:
            f.write(f"project: envbatch\ndefaults: {{isolation: env, profile: {self.profile}}}\n"
                    f"tasks:\n  dump:\n    cmd: env > {batch_out}\n")
        self.batman("batch", batch, "-q", env=self.extra, check=0)

        tm_out = os.path.join(self.work, "tm.env")
        config = os.path.join(self.work, "envtm.yaml")
        with open(config, "w") as f:
            f.write(f"programs:\n  dump:\n    cmd: env > {tm_out}.part; mv {tm_out}.part {tm_out}; exec sleep {self.mark}\n"
                    f"    isolation: env\n    profile: {self.profile}\n")
        self.batman(config, "--daemon", name="taskmaster", env=self.extra, check=0)
        wait_for(lambda: os.path.exists(tm_out), what="the program's environment")
        self.batman("ctl", "--config", config, "shutdown", check=None)

        envs = {"batman-parallel": read_env(run_out), "batman batch": read_env(batch_out),
                "taskmaster": read_env(tm_out)}
        for where, env in envs.items():
            self.check(env, where)
        keys = {where: set(env) - PER_JOB for where, env in envs.items()}
        self.assertEqual(keys["batman batch"], keys["batman-parallel"])
        self.assertEqual(keys["taskmaster"], keys["batman-parallel"])
        for key in keys["batman-parallel"]:
            self.assertEqual({env[key] for env in envs.values()}.__len__(), 1, f"{key} differs: "
                             + ", ".join(f"{w}={e[key]}" for w, e in envs.items()))

    def test_reload_restarts_a_program_whose_profile_file_changed(self):
        out = os.path.join(self.work, "prog.env")
        config = os.path.join(self.work, "tmreload.yaml")
        with open(config, "w") as f:
            f.write(f"programs:\n  uses:\n    cmd: env > {out}.part; mv {out}.part {out}; exec sleep {self.mark}\n"
                    f"    isolation: env\n    profile: {self.profile}\n"
                    f"  plain:\n    cmd: exec sleep {self.mark}\n")
        self.batman(config, "--daemon", name="taskmaster", env=self.extra, check=0)
        with open(os.path.join(self.home, "tmreload", "state", "supervisor.pid")) as f:
            daemon = int(f.read())
        try:
            wait_for(lambda: os.path.exists(out), what="the first start")
            self.assertEqual(read_env(out)["SETME"], "from-profile")

            def pids():
                rows = json.loads(self.batman("ctl", "--config", config, "status", "--json", check=0).stdout)
                return {r["name"]: r["pid"] for r in rows}

            wait_for(lambda: all(pids().values()), what="both running")
            before = pids()
            os.unlink(out)
            with open(self.profile, "w") as f:
                f.write(PROFILE.replace("VALUE", "edited"))
            r = self.batman("ctl", "--config", config, "reload", check=0)
            self.assertIn("changed: uses", r.stdout)
            self.assertNotIn("plain", r.stdout)
            wait_for(lambda: os.path.exists(out), what="the restart under the edited profile")
            self.assertEqual(read_env(out)["SETME"], "edited")
            wait_for(lambda: pids().get("uses") not in (None, before["uses"]), what="a new pid")
            self.assertEqual(pids()["plain"], before["plain"], "a program whose profile did not change keeps running")
            wait_for(lambda: not pid_alive(before["uses"]), what="the old process gone")
        finally:
            self.batman("ctl", "--config", config, "shutdown", check=None)
            wait_for(lambda: not pid_alive(daemon), what="taskmaster gone")
