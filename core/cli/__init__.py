"""The command line, `python -m core <command>`: one row of `main.COMMANDS` per command, its options in
`arguments`, terminal progress in `progress`."""
