"""`python -m xaifn demo | explain ...`: see `xaifn.cli`."""
import sys

from xaifn.cli import main

if __name__ == "__main__":
    sys.exit(main())
