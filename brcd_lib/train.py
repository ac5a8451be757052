"""``python -m brcd_lib.train``: train one run (:mod:`brcd_lib.experiments.train`)."""
import sys

from .experiments.train import main

if __name__ == "__main__":
    sys.exit(main())
