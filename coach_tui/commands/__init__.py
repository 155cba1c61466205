"""Subcommands of `coach`, grouped by what they act on."""
