"""Schemathesis against the real service: every answer is one ``/openapi.json`` declares.

A bounded run (fixed seed, a few examples per operation, one worker) from Schemathesis' own
environment (``.venv/fuzz``, requirements-fuzz.lock: its pins conflict with the service's), made
by the Makefile's install step or here on first use. The checks: no 5xx, every status and content
type declared, every body matching its declared schema, and requests that break the schema refused.
Relaxations that happen to be valid (the schema's H2 example and the coverage phase's variants of
it) run on the real force field, so a hook caps their ``max_steps`` (a negative case keeps its
invalid value). No operation is excluded; ``/v1/generate`` declares no example because a real
generation takes about 2 s on a CPU and the coverage phase would run some 25 of them, so the
fuzzer reaches it only up to validation (random model names are refused with 400).
About 680 cases in 30 s on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FUZZ_VENV = ROOT / ".venv" / "fuzz"
LOCK = ROOT / "requirements-fuzz.lock"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "negative_data_rejection")
SEED = 7
MAX_EXAMPLES = 50  # per operation in the fuzzing phase; the coverage phase adds its own boundary cases
TIME_LIMIT_S = 120
MAX_STEPS = 3  # optimizer steps of a relaxation the fuzzer sends
TIMEOUT_S = 60  # a valid deadline the fuzzer sends becomes this: 504 is the right answer to a deadline that
                # passed, but every 5xx counts as a finding (test_online_batching tests the deadline itself)

HOOKS = f'''
import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    """A relaxation runs at most {MAX_STEPS} steps; an invalid max_steps (a negative case) stays as it is."""
    if case.operation.path in ("/v1/infer", "/v1/generate") and isinstance(case.body, dict):
        timeout = case.body.get("timeout_s")
        if type(timeout) in (int, float) and 0 < timeout <= 86400:
            case.body["timeout_s"] = {TIMEOUT_S}
    if case.operation.path == "/v1/infer" and isinstance(case.body, dict):
        steps = case.body.get("max_steps")
        if steps is None or (type(steps) is int and steps > {MAX_STEPS}):
            case.body["max_steps"] = {MAX_STEPS}
'''


def schemathesis_command() -> Path:
    """The schemathesis executable of the fuzz environment, made from the lock file if missing."""
    executable = FUZZ_VENV / "bin" / "schemathesis"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(FUZZ_VENV)], check=True)
        subprocess.run([str(FUZZ_VENV / "bin" / "pip"), "install", "-q", "-r", str(LOCK)], check=True)
    return executable


def test_schemathesis_finds_nothing(service, tmp_path):
    (tmp_path / "matserve_fuzz_hooks.py").write_text(HOOKS)
    report = tmp_path / "report.json"
    command = [
        str(schemathesis_command()), "run", f"{service.url}/openapi.json", "--checks", CHECKS,
        "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
        "--generation-database", "none", "--request-timeout", "60", "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]
    environment = {**os.environ, "PYTHONPATH": str(tmp_path), "SCHEMATHESIS_HOOKS": "matserve_fuzz_hooks"}
    start = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True,
                         timeout=TIME_LIMIT_S)
    elapsed = time.monotonic() - start
    assert report.exists(), run.stdout[-5000:] + run.stderr[-2000:]
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]["generated"]
    findings = summary["test_cases"]["unique_failures"]
    errors = len(summary["errors"])
    print(f"schemathesis: {summary['operations']['tested']} operations, {cases} cases, {findings} findings, "
          f"{errors} errors, {elapsed:.0f} s (seed {SEED})")
    failures = run.stdout[run.stdout.find("FAILURES"):] if "FAILURES" in run.stdout else run.stdout
    assert (findings, errors, run.returncode) == (0, 0, 0), failures[:8000] + run.stderr[-2000:]
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 10
    assert cases >= 100
