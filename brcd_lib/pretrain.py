"""``python -m brcd_lib.pretrain``: pretrain and export a profile's stand-in backbones
(:mod:`brcd_lib.experiments.pretrain_cmd`)."""
import sys

from .experiments.pretrain_cmd import main

if __name__ == "__main__":
    sys.exit(main())
