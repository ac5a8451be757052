"""Import the eight KD baselines so that they register with the distiller registry.

KD, SP, PKT, RKD, CRD, SSKD, CRCD, PACKD, all applied to the hash codes; see docs/baselines.md.
"""
from __future__ import annotations

# imported in the paper's table order, which is the registration order within each family
from . import kd, sp, pkt, rkd, crd, sskd, crcd, packd  # noqa: F401, I001
