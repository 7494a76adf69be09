"""`python -m ddcodec` runs the same command line as the `ddcodec` script."""

from ddcodec.cli.commands import main

if __name__ == "__main__":
    main()
