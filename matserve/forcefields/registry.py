"""The one table of force fields: ``MATSERVE_FORCEFIELD`` names an entry here.

Each entry says which adapter class serves it (imported on first use, so this module
and ``matserve.settings`` stay free of torch), with which pretrained weights, the
name its weights carry in /v1/metadata, the fidelity heads of a multi-fidelity model
(the default first), and what the gateway needs to check a request without loading
the model (covered elements, charge and spin, a neighbour the model insists on).

An adapter class implements ``ForceField`` and two class methods that read only the
shipped checkpoint, never build the model:
``weights_file(**options) -> Path`` and ``covered_numbers(**options) -> frozenset[int]``.

An entry with ``model_file`` set ships no weights: the user mounts a model file and names it in
``MATSERVE_FORCEFIELD_MODEL`` (``Settings.forcefield_model``); its adapter takes it as ``model_path``.
The functions below take that path as ``model``; left as None they read the environment variable,
so callers that know only the force field's name (the gateway) see the same file the models load.

D3 dispersion (``MATSERVE_DISPERSION=d3``, ``Settings.dispersion``) is an option on any entry: ``Dispersion``
says which (functional, damping, cutoff); ``load`` wraps the model in ``dispersion.WithDispersion`` and
the weights' name gains " + D3(BJ)". As with the model file, ``dispersion=None`` reads the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matserve.contract import WeightsInfo
    from matserve.forcefields.base import ForceField

MODEL_SETTING = "MATSERVE_FORCEFIELD_MODEL"  # Settings.forcefield_model
DISPERSION_SETTINGS = ("MATSERVE_DISPERSION", "MATSERVE_DISPERSION_FUNCTIONAL", "MATSERVE_DISPERSION_DAMPING",
                       "MATSERVE_DISPERSION_CUTOFF")  # Settings.dispersion, dispersion_functional, ...
DISPERSION_METHODS = ("", "d3")  # empty: off
D3_DAMPINGS = ("bj", "zero", "bjm", "zerom")  # torch-dftd's: Becke-Johnson, zero, and their modified forms
D3_CUTOFF = 95.0 * 0.52917721067  # Å: torch-dftd's (and the DFT-D3 program's) pair cutoff, 95 Bohr
_D3_LABELS = {"bj": "D3(BJ)", "zero": "D3(0)", "bjm": "D3M(BJ)", "zerom": "D3M(0)"}


@dataclass(frozen=True)
class Dispersion:
    """Which dispersion correction to add to a force field; ``Dispersion()`` is none.

    ``functional`` and ``damping`` pick torch-dftd's D3 parameters (``get_dftd3_default_params``);
    ``cutoff`` is the pair cutoff in Å (coordination numbers use torch-dftd's 40 Bohr, or this if shorter).
    """

    method: str = ""  # "" (off) or "d3"
    functional: str = "pbe"
    damping: str = "bj"
    cutoff: float = D3_CUTOFF

    def __post_init__(self) -> None:
        for name in ("method", "functional", "damping"):  # torch-dftd spells them in lower case
            object.__setattr__(self, name, getattr(self, name).strip().lower())
        if self.method not in DISPERSION_METHODS:
            raise ValueError(f"MATSERVE_DISPERSION={self.method!r}: choose 'd3', or leave it empty for none")
        if self.damping not in D3_DAMPINGS:
            raise ValueError(f"MATSERVE_DISPERSION_DAMPING={self.damping!r}: choose one of {list(D3_DAMPINGS)}")
        if not self.cutoff > 0:
            raise ValueError(f"MATSERVE_DISPERSION_CUTOFF={self.cutoff!r}: must be positive (Å)")
        from torch_dftd.dftd3_xc_params import get_dftd3_default_params  # plain Python: no torch import

        try:
            get_dftd3_default_params(self.damping, self.functional)
        except ValueError:
            raise ValueError(f"MATSERVE_DISPERSION_FUNCTIONAL={self.functional!r}: torch-dftd has no D3 parameters "
                             f"for it with {self.damping} damping (pbe has all four dampings)") from None

    @property
    def enabled(self) -> bool:
        return bool(self.method)

    @property
    def label(self) -> str:
        """How the weights' name shows it: ``D3(BJ)``; empty when off."""
        return _D3_LABELS[self.damping] if self.enabled else ""

    @classmethod
    def from_environment(cls) -> Dispersion:
        """The dispersion the MATSERVE_DISPERSION* variables ask for (what Settings reads)."""
        method, functional, damping, cutoff = (os.environ.get(name, "").strip() for name in DISPERSION_SETTINGS)
        return cls(method, functional or "pbe", damping or "bj", float(cutoff) if cutoff else D3_CUTOFF)


def resolve_dispersion(dispersion: Dispersion | None) -> Dispersion:
    """``dispersion``, None reading the environment."""
    return Dispersion.from_environment() if dispersion is None else dispersion


def forcefield_label(name: str) -> str:
    """How messages name a force field: ``force field 'chgnet'``."""
    return f"force field {name!r}"


@dataclass(frozen=True)
class ForceFieldEntry:
    name: str  # the MATSERVE_FORCEFIELD value
    title: str  # the weights' name in /v1/metadata
    adapter: str  # "module:Class"
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the adapter: which weights
    modals: tuple[str, ...] = ()  # fidelity heads of a multi-fidelity model, the default first
    uses_charge_and_spin: bool = False
    neighbour_cutoff: float | None = None  # Å: the model fails on an atom with no neighbour this close
    model_file: bool = False  # weights from a user-mounted file (MATSERVE_FORCEFIELD_MODEL), not shipped

    def adapter_class(self) -> type:
        module, _, attribute = self.adapter.partition(":")
        return getattr(import_module(module), attribute)

    def resolve_modal(self, modal: str = "") -> str:
        """The fidelity head to use: the checkpoint's spelling of ``modal`` (any case); empty: the default.

        Returns "" for a model with one head; a head it does not have is a ValueError.
        """
        modal = (modal or "").strip()
        if not self.modals:
            if modal:
                raise ValueError(f"force field {self.name!r} has a single fidelity; leave the modal empty "
                                 f"(got {modal!r})")
            return ""
        if not modal:
            return self.modals[0]
        for known in self.modals:
            if known.lower() == modal.lower():
                return known
        raise ValueError(f"force field {self.name!r} has no modal {modal!r}; choose one of {list(self.modals)} "
                         f"(empty: {self.modals[0]})")

    def resolve_model(self, model: str | None = None) -> str:
        """The model file this entry loads: ``model``, None reading MATSERVE_FORCEFIELD_MODEL.

        An entry with ``model_file`` needs one (a ValueError names the setting); the others ship their
        weights, refuse one given here and ignore the variable (Settings refuses it set with them).
        """
        if model is None:
            model = os.environ.get(MODEL_SETTING, "") if self.model_file else ""
        model = model.strip()
        if self.model_file and not model:
            raise ValueError(f"force field {self.name!r} needs a model file: set {MODEL_SETTING} to its path "
                             f"(e.g. a MACE .model file mounted on the model-cache volume)")
        if not self.model_file and model:
            raise ValueError(f"force field {self.name!r} ships its weights; leave {MODEL_SETTING} empty "
                             f"(got {model!r})")
        return model

    def _options(self, model: str | None) -> dict[str, Any]:
        kwargs = dict(self.options)
        path = self.resolve_model(model)
        if self.model_file:
            kwargs["model_path"] = path
        return kwargs

    def display_name(self, modal: str = "", model: str | None = None, dispersion: Dispersion | None = None) -> str:
        """The weights' name in /v1/metadata: ``SevenNet-MF-0 (PBE)``, ``CHGNet 0.3.0 + D3(BJ)``."""
        head = self.resolve_modal(modal)
        title = self.title
        if self.model_file:
            title = f"{title} ({Path(self.resolve_model(model)).name})"  # the weights' name: the file's
        title = f"{title} ({head})" if head else title
        return with_dispersion_label(title, resolve_dispersion(dispersion))

    def load(self, device: str = "cpu", modal: str = "", model: str | None = None,
             dispersion: Dispersion | None = None) -> ForceField:
        kwargs = self._options(model)
        if self.modals:
            kwargs["modal"] = self.resolve_modal(modal)
        else:
            self.resolve_modal(modal)  # refuses a modal for a single-fidelity model
        dispersion = resolve_dispersion(dispersion)
        title = self.display_name(modal, model, Dispersion())  # the wrapper adds its own label
        base = self.adapter_class()(device=device, name=self.name, title=title, **kwargs)
        if not dispersion.enabled:
            return base
        from matserve.forcefields.dispersion import WithDispersion

        return WithDispersion(base, dispersion)

    def weights_file(self, model: str | None = None) -> Path:
        return self.adapter_class().weights_file(**self._options(model))

    def weights(self, modal: str = "", model: str | None = None, dispersion: Dispersion | None = None) -> WeightsInfo:
        from matserve.contract import WeightsInfo, sha256_file

        path = self.weights_file(model)
        return WeightsInfo(self.display_name(modal, model, dispersion), path.name, sha256_file(path))

    def supported_numbers(self, model: str | None = None) -> frozenset[int]:
        if self.model_file:  # the adapter caches per file version: a replaced file is read again
            return frozenset(self.adapter_class().covered_numbers(**self._options(model)))
        return _covered_numbers(self.name)


def with_dispersion_label(title: str, dispersion: Dispersion) -> str:
    """``title + D3(BJ)`` when dispersion is on, else ``title``."""
    return f"{title} + {dispersion.label}" if dispersion.enabled else title


@cache
def _covered_numbers(name: str) -> frozenset[int]:
    found = REGISTRY[name]
    return frozenset(found.adapter_class().covered_numbers(**found.options))


_ENTRIES = (
    ForceFieldEntry("chgnet", "CHGNet 0.3.0", "matserve.forcefields.chgnet:CHGNetForceField",
                    {"model_name": "0.3.0"}, neighbour_cutoff=6.0),
    ForceFieldEntry("sevennet", "SevenNet-0", "matserve.forcefields.sevennet:SevenNetForceField",
                    {"pretrained": "7net-0"}),
    ForceFieldEntry("sevennet-l3i5", "SevenNet-l3i5", "matserve.forcefields.sevennet:SevenNetForceField",
                    {"pretrained": "7net-l3i5"}),
    ForceFieldEntry("sevennet-mf-0", "SevenNet-MF-0", "matserve.forcefields.sevennet:SevenNetForceField",
                    {"pretrained": "7net-mf-0"}, modals=("PBE", "R2SCAN")),
    ForceFieldEntry("mace", "MACE", "matserve.forcefields.mace:MACEForceField", model_file=True),
)
REGISTRY: dict[str, ForceFieldEntry] = {e.name: e for e in _ENTRIES}
FORCEFIELDS: tuple[str, ...] = tuple(REGISTRY)


def entry(name: str) -> ForceFieldEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown force field {name!r}; choose one of {list(FORCEFIELDS)}") from None


def load_forcefield(name: str = "chgnet", device: str = "cpu", modal: str = "", model: str | None = None,
                    dispersion: Dispersion | None = None) -> ForceField:
    """The force field ``name`` on ``device``; ``modal`` picks a multi-fidelity model's head (empty: its default);
    ``model`` is the user's model file for an entry that takes one (None: MATSERVE_FORCEFIELD_MODEL);
    ``dispersion`` adds D3 (None: the MATSERVE_DISPERSION* variables; ``Dispersion()``: none)."""
    return entry(name).load(device=device, modal=modal, model=model, dispersion=dispersion)


def weights_info(name: str = "chgnet", modal: str = "", model: str | None = None,
                 dispersion: Dispersion | None = None) -> WeightsInfo:
    """Provenance of a force field's weights without loading the model (for /v1/metadata)."""
    return entry(name).weights(modal, model, dispersion)


def supported_numbers(name: str = "chgnet", model: str | None = None) -> frozenset[int]:
    """Atomic numbers a force field covers, without building it (for validating requests); a user's model
    file is read (unpickled) once per file version."""
    return entry(name).supported_numbers(model)
