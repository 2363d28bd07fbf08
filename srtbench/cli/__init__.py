"""`srtbench` command line: thin click commands that parse, build a config, call the library, print.

The group and its shared helpers live in `app.py`; each module below registers its commands on it (one import
line each), so no command module imports this package back.
"""

from srtbench.cli import audit as _audit  # noqa: F401  (registers `audit`)
from srtbench.cli import data as _data  # noqa: F401  (registers `data`)
from srtbench.cli import evaluate as _evaluate  # noqa: F401  (registers `evaluate`, `attacks`)
from srtbench.cli import export as _export  # noqa: F401  (registers `export`)
from srtbench.cli import plot as _plot  # noqa: F401  (registers `plot`)
from srtbench.cli import report as _report  # noqa: F401  (registers `card`, `report`)
from srtbench.cli import reproduce as _reproduce  # noqa: F401  (registers `reproduce`)
from srtbench.cli import sweep as _sweep  # noqa: F401  (registers `sweep`)
from srtbench.cli import table as _table  # noqa: F401  (registers `table`)
from srtbench.cli import train as _train  # noqa: F401  (registers `train`, `presets`)
from srtbench.cli import zoo as _zoo  # noqa: F401  (registers `models`, `threats`)
from srtbench.cli.app import echo, main  # (the entry point, `srtbench.cli:main`)

__all__ = ["echo", "main"]
