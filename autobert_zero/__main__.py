"""`python -m autobert_zero` is the `abz` command."""

import sys

from autobert_zero.cli import main

sys.exit(main())
