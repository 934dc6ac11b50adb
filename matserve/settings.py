"""All configuration, read from environment variables prefixed ``MATSERVE_``.

The README lists every field; the Helm chart mirrors them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matserve.forcefields.registry import D3_CUTOFF, D3_DAMPINGS, FORCEFIELDS, Dispersion, entry


OPTIONAL_MODELS = ("generator", "mfd", "alignn", "plmf")  # Triton models a deployment may leave out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MATSERVE_", extra="ignore")

    # Gateway
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: str = Field("", description="comma-separated keys; empty disables the check")
    max_body_bytes: int = 64 * 1024 * 1024
    drain_timeout_s: float = 60.0
    log_level: str = "info"

    # Triton
    tritonserver: str = Field("", description="path of the tritonserver binary; empty: PATH, then the pytriton wheel")
    triton_grpc_port: int = Field(0, description="0 picks a free loopback port")
    triton_http_port: int = 0
    triton_startup_timeout_s: float = 600.0
    model_repository: str = Field("", description="empty: the model_repository/ shipped with matserve")
    data_dir: Path = Path(".matserve")
    device: Literal["cpu", "gpu"] = "cpu"
    torch_threads: int = Field(0, description="0 leaves torch's default")

    models: str = Field("", description="comma-separated Triton models served besides the force fields, among "
                                        "generator, mfd, alignn, plmf (e.g. mfd: relaxation and mfd only); none: "
                                        "only the force fields (a relaxation pod); empty: all of them")

    # Force field and relaxation defaults (the BGR NIM's)
    forcefield: Literal[FORCEFIELDS] = Field("chgnet", description="a name in matserve/forcefields/registry.py")
    forcefields: str = Field("", description="comma-separated force fields served at once, each its own Triton model "
                                             "and atom budget; /v1/infer picks one by \"model\"; the first is the "
                                             "default (and replaces MATSERVE_FORCEFIELD); empty: that one alone")
    forcefield_modal: str = Field("", description="fidelity head of a multi-fidelity force field (sevennet-mf-0: "
                                                  "PBE or R2SCAN, any case); empty: its PBE head")
    forcefield_model: str = Field("", description="model file for a force field that ships no weights (mace: "
                                                  "a MACE .model file saved with torch.save(model), e.g. mounted "
                                                  "on the model-cache volume); empty for the others")
    dispersion: Literal["", "d3"] = Field("", description="d3 adds DFT-D3 dispersion (torch-dftd) to the force "
                                                         "field's energy, forces and stress; empty: none")
    dispersion_functional: str = Field("pbe", description="D3 parameters of this functional (torch-dftd's names: "
                                                          "pbe, pbesol, r2scan, b3-lyp, ...); pbe for MP-trained "
                                                          "force fields")
    dispersion_damping: Literal[D3_DAMPINGS] = Field("bj", description="D3 damping: bj (Becke-Johnson), zero, "
                                                                       "bjm or zerom (modified)")
    dispersion_cutoff: float = Field(D3_CUTOFF, gt=0, description="D3 pair cutoff, Å (default 95 Bohr, "
                                                                  "as the DFT-D3 program)")
    opttol: float = 0.005
    opttol_pressure: float = 0.5
    cellopt: bool = False
    max_steps: int = 2000
    batch_size: int = Field(0, description="atom budget per model call; 0 estimates it at start-up")
    max_system_size: int = Field(0, description="largest structure in atoms; 0 derives it from the budget")
    optimizer: Literal["fire", "fire2"] = Field("fire2", description="FIRE 2.0, the BGR NIM 1.1 default: "
                                                                     "about a fifth fewer steps than FIRE")
    cell_filter: Literal["unit", "frechet"] = Field("unit", description="cell filter when cellopt is on")
    queue_atoms: int = Field(0, ge=0, description="relaxation atoms waiting or running before new requests get 503; "
                                                  "0: 4 x the atom budget")
    queue_sequences: int = Field(512, ge=1, description="generation sequences waiting or running before new "
                                                        "requests get 503")
    queue_jobs: int = Field(10000, ge=1, description="prediction jobs queued or running on this gateway before new "
                                                     "submissions get 503")

    # Generator (CrystaLLM-format ckpt.pt files; small without one is the embedded model, medium and
    # large without one are unavailable)
    generator_small: str = ""
    generator_medium: str = ""
    generator_large: str = ""
    generator_kv_cache_mb: int = Field(2048, ge=1, description="KV cache the running batch may hold; "
                                                               "more sequences wait to join it")

    # Property models and jobs
    alignn_checkpoint: str = Field("", description="ALIGNN checkpoint folder (config.json + checkpoint_*.pt); "
                                                   "empty: the embedded formation-energy model")
    phonon_supercell_min_length: float = Field(8.0, description="mfd: each supercell vector at least this long, Å")
    phonon_displacement: float = Field(0.01, description="mfd: finite displacement, Å")
    phonon_atom_budget: int = Field(1024, description="mfd: atoms per force-field call over displaced supercells")
    redis_url: str = Field("", description="job store in Redis (for several replicas); empty: SQLite in data_dir")
    job_workers: int = Field(2, description="jobs run at once per gateway")
    job_ttl_s: float = Field(86400.0, description="how long finished job results are kept")
    replica_id: str = Field("", description="this gateway's name in the job store; empty: hostname:port")

    @model_validator(mode="after")
    def _served_models_exist(self) -> Settings:
        unknown = sorted(set(self.served_models) - set(OPTIONAL_MODELS))
        if unknown:
            raise ValueError(f"MATSERVE_MODELS: unknown models {unknown}; choose from {list(OPTIONAL_MODELS)} "
                             "(the force fields are always served)")
        return self

    @property
    def served_models(self) -> list[str]:
        """The Triton models served besides the force fields, in OPTIONAL_MODELS' order unless named."""
        if self.models.strip().lower() == "none":
            return []
        return [name.strip() for name in self.models.split(",") if name.strip()] or list(OPTIONAL_MODELS)

    @model_validator(mode="after")
    def _served_forcefields_exist(self) -> Settings:
        """MATSERVE_FORCEFIELDS names known force fields, once each; its first is the default ``forcefield``."""
        names = self.served_forcefields
        unknown = [name for name in names if name not in FORCEFIELDS]
        if unknown:
            raise ValueError(f"MATSERVE_FORCEFIELDS: unknown force fields {unknown}; choose from {list(FORCEFIELDS)}")
        if len(set(names)) != len(names):
            raise ValueError(f"MATSERVE_FORCEFIELDS names a force field twice: {self.forcefields!r}")
        self.forcefield = names[0]
        return self

    def _takers(self, takes: str, value: str, setting: str) -> list[str]:
        """The served force fields that a modal or model-file setting goes to: with one served, that one
        (which refuses a value it cannot take); with several, those whose entry ``takes`` it (a value
        none of them takes is an error)."""
        names = self.served_forcefields
        takers = [name for name in names if getattr(entry(name), takes)] if len(names) > 1 else names
        if value and not takers:
            raise ValueError(f"{setting}={value!r}: none of {names} takes it")
        return takers

    @model_validator(mode="after")
    def _forcefield_modal_exists(self) -> Settings:
        """The modal picks a multi-fidelity model's head."""
        for name in self._takers("modals", self.forcefield_modal, "MATSERVE_FORCEFIELD_MODAL"):
            entry(name).resolve_modal(self.forcefield_modal)  # ValueError names the choices
        return self

    @model_validator(mode="after")
    def _forcefield_model_fits(self) -> Settings:
        """mace needs a model file that exists; the force fields with shipped weights refuse one."""
        for name in self._takers("model_file", self.forcefield_model, "MATSERVE_FORCEFIELD_MODEL"):
            path = entry(name).resolve_model(self.forcefield_model)  # ValueError names the setting
            if path and not Path(path).expanduser().is_file():
                raise ValueError(f"MATSERVE_FORCEFIELD_MODEL={path!r}: no such file (mount the model file there)")
        return self

    @property
    def served_forcefields(self) -> list[str]:
        """The force fields this deployment serves, the default first."""
        return [name.strip() for name in self.forcefields.split(",") if name.strip()] or [self.forcefield]

    def forcefield_options(self, name: str) -> tuple[str, str]:
        """(modal, model file) of one served force field: the settings where it takes them, else empty."""
        found = entry(name)
        return (self.forcefield_modal if found.modals else "", self.forcefield_model if found.model_file else "")

    def forcefield_triton_model(self, name: str) -> str:
        """The Triton model serving force field ``name``: ``forcefield`` for the default, else ``forcefield-<name>``."""
        return "forcefield" if name == self.forcefield else f"forcefield-{name}"

    @model_validator(mode="after")
    def _dispersion_known(self) -> Settings:
        self.dispersion_config  # ValueError when torch-dftd has no parameters for the functional and damping
        return self

    @property
    def dispersion_config(self) -> Dispersion:
        """The dispersion every force field of this deployment adds; ``Dispersion()`` (off) by default."""
        return Dispersion(self.dispersion, self.dispersion_functional, self.dispersion_damping,
                          self.dispersion_cutoff)

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(key.strip() for key in self.api_keys.split(",") if key.strip())
