"""Code layout (README, "Code layout"): linked by lld, the functions a binary's common work
runs (src/link-order/) sit side by side, so the kernel's 64 KB fault-around keeps little of the
text resident. A list gone stale, or a build without lld where lld is installed, fails here:
the supervisor kept 69% of its text resident before the layout, 25% with it (3 Dec 2026)."""
import os
import shutil
import subprocess

from harness import BINDIR, BatmanTestCase, wait_for


def services_path():
    return os.path.realpath(os.path.join(BINDIR, "..", "libexec", "batman", "batman-services"))


def linked_by_lld(path):
    comment = subprocess.run(["readelf", "-p", ".comment", path], capture_output=True, text=True).stdout
    return "LLD" in comment


def text_size(path):
    """The size of the executable segment (readelf -lW: LOAD ... R E)."""
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["LOAD"] and "E" in parts[6:-1]:
            return int(parts[5], 16)
    raise AssertionError(f"no executable segment in {path}:\n{out}")


def resident_code(pid, path):
    """KiB of the process's mapping of PATH's code that is resident (smaps, r-xp)."""
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
                inside = parts[1].startswith("r-x") and len(parts) >= 6 and os.path.realpath(parts[5]) == path
            elif inside and parts[0] == "Rss:":
                total += int(parts[1])
    return total


class CodeLayoutTest(BatmanTestCase):
    def test_the_supervisor_keeps_little_of_its_code_resident(self):
        services = services_path()
        if not linked_by_lld(services):
            if shutil.which("ld.lld"):
                self.fail(f"{services} was not linked by lld, and lld is installed: is the build -Dlink_order=disabled?")
            self.skipTest("no lld on this machine (apt-get install lld): the code is in link order, and most of "
                          "it is resident")
        config = os.path.join(self.work, "fifty.yaml")
        with open(config, "w") as f:
            f.write("programs:\n" + "".join(f"  p{i:02d}:\n    cmd: \"sleep 600\"\n    starttime: 0\n"
                                            for i in range(50)))
        daemon = self.spawn("supervise", config)
        wait_for(lambda: self.batman("ctl", "--config", config, "status").stdout.count("RUNNING") == 50, 60,
                 what="50 programs RUNNING")
        resident, text = resident_code(daemon.pid, services), text_size(services)
        share = resident * 1024 / text
        self.assertGreater(resident, 0)
        self.assertLess(share, 0.45, f"{resident} KiB of {text // 1024} KiB of code resident: is "
                        "src/link-order/batman-services.txt stale? (scripts/link-order rewrites it)")
        self.batman("ctl", "--config", config, "quit", check=0)
        daemon.wait(timeout=60)

    def build_dir(self):
        build = os.environ.get("BATMAN_BUILD_DIR")
        if not build:
            self.skipTest("BATMAN_BUILD_DIR is not set (scripts/test sets it): no unstripped build to read")
        return build

    @staticmethod
    def listed(name):
        """[(workload, [names])] of src/link-order/NAME.txt, in its order."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        groups = []
        with open(os.path.join(root, "src", "link-order", name + ".txt")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("# "):
                    groups.append((line[2:], []))
                elif line:
                    groups[-1][1].append(line)
        return groups

    @staticmethod
    def symbols(binary):
        """{name: (address, size)} of the build's code symbols."""
        out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
        return {p[3]: (int(p[0], 16), int(p[1], 16)) for p in (l.split() for l in out.splitlines())
                if len(p) == 4 and p[2] in "tTWw"}

    def test_the_lists_name_functions_the_binaries_have(self):
        """A list whose names the code no longer has orders nothing. Only batman's own names
        count (namespace batman): the libraries' depend on their versions and on static_deps.
        The installed binaries are stripped, so the build's are read."""
        build = self.build_dir()
        for name in ("batman", "batman-services"):
            own = [n for _, names in self.listed(name) for n in names if "6batman" in n]
            self.assertGreater(len(own), 100, f"src/link-order/{name}.txt names too few of batman's functions")
            have = self.symbols(os.path.join(build, "src", name))
            found = sum(n in have for n in own) / len(own)
            self.assertGreater(found, 0.9, f"{name}: only {found:.0%} of batman's functions in src/link-order/{name}.txt "
                               "are in the build: run scripts/link-order BUILD_DIR BINDIR")

    def test_the_supervisors_functions_sit_together(self):
        """The first workload's functions (the supervisor's, the launch's) fill one span of the
        text, at most 1.3x their size: what the resident share above rests on, read off the build."""
        build = self.build_dir()
        binary = os.path.join(build, "src", "batman-services")
        if not linked_by_lld(binary):
            self.skipTest(f"{binary} was not linked by lld: its code is in link order")
        for name in ("batman", "batman-services"):
            have = self.symbols(os.path.join(build, "src", name))
            workload, names = self.listed(name)[0]
            placed = [have[n] for n in names if n in have and have[n][1] > 0]
            size = sum(s for _, s in placed)
            span = max(a + s for a, s in placed) - min(a for a, _ in placed)
            self.assertLess(span, 1.3 * size, f"{name}: {workload}'s {len(placed)} functions ({size // 1024} KiB) "
                            f"spread over {span // 1024} KiB")
