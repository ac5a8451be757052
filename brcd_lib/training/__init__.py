"""Training runtime: pair sources, the head-training loop, checkpoints, frozen-backbone feature
caches, several processes (torchrun) and worker pools. Imports only the core
(``data``, ``models``, ``distill``, ``metrics``) and the shared leaves."""
