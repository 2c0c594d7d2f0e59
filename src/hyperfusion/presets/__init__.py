"""Run configurations shipped with the package: ``hyperfusion run <name>`` (see docs/config.md)."""
