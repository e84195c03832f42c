"""The JSON Schemas of schemas/ (profiles, taskmaster configs, batch files) against what
batman itself accepts: every shipped profile, every YAML example of the README and the fuzz
seeds validate; a set of known-bad documents is refused by the schema AND by batman (exit
125), so the schemas cannot drift into accepting what batman refuses unnoticed."""
import glob
import json
import os
import re
import sys
import textwrap
import unittest

from harness import BatmanTestCase, pid_alive, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import jsonschema
    import yaml
except ImportError:  # a python3 of its own (pyenv...): Debian's python3-jsonschema/-yaml
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import jsonschema
        import yaml
    except ImportError:
        jsonschema = yaml = None

KINDS = ("profile", "taskmaster", "batch")


def schema(kind):
    with open(os.path.join(ROOT, "schemas", f"{kind}.schema.json")) as f:
        return json.load(f)


def errors(kind, text):
    """The schema's complaints about YAML TEXT, as strings ([] when valid)."""
    doc = yaml.safe_load(text)
    validator = jsonschema.Draft7Validator(schema(kind))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(doc)]


def readme_examples():
    """(kind, text) of every ```yaml block of README.md; kind from its yaml-language-server line."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    out = []
    for block in re.findall(r"^```yaml\n(.*?)^```", readme, re.S | re.M):
        m = re.search(r"\$schema=\S*/(\w+)\.schema\.json", block)
        out.append((m.group(1) if m else None, block))
    return out


# Each is refused by batman (the parser named in the schema's description) and by the schema.
BAD = {
    "profile": [
        "namespaces: [user, mount, bogus]\n",
        "namespaces: [user, mount]\nnetwork: none\n",          # none needs the net namespace
        "filesystem: {read_only: [relative/path]}\n",
        "limits: {cpus: 0.001}\n",
        "limits: {memory: 2 gigabytes}\n",
        "colour: red\n",                                        # unknown key
        "seccomp: {action: trap}\n",
        "hostname: " + "h" * 65 + "\n",
        "capabilities: {drop: some}\n",
        "root_user: 0\n",
    ],
    "taskmaster": [
        "logfile: x.log\n",                                     # programs is required
        "programs: {web: {numprocs: 2}}\n",                     # cmd is required
        "programs: {web: {cmd: x, autorestart: sometimes}}\n",
        "programs: {all: {cmd: x}}\n",
        "programs: {web: {cmd: x, exitcodes: [256]}}\n",
        "programs: {web: {cmd: x, exitcodes: []}}\n",
        "programs: {web: {cmd: x, stopsignal: BOGUS}}\n",
        "programs: {web: {cmd: x, umask: \"0999\"}}\n",
        "programs: {web: {cmd: x, stoptime: 5 minutes}}\n",
        "programs: {web: {cmd: x, numprocs: 0}}\n",
        "programs: {web: {cmd: x, isolation: docker}}\n",
        "programs: {web: {cmd: x, stdout_maxbytes: lots}}\n",
        "programs: {web: {cmd: x, colour: red}}\n",
    ],
    "batch": [
        "tasks: {}\n",
        "tasks: {a: {cmd: x, retries: 1001}}\n",
        "tasks: {a: \"  \"}\n",
        "defaults: {max_concurrency: 0}\ntasks: {a: x}\n",
        "tasks: {" + "a" * 42 + ": x}\n",
        "tasks: {a: x}\nhealth: {interval: 0}\n",
        "tasks: {a: {timeout: 5s}}\n",
        "tasks: {a: x}\ndefaults: {backoff: {factor: 0.5}}\n",
        "tasks: {a: x}\nbatches: [{name: one}]\n",
        "tasks: {a: x}\ndelays: {between_tasks: soon}\n",
        "project: ../up\ntasks: {a: x}\n",
    ],
}

# Accepted by batman and by the schema: the spellings a strict schema would wrongly refuse.
GOOD = {
    "profile": [
        "namespaces: [user, mount, net]\nnetwork: loopback\nroot_user: 1000\n"
        "env: {set: {N: 1, B: true}, keep: ~}\nlimits: {memory: 512M, cpus: 1.5, pids: ~}\n"
        "capabilities: {drop: all, keep: [CAP_NET_BIND_SERVICE, chown]}\nno_new_privs: yes\n",
        "seccomp: ~\nfilesystem: {hide: [$HOME/.ssh], tmpfs: [$TMPDIR, /tmp]}\n",
    ],
    "batch": [
        "tasks: {a: x}\n",
        "tasks: {a: {cmd: x, timeout: 1h30m, needs: ~}}\ndefaults: {rate_limit: 0.5, timeout: 0}\n",
    ],
}


@unittest.skipIf(jsonschema is None, "python3-jsonschema or python3-yaml is not installed")
class SchemaTest(BatmanTestCase):
    def write(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def batman_accepts(self, kind, text, name="doc"):
        """batman's own reader on TEXT: (accepted, output)."""
        if kind == "profile":
            r = self.batman("profiles", "show", self.write(name + ".yaml", text))
        elif kind == "batch":
            # A task name that no file has: the file is read (and refused) before it is looked up.
            r = self.batman("batch", self.write(name + ".yaml", text), "zz-no-such-task")
            if r.returncode == 125 and "zz-no-such-task" in r.stderr:
                return True, r.stderr
        else:
            r = self.batman(self.write(name + ".yaml", text), name="taskmaster", timeout=30)
        return r.returncode != 125, r.stdout + r.stderr

    def test_schemas_are_valid_draft7(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                jsonschema.Draft7Validator.check_schema(schema(kind))

    def test_shipped_profiles_validate(self):
        files = sorted(glob.glob(os.path.join(ROOT, "profiles", "*.yaml")))
        self.assertGreaterEqual(len(files), 5)
        for path in files:
            with self.subTest(profile=os.path.basename(path)), open(path) as f:
                self.assertEqual(errors("profile", f.read()), [])

    def test_fuzz_seeds_agree_with_batman(self):
        # The seeds of tests/fuzz: valid documents and a few that batman refuses.
        seeds = {"profile": ("profile", "shipped_*.yaml", True),
                 "taskmaster": ("taskmaster_config", "every_field.yaml", True),
                 "taskmaster_isolated": ("taskmaster_config", "isolated.yaml", True),
                 "taskmaster_alias": ("taskmaster_config", "alias.yaml", False),     # env value a mapping
                 "taskmaster_minimal": ("taskmaster_config", "minimal.yaml", False),  # a program as a string
                 "batch": ("batch_config", "full.yaml", True),
                 "batch_simple": ("batch_config", "simple.yaml", True)}
        count = 0
        for key, (folder, pattern, valid) in seeds.items():
            kind = key.split("_")[0]
            for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fuzz", folder, pattern))):
                with self.subTest(seed=path), open(path) as f:
                    text = f.read()
                    if valid:
                        self.assertEqual(errors(kind, text), [])
                    else:
                        self.assertNotEqual(errors(kind, text), [])
                        accepted, out = self.batman_accepts(kind, text, f"seed{count}")
                        self.assertFalse(accepted, out)
                count += 1
        self.assertGreaterEqual(count, 11)

    def test_readme_examples_validate_and_batman_accepts_them(self):
        examples = readme_examples()
        self.assertGreaterEqual(len(examples), 3, "the README's Schemas section shows one example per format")
        for i, (kind, text) in enumerate(examples):
            with self.subTest(example=i, kind=kind):
                self.assertIn(kind, KINDS, f"a ```yaml block of the README names no schema:\n{text}")
                self.assertEqual(errors(kind, text), [], text)
                if kind == "taskmaster":
                    self.assert_supervisor_starts(text, f"example{i}")
                else:
                    accepted, out = self.batman_accepts(kind, text, f"example{i}")
                    self.assertTrue(accepted, out)

    def assert_supervisor_starts(self, text, name):
        path = self.write(name + ".yaml", text)
        r = self.batman(path, "--daemon", name="taskmaster", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.home, name, "state", "supervisor.pid")) as f:
            pid = int(f.read())
        try:
            rows = json.loads(self.batman("ctl", "--config", path, "status", "--json", check=0).stdout)
            self.assertTrue(rows)
        finally:
            self.batman("ctl", "--config", path, "quit")
            wait_for(lambda: not pid_alive(pid), 30, what="the example supervisor to quit")

    def test_known_bad_documents_are_refused_by_schema_and_batman(self):
        for kind, docs in BAD.items():
            for i, text in enumerate(docs):
                with self.subTest(kind=kind, doc=text):
                    self.assertNotEqual(errors(kind, text), [], f"the {kind} schema accepts:\n{text}")
                    accepted, out = self.batman_accepts(kind, text, f"bad{i}")
                    self.assertFalse(accepted, f"batman accepts what the test calls bad:\n{text}\n{out}")

    def test_tolerated_spellings_are_accepted_by_schema_and_batman(self):
        for kind, docs in GOOD.items():
            for i, text in enumerate(docs):
                with self.subTest(kind=kind, doc=text):
                    self.assertEqual(errors(kind, text), [], text)
                    accepted, out = self.batman_accepts(kind, text, f"good{i}")
                    self.assertTrue(accepted, out)


if __name__ == "__main__":
    unittest.main()
