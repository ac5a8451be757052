"""``python -m brcd_lib.reproduce``: the notebook runner (:mod:`brcd_lib.experiments.reproduce`)."""
import sys

from .experiments.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
