"""Real processes for durability tests: rq workers (killed with -9), gunicorn, an admin over HTTP."""
import http.cookiejar
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from bench.common import start_gunicorn, wait_ready
from tests.helpers import ADMIN_PASSWORD, ADMIN_USER, ROOT, rq_command


def start_worker(env, queue_name, log):
    """A long-running `rq worker` (it forks a work-horse per job)."""
    return subprocess.Popen([rq_command(), "worker", "--url", env["REDIS_URL"], queue_name], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _children(pid):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def kill_worker(proc):
    """kill -9 the worker's work-horse (as the OOM killer does) and the worker itself."""
    horses = _children(proc.pid)
    for pid in horses:
        os.kill(pid, signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return horses


def wait_for(predicate, timeout=120, interval=0.02):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def serve(env, log):
    server = start_gunicorn("wsgi:app", ROOT, env, log)
    wait_ready(server, "/admin/login")
    return server


class Browser:
    """An admin logged in over real HTTP (cookies, CSRF token from the pages)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect())
        self.login()

    def get(self, path):
        with self.opener.open(self.base_url + path, timeout=30) as resp:
            return resp.status, resp.read().decode()

    def token(self, path="/admin/login"):
        page = self.get(path)[1]
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page)
        return found.group(1)

    def post(self, path, data=None, token=None):
        body = urllib.parse.urlencode({"csrf_token": token or self.token(), **(data or {})}).encode()
        try:
            with self.opener.open(self.base_url + path, data=body, timeout=60) as resp:
                return resp.status, resp.headers.get("Location", "")
        except urllib.error.HTTPError as exc:  # redirects land here (not followed) and errors too
            return exc.code, exc.headers.get("Location", "")

    def login(self):
        status, _ = self.post("/admin/login", {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        assert status == 302, status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
