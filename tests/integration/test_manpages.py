"""The man pages (man/*.scd, built by meson with scdoc, installed under share/man): each renders
with `man -l` without a warning, and every option that a command's --help prints appears in
its page (for batman's subcommands: in that subcommand's section of batman(1)), so the pages
cannot drift from the code."""
import os
import re
import shutil
import subprocess
import unittest

from harness import BINDIR, bin_path

PAGES = ["batman.1", "batman-parallel.1", "batman-isolated.1", "batman-multi.1", "taskmaster.1",
         "batman-batch.1", "batman-profiles.5", "batman-taskmaster.5", "batman-batch.5"]
SUBCOMMANDS = ["parallel", "isolated", "multi", "ps", "logs", "stop", "clean", "doctor", "profiles",
               "supervise", "ctl", "batch", "dashboard", "help", "version"]
# -h/--help and -V/--version: every command's, said once in batman(1)'s OPTIONS.
GLOBAL = ["-h", "--help", "-V", "--version"]
# Subcommands with a page of their own, which holds their options.
OWN_PAGE = {"parallel": "batman-parallel.1", "isolated": "batman-isolated.1", "multi": "batman-multi.1",
            "batch": "batman-batch.1"}
# An option word: -x or --long-name, not inside a path or another word (/bin/sh -c is kept:
# the pages say it too).
OPTION = re.compile(r"(?<![\w/.-])(--?[A-Za-z][A-Za-z0-9-]*)")


def page_path(page):
    section = page.rsplit(".", 1)[1]
    return os.path.normpath(os.path.join(BINDIR, "..", "share", "man", "man" + section, page))


def render(page, width=80):
    env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "--warnings", "-l", page_path(page)], env=env, capture_output=True,
                       text=True, timeout=60)
    return r


def section(text, name):
    """The text of subsection NAME (a .SS heading, rendered as three spaces and NAME)."""
    lines = text.split("\n")
    try:
        start = lines.index("   " + name)
    except ValueError:
        return ""
    out = []
    for line in lines[start + 1:]:
        if re.match(r"^( {3})?\S", line):
            break
        out.append(line)
    return "\n".join(out)


@unittest.skipIf(not shutil.which("man"), "man (man-db) is not installed")
class ManPageTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(page_path("batman.1")):
            if not shutil.which("scdoc"):
                self.skipTest("scdoc is not installed: the man pages were not built")
            self.fail(f"{page_path('batman.1')} is not installed although scdoc is")

    def help_text(self, *argv, name="batman"):
        r = subprocess.run([bin_path(name)] + list(argv), capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def assert_options_in(self, help_text, page_text, where):
        options = sorted(set(OPTION.findall(help_text)))
        self.assertTrue(options, f"no option found in the --help of {where}")
        missing = [o for o in options if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", page_text)]
        self.assertEqual(missing, [], f"options of {where} missing from its man page")

    def test_every_page_renders_without_warnings(self):
        for page in PAGES:
            with self.subTest(page=page):
                self.assertTrue(os.path.exists(page_path(page)), page_path(page))
                r = render(page)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "", f"man --warnings on {page}")
                self.assertIn("NAME", r.stdout)
                self.assertIn("SEE ALSO", r.stdout)

    def test_executables_options_are_in_their_pages(self):
        for name, page in (("batman-parallel", "batman-parallel.1"), ("batman-isolated", "batman-isolated.1"),
                           ("batman-multi", "batman-multi.1"), ("taskmaster", "taskmaster.1")):
            with self.subTest(command=name):
                self.assert_options_in(self.help_text("--help", name=name), render(page, 1000).stdout, name)
        with self.subTest(command="batman batch"):
            self.assert_options_in(self.help_text("batch", "--help"), render("batman-batch.1", 1000).stdout,
                                   "batman batch")

    def test_every_subcommand_has_its_section_with_its_options(self):
        page = render("batman.1", 1000).stdout
        usage = self.help_text("--help")
        listed = re.findall(r"^  ([a-z]+)[ ,]", usage, re.M)
        self.assertEqual(sorted(set(listed)), sorted(SUBCOMMANDS), usage)
        self.assert_options_in(" ".join(GLOBAL), page, "every command")  # batman(1) OPTIONS
        for command in SUBCOMMANDS:
            with self.subTest(command=command):
                text = section(page, command)
                self.assertTrue(text.strip(), f"batman(1) has no section for '{command}'")
                if command in ("help", "version"):
                    continue
                help_text = self.help_text(command, "--help")
                if command in OWN_PAGE:  # its options are in its own page, which the section names
                    self.assertIn(OWN_PAGE[command].replace(".1", "(1)"), text)
                    self.assert_options_in(help_text, render(OWN_PAGE[command], 1000).stdout, f"batman {command}")
                    continue
                for flag in GLOBAL:
                    help_text = re.sub(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", "", help_text)
                self.assert_options_in(help_text, text, f"batman {command}")

    def test_ctl_commands_are_in_batman_1(self):
        text = section(render("batman.1", 1000).stdout, "ctl")
        help_text = self.help_text("ctl", "--help")
        commands = re.findall(r"^  ([a-z]+)\b", help_text.split("commands:", 1)[1], re.M)
        self.assertGreaterEqual(len(commands), 8, help_text)
        for c in commands:
            with self.subTest(ctl_command=c):
                self.assertRegex(text, r"(?m)^\s+" + c + r"\b")


if __name__ == "__main__":
    unittest.main()
