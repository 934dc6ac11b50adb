"""Where the project's real datasets live: ``../shared/data`` beside the repository (never copied into it).

``MATSERVE_SHARED_DATA`` names another folder (an installed checkout, a cluster's data volume).
"""

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("MATSERVE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
MP_STRUCTURES = SHARED_DATA / "mp_cgcnn_36k.csv.gz"  # Materials Project crystals with their CIFs and labels
MP_SPLITS = SHARED_DATA / "mp_cgcnn_36k_splits.csv"  # their train / val / test split
