"""Reporting: tables, summaries, figures, the outputs folder of a notebook, efficiency tables and
the profile report. Reads result rows; trains nothing."""
