"""Click command modules; each exposes ``COMMANDS`` (collected by :mod:`headscope.cli`)."""
