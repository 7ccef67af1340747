"""How runs execute: the executor around Dagster's, the run process's health, and the instance
storage whose pool claim is atomic."""
