"""`python -m benchgate` is the `benchgate` command."""

from benchgate.interfaces.cli import main

main()
