"""``python tests/chaos --profile smoke`` is ``python tests/chaos/run.py --profile smoke``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import main  # noqa: E402

sys.exit(main())
