"""Imported last into the executor's forkserver, never by the definitions: freezes its heap.

Every cover step is forked from the forkserver after the preload. Python's garbage collector
writes to the header of every object it tracks, so a step's first collection would copy most
of the inherited heap page by page (copy-on-write): each worker would own ~70 MiB instead of
sharing it. ``gc.freeze()`` moves everything loaded so far out of the collector's reach, so the
pages stay shared (measured by bench/probe_gc_freeze.py: 70 → 25 MiB PSS per worker).
"""

import gc

gc.collect()
gc.freeze()
