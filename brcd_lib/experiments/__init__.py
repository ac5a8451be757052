"""Experiments: profiles, one profile's experiment (data, networks, runs), the run store, the
result-row schema, the paper's grids, the notebook runner and the train CLI. Imports the core and
the training runtime, never the reporting layer."""
