"""The deployment's metrics for Prometheus, read from the Dagster instance (``cli/metrics.py``)."""
