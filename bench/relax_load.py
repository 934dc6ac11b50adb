"""Relaxation under load: how soon each structure comes back when many clients share the service.

32 Materials Project crystals (2–24 atoms, rattled 0.05 Å, strained ±3 %, seeded), cell
relaxation to fmax 0.05 eV/Å with the served force field, sent to one running matserve in
five ways, in one run:
  (a) one at a time, alone (the first 12): the solo latency each structure would have;
  (b) one request of 32 (the throughput baseline);
  (c) 8 concurrent requests of 4;
  (d) 32 single-structure requests, one every 0.5 s (an online stream of arrivals);
  (e) one streamed request of 32 (``Accept: application/x-ndjson``): each line's arrival;
  (f) 32 single-structure requests, one every 1.5 s: arrivals slower than the service's
      throughput on this CPU, where (d)'s 2 a second are faster than it (an overload, in
      which every policy's latency grows with the queue).
A structure's latency is from its request's start to its own answer (the whole response, or
its line when streamed). Prints wall time, throughput against (b), latency p50/p95/max, and
the goal: (d)'s p50 within 2x the solo p50 at >= 0.9x (b)'s throughput; and (f)'s p50.

    .venv/bin/python -m bench.relax_load [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np

from bench.relax import FMAX, start_service
from bench.structures import mp_crystals, perturbed

COUNT = 32
SOLO = 12
CONCURRENT_REQUESTS = 8
ARRIVAL_INTERVAL_S = 0.5
SLOW_ARRIVAL_INTERVAL_S = 1.5
PRESSURE_KBAR = 5.0  # as bench/relax.py: ASE's filter at fmax 0.05 stops near 5 kBar


@dataclass
class Row:
    name: str
    wall_s: float | None
    latencies_s: list[float]
    steps: int

    def throughput(self) -> float | None:
        return len(self.latencies_s) / self.wall_s if self.wall_s else None


def body(structures) -> dict:
    return {"atoms": [{"coord": a.positions.reshape(-1).tolist(), "numbers": a.numbers.tolist(),
                       "cell": np.array(a.cell).reshape(-1).tolist()} for a in structures],
            "opttol": FMAX, "opttol_pressure": PRESSURE_KBAR, "cellopt": True}


def post(url: str, structures) -> tuple[float, int]:
    """(seconds, total optimiser steps) of one non-streamed request."""
    start = time.perf_counter()
    response = httpx.post(url + "/v1/infer", json=body(structures), timeout=3600)
    response.raise_for_status()
    return time.perf_counter() - start, sum(r["optimizer_nsteps"] for r in response.json()["atoms"])


def concurrently(url: str, groups: list[list], delays_s: list[float]) -> Row:
    """Each group as one request, started after its delay; every structure's latency is its request's."""
    latencies: list[float] = []
    steps = [0]
    lock = threading.Lock()

    def run(group, delay):
        time.sleep(delay)
        seconds, group_steps = post(url, group)
        with lock:
            latencies.extend([seconds] * len(group))
            steps[0] += group_steps

    threads = [threading.Thread(target=run, args=(g, d)) for g, d in zip(groups, delays_s)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Row("", time.perf_counter() - start, latencies, steps[0])


def streamed(url: str, structures) -> Row:
    latencies, steps = [], 0
    start = time.perf_counter()
    with httpx.stream("POST", url + "/v1/infer", json=body(structures), headers={"accept": "application/x-ndjson"},
                      timeout=3600) as response:
        response.raise_for_status()
        for text in response.iter_lines():
            line = json.loads(text) if text else {}
            if "index" in line:
                latencies.append(time.perf_counter() - start)
                steps += line["optimizer_nsteps"]
    return Row("(e) one streamed request of 32", time.perf_counter() - start, latencies, steps)


def report(rows: list[Row], baseline: Row, solo: Row, arrivals: Row, slow_arrivals: Row) -> None:
    print(f"\n{'how the structures arrive':40s} {'wall s':>7s} {'x one request':>13s} {'steps':>6s} "
          f"{'p50 s':>7s} {'p95 s':>7s} {'max s':>7s}")
    for row in rows:
        ratio = f"{row.throughput() / baseline.throughput():13.2f}" if row.wall_s else f"{'-':>13s}"
        wall = f"{row.wall_s:7.1f}" if row.wall_s else f"{'-':>7s}"
        p50, p95, top = np.percentile(row.latencies_s, [50, 95, 100])
        print(f"{row.name:40s} {wall} {ratio} {row.steps:6d} {p50:7.2f} {p95:7.2f} {top:7.2f}")
    solo_p50 = float(np.median(solo.latencies_s))
    stream_p50 = float(np.median(arrivals.latencies_s))
    throughput = arrivals.throughput() / baseline.throughput()
    print(f"\ngoal: (d) p50 {stream_p50:.2f} s = {stream_p50 / solo_p50:.2f}x the solo p50 {solo_p50:.2f} s "
          f"(goal <= 2x), throughput {throughput:.2f}x one request (goal >= 0.9x); arrivals "
          f"{COUNT / (COUNT * ARRIVAL_INTERVAL_S):.1f}/s against a throughput of {baseline.throughput():.2f}/s")
    slow_p50 = float(np.median(slow_arrivals.latencies_s))
    print(f"(f) at {1 / SLOW_ARRIVAL_INTERVAL_S:.2f} arrivals/s: p50 {slow_p50:.2f} s = "
          f"{slow_p50 / solo_p50:.2f}x the solo p50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    structures = [perturbed(a, seed=i) for i, a in enumerate(mp_crystals(COUNT, min_atoms=2, max_atoms=24, seed=0))]
    print(f"{len(structures)} MP crystals, {sum(len(a) for a in structures)} atoms, "
          f"{min(len(a) for a in structures)}-{max(len(a) for a in structures)} per structure")
    process, url = (None, args.url) if args.url else start_service()
    try:
        httpx.post(url + "/v1/infer", json={**body(structures[:1]), "max_steps": 0}, timeout=600)  # warm up
        solo_runs = [post(url, [a]) for a in structures[:SOLO]]
        solo = Row(f"(a) one at a time, alone ({SOLO} of them)", None, [s for s, _ in solo_runs],
                   sum(n for _, n in solo_runs))
        seconds, steps = post(url, structures)
        whole = Row(f"(b) one request of {COUNT}", seconds, [seconds] * COUNT, steps)
        size = COUNT // CONCURRENT_REQUESTS
        groups = [structures[i:i + size] for i in range(0, COUNT, size)]
        parallel = concurrently(url, groups, [0.0] * len(groups))
        parallel.name = f"(c) {CONCURRENT_REQUESTS} concurrent requests of {size}"
        arrivals = concurrently(url, [[a] for a in structures], [i * ARRIVAL_INTERVAL_S for i in range(COUNT)])
        arrivals.name = f"(d) {COUNT} single requests, one every {ARRIVAL_INTERVAL_S} s"
        stream = streamed(url, structures)
        slow_arrivals = concurrently(url, [[a] for a in structures],
                                     [i * SLOW_ARRIVAL_INTERVAL_S for i in range(COUNT)])
        slow_arrivals.name = f"(f) {COUNT} single requests, one every {SLOW_ARRIVAL_INTERVAL_S} s"
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    report([solo, whole, parallel, arrivals, stream, slow_arrivals], whole, solo, arrivals, slow_arrivals)


if __name__ == "__main__":
    main()
