"""A month's Gemini batches (batch mode: ``PASSPORT_IMAGE_MODEL=gemini-batch``), and cancelling
them.

    python -m passport_pipeline.cli.batches --partition 2026-10
    python -m passport_pipeline.cli.batches --partition 2026-10 --cancel

While a batch is pending the month has no run to terminate: the batch lives at Google and in the
ledger on the month's ``passport_covers`` partition. The state shown is the last one the batch
sensor recorded. ``--cancel`` asks Gemini to cancel every open batch of the month
(``batches/{name}:cancel``); the sensor then sees it CANCELLED and the month's results run
fails, saying so. A later launch of the month submits a new batch.
"""

from __future__ import annotations

import argparse
import sys

from dagster import DagsterInstance, build_resources

from passport_pipeline.covers.batch import cancel_open_batches
from passport_pipeline.covers.batch_ledger import month_batches
from passport_pipeline.domain.months import InvalidMonthError, Month


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partition", required=True, help="a month, YYYY-MM")
    parser.add_argument("--cancel", action="store_true", help="cancel the month's open batches")
    args = parser.parse_args(argv)
    try:
        month = Month.parse(args.partition)
    except InvalidMonthError as error:
        parser.error(str(error))

    with DagsterInstance.get() as instance:
        batches = month_batches(instance, month.key)
        if not batches:
            print(f"no Gemini batch recorded for {month}")
            return 0
        for name, record in batches.items():
            taken = "; its results run has taken it" if record.closed else ""
            said = record.progress or record.state
            print(f"{name}: {said} ({len(record.user_ids)} users){taken}")
        if not args.cancel:
            return 0
        # Imported here: the definitions read the environment (the batch model's settings).
        from passport_pipeline.definitions import image_model_for
        from passport_pipeline.resources.gemini_batch import GeminiBatchImageModel
        from passport_pipeline.settings import load_settings

        model = image_model_for(load_settings())
        if not isinstance(model, GeminiBatchImageModel):
            print("batch mode is off here: set PASSPORT_IMAGE_MODEL=gemini-batch", file=sys.stderr)
            return 2
        with build_resources({"image_model": model}) as resources:
            cancelled = cancel_open_batches(instance, month.key, resources.image_model)
        print(f"cancelled: {', '.join(cancelled)}" if cancelled else "no open batch to cancel")
        return 0


if __name__ == "__main__":
    sys.exit(main())
