"""Code layout (README, "Code layout"): linked by lld, the functions a binary's common work
runs (src/link-order/) sit side by side, so the kernel's 64 KB fault-around keeps little of the
text resident. A list gone stale, or a build without lld, shows here as most of the supervisor's
text resident again (69% before the layout, 25% with it, 3 Dec 2026)."""
import os
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
            self.skipTest("batman-services was not linked by lld (no lld where it was built): "
                          "its code is in link order, and most of it is resident")
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

    def test_the_lists_name_functions_the_binaries_have(self):
        """A list whose names the code no longer has orders nothing. The installed binaries are
        stripped, so the build's are read (BATMAN_BUILD_DIR, set by scripts/test)."""
        build = os.environ.get("BATMAN_BUILD_DIR")
        if not build:
            self.skipTest("BATMAN_BUILD_DIR is not set (scripts/test sets it): no unstripped build to read")
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for name in ("batman", "batman-services"):
            with open(os.path.join(root, "src", "link-order", name + ".txt")) as f:
                listed = {l.strip() for l in f if l.strip() and not l.startswith("#")}
            nm = subprocess.run(["nm", "--defined-only", os.path.join(build, "src", name)], capture_output=True,
                                text=True, check=True).stdout
            have = {parts[2] for parts in (l.split() for l in nm.splitlines()) if len(parts) == 3}
            found = len(listed & have) / len(listed)
            self.assertGreater(found, 0.9, f"{name}: only {found:.0%} of src/link-order/{name}.txt is in the "
                               "build: run scripts/link-order BUILD_DIR BINDIR")
