"""The month's covers in Dagster: the asset and its job, its partitions and schedule, the
sensors that watch its runs, and the run-level logic its steps share."""
