"""Work a stream of chunks in forked helper processes, a few at a time, in order.

Staging a 100,000-row file is Python work (validating, deciding, encoding the
rows), and one process uses one core. On PostgreSQL each helper writes its own
chunks on its own connection, so a two-core VPS stages on both cores.

Only a single-threaded process forks (an RQ work horse, the CLI, a benchmark):
fork copies the calling thread alone, and a lock another thread held at that
moment would stay locked forever in the copy.
"""
import collections
import multiprocessing
import threading

_work = None  # the helpers' job: inherited through fork, never pickled


def can_fork():
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def run(items, work, *, processes, setup):
    """work(item) for each item, in ``processes`` forked helpers (``setup()`` runs first
    in each); returns the results in the items' order. Items are read at most ``processes``
    ahead of the finished ones, so memory follows the chunk, not the file. The first
    error, an item's or a helper's, is raised here once the helpers are stopped."""
    global _work
    _work = work
    results = []
    try:
        with multiprocessing.get_context("fork").Pool(processes, initializer=setup) as pool:
            pending = collections.deque()
            for item in items:
                pending.append(pool.apply_async(_call, (item,)))
                if len(pending) > processes:
                    results.append(pending.popleft().get())
            while pending:
                results.append(pending.popleft().get())
            pool.close()  # the helpers finish and close their connections
            pool.join()
    finally:
        _work = None
    return results


def _call(item):
    return _work(item)
