"""`python -m autobert_zero.cli` (the form the DeepSpeed launcher's `--module` runs) is the `abz` command."""

import sys

from autobert_zero.cli import main

sys.exit(main())
