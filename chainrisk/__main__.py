"""`python -m chainrisk` runs the CLI."""

from chainrisk.cli import main

main()
