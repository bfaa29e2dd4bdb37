"""Monitoring and operations: metrics recording, statistics, health checks, alerts and
the Prometheus exporter. Everything here reads and writes through the store protocol."""
