"""What the benchmarks share: throwaway PostgreSQL databases and gunicorn servers."""
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import sqlalchemy as sa


def pg_database(admin_url, name):
    """Create an empty database ``name``; returns (its URL, a callable that drops it)."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


class Server:
    """A gunicorn master on a free loopback port."""

    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(app_spec, cwd, env, log, workers=2, threads=1, port=None):
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{port}",
         "--error-logfile", str(log), app_spec],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return Server(proc, port, log)


def wait_ready(server, path, timeout=30, any_status=False):
    """Wait until the page answers 200 (or, with ``any_status``, anything) and return its size in bytes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as resp:
                return len(resp.read())
        except urllib.error.HTTPError:
            if any_status:
                return 0
            raise
        except OSError as exc:
            if server.proc.poll() is not None or time.monotonic() > deadline:
                log = server.log.read_text() if server.log.exists() else ""
                server.stop()
                raise RuntimeError(f"{path} on port {server.port} not ready: {exc}\n{log[-2000:]}") from exc
            time.sleep(0.2)
