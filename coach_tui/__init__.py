"""The `coach` command line and its Textual app."""
