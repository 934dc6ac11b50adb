"""The crystal-structure-prediction bench's arithmetic: match@k over candidates, the served row, the shares."""

from __future__ import annotations

from bench.csp import Outcome, table


def outcome(raw: list[bool], ranked: list[bool], served: bool, valid: int) -> Outcome:
    return Outcome("mp-x", "NaCl", 4, raw_matches=raw, ranked_matches=ranked, served_match=served, valid=valid,
                   relaxed_valid=valid, right_composition=len(raw), relaxed=len(raw), seconds=10.0,
                   sampling_seconds=4.0, relax_seconds=6.0, relax_steps=[100, 150], relax_converged=1)


def rows(text: str) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                             for line in text.splitlines() if line.startswith("|"))}


def test_match_at_k_counts_a_composition_once_its_first_k_candidates_hold_a_match():
    candidates = 20
    first_only = outcome([True] + [False] * 19, [False] * 20, served=False, valid=5)
    ninth = outcome([False] * 8 + [True] + [False] * 11, [True] + [False] * 19, served=True, valid=10)
    never = outcome([False] * 20, [False] * 19 + [True], served=False, valid=0)
    text = table([first_only, ninth, never], candidates, served_n=16)
    table_rows = rows(text)
    assert table_rows["raw candidates, sampling order (today's answer: n 1)"] == ["33.3", "33.3", "66.7"]
    assert table_rows["relaxed and ranked (20 candidates)"] == ["33.3", "33.3", "66.7"]
    assert table_rows["**served: n 16, relax (the first returned)**"] == ["**33.3**", "–", "–"]
    assert "valid as generated 25.0 %" in text and "10.0 s per composition (4.0 sampling, 6.0 relaxing)" in text
    assert "6 distinct structures relaxed, 3 converged within the step cap" in text


def test_raw_only_runs_print_no_relaxed_rows():
    text = table([outcome([True] * 8, [], served=False, valid=8)], 8, served_n=16, relaxed=False)
    table_rows = rows(text)
    assert table_rows["raw candidates, sampling order (today's answer: n 1)"] == ["100.0", "100.0", "-"]
    assert table_rows["relaxed and ranked (8 candidates)"] == ["-", "-", "-"]
    assert table_rows["**served: n 16, relax (the first returned)**"] == ["**-**", "–", "–"]
