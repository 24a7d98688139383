"""`python -m dnerv_codec` runs the command line (this is also what torchrun starts)."""

from .cli import main

main()
