"""The ``matserve`` command: ``serve`` runs the service; ``predict``, ``relax`` and ``generate`` call one.

``predict`` keeps the ``aflow-ml`` flags (``--model``, ``--format``, ``--fields``, ``--outfile``).
``--url`` or ``MATSERVE_URL`` selects the server; ``MATSERVE_API_KEY`` is sent when set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matserve.client import Generated

DEFAULT_URL = "http://127.0.0.1:8000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matserve", description="materials inference service and its client")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start tritonserver and the gateway (settings from MATSERVE_* variables)")

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--url", default=os.environ.get("MATSERVE_URL", DEFAULT_URL), help="service base URL")
        return sub

    predict = client_command("predict", "predict properties of a POSCAR or CIF (AFLOW-ML style)")
    predict.add_argument("file", type=Path)
    predict.add_argument("--model", default="mfd")
    predict.add_argument("--format", choices=("txt", "json"), default="txt")
    predict.add_argument("--fields", default="", help="comma-separated fields to keep")
    predict.add_argument("--outfile", type=Path)

    relax = client_command("relax", "relax structure files and write the relaxed CIFs")
    relax.add_argument("files", nargs="+", type=Path)
    relax.add_argument("--cellopt", action="store_true")
    relax.add_argument("--fmax", type=float, default=None, help="force tolerance, eV/Å (service default 0.005)")
    relax.add_argument("--max-steps", type=int, default=None)
    relax.add_argument("--optimizer", choices=("fire", "fire2"), default=None, help="service default: fire")
    relax.add_argument("--outdir", type=Path, default=Path("."))

    generate = client_command("generate", "generate a crystal structure from a composition (CrystaLLM style)")
    generate.add_argument("--comp", required=True)
    generate.add_argument("--z", type=int)
    generate.add_argument("--sg")
    generate.add_argument("--fe", action="store_true")
    generate.add_argument("--model", default="small")
    generate.add_argument("--n", type=int, default=1, help="candidates per Z")
    generate.add_argument("--all", action="store_true", help="every candidate, not only the best")
    generate.add_argument("--seed", type=int)
    generate.add_argument("--relax", action="store_true",
                          help="relax the candidates with the served force field and rank them by energy")
    generate.add_argument("--out", type=Path, help="write the best candidate's CIF (the relaxed one with --relax)")
    return parser


def _client(url: str):
    from matserve.client import MatserveClient

    return MatserveClient(url, api_key=os.environ.get("MATSERVE_API_KEY") or None)


def run_predict(args: argparse.Namespace) -> int:
    fields = [f for f in args.fields.split(",") if f] or None
    with _client(args.url) as client:
        result = client.get_prediction(args.file.read_text(), args.model, fields)
    text = json.dumps(result, indent=2) if args.format == "json" else "\n".join(f"{k}: {v}" for k, v in result.items())
    if args.outfile:
        args.outfile.write_text(text + "\n")
    else:
        print(text)
    return 0


def run_relax(args: argparse.Namespace) -> int:
    """All files through one streamed request: each relaxed CIF is written the moment it arrives."""
    from pymatgen.core import Structure
    from tqdm import tqdm

    args.outdir.mkdir(parents=True, exist_ok=True)
    structures = [Structure.from_file(path) for path in args.files]
    counts = {"converged": 0, "not_converged": 0}
    with _client(args.url) as client, tqdm(total=len(structures), unit="structure",
                                           disable=len(structures) < 2, file=sys.stderr) as progress:
        for index, result in client.relax_stream(structures, cellopt=args.cellopt, fmax=args.fmax,
                                                 max_steps=args.max_steps, optimizer=args.optimizer):
            target = args.outdir / f"{args.files[index].stem}_relaxed.cif"
            result.structure.to(filename=str(target))
            counts["converged" if result.converged else "not_converged"] += 1
            print(f"{target}\tenergy {result.energy:.6f} eV\tconverged {result.converged}\tsteps {result.steps}")
            progress.set_postfix(counts)
            progress.update(1)
    return 1 if counts["not_converged"] else 0


def run_generate(args: argparse.Namespace) -> int:
    """The JSON answer; with ``--relax`` one line per candidate, best first. ``--out`` gets the best CIF."""
    with _client(args.url) as client:
        answer = client.generate(args.comp, args.z, args.sg, args.fe, args.model, n=args.n, return_all=args.all,
                                 seed=args.seed, relax=args.relax)
    if not args.relax:
        print(json.dumps(answer, indent=2))
        best = answer["cifs"][0]["generated"]
    else:
        for rank, candidate in enumerate(answer, start=1):
            print(_generated_line(rank, candidate))
        best = answer[0].cif
    if args.out and best is not None:
        args.out.write_text(best)
    return 0 if best is not None else 1


def _generated_line(rank: int, candidate: Generated) -> str:
    if candidate.energy_per_atom is None:
        return f"{rank}\tnot relaxed\t" + "; ".join(candidate.messages)
    formula = candidate.structure.composition.formula.replace(" ", "") if candidate.structure else "?"
    fields = [str(rank), formula,
              f"{candidate.energy_per_atom:.4f} eV/atom", f"converged {candidate.converged}",
              f"valid {candidate.valid}"]
    if candidate.fe is not None:
        fields.append(f"fe {candidate.fe:.4f} eV/atom")
    if candidate.messages:
        fields.append("; ".join(candidate.messages))
    return "\t".join(fields)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from matserve.serve import serve

        return serve()
    from matserve.client import MatserveError, PredictionFailed

    runners = {"predict": run_predict, "relax": run_relax, "generate": run_generate}
    try:
        return runners[args.command](args)
    except (MatserveError, PredictionFailed) as error:
        print(f"matserve {args.command}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"matserve {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
