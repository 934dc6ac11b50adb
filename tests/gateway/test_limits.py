from gateway.limits import CPU_BATCH_CAP, MEMORY_FRACTION, ProbePoint, host_free_bytes, limits_from_probe


def test_budget_is_free_memory_over_memory_per_atom():
    points = [ProbePoint(32, 1_000_000_000), ProbePoint(256, 1_000_000_000 + 224 * 100_000)]
    limits = limits_from_probe(points, free_bytes=10_000_000_000, on_gpu=True)
    assert limits.max_atom_budget == int(10_000_000_000 * MEMORY_FRACTION / 100_000)
    assert limits.atom_budget == limits.max_atom_budget == limits.max_system_size


def test_cpu_budget_is_capped_but_max_system_size_is_not():
    points = [ProbePoint(32, 0), ProbePoint(256, 224 * 100_000)]
    limits = limits_from_probe(points, free_bytes=10_000_000_000, on_gpu=False)
    assert limits.atom_budget == CPU_BATCH_CAP
    assert limits.max_system_size == 80_000


def test_memory_that_did_not_grow_falls_back_to_a_floor():
    points = [ProbePoint(32, 500), ProbePoint(256, 400)]
    limits = limits_from_probe(points, free_bytes=1_000_000_000, on_gpu=True)
    assert 0 < limits.max_atom_budget <= 1_000_000_000 // 20_000


def test_host_free_bytes_is_positive():
    assert host_free_bytes() > 0
