"""`batman dashboard` (SPEC §11): one server per $BATMAN_HOME, its page in a real browser
(Debian's headless chromium through selenium), the JSON API, Server-Sent Events, /metrics
parsed by prometheus_client, actions, and the request checks (token, Host, Origin, --token,
files inside $BATMAN_HOME only)."""
import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import BatmanTestCase, pid_alive, processes_with_marker, wait_for

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # scripts/setup --test installs python3-prometheus-client
    text_string_to_metric_families = None

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:  # scripts/setup --test installs python3-selenium
    webdriver = None

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def marker():
    return "9" + str(uuid.uuid4().int % 10**8).zfill(8)


class Client:
    """HTTP to the dashboard with full control of Host and Origin."""

    def __init__(self, url):
        rest = url.split("://", 1)[1].split("/", 1)[0]
        self.host, port = rest.rsplit(":", 1)
        self.port = int(port)
        self.netloc = rest

    def request(self, method, path, headers=None, host=None, body=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Host": host or self.netloc}
        h.update(headers or {})
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        elif method == "POST":
            conn.putheader("Content-Length", "0")
        conn.endheaders(data)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), payload

    def json(self, path, **kw):
        status, headers, body = self.request("GET", path, **kw)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def events(self, path="/api/v1/events", headers=None):
        """An open event stream: yields (id, event, data) until the deadline of each next()."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Host": self.netloc, "Accept": "text/event-stream"}
        h.update(headers or {})
        conn.request("GET", path, headers=h)
        sock = conn.sock
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        return EventStream(conn, resp, sock)


class EventStream:
    def __init__(self, conn, resp, sock):
        self.conn, self.resp, self.sock = conn, resp, sock

    def next(self, timeout=10.0):
        self.sock.settimeout(timeout)
        fields = {}
        while True:
            line = self.resp.readline()
            if not line:
                raise EOFError("stream ended")
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in fields or "data" in fields:
                    return fields.get("id"), fields.get("event", "message"), fields.get("data", "")
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            fields[k] = v[1:] if v.startswith(" ") else v

    def wait(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for an event")
            ev = self.next(left)
            if predicate(*ev):
                return ev

    def close(self):
        self.resp.close()
        self.conn.close()


class DashboardCase(BatmanTestCase):
    def start_dashboard(self, *extra):
        p = self.spawn("dashboard", *extra)
        line = p.stdout.readline().strip()
        self.assertTrue(line.startswith("http://"), f"no URL: {line!r} {p.stderr.read() if p.poll() is not None else ''}")
        self.dashboards = getattr(self, "dashboards", []) + [p]
        return p, line

    def info(self):
        with open(os.path.join(self.home, "dashboard.json")) as f:
            return json.load(f)

    def tearDown(self):
        for p in getattr(self, "dashboards", []):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        # A dashboard started in the background by --monitor stops with its home.
        try:
            pid = self.info()["pid"]
        except (OSError, ValueError, KeyError):
            pid = None
        super().tearDown()
        if pid:
            wait_for(lambda: not pid_alive(pid), timeout=10, what="the background dashboard gone with its home")


class Server(DashboardCase):
    def test_one_server_per_home_found_through_dashboard_json(self):
        p, url = self.start_dashboard()
        info = self.info()
        self.assertEqual(info["url"], url)
        self.assertEqual(info["pid"], p.pid)
        self.assertEqual(len(info["token"]), 64)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.home, "dashboard.json")).st_mode), 0o600)
        self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/$")
        # A second start prints the running one's URL and leaves it alone.
        second = self.batman("dashboard", check=0)
        self.assertEqual(second.stdout.strip(), url)
        self.assertIn("already serves", second.stderr)
        self.assertEqual(self.batman("dashboard", "--url", check=0).stdout.strip(), url)
        self.assertTrue(pid_alive(p.pid))
        self.batman("dashboard", "--stop", check=0)
        p.wait(timeout=10)
        self.assertFalse(os.path.exists(os.path.join(self.home, "dashboard.json")))
        r = self.batman("dashboard", "--url")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no dashboard is running", r.stderr)

    def test_api_events_and_metrics(self):
        ok = self.batman("api", "echo hello-api", name="batman-parallel", check=0)
        self.batman("api", "exit 3", name="batman-parallel", check=3)
        batch = os.path.join(self.work, "ci.yaml")
        with open(batch, "w") as f:
            f.write("tasks:\n  lint: {cmd: 'echo lint-ok'}\n  unit: {cmd: 'exit 1', retries: 0}\n")
        self.batman("batch", batch, check=1)
        p, url = self.start_dashboard()
        c = Client(url)
        projects = {x["name"]: x for x in c.json("/api/v1/projects")["items"]}
        self.assertEqual(projects["api"]["runs"]["by_status"], {"succeeded": 1, "failed": 1})
        self.assertEqual(projects["ci"]["tasks"]["by_status"], {"succeeded": 1, "failed": 1})
        runs = c.json("/api/v1/runs?project=api")["items"]
        self.assertEqual([r["status"] for r in runs], ["failed", "succeeded"])  # newest first
        self.assertEqual(runs[0]["exit_code"], 3)
        tasks = {t["task"]: t for t in c.json("/api/v1/tasks?project=ci")["items"]}
        self.assertEqual((tasks["lint"]["status"], tasks["unit"]["status"]), ("succeeded", "failed"))
        one = c.json(f"/api/v1/runs/api/{runs[1]['run_id']}")
        self.assertEqual(one["command"], "echo hello-api")
        log = c.json(f"/api/v1/log?project=api&run={runs[1]['run_id']}")
        self.assertEqual((log["data"], log["offset"], log["next_offset"], log["size"]), ("hello-api\n", 0, 10, 10))
        part = c.json(f"/api/v1/log?project=api&run={runs[1]['run_id']}&offset=6&limit=2")
        self.assertEqual((part["data"], part["next_offset"]), ("ap", 8))
        self.assertEqual(c.request("GET", "/api/v1/runs?project=nope")[0], 404)

        # Live: a new run reaches an open event stream within a second of its state file.
        stream = c.events()
        _, ev, data = stream.next()
        self.assertEqual(ev, "hello")
        first_id = json.loads(data)["seq"]
        m = marker()
        self.batman("api", f"sleep {m}", "--detach", name="batman-parallel", check=0)
        state_dir = os.path.join(self.home, "api", "state")
        run_id = wait_for(lambda: next((s["run_id"] for s in self.states("api") if s["status"] == "running"), None),
                          what="the run's state file")
        seen_at = time.monotonic()
        _, _, data = stream.wait(lambda i, e, d: e == "run" and json.loads(d)["run_id"] == run_id, timeout=5)
        self.assertLess(time.monotonic() - seen_at, 1.0)
        self.assertTrue(os.path.isdir(state_dir))
        stream.close()
        # Resumed with Last-Event-ID: what happened meanwhile is replayed.
        resumed = c.events(headers={"Last-Event-ID": str(first_id)})
        _, _, data = resumed.wait(lambda i, e, d: e == "run" and json.loads(d)["run_id"] == run_id, timeout=5)
        resumed.close()
        # An id older than anything this server has: the page is told to reload.
        old = c.events(headers={"Last-Event-ID": "5"})
        self.assertEqual(old.next()[1], "reset")
        old.close()

        # Stop through the API (with the page's token), as the page's button does.
        token = self.info()["token"]
        status, _, body = c.request("POST", f"/api/v1/runs/api/{run_id}/stop", headers={"X-Batman-Token": token})
        self.assertEqual(status, 200, body)
        wait_for(lambda: processes_with_marker(m) == [], what="the job's processes gone")
        wait_for(lambda: c.json(f"/api/v1/runs/api/{run_id}")["status"] == "killed", what="the run killed in the API")

        # /metrics: Prometheus text 0.0.4, no pid, run-id or task labels.
        status, headers, body = c.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        if text_string_to_metric_families is None:
            self.skipTest("python3-prometheus-client is not installed")
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.assertFalse({"pid", "run_id", "task", "run"} & set(s.labels), s)
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        self.assertEqual(samples[("batman_runs", (("project", "api"), ("status", "failed")))], 1)
        self.assertEqual(samples[("batman_runs", (("project", "api"), ("status", "killed")))], 1)
        self.assertEqual(samples[("batman_batch_tasks", (("project", "ci"), ("state", "failed")))], 1)
        self.assertEqual(samples[("batman_job_duration_seconds_count", (("project", "api"),))], 3)
        self.assertTrue(any(k[0] == "batman_build_info" for k in samples))
        self.assertNotIn(run_id, text)

    def test_requests_that_are_refused(self):
        m = marker()
        self.batman("sec", f"sleep {m}", "--detach", name="batman-parallel", check=0)
        run_id = self.states("sec")[0]["run_id"]
        p, url = self.start_dashboard()
        c = Client(url)
        token = self.info()["token"]
        stop = f"/api/v1/runs/sec/{run_id}/stop"
        job = sorted(processes_with_marker(m))
        # CSRF: no token, a wrong one, a GET: nothing is stopped.
        self.assertEqual(c.request("POST", stop)[0], 403)
        self.assertEqual(c.request("POST", stop, headers={"X-Batman-Token": "0" * 64})[0], 403)
        self.assertEqual(c.request("GET", stop)[0], 404)
        # Another site's page (its Origin), and DNS rebinding (a Host that is not ours).
        self.assertEqual(c.request("POST", stop, headers={"X-Batman-Token": token,
                                                          "Origin": "http://evil.example"})[0], 403)
        self.assertEqual(c.request("GET", "/api/v1/projects", host=f"evil.example:{c.port}")[0], 421)
        self.assertEqual(c.request("POST", stop, headers={"X-Batman-Token": token}, host=f"evil.example:{c.port}")[0], 421)
        self.assertEqual(sorted(processes_with_marker(m)), job, "a refused request stopped the run")
        # Files inside $BATMAN_HOME only: a forged log path, a planted symlink, a traversal.
        state_dir = os.path.join(self.home, "sec", "state")
        forged = dict(self.states("sec")[0], run_id="forged", status="succeeded", log="/etc/passwd")
        with open(os.path.join(state_dir, "forged.json"), "w") as f:
            json.dump(forged, f)
        os.symlink("/etc/passwd", os.path.join(self.home, "sec", "logs", "linked.log"))
        linked = dict(forged, run_id="linked", log="logs/linked.log")
        with open(os.path.join(state_dir, "linked.json"), "w") as f:
            json.dump(linked, f)
        wait_for(lambda: c.request("GET", "/api/v1/runs/sec/linked")[0] == 200, what="the planted records read")
        for run in ("forged", "linked", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd"):
            status, _, body = c.request("GET", f"/api/v1/log?project=sec&run={run}")
            self.assertEqual(status, 404, (run, body))
            self.assertNotIn(b"root:", body)
        status, _, body = c.request("GET", "/api/v1/log/stream?project=sec&run=linked")
        self.assertEqual(status, 404)
        # Malformed requests get an answer, and the server goes on.
        self.assertIn(c.request("GET", "/api/v1/log?project=sec&run=" + run_id + "&offset=x")[0], (400,))
        self.assertEqual(c.request("DELETE", "/api/v1/projects")[0], 405)
        self.assertEqual(c.request("GET", "/api/v1/projects")[0], 200)
        self.batman("stop", "sec", run_id, check=0)

    def test_non_loopback_needs_a_token(self):
        r = self.batman("dashboard", "--bind", "0.0.0.0")
        self.assertEqual(r.returncode, 125)
        self.assertIn("--token", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "dashboard.json")))
        p, login = self.start_dashboard("--token", "--bind", "127.0.0.1")
        self.assertIn("/login?code=", login)
        c = Client(login)
        access = self.info()["access_token"]
        self.assertEqual(c.request("GET", "/api/v1/projects")[0], 401)
        self.assertEqual(c.request("GET", "/api/v1/projects", headers={"Authorization": "Bearer " + "1" * 64})[0], 401)
        self.assertEqual(c.request("GET", "/api/v1/projects", headers={"Authorization": "Bearer " + access})[0], 200)
        path = "/" + login.split("/", 3)[3]
        status, headers, _ = c.request("GET", path)
        self.assertEqual(status, 303)
        cookie = headers["set-cookie"].split(";")[0]
        self.assertIn("HttpOnly", headers["set-cookie"])
        self.assertEqual(c.request("GET", "/api/v1/projects", headers={"Cookie": cookie})[0], 200)
        self.assertEqual(c.request("GET", path)[0], 401, "a login URL works once")
        fresh = self.batman("dashboard", "--url", check=0).stdout.strip()
        self.assertNotEqual(fresh, login)
        self.assertEqual(c.request("GET", "/" + fresh.split("/", 3)[3])[0], 303)

    def test_other_users_of_the_machine_are_refused(self):
        # Without --token the dashboard is its user's (and root's) alone, as the control
        # socket is: another local user cannot read the page (its CSRF token), logs, or act.
        p, url = self.start_dashboard()
        run = self.batman("victim", "sleep 300", "--detach", name="batman-parallel", check=0)
        run_id = self.states("victim")[0]["run_id"]
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
        script = ("import sys, urllib.request, urllib.error\n"
                  "req = urllib.request.Request(sys.argv[1] + sys.argv[2], method=sys.argv[3], data=b'' if sys.argv[3] == 'POST' else None)\n"
                  "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
                  "except urllib.error.HTTPError as e:\n    print(e.code)\n"
                  "except OSError as e:\n    print('refused', e)\n")
        for method, path in (("GET", ""), ("GET", "api/v1/projects"), ("GET", "metrics"),
                             ("POST", f"api/v1/runs/victim/{run_id}/stop")):
            with self.subTest(path=path):
                r = subprocess.run(nobody + ["/usr/bin/python3", "-c", script, url, path, method],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.stdout.strip(), "403", r.stdout + r.stderr)
        self.assertEqual(self.states("victim")[0]["status"], "running")
        self.assertEqual(Client(url).request("GET", "/api/v1/projects")[0], 200)  # its own user
        self.batman("stop", "victim")

    def test_monitor_starts_or_reuses_the_dashboard(self):
        m = marker()
        r = self.batman("--monitor", "mon", f"sleep {m}", "--detach", name="batman-parallel", check=0)
        run_id = r.stdout.strip()
        state = wait_for(lambda: self.states("mon") and self.states("mon")[0])
        url = state["monitor_url"]
        self.assertTrue(url.endswith(f"#/run/mon/{run_id}"), url)
        base = self.info()["url"]
        self.assertTrue(url.startswith(base))
        c = Client(base)
        # The server reads a new state file within 40 ms of its writing.
        wait_for(lambda: c.request("GET", f"/api/v1/runs/mon/{run_id}")[0] == 200, what="the run in the API")
        self.assertEqual(c.json(f"/api/v1/runs/mon/{run_id}")["status"], "running")
        # A second run reuses it.
        r2 = self.batman("--monitor", "mon2", "true", name="batman-parallel", check=0)
        self.assertIn(f"monitor: {base}#/run/mon2/", r2.stderr)
        self.assertEqual(len([s for s in self.states("mon2") if s["monitor_url"].startswith(base)]), 1)
        # No helper executable is left: one HTTP code path.
        libexec = os.path.join(os.path.dirname(os.environ["BATMAN_BINDIR"].rstrip("/")), "libexec", "batman")
        self.assertFalse(os.path.exists(os.path.join(libexec, "batman-monitor")))
        self.batman("stop", "mon", check=0)

    def test_programs_are_shown_and_driven_through_the_supervisor(self):
        m = marker()
        config = os.path.join(self.work, "svc.yaml")
        with open(config, "w") as f:
            f.write(f"programs:\n  web:\n    cmd: 'echo up; exec sleep {m}'\n    starttime: 0\n    stoptime: 2\n")
        self.batman("supervise", config, "--daemon", check=0)
        try:
            p, url = self.start_dashboard()
            c = Client(url)
            token = self.info()["token"]
            wait_for(lambda: [x["state"] for x in c.json("/api/v1/programs?project=svc")["items"]] == ["RUNNING"],
                     what="web RUNNING")
            stream = c.events()
            status, _, body = c.request("POST", "/api/v1/programs/svc/web/stop", headers={"X-Batman-Token": token})
            self.assertEqual(status, 200, body)
            self.assertIn(b"stopped", body)
            stream.wait(lambda i, e, d: e == "programs" and json.loads(d)["items"][0]["state"] == "STOPPED")
            wait_for(lambda: processes_with_marker(m) == [], what="web's process gone")
            status, _, body = c.request("POST", "/api/v1/programs/svc/web/start", headers={"X-Batman-Token": token})
            self.assertEqual(status, 200, body)
            stream.wait(lambda i, e, d: e == "programs" and json.loads(d)["items"][0]["state"] == "RUNNING")
            stream.close()
            # The log is found through web_00's record, which the supervisor writes on its state
            # writer's thread (the dashboard reads it within 40 ms); "up" reaches the log when
            # the supervisor reads the program's output. Neither is ordered before the events.
            wait_for(lambda: c.request("GET", "/api/v1/runs/svc/web_00")[0] == 200, what="web_00's record in the API")
            out_log = os.path.join(self.home, "svc", "logs", "web_00.out.log")
            wait_for(lambda: os.path.exists(out_log) and "up\n" in open(out_log).read(), what="web's output in its log")
            log = c.json("/api/v1/log?project=svc&run=web_00")
            self.assertIn("up\n", log["data"])
            text = c.request("GET", "/metrics")[2].decode()
            self.assertIn('batman_program_state{project="svc",program="web",state="RUNNING"} 1', text)
            status, _, body = c.request("POST", "/api/v1/programs/svc/nope/start", headers={"X-Batman-Token": token})
            self.assertNotEqual(status, 200, body)
        finally:
            self.batman("ctl", "--config", config, "quit", check=None)
            wait_for(lambda: processes_with_marker(m) == [], what="supervisor's programs gone")

    def test_a_batch_task_is_stopped_and_its_batch_goes_on(self):
        m = marker()
        plan = os.path.join(self.work, "nightly.yaml")
        with open(plan, "w") as f:
            f.write(f"defaults: {{timeout: 0, retries: 0}}\ntasks:\n  long: {{cmd: 'sleep {m}'}}\n"
                    "  after: {cmd: 'echo after', needs: [long]}\n")
        batch = self.spawn("batch", plan)
        task = wait_for(lambda: next((s for s in self.states("nightly") if s["run_id"].endswith(".long")
                                      and s["status"] == "running"), None), what="the long task running")
        p, url = self.start_dashboard()
        c = Client(url)
        tasks = c.json("/api/v1/tasks?project=nightly&live=1")["items"]
        self.assertEqual([t["task"] for t in tasks], ["long"])
        status, _, body = c.request("POST", f"/api/v1/runs/nightly/{task['run_id']}/stop",
                                    headers={"X-Batman-Token": self.info()["token"]})
        self.assertEqual(status, 200, body)
        self.assertIn(b"which goes on", body)
        wait_for(lambda: processes_with_marker(m) == [], what="the task's processes gone")
        self.assertEqual(batch.wait(timeout=30), 1)
        wait_for(lambda: c.json(f"/api/v1/runs/nightly/{task['run_id']}")["status"] == "killed", what="killed in the API")

    def test_removing_the_home_ends_the_dashboard(self):
        p, _ = self.start_dashboard()
        shutil.rmtree(self.home)
        p.wait(timeout=10)
        self.assertEqual(p.returncode, 0)


@unittest.skipIf(webdriver is None, "python3-selenium is not installed (scripts/setup --test)")
@unittest.skipUnless(os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), "chromium and chromium-driver are not installed")
class Browser(DashboardCase):
    """The page in headless chromium: one browser for the class."""

    @classmethod
    def setUpClass(cls):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        cls.profile = tempfile.mkdtemp(prefix="batman-chromium-")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", f"--user-data-dir={cls.profile}", "--no-first-run"):
            options.add_argument(arg)
        cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        cls.driver.set_page_load_timeout(30)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()
        shutil.rmtree(cls.profile, ignore_errors=True)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait_js(self, script, what, timeout=10, *args):
        try:
            return wait_for(lambda: self.js(script, *args), timeout=timeout, interval=0.05, what=what)
        except AssertionError as e:
            shown = self.js("return document.getElementById('content').innerText.slice(0, 3000)")
            raise AssertionError(f"{e}; the page shows:\n{shown}") from None

    def no_alert(self):
        try:
            self.driver.switch_to.alert
        except NoAlertPresentException:
            return True
        return False

    def test_live_page_log_and_stop(self):
        p, url = self.start_dashboard()
        self.driver.get(url)
        self.wait_js("return document.documentElement.dataset.ready === '1'", "the first render")
        self.wait_js("return document.getElementById('conn').textContent === 'live'", "the event stream")
        self.js("window.notReloaded = true")
        m = marker()
        hostile = r"""printf '%s\n' "<script>alert(1)</script>\"'&"; printf '\033[31mred\n'; """
        job = hostile + f"i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done; sleep {m}"
        run_id = self.batman("web", job, "--detach", "--env", f"MARK={m}", name="batman-parallel", check=0).stdout.strip()
        row = f"tr[data-run='web/{run_id}']"
        # It appears without a reload, running.
        self.wait_js(f"const r = document.querySelector(\"{row}\"); return r && r.querySelector('.status').textContent === 'running'",
                     "the new run's row")
        self.assertTrue(self.js("return window.notReloaded === true"))
        # Its log, live: the hostile line is text, and later lines arrive as they are written.
        self.driver.find_element(By.CSS_SELECTOR, f"{row} td:nth-child(2) a").click()
        self.wait_js("return document.getElementById('log').textContent.includes(arguments[0])",
                     "the hostile line shown as text", 10, "<script>alert(1)</script>\"'&")
        self.wait_js("return document.getElementById('log').textContent.includes('tick-2')", "a log line")
        seen = self.js("return document.getElementById('log').textContent")
        last = max(int(t.split("-")[1]) for t in seen.split() if t.startswith("tick-"))
        self.wait_js(f"return document.getElementById('log').textContent.includes('tick-{last + 2}')",
                     "a line written after the log was opened")
        self.assertEqual(self.js("return document.scripts.length"), 1, "a script element came from the job's output")
        self.assertEqual(self.js("return document.querySelectorAll('#log *').length"), 0, "markup in the log view")
        self.assertTrue(self.no_alert())
        self.assertIn("\u241b[31mred", seen, "the ANSI escape is shown, not obeyed")
        # Stop from the page: the run ends, its processes are gone.
        pids = processes_with_marker(m)
        self.driver.find_element(By.CSS_SELECTOR, f"{row} button.stop").click()
        self.wait_js(f"const r = document.querySelector(\"{row}\"); return r && r.querySelector('.status').textContent === 'killed'",
                     "the run shown killed", timeout=20)
        self.assertFalse(any(pid_alive(x) for x in pids))
        self.assertEqual(self.states("web")[0]["status"], "killed")
        self.assertTrue(self.js("return window.notReloaded === true"))

    def test_hostile_names_and_commands_are_text_and_the_page_fits_a_phone(self):
        self.batman("web", "echo '<img src=x onerror=alert(2)>'", name="batman-parallel", check=0)
        p, url = self.start_dashboard()
        self.driver.set_window_size(390, 800)
        try:
            self.driver.get(url + "#/p/web")
            self.wait_js("return document.documentElement.dataset.ready === '1'", "the first render")
            self.wait_js("return document.querySelector('#runs tbody td.cmd') !== null", "the run's row")
            self.assertEqual(self.js("return document.querySelectorAll('#content img').length"), 0)
            self.assertIn("<img src=x", self.js("return document.querySelector('#runs tbody td.cmd').textContent"))
            self.assertTrue(self.no_alert())
            # Phone width: nothing wider than the screen but the tables' own scroll areas.
            self.assertLessEqual(self.js("return document.documentElement.scrollWidth"), 400)
        finally:
            self.driver.set_window_size(1280, 900)
