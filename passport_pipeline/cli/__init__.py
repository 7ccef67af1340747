"""Commands for operators, each a thin ``python -m passport_pipeline.cli.<name>`` over library
functions: ``progress``, ``reexecute``, ``release``, ``batches``."""
