import os

from modevo.machine import describe, summary


def test_describe_light_and_full():
    light, full = describe(with_torch=False), describe()
    assert light["cpus"] == os.cpu_count() and light["processor"]
    assert "torch" not in light and "cuda" not in light  # the pipeline's step log must not pay for importing torch
    assert full["torch"] and full["threads"] >= 1 and light.items() <= full.items()


def test_summary_names_cores_and_gpu():
    line = summary()
    assert f"{os.cpu_count()} cores" in line and ("no GPU" in line or describe()["cuda"] in line)
