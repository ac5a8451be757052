"""Import the eight KD baselines so that they register with the distiller registry.

KD, SP, PKT, RKD, CRD, SSKD, CRCD, PACKD, all applied to the hash codes; see docs/baselines.md.
"""
from __future__ import annotations

from . import crcd, crd, kd, packd, pkt, rkd, sp, sskd  # noqa: F401

BASELINES: tuple[str, ...] = ("kd", "sp", "pkt", "rkd", "crd", "sskd", "crcd", "packd")
