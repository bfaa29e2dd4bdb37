"""The GroFresh sample store, played end to end by ``conveyor demo`` (see docs/demo.md)."""
