"""The ``pegasus`` command line."""
