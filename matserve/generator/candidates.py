"""The candidates of a ``/v1/generate`` request, as plain Python: the requested composition, one
prompt per candidate, each generated text judged, and which candidates the answer returns.

The gateway's route parses the request, calls Triton and shapes the answer with these; the
benchmark (``bench/csp.py``) calls the same functions in-process.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from pymatgen.core import Composition, Element, Structure

from matserve.generator.cif_format import postprocess
from matserve.generator.prompt import build_prompt
from matserve.generator.validity import judge
from matserve.structures import System

Z_WITHOUT_Z = (1, 2, 3, 4, 6, 8)  # tried in one batch when a request names no Z

Candidate = dict  # one entry of the answer's "cifs": {"input", "generated", "valid", "messages", ...}


def normalised_comp(comp: str) -> str:
    """The request's composition as the reduced formula that Z multiplies (`Na2Cl2` -> `Na1Cl1`);
    ValueError says why it is not one."""
    try:
        composition = Composition(comp)
    except Exception:  # pymatgen raises several kinds on a string that is not a formula
        composition = None
    if composition is None or not all(isinstance(element, Element) for element in composition):
        raise ValueError(f"'comp' cannot be parsed as a composition: {comp!r}")
    if not composition or any(not float(n).is_integer() or n <= 0 for n in composition.values()):
        raise ValueError(f"'comp' must be a stoichiometric composition with whole numbers of atoms: {comp!r}")
    return "".join(f"{element}{int(amount)}" for element, amount in composition.reduced_composition.items())


def candidate_prompts(comp: str, z: int | None, sg: str | None, n: int) -> list[tuple[dict, str]]:
    """(echoed input, prompt) of each candidate: ``n`` per Z, every Z of Z_WITHOUT_Z when ``z`` is
    None. ``comp`` is a normalised composition; ValueError from the prompt builder (an unknown
    space group, an element outside the vocabulary)."""
    pairs = []
    for value in [z] if z is not None else Z_WITHOUT_Z:
        prompt = build_prompt(comp, value, sg)
        echoed = {"comp": comp, "z": value, **({"sg": sg} if sg else {})}
        pairs += [(echoed, prompt)] * n
    return pairs


def generated_cif(text: str) -> str:
    """The CIF a candidate shows as ``generated``: the text post-processed, or as generated when
    it cannot be (as `validity.judge` writes it)."""
    try:
        return postprocess(text)
    except ValueError:
        return text


def judged(prompt_input: dict, text: str, finish_reason: str) -> Candidate:
    """One generated text as the answer shows it: post-processed, checked, and why it is not valid."""
    result = judge(text, finish_reason)
    return {"input": prompt_input, "generated": result.cif, "valid": result.valid,
            "messages": list(result.messages) or [None]}


def first_valid(completions: Iterable[tuple[dict, str, str]], every: bool = False) -> list[Candidate]:
    """The returned candidates of (input, text, finish reason): all of them with ``every``, else the
    first valid one, or the first when none is. Texts are judged in order and, without ``every``,
    only until a valid one is found (the bond check takes up to a second a candidate)."""
    candidates = []
    for prompt_input, text, finish_reason in completions:
        candidate = judged(prompt_input, text, finish_reason)
        if candidate["valid"] and not every:
            return [candidate]
        candidates.append(candidate)
    return candidates if every else candidates[:1]


def add_message(candidate: Candidate, message: str) -> None:
    """Append to the candidate's messages (whose lone None means "none")."""
    candidate["messages"] = [m for m in candidate["messages"] if m] + [message]


def parse_structure(cif: str, site_tolerance: float | None = None) -> Structure | None:
    """The structure of a post-processed CIF as pymatgen reads it (at its default site tolerance
    unless one is given), or None when it cannot."""
    options = {} if site_tolerance is None else {"site_tolerance": site_tolerance}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_str(cif, fmt="cif", **options)
    except Exception:  # pymatgen raises many kinds on a malformed CIF
        return None


def parse_cif(cif: str) -> System | None:
    """The System of a post-processed CIF (pymatgen's default site tolerance), or None."""
    structure = parse_structure(cif)
    return None if structure is None else System.from_pymatgen(structure)
