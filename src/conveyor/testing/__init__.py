"""Helpers for testing applications that use conveyor.

* ``with app.fake() as fake:`` records dispatches instead of storing them, with
  assertions (``assert_dispatched``, ``assert_not_dispatched``, ``assert_count`` …).
* ``Conveyor("sync://")`` runs every dispatched job inline, at once.
* ``run_until_empty(app)`` drains the store in-process with a burst-mode worker.
"""

from .fake import DispatchRecorder, RecordedDispatch
from .run import run_until_empty

__all__ = ["DispatchRecorder", "RecordedDispatch", "run_until_empty"]
