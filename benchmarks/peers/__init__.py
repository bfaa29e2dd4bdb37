"""One module per system: the app a worker process imports, and a ``Driver`` that
dispatches to it and says how to start its worker."""
