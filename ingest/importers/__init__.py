"""Importers: real ICU data sets and generic long-format exports -> cohort directories.

A cohort directory is what the simulator writes (`sim/output.py`), so training, evaluation
and replay read imported and simulated patients the same way. Every value is converted to
the reading contract's unit and range-checked; a value outside the contract's range is
dropped (never clamped) and counted by reason in `summary.json`; a row or file that cannot be
read is reported with its file and line and the rest of the source is still imported.
"""

from ingest.importers.cohort import DEFAULT_START_MS, CohortBuilder, SourceError, gcs_to_acvpu
from ingest.importers.long import import_long, load_mapping
from ingest.importers.physionet2012 import import_physionet2012
from ingest.importers.physionet2019 import import_physionet2019

FORMATS = ("physionet2019", "physionet2012", "long")

__all__ = ["DEFAULT_START_MS", "FORMATS", "CohortBuilder", "SourceError", "gcs_to_acvpu", "import_long", "import_physionet2012",
           "import_physionet2019", "load_mapping"]
