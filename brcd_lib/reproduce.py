"""``python -m brcd_lib.reproduce``: the notebook runner (:mod:`brcd_lib.experiments.reproduce`);
after the last notebook it rewrites the report's provenance section and the results index from the
finished ``run_log.json`` (:func:`brcd_lib.reporting.report.refresh_provenance`)."""
import sys

from .experiments.reproduce import main as _main
from .reporting.report import refresh_provenance


def main(argv=None) -> int:
    return _main(argv, after_run=refresh_provenance)


if __name__ == "__main__":
    sys.exit(main())
