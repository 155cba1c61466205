"""`python -m coach_tui` runs the `coach` command."""

from coach_tui.cli import main

main()
