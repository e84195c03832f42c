"""The Debian package (scripts/package, debian/): built once with Debian's tooling, inspected
(dpkg-deb -c, its control fields, lintian through scripts/package), its systemd unit checked
with systemd-analyze verify, then installed with apt-get (as root; removed afterwards, and
nothing of it may be left) or, without root, unpacked into a throw-away root, and `batman
doctor` run from its /usr/bin. The build is the cost (a full compile, minutes): PACKAGE=0
skips it."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BINDIR, BatmanTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "scdoc", "fakeroot")
EXPECTED = [
    "./usr/bin/batman", "./usr/bin/batman-parallel", "./usr/bin/batman-isolated", "./usr/bin/batman-multi",
    "./usr/bin/taskmaster", "./usr/libexec/batman/batman-init", "./usr/libexec/batman/batman-services",
    "./usr/share/batman/profiles/parallel.yaml", "./usr/share/batman/profiles/isolated.yaml",
    "./usr/share/batman/profiles/strict.yaml", "./usr/share/batman/profiles/build.yaml",
    "./usr/share/batman/profiles/ci.yaml",
    "./usr/share/batman/schemas/profile.schema.json", "./usr/share/batman/schemas/taskmaster.schema.json",
    "./usr/share/batman/schemas/batch.schema.json",
    "./usr/share/man/man1/batman.1.gz", "./usr/share/man/man1/batman-parallel.1.gz",
    "./usr/share/man/man1/batman-isolated.1.gz", "./usr/share/man/man1/batman-multi.1.gz",
    "./usr/share/man/man1/taskmaster.1.gz", "./usr/share/man/man1/batman-batch.1.gz",
    "./usr/share/man/man5/batman-profiles.5.gz", "./usr/share/man/man5/batman-taskmaster.5.gz",
    "./usr/share/man/man5/batman-batch.5.gz",
    "./usr/share/bash-completion/completions/batman", "./usr/share/bash-completion/completions/batman-parallel",
    "./usr/share/zsh/vendor-completions/_batman", "./usr/share/fish/vendor_completions.d/batman.fish",
    "./usr/share/doc/batman/README.md.gz", "./usr/share/doc/batman/copyright",
]


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def unit_path():
    """The staged taskmaster@.service (prefix/lib/systemd/system)."""
    return os.path.normpath(os.path.join(BINDIR, "..", "lib", "systemd", "system", "taskmaster@.service"))


class SystemdUnitTest(unittest.TestCase):
    def test_unit_passes_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (package systemd)")
        unit = unit_path()
        self.assertTrue(os.path.exists(unit), unit)
        with tempfile.TemporaryDirectory() as d:
            # An instance of the template, with the staged taskmaster where the unit says /usr/...
            with open(unit) as f:
                text = f.read()
            # The unit names the install prefix's taskmaster: here, the staged one.
            prefix_bin = text.split("ExecStart=", 1)[1].split()[0].rsplit("/", 1)[0]
            text = text.replace(prefix_bin + "/", os.path.abspath(BINDIR) + "/")
            staged = os.path.join(d, "taskmaster@web.service")
            with open(staged, "w") as f:
                f.write(text)
            r = run(["systemd-analyze", "verify", "--man=no", staged], timeout=60,
                    env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertNotIn("Unknown", r.stderr)
            # Checked: a broken unit is refused (so the verification is a real one).
            with open(staged, "w") as f:
                f.write(text.replace("ExecStart=", "ExecStartt="))
            bad = run(["systemd-analyze", "verify", "--man=no", staged], timeout=60)
            self.assertIn("ExecStartt", bad.stderr)


class BuildDependsTest(unittest.TestCase):
    def test_build_depends_has_every_library_a_source_build_installs(self):
        # scripts/setup's first list is what a source build needs; debian/control must say so too.
        with open(os.path.join(ROOT, "scripts", "setup")) as f:
            setup = f.read()
        wanted = set(re.search(r"packages=\(([^)]*)\)", setup).group(1).split())
        wanted -= {"git", "python3", "util-linux", "procps", "iproute2", "libgtest-dev", "libgmock-dev"}
        with open(os.path.join(ROOT, "debian", "control")) as f:
            control = f.read()
        field = re.search(r"^Build-Depends:(.*?)^\S", control, re.S | re.M).group(1)
        have = {re.sub(r"\s*\(.*", "", d).strip() for d in field.split(",")}
        self.assertEqual(sorted(wanted - have), [], "missing from debian/control's Build-Depends")


@unittest.skipIf(os.environ.get("PACKAGE") == "0", "PACKAGE=0")
class PackageTest(BatmanTestCase):
    deb = None
    build_output = ""

    @classmethod
    def setUpClass(cls):
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise unittest.SkipTest(f"packaging tools missing: {' '.join(missing)} (./scripts/setup --test installs them)")
        # One build for every test of the class.
        r = run([os.path.join(ROOT, "scripts", "package")], cwd=ROOT, timeout=1800)
        cls.build_output = r.stdout + r.stderr
        for line in r.stderr.splitlines():  # the build time and lintian's warnings, in the test log
            if line.startswith(("package:", "W: ", "E: ")):
                print(line, flush=True)
        if r.returncode == 0:
            cls.deb = os.path.join(ROOT, r.stdout.strip().splitlines()[-1])

    def setUp(self):
        super().setUp()
        self.assertIsNotNone(self.deb, "scripts/package failed:\n" + self.build_output[-4000:])

    def test_package_contents(self):
        listing = run(["dpkg-deb", "-c", self.deb], check=True).stdout
        paths = {line.split()[5].rstrip("/") for line in listing.splitlines() if len(line.split()) >= 6}
        self.assertEqual([p for p in EXPECTED if p not in paths], [], listing)
        self.assertTrue(any(p.startswith("./usr/lib/systemd/system/taskmaster@.service") or
                            p.startswith("./lib/systemd/system/taskmaster@.service") for p in paths), listing)
        self.assertFalse([p for p in paths if p.startswith("./usr/local")], "nothing under /usr/local")
        info = run(["dpkg-deb", "-f", self.deb, "Package", "Version", "Depends", "Suggests"], check=True).stdout
        self.assertIn("Suggests: firejail", info)
        self.assertRegex(info, r"Depends: .*libc6")
        self.assertRegex(info, r"Depends: .*libseccomp2.*libyaml-cpp")  # shared, from dpkg-shlibdeps

    def test_lintian_found_no_error(self):
        # scripts/package fails on a lintian error; it printed the warnings (README lists them).
        self.assertNotRegex(self.build_output, r"(?m)^E: ")
        self.assertIn("built in", self.build_output)

    def test_installed_batman_runs_doctor_from_usr_bin(self):
        if os.geteuid() == 0 and shutil.which("apt-get"):
            self.install_on_the_system()
        else:
            self.unpack_and_run()

    def unpack_and_run(self):
        root = os.path.join(self.tmp, "root")
        run(["dpkg-deb", "-x", self.deb, root], check=True)
        doctor = run([os.path.join(root, "usr", "bin", "batman"), "doctor"], env=dict(self.env), timeout=60)
        self.assertEqual(doctor.returncode, 0, doctor.stderr)
        self.assertIn("tiers, strongest first", doctor.stdout)
        profiles = run([os.path.join(root, "usr", "bin", "batman"), "profiles", "list"], env=dict(self.env), timeout=60)
        self.assertIn(os.path.join(root, "usr/share/batman/profiles/strict.yaml"), profiles.stdout)

    def install_on_the_system(self):
        status = run(["dpkg-query", "-W", "-f=${Status}", "batman"])
        if status.returncode == 0 and status.stdout.endswith(" installed"):
            self.skipTest("a batman package is installed on this machine already: not touching it")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-q"]
        owned = []
        r = run(apt + ["install", "--no-install-recommends", self.deb], env=env, timeout=600)
        try:
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            files = run(["dpkg-query", "-L", "batman"], check=True).stdout.split("\n")
            owned = [f for f in files if f and (os.path.isfile(f) or os.path.islink(f))]
            self.assertIn("/usr/bin/batman", owned)
            doctor = run(["/usr/bin/batman", "doctor"], env=dict(self.env), timeout=60)
            self.assertEqual(doctor.returncode, 0, doctor.stderr)
            self.assertIn("tiers, strongest first", doctor.stdout)
            # The installed binary finds the installed profiles; man finds the pages.
            profiles = run(["/usr/bin/batman", "profiles", "list"], env=dict(self.env), timeout=60).stdout
            self.assertIn("/usr/share/batman/profiles/strict.yaml", profiles)
            if shutil.which("man"):
                man = run(["man", "-w", "batman-profiles"], timeout=60)
                self.assertEqual(man.stdout.strip(), "/usr/share/man/man5/batman-profiles.5.gz")
            job = run(["/usr/bin/batman-parallel", "--isolation", "env", "pkgtest", "echo", "from-the-package"],
                      env=dict(self.env), timeout=60)
            self.assertEqual((job.returncode, job.stdout), (0, "from-the-package\n"), job.stderr)
            # The namespaces tier finds its PID 1, batman-init, in /usr/libexec/batman.
            sandboxed = run(["/usr/bin/batman-isolated", "--isolation", "namespaces", "cat", "/proc/1/cmdline"],
                            env=dict(self.env), timeout=60)
            self.assertEqual(sandboxed.returncode, 0, sandboxed.stderr)
            self.assertTrue(sandboxed.stdout.startswith("batman-init\0"), sandboxed.stdout)
        finally:
            removed = run(apt + ["remove", "batman"], env=env, timeout=600)
        self.assertEqual(removed.returncode, 0, removed.stdout + removed.stderr)
        left = [f for f in owned if os.path.lexists(f)]
        self.assertEqual(left, [], "apt-get remove left files of the package behind")
        for d in ("/usr/share/batman", "/usr/libexec/batman", "/usr/share/doc/batman"):
            self.assertFalse(os.path.lexists(d), f"{d} is left behind")
