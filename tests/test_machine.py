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


def test_thread_count_is_chosen_never_left_to_the_library(monkeypatch):
    from modevo.machine import choose_threads, set_threads, usable_cores

    for env in ("MODEVO_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # restored after the test
        monkeypatch.delenv(env, raising=False)
    assert choose_threads() == (usable_cores(), f"{usable_cores()} usable cores")
    assert choose_threads(shared=True)[0] == max(1, usable_cores() // 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(shared=True) == (3, "OMP_NUM_THREADS=3")  # the user's setting wins
    monkeypatch.setenv("MODEVO_THREADS", "1")
    assert choose_threads()[0] == 1
    monkeypatch.setenv("MODEVO_THREADS", "lots")  # not a count: the next rule applies
    assert choose_threads()[0] == 3
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("MODEVO_THREADS", "1")
        assert set_threads()[0] == 1 and torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_local_ranks_share_the_cores(monkeypatch):
    from modevo.machine import choose_threads, usable_cores

    for env in ("MODEVO_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert choose_threads()[0] == max(1, usable_cores() // 2)
