"""AFLOW-ML style property models (mfd from harmonic phonons; plmf to come)."""
