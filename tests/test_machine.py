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

    for env in ("MODEVO_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MODEVO_THREADS_CHOSEN"):  # restored after
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


def test_a_campaigns_own_guess_is_not_inherited_as_the_users_setting(monkeypatch):
    """`modevo factor` started beside another job takes half the cores and exports OMP_NUM_THREADS; its steps,
    started later, decide again (the other job may be long gone) — unless the user set the count."""
    import torch

    from modevo.machine import choose_threads, set_threads

    for env in ("MODEVO_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MODEVO_THREADS_CHOSEN"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr("modevo.machine.usable_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        assert set_threads(shared=True)[0] == 2 and os.environ["OMP_NUM_THREADS"] == "2"
        assert choose_threads() == (4, "4 usable cores")  # a step of that campaign: its own decision
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user changed it for this child: honoured
        assert choose_threads() == (3, "OMP_NUM_THREADS=3")
        monkeypatch.delenv("MODEVO_THREADS_CHOSEN")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own setting from the start
        assert set_threads(shared=True) == (1, "OMP_NUM_THREADS=1") and "MODEVO_THREADS_CHOSEN" not in os.environ
        assert choose_threads() == (1, "OMP_NUM_THREADS=1")
    finally:
        torch.set_num_threads(before)
