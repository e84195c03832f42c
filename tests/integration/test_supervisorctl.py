"""Issue 15: the unmodified supervisorctl (Debian's supervisor 4.2) drives taskmaster over
supervisord's XML-RPC interface, and taskmaster reads supervisord.conf. Each command runs
against a real `supervisord -n` on the same config and against taskmaster, and what
supervisorctl prints and its exit code are compared (pids, uptimes and dates normalised;
the differences README "Migrating from supervisord" documents are said where they are).
Most commands run Debian's supervisorctl code in this process (its Controller, as
/usr/bin/supervisorctl runs it, without a Python start per command: 0.5 s each here); the
executable itself runs the first status, start, tail -f, version and shutdown."""
import io
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import unittest

from harness import comm, pid_alive, wait_for
from test_taskmaster import TaskmasterCase

SUPERVISORD = shutil.which("supervisord")
SUPERVISORCTL = shutil.which("supervisorctl")
try:
    from supervisor import supervisorctl as supervisorctl_module
    from supervisor.options import ClientOptions
except ImportError:
    supervisorctl_module = None


def run_controller(conf, args):
    """supervisorctl -c CONF ARGS..., as supervisorctl.main() runs it, in this process."""
    options = ClientOptions()
    options.realize(["-c", conf] + list(args), doc=supervisorctl_module.__doc__)
    out = io.StringIO()
    controller = supervisorctl_module.Controller(options, stdout=out)
    controller.onecmd(" ".join(options.args))
    return subprocess.CompletedProcess(args, controller.exitstatus, out.getvalue(), "")

CONF = """\
; the same file for supervisord and taskmaster: only %(here)s differs
[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
logfile=%(here)s/main.log
pidfile=%(here)s/supervisord.pid
nodaemon=true
childlogdir=%(here)s

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:web]
command=sleep MARK
startsecs=1
stopwaitsecs=5

[program:worker]
command=sh -c 'echo out-%(process_num)d; echo err-%(process_num)d >&2; exec sleep MARK'
process_name=%(program_name)s_%(process_num)02d
numprocs=2
startsecs=0
stdout_logfile=%(here)s/%(program_name)s-%(process_num)d.out
stderr_logfile=%(here)s/%(program_name)s-%(process_num)d.err

[program:flaky]
command=sh -c 'exit 3'
autostart=false
startsecs=1
startretries=0

[group:pool]
programs=worker
"""

EXTRA = """
[program:extra]
command=sleep MARK
startsecs=0
"""


def sleeping(pid):
    """Whether the program `pid` (a number as text) is `sleep` by now: the process itself
    (supervisord), or the job below batman-init (taskmaster's isolated programs)."""
    if not str(pid).isdigit():
        return False
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        children = []
    return comm(pid) == "sleep" or any(comm(c) == "sleep" for c in children)


def out_lines(path):
    """How many times worker_00 wrote its line into `path`."""
    try:
        with open(path) as f:
            return f.read().count("out-0\n")
    except OSError:
        return 0


def normalise(text):
    text = re.sub(r"pid \d+, uptime \d+:\d\d:\d\d", "pid N, uptime T", text)
    text = re.sub(r"/work/(sd|tm)/", "/work/DIR/", text)  # each supervisor's own directory
    text = re.sub(r"[A-Z][a-z]{2} \d\d \d\d:\d\d [AP]M", "DATE", text)
    text = re.sub(r"^\d+$", "N", text, flags=re.M)
    # BACKOFF/FATAL say why in each one's words (README: what differs).
    text = re.sub(r"^(\S+\s+(?:FATAL|BACKOFF)\s+).*$", r"\1WHY", text, flags=re.M)
    return text


@unittest.skipUnless(SUPERVISORD and SUPERVISORCTL and supervisorctl_module,
                     "supervisor (Debian's package) is not installed")
class Supervisorctl(TaskmasterCase):
    def setUp(self):
        super().setUp()
        self.sd = os.path.join(self.work, "sd")
        self.tm = os.path.join(self.work, "tm")
        for d in (self.sd, self.tm):
            os.makedirs(d)
            self.write_conf(d, CONF)
        self.supervisord = None

    def tearDown(self):
        if self.supervisord and self.supervisord.poll() is None:
            try:
                os.killpg(self.supervisord.pid, signal.SIGKILL)
            except OSError:
                pass
            self.supervisord.wait()
        super().tearDown()

    def write_conf(self, d, text):
        with open(os.path.join(d, "supervisord.conf"), "w") as f:
            f.write(text.replace("MARK", self.mark))

    def sctl(self, d, *args, timeout=30, real=False):
        if not real:
            return run_controller(os.path.join(d, "supervisord.conf"), args)
        return subprocess.run([SUPERVISORCTL, "-c", os.path.join(d, "supervisord.conf")] + list(args),
                              capture_output=True, text=True, timeout=timeout, cwd=d)

    def start_both(self):
        self.supervisord = subprocess.Popen([SUPERVISORD, "-n", "-c", os.path.join(self.sd, "supervisord.conf")],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True, cwd=self.sd)
        r = self.batman(os.path.join(self.tm, "supervisord.conf"), "--daemon", name="taskmaster")
        self.assertEqual(r.returncode, 0, r.stderr)
        # What taskmaster does not implement of this file is named, once each.
        self.assertIn("[supervisord] childlogdir: not implemented", r.stderr)
        pidfile = os.path.join(self.home, "supervisord", "state", "supervisor.pid")
        self.daemons.append(pidfile)
        with open(pidfile) as f:
            self.taskmaster = int(f.read())
        for d in (self.sd, self.tm):
            self.wait_running(d, "web")

    def wait_running(self, d, name, timeout=20):
        wait_for(lambda: re.search(rf"^{re.escape(name)}\s+RUNNING ", self.sctl(d, "status").stdout, re.M),
                 timeout=timeout, what=f"{name} RUNNING under {d}")

    def both(self, *args, sort=False, lines=False, timeout=30, real=False):
        """Run supervisorctl ARGS against both; their outputs and exit codes must agree
        (`lines`: the same distinct lines, however often each came)."""
        a = self.sctl(self.sd, *args, timeout=timeout, real=real)
        b = self.sctl(self.tm, *args, timeout=timeout, real=real)
        sa, sb = normalise(a.stdout), normalise(b.stdout)
        if sort:  # several results at once: batman answers in config order (README)
            sa, sb = sorted(sa.splitlines()), sorted(sb.splitlines())
        if lines:
            sa, sb = sorted(set(sa.split())), sorted(set(sb.split()))
        self.assertEqual((sb, b.returncode), (sa, a.returncode),
                         f"supervisorctl {' '.join(args)}\nsupervisord:\n{a.stdout}{a.stderr}\n"
                         f"taskmaster:\n{b.stdout}{b.stderr}")
        return b

    def test_every_command_answers_as_supervisord_does(self):
        self.start_both()
        status = self.both("status", real=True)
        self.assertRegex(status.stdout, r"(?m)^flaky +STOPPED +Not started$")
        self.assertRegex(status.stdout, r"(?m)^pool:worker_01 +RUNNING +pid \d+, uptime \d+:\d\d:\d\d$")
        self.both("status", "web", "pool:*")
        self.both("status", "nosuch")
        self.both("status", "pool:nosuch")
        # pid: the supervisor's, one program's, all.
        r = self.both("pid")
        self.assertEqual(int(r.stdout), self.taskmaster)
        self.both("pid", "web")
        self.both("pid", "all")
        self.both("pid", "nosuch")
        # stop / start / restart by name, group and all.
        old = int(self.sctl(self.tm, "pid", "web").stdout)
        self.both("stop", "web")
        self.assertFalse(pid_alive(old))
        self.both("stop", "web")
        self.both("status", "web")
        self.both("start", "web", real=True)  # answered once RUNNING (startsecs=1), not before
        self.both("start", "web")
        self.both("start", "nosuch")
        self.both("restart", "pool:*", sort=True)
        self.both("stop", "pool:worker_00")
        self.both("start", "pool:")
        self.both("start", "flaky")  # exits before startsecs: spawn error, then FATAL
        for d in (self.sd, self.tm):
            wait_for(lambda: re.search(r"^flaky\s+FATAL ", self.sctl(d, "status", "flaky").stdout, re.M),
                     timeout=15, what=f"flaky FATAL under {d}")
        self.both("status", "flaky")
        # signal
        self.both("signal", "HUP", "web")
        outs = [os.path.join(d, "worker-0.out") for d in (self.sd, self.tm)]
        # worker_00's last start (start pool:) has written its line once its sh became sleep:
        # counted after that, the wait below is for the restart that USR1 causes.
        for d in (self.sd, self.tm):
            wait_for(lambda: sleeping(self.sctl(d, "pid", "pool:worker_00").stdout.strip()),
                     what=f"worker_00 under {d} to be sleeping")
        starts = [out_lines(path) for path in outs]
        self.both("signal", "USR1", "pool:*", sort=True)
        self.both("signal", "NOPE", "web")
        self.both("signal", "HUP", "flaky")
        # The restart after USR1 writes out-0 again, whenever each supervisor gets to it: the
        # clear below must come after that line, not before it.
        for path, before in zip(outs, starts):
            wait_for(lambda: out_lines(path) > before, timeout=15, what=f"worker_00's restart to write {path}")
        # tail (stdout, stderr, bytes) and clear
        # (each start wrote a line: restarts, and USR1 ends sleep, which autorestart restarts;
        # how many restarts each supervisor has made by now is timing, so the lines are compared)
        self.assertEqual(set(self.both("tail", "pool:worker_00", lines=True).stdout.split()), {"out-0"})
        self.assertEqual(set(self.both("tail", "pool:worker_01", "stderr", lines=True).stdout.split()), {"err-1"})
        self.both("tail", "-3", "pool:worker_00")
        self.both("tail", "nosuch")
        self.both("clear", "pool:worker_00")
        self.assertEqual(self.both("tail", "pool:worker_00").stdout.strip(), "")
        self.both("clear", "nosuch")
        # avail lists every process with its group and priority.
        self.both("avail")
        # maintail: the supervisor's own log (its lines differ: events of each).
        for d in (self.sd, self.tm):
            r = self.sctl(d, "maintail")
            self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("supervisor started", self.sctl(self.tm, "maintail", "-5000").stdout)
        # version: batman's own (README: what differs), an exit code of 0.
        r = self.sctl(self.tm, "version", real=True)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.strip(), r"^\d+\.\d+\.\d+$")
        # stop all, start all
        self.both("stop", "all", sort=True)
        self.both("status")
        self.both("start", "all", sort=True)
        self.assertTrue(pid_alive(self.taskmaster))

    def test_reread_update_add_remove_reload_and_shutdown(self):
        self.start_both()
        self.both("reread")
        self.both("update")
        web_before = int(self.sctl(self.tm, "pid", "web").stdout)
        # A program added, one changed.
        for d in (self.sd, self.tm):
            self.write_conf(d, CONF.replace("stopwaitsecs=5", "stopwaitsecs=6") + EXTRA)
        self.both("reread", sort=True)
        self.both("update", sort=True)
        self.both("status")
        web_after = int(self.sctl(self.tm, "pid", "web").stdout)
        self.assertNotEqual(web_before, web_after)  # changed: restarted
        self.assertFalse(pid_alive(web_before))
        # remove needs it stopped; add brings it back from what reread read.
        self.both("remove", "extra")
        self.both("stop", "extra")
        self.both("remove", "extra")
        self.both("status", "extra")
        self.both("add", "extra")
        self.both("add", "extra")
        self.both("add", "nosuch")
        # The file loses it: update removes it.
        for d in (self.sd, self.tm):
            self.write_conf(d, CONF)
        self.both("reread")
        self.both("update")
        self.both("status")
        # A broken file: reread says why and nothing changes.
        for d in (self.sd, self.tm):
            self.write_conf(d, CONF.replace("numprocs=2", "numprocs=two"))
        bad = self.sctl(self.tm, "reread")
        self.assertEqual(bad.returncode, self.sctl(self.sd, "reread").returncode)
        self.assertIn("ERROR: CANT_REREAD: ", bad.stdout)
        self.assertIn("supervisord.conf:", bad.stdout)
        self.assertIn("[program:worker] numprocs: expected a whole number", bad.stdout)
        for d in (self.sd, self.tm):
            self.write_conf(d, CONF)
        # reload: every program restarted from the file.
        web = int(self.sctl(self.tm, "pid", "web").stdout)
        self.both("reload")
        wait_for(lambda: not pid_alive(web), timeout=15, what="the old web to be stopped")
        for d in (self.sd, self.tm):
            self.wait_running(d, "web")
        self.assertTrue(pid_alive(self.taskmaster))
        # shutdown: the supervisor stops its programs and exits.
        workers = [int(p) for p in self.sctl(self.tm, "pid", "all").stdout.split()]
        self.both("shutdown", real=True)
        wait_for(lambda: not pid_alive(self.taskmaster), timeout=20, what="taskmaster to exit")
        self.supervisord.wait(timeout=20)
        for pid in workers:
            self.assertFalse(pid_alive(pid), pid)
        r = self.both("status")
        self.assertIn("no such file", r.stdout)

    def test_tail_f_streams_what_the_program_writes(self):
        self.batman(os.path.join(self.tm, "supervisord.conf"), "--daemon", name="taskmaster", check=0)
        pidfile = os.path.join(self.home, "supervisord", "state", "supervisor.pid")
        self.daemons.append(pidfile)
        with open(pidfile) as f:
            self.taskmaster = int(f.read())
        self.wait_running(self.tm, "pool:worker_00")
        follow = subprocess.Popen([SUPERVISORCTL, "-c", os.path.join(self.tm, "supervisord.conf"), "tail", "-f",
                                   "pool:worker_00"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            self.assertEqual(follow.stdout.readline().strip(), "==> Press Ctrl-C to exit <==")
            self.assertEqual(follow.stdout.readline().strip(), "out-0")
            # A restart writes again: the stream carries it while it happens.
            self.assertEqual(self.sctl(self.tm, "restart", "pool:worker_00").returncode, 0)
            # -s URL instead of -c: the executable, as a script would call it.
            url = "unix://" + os.path.join(self.tm, "supervisor.sock")
            r = subprocess.run([SUPERVISORCTL, "-s", url, "status", "pool:*"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertRegex(r.stdout, r"(?m)^pool:worker_00 +RUNNING +pid \d+")
            self.assertEqual(follow.stdout.readline().strip(), "out-0")
            self.assertIsNone(follow.poll())
        finally:
            follow.send_signal(signal.SIGINT)
            try:
                follow.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # supervisorctl's own race: a SIGINT that lands in its medusa loop's bare
                # `except:` is swallowed, and it goes on following (seen once in a loaded CI run).
                follow.kill()
                follow.wait(timeout=10)
        # An unknown name is a 404: supervisorctl says so and the supervisor lives on.
        r = self.sctl(self.tm, "tail", "-f", "nosuch", timeout=10, real=True)
        self.assertTrue(pid_alive(self.taskmaster))
        self.assertIn("/logtail/nosuch/stdout Cannot read, status code 404", r.stderr)


class RpcHostileInput(TaskmasterCase):
    """Malformed, oversized and probing requests get a fault or a 4xx, never a crash or a
    stall; method names come from a fixed table only."""

    def request(self, path, method="POST", body=b"", headers=None):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.sock)
        conn = http.client.HTTPConnection("localhost")
        conn.sock = sock
        conn.request(method, path, body=body, headers=headers or {"Content-Type": "text/xml"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data.decode("utf-8", "replace")

    def call(self, name, *params):
        import xmlrpc.client
        return self.request("/RPC2", body=xmlrpc.client.dumps(params, name).encode())

    def test_bad_requests_get_a_fault_or_4xx_and_the_supervisor_lives_on(self):
        config = self.config("programs:\n  web:\n    cmd: \"sleep MARK\"\n    starttime: 0\n")
        supervisor = self.start_daemon(config)
        self.sock = os.path.join(self.state_dir(), "supervisor.sock")
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o600)
        # YAML configs are served too: one program, its own group.
        status, body = self.call("supervisor.getProcessInfo", "web")
        self.assertEqual(status, 200)
        self.assertIn("<name>statename</name>", body)
        status, body = self.call("supervisor.getAPIVersion")
        self.assertIn("<string>3.0</string>", body)
        # Names not in the table: no traversal, no private method, no dunder.
        for name in ("supervisor.startProcess.__init__", "supervisor._update", "supervisor.__class__",
                     "os.system", "system", "", "supervisor.getAPIVersion.x"):
            status, body = self.call(name) if name else self.request("/RPC2", body=b"<methodCall><methodName/></methodCall>")
            self.assertIn(status, (200, 400), name)
            if status == 200:
                self.assertIn("<int>1</int>", body, name)  # UNKNOWN_METHOD
                self.assertIn("UNKNOWN_METHOD", body, name)
        status, body = self.call("supervisor.startProcess")  # missing its name
        self.assertIn("INCORRECT_PARAMETERS", body)
        status, body = self.call("supervisor.stopProcess", "nosuch")
        self.assertIn("BAD_NAME: nosuch", body)
        # Malformed XML, a DOCTYPE (billion laughs), a wrong method: 4xx.
        self.assertEqual(self.request("/RPC2", body=b"<methodCall><methodName>x")[0], 400)
        laughs = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                  b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><methodCall><methodName>&b;</methodName></methodCall>')
        self.assertEqual(self.request("/RPC2", body=laughs)[0], 400)
        self.assertEqual(self.request("/RPC2", method="GET")[0], 405)
        self.assertEqual(self.request("/nothing", method="GET")[0], 404)
        deep = b"<methodCall><methodName>m</methodName><params><param>" + b"<value><array><data>" * 5000
        self.assertEqual(self.request("/RPC2", body=deep)[0], 400)
        # Oversized: refused before it is read whole.
        try:
            status, _ = self.request("/RPC2", body=b"<methodCall>" + b" " * (4 << 20))
            self.assertEqual(status, 413)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: refused as well
        # A multicall with faults inside answers each.
        status, body = self.call("system.multicall", [{"methodName": "supervisor.getPID", "params": []},
                                                      {"methodName": "system.multicall", "params": [[]]},
                                                      {"methodName": "nope"}])
        self.assertEqual(status, 200)
        self.assertIn("Recursive system.multicall forbidden", body)
        self.assertIn(f"<int>{supervisor}</int>", body)
        # Still serving, still supervising.
        self.assertTrue(pid_alive(supervisor))
        status, body = self.call("supervisor.getState")
        self.assertIn("RUNNING", body)

    def test_a_bad_supervisord_conf_is_one_line_and_nothing_starts(self):
        path = os.path.join(self.work, "supervisord.conf")
        with open(path, "w") as f:
            f.write("[program:web]\ncommand=sleep MARK\nstartsecs=soon\n".replace("MARK", self.mark))
        r = self.batman(path, "--daemon", name="taskmaster")
        self.assertEqual(r.returncode, 125)
        self.assertEqual(r.stderr.strip().splitlines()[-1],
                         f"batman: {path}:3: [program:web] startsecs: expected a duration such as 1500ms, 30s, 5m or 1h")
        self.assertEqual(processes_with_marker_count(self.mark), 0)
        # --format supervisord on a file whose first line is not a section.
        with open(path, "w") as f:
            f.write("; comment\nfoo = bar\n")
        r = self.batman(path, "--format", "supervisord", name="taskmaster")
        self.assertEqual(r.returncode, 125)
        self.assertIn(f"{path}:2: key 'foo' before any [section]", r.stderr)


@unittest.skipUnless(SUPERVISORCTL, "supervisor (Debian's package) is not installed")
class RpcOverTcp(TaskmasterCase):
    def test_a_tcp_port_is_served_only_with_basic_auth(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        path = os.path.join(self.work, "supervisord.conf")
        with open(path, "w") as f:
            f.write(f"[inet_http_server]\nport=127.0.0.1:{port}\nusername=admin\npassword=s3cret\n"
                    f"[program:web]\ncommand=sleep {self.mark}\nstartsecs=0\n")
        self.batman(path, "--daemon", name="taskmaster", check=0)
        self.daemons.append(os.path.join(self.home, "supervisord", "state", "supervisor.pid"))
        url = f"http://127.0.0.1:{port}"
        ok = subprocess.run([SUPERVISORCTL, "-s", url, "-u", "admin", "-p", "s3cret", "status"],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertRegex(ok.stdout, r"^web +RUNNING +pid \d+")
        for creds in ([], ["-u", "admin", "-p", "wrong"]):
            r = subprocess.run([SUPERVISORCTL, "-s", url] + creds + ["stop", "web"], capture_output=True, text=True,
                               timeout=30)
            self.assertIn("Server requires authentication", r.stdout)
            self.assertNotEqual(r.returncode, 0)
        self.assertTrue(processes_with_marker_count_list(self.mark))  # web still runs
        # Without a password the port is refused before anything starts.
        with open(path, "w") as f:
            f.write(f"[inet_http_server]\nport=127.0.0.1:{port}\n[program:web]\ncommand=sleep 1\n")
        r = self.batman(path, name="taskmaster")
        self.assertEqual(r.returncode, 125)
        self.assertIn("[inet_http_server] username: missing: a TCP port is served only with HTTP Basic auth", r.stderr)


def processes_with_marker_count_list(mark):
    from harness import processes_with_marker
    return processes_with_marker(mark)


def processes_with_marker_count(mark):
    from harness import processes_with_marker
    return len(processes_with_marker(mark))
