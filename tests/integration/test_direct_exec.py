"""A COMMAND with no shell syntax is exec'd without /bin/sh (SPEC §4, issue 17): what the job
sees and how it ends must be what `sh -c COMMAND` gives, on every tier that does it (env,
namespaces) and as the unprivileged user."""
import os
import stat
import subprocess

from harness import BatmanTestCase

NOBODY = 65534


class DirectExec(BatmanTestCase):
    tiers = ("env", "namespaces")

    def make_tools(self):
        """A bin/ directory on PATH with: a #! script printing its argv and PWD, a script with
        no #! line (sh runs it as a script), a file that is not executable, and a directory."""
        bin_dir = os.path.join(self.work, "bin")
        os.makedirs(bin_dir, exist_ok=True)
        def put(name, text, mode):
            path = os.path.join(bin_dir, name)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
        put("show-args", '#!/bin/sh\nprintf "<%s>" "$0" "$@"; echo; echo "pwd=$PWD"; exit 7\n', 0o755)
        put("no-shebang", 'echo "script ran with $1"\n', 0o755)
        put("not-exec", '#!/bin/sh\necho should not run\n', 0o644)
        os.makedirs(os.path.join(bin_dir, "a-dir"), exist_ok=True)
        os.chmod(bin_dir, 0o755)
        if self.user is not None:
            os.chown(self.tmp, self.user, self.user)
        return bin_dir

    def compare_with_sh(self, command, tier, env):
        """Run COMMAND through batman and through sh -c in the same directory and environment;
        return both (exit, output) pairs."""
        r = self.batman("-q", "p", command, "--isolation", tier, name="batman-parallel", env=env)
        sh_env = dict(self.env)
        sh_env.update(env)
        sh = subprocess.run(["/bin/sh", "-c", command], env=sh_env, cwd=self.work, capture_output=True, text=True)
        return (r.returncode, r.stdout + r.stderr), (sh.returncode, sh.stdout + sh.stderr)

    def test_what_the_job_sees_and_its_exit_are_shs(self):
        bin_dir = self.make_tools()
        env = {"PATH": bin_dir + ":/usr/bin:/bin"}
        cases = [
            # A #! script found on PATH gets its full path as $0 from the kernel, as under sh.
            ("show-args one two=2 -x a,b", 7, f"<{bin_dir}/show-args><one><two=2><-x><a,b>"),
            ("no-shebang arg", 0, "script ran with arg"),
            # dash: 127 for a name found on PATH but not executable, 126 for a path.
            ("not-exec", 127, "not-exec: Permission denied"),
            ("a-dir", 127, "a-dir: Permission denied"),
            ("./bin/not-exec", 126, "./bin/not-exec: Permission denied"),
            ("no-such-command x", 127, "not found"),
            ("./bin/show-args rel", 7, "<./bin/show-args><rel>"),
            (bin_dir + "/show-args abs", 7, f"<{bin_dir}/show-args><abs>"),
            ("true", 0, ""),
            ("false", 1, ""),
        ]
        for tier in self.tiers:
            for command, code, text in cases:
                with self.subTest(tier=tier, command=command):
                    (b_code, b_out), (s_code, s_out) = self.compare_with_sh(command, tier, env)
                    self.assertEqual(b_code, code, b_out)
                    self.assertEqual(s_code, code, s_out)
                    self.assertIn(text, b_out)
                    self.assertEqual(b_out, s_out)
                    if "<" in text:
                        self.assertIn(f"pwd={self.work}", b_out)  # PWD as sh sets it

    def test_the_job_is_the_program_itself(self):
        # No shell in between: the job's pid runs the program from its first instruction
        # (sh -c would exec it too, but only after starting). Its command line is the words.
        for tier in self.tiers:
            with self.subTest(tier=tier):
                r = self.batman("-q", "p", "cat /proc/self/cmdline", "--isolation", tier,
                                name="batman-parallel", check=0)
                self.assertEqual(r.stdout.split("\0")[:2], ["cat", "/proc/self/cmdline"])

    def test_shell_syntax_still_goes_through_sh(self):
        for command, expected in [("echo $((1+2))", "3"), ("echo -e 'a'", "-e a"), ("X=1 env | grep ^X=", "X=1"),
                                  ("cd / && pwd", "/"), ("echo a; echo b", "a\nb")]:
            with self.subTest(command=command):
                r = self.batman("-q", "p", command, "--isolation", "env", name="batman-parallel", check=0)
                self.assertEqual(r.stdout.strip(), expected)


class DirectExecUnprivileged(DirectExec):
    user = NOBODY
