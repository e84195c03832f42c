"""Shell completion (completions/, installed under share/): the bash function is called as
bash-completion calls it (COMP_WORDS, COMP_CWORD) and COMPREPLY is checked against what batman
really has: projects and run-ids in a temporary $BATMAN_HOME, profiles on the search path,
the programs of a running supervisor. fish is asked with `complete -C`; zsh is syntax-checked."""
import json
import os
import shlex
import shutil
import subprocess

from harness import BINDIR, BatmanTestCase, pid_alive, wait_for


def share(*parts):
    return os.path.normpath(os.path.join(BINDIR, "..", "share", *parts))


class CompletionTest(BatmanTestCase):
    def setUp(self):
        super().setUp()
        self.bash_file = share("bash-completion", "completions", "batman")
        if not os.path.exists(self.bash_file):
            self.fail(f"{self.bash_file} is not installed")

    def complete(self, *words, env=None):
        """COMPREPLY for the command line WORDS (the last one is the word being completed)."""
        words = list(words)
        script = (f"source {shlex.quote(self.bash_file)}\n"
                  f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
                  f"COMP_CWORD={len(words) - 1}\n"
                  f"COMP_LINE={shlex.quote(' '.join(words))}; COMP_POINT=${{#COMP_LINE}}\n"
                  "_batman\n"
                  "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
        run_env = dict(self.env)
        run_env["PATH"] = BINDIR + ":" + run_env.get("PATH", "/usr/bin:/bin")
        if env:
            run_env.update(env)
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=run_env, cwd=self.work,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "", "completion printed errors")
        return [w for w in r.stdout.split("\n") if w]

    def make_runs(self):
        for project in ("alpha", "beta"):
            self.batman("parallel", project, "true", "--isolation", "env", "-q", check=0)
        return {row["project"]: row["run_id"] for row in self.ps_json()}

    def test_logs_tab_lists_the_projects_of_batman_home(self):
        self.assertEqual(self.complete("batman", "logs", ""), [])  # no BATMAN_HOME yet
        self.make_runs()
        self.assertEqual(self.complete("batman", "logs", ""), ["alpha", "beta"])
        self.assertEqual(self.complete("batman", "logs", "al"), ["alpha"])
        self.assertEqual(self.complete(bin_path_batman(), "stop", "b"), ["beta"])
        self.assertEqual(self.complete("batman", "clean", "--dry-run", ""), ["alpha", "beta"])
        self.assertEqual(self.complete("batman", "ps", "--project", ""), ["alpha", "beta"])

    def test_run_ids_of_the_project_after_it(self):
        runs = self.make_runs()
        self.assertEqual(self.complete("batman", "logs", "alpha", ""), [runs["alpha"]])
        self.assertEqual(self.complete("batman", "logs", "-n", "5", "beta", ""), [runs["beta"]])
        self.assertEqual(self.complete("batman", "stop", "beta", ""), [runs["beta"]])

    def test_subcommands_and_their_options(self):
        self.assertIn("parallel", self.complete("batman", ""))
        self.assertIn("batch", self.complete("batman", "b"))
        self.assertEqual(self.complete("batman", "ps", "--j"), ["--json"])
        self.assertIn("--dry-run", self.complete("batman", "clean", "--"))
        self.assertEqual(self.complete("batman", "profiles", ""), ["list", "show"])
        self.assertEqual(self.complete("batman", "help", "su"), ["supervise"])
        self.assertIn("--keep-worktree", self.complete("batman-parallel", "--k"))
        self.assertIn("--project", self.complete("batman-isolated", "--pro"))
        self.assertNotIn("--project", self.complete("batman-parallel", "--pro"))

    def test_option_values(self):
        self.assertEqual(self.complete("batman-parallel", "--isolation", ""),
                         ["auto", "namespaces", "firejail", "systemd", "env"])
        self.assertEqual(self.complete("batman", "multi", "--restart", ""), ["always", "never", "unexpected"])
        self.assertIn("KILL", self.complete("batman", "stop", "p", "--signal", ""))
        self.assertEqual(self.complete("batman", "parallel", "--stopsignal", "TE"), ["TERM"])
        self.assertEqual(self.complete("batman", "ps", "--format", ""), ["table", "json"])
        self.assertEqual(self.complete("batman", "batch", "--output", "p"), ["prefixed"])

    def test_profile_names_come_from_the_search_path(self):
        mine = os.path.join(self.tmp, "profiles")
        os.makedirs(mine)
        with open(os.path.join(mine, "offline.yaml"), "w") as f:
            f.write("network: host\n")
        shipped = self.complete("batman-parallel", "--profile", "")
        for name in ("parallel", "isolated", "strict", "build", "ci"):
            self.assertIn(name, shipped)
        self.assertNotIn("offline", shipped)
        got = self.complete("batman", "parallel", "--profile", "", env={"BATMAN_PROFILES": mine})
        self.assertIn("offline", got)
        self.assertEqual(self.complete("batman", "profiles", "show", "off", env={"BATMAN_PROFILES": mine}), ["offline"])

    def test_the_command_of_a_job_is_not_given_batman_options(self):
        # After PROJECT and the command's first word, the words are the command's.
        got = self.complete("batman-parallel", "web", "make", "--i")
        self.assertNotIn("--isolation", got)
        self.assertIn("--isolation", self.complete("batman-parallel", "web", "--i"))

    def test_ctl_names_come_from_the_running_supervisor(self):
        config = os.path.join(self.work, "tmc.yaml")
        with open(config, "w") as f:
            f.write("programs:\n  web:\n    cmd: sleep 600\n    numprocs: 2\n  db:\n    cmd: sleep 600\n")
        r = self.batman(config, "--daemon", name="taskmaster", check=0)
        with open(os.path.join(self.home, "tmc", "state", "supervisor.pid")) as f:
            pid = int(f.read())
        try:
            names = self.complete("batman", "ctl", "stop", "")
            self.assertIn("all", names)
            for name in ("web", "db", "web:01"):
                self.assertIn(name, names, r.stderr)
            self.assertIn("reload", self.complete("batman", "ctl", "re"))
            self.assertIn("db", self.complete("batman", "ctl", "--config", config, "status", "d"))
            self.assertEqual(self.complete("batman", "logs", ""), ["tmc"])
        finally:
            self.batman("ctl", "--config", config, "quit")
            wait_for(lambda: not pid_alive(pid), 30, what="the supervisor to quit")
        # No supervisor: nothing to offer, and no error printed.
        self.assertEqual(self.complete("batman", "ctl", "stop", "w"), [])

    def test_batch_tasks_from_the_file(self):
        path = os.path.join(self.work, "rel.yaml")
        with open(path, "w") as f:
            f.write("tasks:\n  lint: make lint\n  test: {cmd: make test}\ndefaults: {retries: 1}\n")
        self.assertEqual(self.complete("batman", "batch", path, ""), ["lint", "test"])
        self.assertEqual(self.complete("batman", "batch", "re"), ["rel.yaml"])

    def test_fish_completes_projects(self):
        fish_file = share("fish", "vendor_completions.d", "batman.fish")
        self.assertTrue(os.path.exists(fish_file))
        if not shutil.which("fish"):
            self.skipTest("fish is not installed")
        self.make_runs()
        env = dict(self.env, PATH=BINDIR + ":" + self.env.get("PATH", ""))
        r = subprocess.run(["fish", "--no-config", "-c", f"source {shlex.quote(fish_file)}; complete -C 'batman logs '"],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stderr, "")
        self.assertEqual(sorted(line.split("\t")[0] for line in r.stdout.splitlines()), ["alpha", "beta"])

    def test_zsh_file_parses(self):
        zsh_file = share("zsh", "vendor-completions", "_batman")
        with open(zsh_file) as f:
            self.assertTrue(f.readline().startswith("#compdef batman "))
        if not shutil.which("zsh"):
            self.skipTest("zsh is not installed")
        r = subprocess.run(["zsh", "-n", zsh_file], capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, ""))


def bin_path_batman():
    return os.path.join(BINDIR, "batman")
