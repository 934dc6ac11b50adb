"""Where the project's real datasets live: ``../shared/data`` beside the repository (never copied into it)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MP_STRUCTURES = SHARED_DATA / "mp_cgcnn_36k.csv.gz"  # Materials Project crystals with their CIFs and labels
MP_SPLITS = SHARED_DATA / "mp_cgcnn_36k_splits.csv"  # their train / val / test split
