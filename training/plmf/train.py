"""Train the plmf models from ../shared/data and measure their held-out errors.

    nice -n 5 .venv/bin/python -m training.plmf.train [featurise|train|all]

``featurise`` turns every data set into feature matrices cached under
``.matserve/plmf_features/`` (git-ignored); ``train`` fits one LightGBM model per field
(seeded, one thread, deterministic), writes them gzipped to ``models/`` beside this file and
the test errors to ``models/metrics.json``. ``all`` (the default) does both.

Data and splits:
- band gap and gap type: ``mp_cgcnn_36k`` (MP, structures) with the MEGNet split of
  ``mp_cgcnn_36k_splits.csv``. Featurising all 35k structures takes too long on the shared
  2-core CPU this was built on, so seeded subsets are used: 10,000 training and 1,000
  validation rows with the whole test split (2,172), then 6,000 more training rows (see
  ``_gap_rows``). Metal means a band gap of exactly 0 (AFLOW's convention); the gap regressor
  is trained on insulators only and the served gap is 0 when the classifier says metal.
- bulk and shear modulus: the union of ``mp_elasticity_cgcnn_3k`` and matcalc's
  ``mp-binary-pbe-elasticity-2025.1`` (structures), one row per MP id (the 2025 values where
  both have it), split 80/10/10 by a seeded permutation.
- energy per atom, Debye temperature, thermal conductivity and expansion (and, for the Cp
  check only, AFLOW's bulk modulus): the AFLOW composition sets with their own splits.

Outliers: training and validation rows whose (transformed) target lies more than 5
interquartile ranges outside the quartiles are dropped (e.g. an AFLOW energy_atom of
+77.7 eV/atom); test rows are all kept.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from pymatgen.core import Composition, Structure

from matserve.properties.debye import cp_from_cv, debye_cv
from matserve.properties.plmf.features import (
    composition_feature_names,
    composition_features,
    structure_feature_names,
    structure_features,
)
from matserve.properties.plmf.fields import FIELDS, SERVED, FieldSpec, forward, inverse
from matserve.properties.plmf.model import MODELS
from training.shared_data import MP_SPLITS, MP_STRUCTURES, SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]  # the repository
DATA = SHARED_DATA
CACHE = ROOT / ".matserve" / "plmf_features"
FEATURES_VERSION = 1
SEED = 0
GAP_TRAIN_ROWS = 10000
GAP_VAL_ROWS = 1000
GAP_EXTRA_TRAIN_ROWS = 6000
AVOGADRO = 6.02214076e23


@dataclass
class Dataset:
    """Feature matrices and targets of one data set, by split."""

    x: dict[str, np.ndarray]
    y: dict[str, dict[str, np.ndarray]]  # target name -> split -> values
    ids: dict[str, np.ndarray]
    seconds: float


# ---------------------------------------------------------------- data sets


def _log(message: str) -> None:
    print(message, flush=True)


def _featurise_structures(structures: list[Structure]) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and a mask of the structures that could be featurised."""
    width = len(structure_feature_names())
    rows, ok = [], []
    for i, structure in enumerate(structures):
        try:
            rows.append(structure_features(structure))
            ok.append(True)
        except Exception as error:  # noqa: BLE001 - one odd structure must not stop hours of featurisation
            _log(f"  skipped {structure.composition.reduced_formula}: {type(error).__name__}: {error}")
            rows.append(np.full(width, np.nan))
            ok.append(False)
        if (i + 1) % 500 == 0:
            _log(f"  {i + 1}/{len(structures)}")
    return np.array(rows).reshape(-1, width), np.array(ok, dtype=bool)


def _featurise_formulas(formulas: list[str]) -> tuple[np.ndarray, np.ndarray]:
    width = len(composition_feature_names())
    rows, ok = [], []
    for formula in formulas:
        try:
            rows.append(composition_features(Composition(formula)))
            ok.append(True)
        except ValueError:
            rows.append(np.full(width, np.nan))
            ok.append(False)
    return np.array(rows), np.array(ok)


def _cached(name: str, build) -> Dataset:
    """The data set from the feature cache, or built (featurised) and cached."""
    path = CACHE / f"{name}.v{FEATURES_VERSION}.npz"
    if path.exists():
        saved = np.load(path, allow_pickle=True)
        parts = ("train", "val", "test")
        targets = sorted({key.split("/")[1] for key in saved.files if key.startswith("y/")})
        return Dataset({p: saved[f"x/{p}"] for p in parts},
                       {t: {p: saved[f"y/{t}/{p}"] for p in parts} for t in targets},
                       {p: saved[f"ids/{p}"] for p in parts}, float(saved["seconds"]))
    _log(f"featurising {name} ...")
    start = time.perf_counter()
    dataset = build()
    dataset.seconds = time.perf_counter() - start
    _log(f"  {name}: {sum(len(v) for v in dataset.x.values())} rows in {dataset.seconds:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    arrays = {f"x/{p}": v for p, v in dataset.x.items()} | {f"ids/{p}": v.astype(str) for p, v in dataset.ids.items()}
    arrays |= {f"y/{t}/{p}": v for t, by_part in dataset.y.items() for p, v in by_part.items()}
    np.savez(path, seconds=dataset.seconds, **arrays)
    return dataset


def _split_structures(structures: list[Structure], targets: dict[str, np.ndarray], ids: np.ndarray,
                      split: np.ndarray) -> Dataset:
    x, y, kept_ids = {}, {name: {} for name in targets}, {}
    for part in ("train", "val", "test"):
        index = np.nonzero(split == part)[0]
        features, ok = _featurise_structures([structures[i] for i in index])
        x[part] = features[ok]
        kept_ids[part] = ids[index][ok]
        for name, values in targets.items():
            y[name][part] = values[index][ok]
    return Dataset(x, y, kept_ids, 0.0)


def _gap_rows() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """mp_cgcnn_36k joined to its split, and the two seeded row selections: the first (seed 0:
    GAP_TRAIN_ROWS train, GAP_VAL_ROWS val, all test rows) and a second batch of training rows
    (seed 1: GAP_EXTRA_TRAIN_ROWS of the training rows not yet chosen), featurised later."""
    frame = pd.read_csv(MP_STRUCTURES, usecols=["material_id", "band_gap", "cif"])
    splits = pd.read_csv(MP_SPLITS, usecols=["material_id", "split"])
    frame = frame.merge(splits, on="material_id").sort_values("material_id").reset_index(drop=True)
    rng = np.random.default_rng(SEED)
    first = []
    for part, count in (("train", GAP_TRAIN_ROWS), ("val", GAP_VAL_ROWS), ("test", None)):
        index = np.nonzero(frame.split.to_numpy() == part)[0]
        first.extend(index if count is None else rng.choice(index, size=count, replace=False))
    first = np.sort(np.array(first))
    remaining = np.setdiff1d(np.nonzero(frame.split.to_numpy() == "train")[0], first)
    second = np.sort(np.random.default_rng(SEED + 1).choice(remaining, size=GAP_EXTRA_TRAIN_ROWS, replace=False))
    return frame, first, second


def _gap_dataset(rows: pd.DataFrame) -> Dataset:
    structures = [Structure.from_str(cif, fmt="cif") for cif in rows.cif]
    return _split_structures(structures, {"band_gap": rows.band_gap.to_numpy()}, rows.material_id.to_numpy(),
                             rows.split.to_numpy())


def mp_band_gap() -> Dataset:
    """mp_cgcnn_36k with the MEGNet split: seeded subsets of train and val, all of test (see ``_gap_rows``)."""
    def build(which: int) -> Dataset:
        frame, first, second = _gap_rows()
        return _gap_dataset(frame.iloc[first if which == 0 else second])
    first = _cached("mp_band_gap", lambda: build(0))
    second = _cached("mp_band_gap_extra", lambda: build(1))
    return Dataset(
        {part: np.concatenate([first.x[part], second.x[part]]) for part in first.x},
        {"band_gap": {part: np.concatenate([first.y["band_gap"][part], second.y["band_gap"][part]])
                      for part in first.x}},
        {part: np.concatenate([first.ids[part], second.ids[part]]) for part in first.x},
        first.seconds + second.seconds,
    )


def mp_elasticity() -> Dataset:
    """Both MP elasticity sets, one row per MP id (matcalc 2025 preferred), seeded 80/10/10 split."""
    def build() -> Dataset:
        rows: dict[str, tuple[Structure, float, float]] = {}
        cgcnn = pd.read_csv(DATA / "mp_elasticity" / "mp_elasticity_cgcnn_3k.csv.gz")
        for material_id, bulk, shear, cif in zip(cgcnn.material_id, cgcnn.K_VRH, cgcnn.G_VRH, cgcnn.cif):
            rows[material_id] = (Structure.from_str(cif, fmt="cif"), float(bulk), float(shear))
        with gzip.open(DATA / "matcalc" / "mp-binary-pbe-elasticity-2025.1.json.gz") as handle:
            for entry in json.load(handle):
                rows[entry["mp_id"]] = (Structure.from_dict(entry["structure"]), entry["bulk_modulus_vrh"],
                                        entry["shear_modulus_vrh"])
        ids = np.array(sorted(rows))
        order = np.random.default_rng(SEED).permutation(len(ids))
        split = np.empty(len(ids), dtype=object)
        split[order[: int(0.8 * len(ids))]] = "train"
        split[order[int(0.8 * len(ids)): int(0.9 * len(ids))]] = "val"
        split[order[int(0.9 * len(ids)):]] = "test"
        structures = [rows[i][0] for i in ids]
        targets = {"bulk_modulus": np.array([rows[i][1] for i in ids]),
                   "shear_modulus": np.array([rows[i][2] for i in ids])}
        return _split_structures(structures, targets, ids, split)
    return _cached("mp_elasticity", build)


def aflow(prop: str) -> Dataset:
    """One AFLOW composition set (``aflow__<prop>``) with its own train/val/test files."""
    def build() -> Dataset:
        x, y, ids = {}, {prop: {}}, {}
        for part in ("train", "val", "test"):
            frame = pd.read_csv(DATA / "aflow_composition" / f"aflow__{prop}" / f"{part}.csv")
            features, ok = _featurise_formulas(frame.formula.tolist())
            x[part], y[prop][part], ids[part] = features[ok], frame.target.to_numpy()[ok], frame.formula.to_numpy()[ok]
        return Dataset(x, y, ids, 0.0)
    return _cached(f"aflow_{prop}", build)


# ---------------------------------------------------------------- models


def lgb_params(kind: str) -> dict:
    params = {
        "objective": "binary" if kind == "classification" else "regression",
        "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 10, "feature_fraction": 0.5,
        "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
        "seed": SEED, "num_threads": 1, "deterministic": True, "force_row_wise": True, "verbosity": -1,
    }
    return params


def load_dataset(name: str) -> Dataset:
    if name == "mp_band_gap":
        return mp_band_gap()
    if name == "mp_elasticity":
        return mp_elasticity()
    return aflow(name.removeprefix("aflow_"))


def _inlier_mask(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    q1, q3 = np.percentile(reference, [25, 75])
    spread = 5.0 * (q3 - q1)
    return (values >= q1 - spread) & (values <= q3 + spread)


def _targets(spec: FieldSpec, data: Dataset, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and transformed (or class) targets of one split."""
    x, y = data.x[part], data.y[spec.target][part]
    if spec.kind == "classification":
        return x, (y > 0).astype(float)
    if spec.insulators_only:
        x, y = x[y > 0], y[y > 0]
    return x, forward(spec.transform, y)


def _rows(spec: FieldSpec, data: Dataset, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Like ``_targets``, with outliers (relative to the training targets) dropped from train and val."""
    x, y = _targets(spec, data, part)
    if spec.kind == "classification":
        return x, y
    keep = _inlier_mask(y, _targets(spec, data, "train")[1])
    if not keep.all():
        _log(f"  {spec.name}: dropped {int((~keep).sum())} outlying {part} rows")
    return x[keep], y[keep]


def fit(spec: FieldSpec, data: Dataset, feature_names: list[str]) -> tuple[lgb.Booster, dict]:
    """One model trained on train, early-stopped on val; returns it and its row counts."""
    x_train, y_train = _rows(spec, data, "train")
    x_val, y_val = _rows(spec, data, "val")
    train_set = lgb.Dataset(x_train, y_train, feature_name=feature_names, free_raw_data=False)
    val_set = lgb.Dataset(x_val, y_val, reference=train_set)
    booster = lgb.train(lgb_params(spec.kind), train_set, num_boost_round=3000, valid_sets=[val_set],
                        callbacks=[lgb.early_stopping(100, verbose=False)])
    return booster, {"train_rows": len(y_train), "val_rows": len(y_val), "trees": booster.best_iteration}


def predict(booster: lgb.Booster, spec: FieldSpec, x: np.ndarray) -> np.ndarray:
    raw = booster.predict(x, num_iteration=booster.best_iteration)
    return raw if spec.kind == "classification" else inverse(spec.transform, raw)


def save_model(booster: lgb.Booster, name: str) -> Path:
    path = MODELS / f"{name}.txt.gz"
    text = booster.model_to_string(num_iteration=booster.best_iteration)
    with gzip.GzipFile(path, "wb", mtime=0) as handle:  # mtime 0: the same model gives the same bytes
        handle.write(text.encode())
    return path


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


def molar_volume_per_atom(formula: str) -> float:
    """Å³ per atom from the elements' molar volumes (Vegard-like), used for Cp − Cv when no structure is known."""
    amounts = Composition(formula).get_el_amt_dict()
    total = sum(amounts.values())
    cm3 = sum(n * float(Composition(el).elements[0].molar_volume) for el, n in amounts.items()) / total
    return cm3 * 1e24 / AVOGADRO


def train_all() -> dict:
    """Fit every field, save the served models, return the metrics."""
    MODELS.mkdir(parents=True, exist_ok=True)
    metrics: dict = {"features_version": FEATURES_VERSION, "seed": SEED, "fields": {}, "datasets": {}}
    predictions: dict[str, np.ndarray] = {}
    data_cache: dict[str, Dataset] = {}
    for spec in FIELDS:
        data = data_cache.setdefault(spec.dataset, load_dataset(spec.dataset))
        names = structure_feature_names() if spec.structure else composition_feature_names()
        metrics["datasets"][spec.dataset] = {
            "rows": {part: len(x) for part, x in data.x.items()}, "featurise_seconds": round(data.seconds, 1)}
        booster, counts = fit(spec, data, names)
        x_test, truth = data.x["test"], data.y[spec.target]["test"]
        predicted = predict(booster, spec, x_test)
        predictions[spec.name] = predicted
        entry = {**counts, "test_rows": len(truth)}
        if spec.kind == "classification":
            entry["test_accuracy"] = float(np.mean((predicted >= 0.5) == (truth > 0)))
        else:
            mask = truth > 0 if spec.insulators_only else np.ones(len(truth), bool)
            entry["test_mae"] = _mae(predicted[mask], truth[mask])
            entry["test_rows"] = int(mask.sum())
        if spec.name in SERVED:
            entry["file_bytes"] = save_model(booster, spec.name).stat().st_size
        metrics["fields"][spec.name] = entry
        _log(f"{spec.name}: {entry}")

    # The served gap: 0 when classified metal, else the insulator regressor; over all test rows.
    gap = data_cache["mp_band_gap"]
    truth = gap.y["band_gap"]["test"]
    served_gap = np.where(predictions["egap_type"] >= 0.5, np.maximum(predictions["egap"], 0.0), 0.0)
    metrics["fields"]["egap"]["test_mae_all"] = _mae(served_gap, truth)
    metrics["fields"]["egap"]["test_rows_all"] = len(truth)
    metrics["cp_cv"] = heat_capacity_check(data_cache, predictions)
    _log(f"egap over all test rows: {metrics['fields']['egap']['test_mae_all']:.3f}; Cp/Cv: {metrics['cp_cv']}")
    (MODELS / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    return metrics


def heat_capacity_check(data: dict[str, Dataset], predictions: dict[str, np.ndarray]) -> dict:
    """Cv and Cp at 300 K (kB/atom) through the Debye model: from predicted vs test Debye temperatures.

    Cv: every Debye test row. Cp = Cv + α²BVT: the test formulas that also carry AFLOW's thermal
    expansion and bulk modulus in their test splits; reference from the true α and B, ours from
    the composition models' α and B; V per atom from elemental molar volumes on both sides.
    """
    debye = data["aflow_ael_debye_temperature"]
    theta_true, theta_pred = debye.y["ael_debye_temperature"]["test"], predictions["debye_temperature"]
    cv_true = np.array([debye_cv(t) for t in theta_true])
    cv_pred = np.array([debye_cv(t) for t in theta_pred])
    by_formula = {f: i for i, f in enumerate(debye.ids["test"])}
    expansion, bulk = data["aflow_agl_thermal_expansion_300K"], data["aflow_ael_bulk_modulus_vrh"]
    alpha = {f: (t, p) for f, t, p in zip(expansion.ids["test"], expansion.y["agl_thermal_expansion_300K"]["test"],
                                          predictions["thermal_expansion"])}
    modulus = {f: (t, p) for f, t, p in zip(bulk.ids["test"], bulk.y["ael_bulk_modulus_vrh"]["test"],
                                            predictions["aflow_bulk_modulus"])}
    cp_true, cp_pred = [], []
    for formula in sorted(set(by_formula) & set(alpha) & set(modulus)):
        i = by_formula[formula]
        volume = molar_volume_per_atom(formula)
        cp_true.append(cp_from_cv(cv_true[i], alpha[formula][0], modulus[formula][0], volume))
        cp_pred.append(cp_from_cv(cv_pred[i], alpha[formula][1], modulus[formula][1], volume))
    return {"cv_mae": _mae(cv_pred, cv_true), "cv_rows": len(cv_true),
            "cp_mae": _mae(cp_pred, cp_true), "cp_rows": len(cp_true),
            "cv_mae_constant_mean": _mae(np.full(len(cv_true), cv_true.mean()), cv_true)}


def featurise_all() -> None:
    for name in ("aflow_energy_atom", "aflow_ael_debye_temperature", "aflow_agl_thermal_conductivity_300K",
                 "aflow_agl_thermal_expansion_300K", "aflow_ael_bulk_modulus_vrh", "aflow_ael_shear_modulus_vrh",
                 "mp_elasticity", "mp_band_gap"):
        load_dataset(name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", nargs="?", default="all", choices=("featurise", "train", "all"))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.step in ("featurise", "all"):
        featurise_all()
    if args.step in ("train", "all"):
        train_all()


if __name__ == "__main__":
    sys.exit(main())
