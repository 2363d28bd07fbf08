"""`python -m srtbench`: the command line, as the `srtbench` script runs it."""

from srtbench.cli import main

if __name__ == "__main__":
    main()
