"""The use cases both faces call: the CLI and the app parse input, call one of these, and draw.

Each module owns one kind of work from start to end — planning it in the
store, taking its lease, running its actors, stopping and following it —
so a run started in a shell and resumed in the app is the same run with the
same settings, by construction.
"""
