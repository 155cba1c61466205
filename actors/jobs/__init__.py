"""Background jobs: long CLI commands (slice, train, export-model, eval) started for a person and followed.

A job is a folder of small files under `WORKSPACE/jobs/ID` (`records`) and one
supervising process that runs the real `coach` command and writes down how it
ended (`runner`). Nothing about a job lives in the database: the commands
themselves record their runs there, as they do when started from a shell.
"""
