"""The subcommands of `remaster`, a module each: `register(subparsers)` declares the command and its
options, `run(args)` runs it and returns the exit code. `remaster.cli` collects them; the work
itself is done by the modules they call, which know nothing of the command line."""
