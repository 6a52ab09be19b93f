"""Read a file in a fresh child process and report the outcome and the child's peak RSS.

    python -m tests.importing.read_probe PATH

prints one JSON object: the child's exit code, the reader's message (or the
number of rows read), seconds, and max_rss_mb from getrusage(RUSAGE_CHILDREN),
which this process measures for its only child. The child's address space is
capped, so a reader that tries to allocate the world fails fast instead of
swapping the machine.
"""
import json
import resource
import subprocess
import sys
import time

ADDRESS_SPACE_CAP = 2 * 1024**3


def child(path):
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))
    from kamen.services.importing.errors import ImportFileError
    from kamen.services.importing.readers import open_spreadsheet

    started, rows = time.perf_counter(), 0
    try:
        with open_spreadsheet(path) as book:
            for sheet in book.sheet_names or [None]:
                for _ in book.rows(sheet):
                    rows += 1
        message = None
    except ImportFileError as exc:
        message = str(exc)
    print(json.dumps({"message": message, "rows": rows, "seconds": time.perf_counter() - started}))


def main(path):
    proc = subprocess.run([sys.executable, "-m", "tests.importing.read_probe", "--child", path], capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    result = json.loads(proc.stdout) if proc.returncode == 0 else {"stderr": proc.stderr[-2000:]}
    print(json.dumps({"rc": proc.returncode, "max_rss_mb": peak, **result}))


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main(sys.argv[1])
