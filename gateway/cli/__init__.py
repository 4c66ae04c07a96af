"""The ``gateway`` command: thin over the library.

``main`` parses arguments and runs the commands (serve, envelope, letter,
pki, users, directory); ``audit`` holds the auditor's commands. Library
errors become one readable line and a non-zero exit; library code never
imports the CLI.
"""
