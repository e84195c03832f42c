"""Terminal conventions: colour on a terminal only and never with NO_COLOR; --json on the
commands that list; `batman --version` with what a bug report needs."""
import json
import os
import platform
import pty
import select
import subprocess

from harness import BatmanTestCase, bin_path, wait_for


class ConventionsTest(BatmanTestCase):
    def on_terminal(self, *args, env=None):
        """Run batman ARGS with its stdout on a pseudo-terminal; returns what it printed."""
        run_env = dict(self.env, TERM="xterm", COLUMNS="120")
        run_env.pop("NO_COLOR", None)
        run_env.update(env or {})
        master, slave = pty.openpty()
        p = subprocess.Popen([bin_path()] + list(args), stdout=slave, stderr=subprocess.PIPE, env=run_env,
                             cwd=self.work)
        os.close(slave)
        out = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        p.wait(timeout=30)
        return out.decode()

    def test_ps_colours_status_on_a_terminal_only(self):
        self.spawn("parallel", "web", "sleep 30", "--isolation", "env", "-q")
        wait_for(lambda: self.ps_json(), 15, what="the run to show in ps")
        coloured = self.on_terminal("ps")
        self.assertIn("\033[32mrunning\033[0m", coloured)
        # The colour takes no column: the header and the row keep their alignment.
        lines = [l for l in coloured.replace("\r", "").split("\n") if l]
        header, row = lines[0], lines[1].replace("\033[32m", "").replace("\033[0m", "")
        self.assertEqual(header.index("STATUS"), row.index("running"))
        self.assertNotIn("\033[", self.on_terminal("ps", env={"NO_COLOR": "1"}))
        self.assertNotIn("\033[", self.on_terminal("ps", env={"TERM": "dumb"}))
        self.assertNotIn("\033[", self.batman("ps", check=0).stdout)  # a pipe
        self.batman("stop", "web", check=0)

    def test_doctor_colours_on_a_terminal_only(self):
        self.assertRegex(self.on_terminal("doctor"), "\033\\[3[12]m(un)?available\033\\[0m")
        self.assertNotIn("\033[", self.on_terminal("doctor", env={"NO_COLOR": "yes"}))
        self.assertNotIn("\033[", self.batman("doctor", check=0).stdout)

    def test_profiles_list_json(self):
        out = json.loads(self.batman("profiles", "list", "--json", check=0).stdout)
        names = {p["name"] for p in out["profiles"]}
        self.assertTrue({"parallel", "isolated", "strict", "build", "ci"} <= names)
        self.assertTrue(all(os.path.isfile(p["file"]) for p in out["profiles"]))
        self.assertIn("/etc/batman/profiles", out["search_path"])
        self.assertEqual(self.batman("profiles", "show", "strict", "--json").returncode, 125)

    def test_clean_json(self):
        self.batman("parallel", "a", "true", "--isolation", "env", "-q", check=0)
        self.batman("parallel", "b", "true", "--isolation", "env", "-q", check=0)
        runs = {(r["project"], r["run_id"]) for r in self.ps_json()}
        dry = json.loads(self.batman("clean", "--all", "--dry-run", "--json", check=0).stdout)
        self.assertEqual({(r["project"], r["run_id"]) for r in dry}, runs)
        self.assertTrue(all(r["removed"] is False for r in dry))
        self.assertEqual(len(self.ps_json()), 2)  # nothing removed by a dry run
        done = json.loads(self.batman("clean", "a", "--json", check=0).stdout)
        self.assertEqual([(r["project"], r["removed"]) for r in done], [("a", True)])
        self.assertEqual([r["project"] for r in self.ps_json()], ["b"])

    def test_version_says_what_a_bug_report_needs(self):
        v = self.batman("--version", check=0).stdout
        lines = v.splitlines()
        self.assertRegex(lines[0], r"^batman \d+\.\d+")
        self.assertRegex(v, r"(?m)^libseccomp \d+\.\d+")
        self.assertIn(platform.release(), v)  # the kernel release
        for tier in ("namespaces", "firejail", "systemd", "env"):
            self.assertRegex(v, rf"(?m)^tier {tier}: (available|unavailable)")
        self.assertRegex(v, r"(?m)^auto isolation: ")
        self.assertEqual(self.batman("version", check=0).stdout.splitlines()[0], lines[0])
        # -V stays the one line scripts compare.
        self.assertEqual(self.batman("-V", check=0).stdout, lines[0] + "\n")
