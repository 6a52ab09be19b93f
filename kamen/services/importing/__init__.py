"""Batch import core: pure functions from a file on disk to validated rows.

The pipeline, one module per step: ``readers`` (bytes → rows) → ``header``
(find the header row) → ``mapping`` (headers → field keys) → ``validate``
(cells → normalized values + Chinese errors, using ``normalize``). ``template``
and ``error_report`` write the files an admin downloads. Nothing here touches
the database or the request, so the parse job, the preview and the CLI share it.
"""
