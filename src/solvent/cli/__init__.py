"""The ``solvent`` command line."""
