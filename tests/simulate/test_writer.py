"""The writer's process pool: the same files for any number of workers, and resume after an interruption."""

import pytest

from hyperfusion.simulate import simulate_ad, simulate_brain_age
from hyperfusion.simulate.writer import available_cores, checked_workers

KW = dict(voxel_size=8.0, template="phantom", progress=False)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_one_and_two_workers_write_the_same_bytes(tmp_path):
    simulate_ad(tmp_path / "one", n=6, seed=2, workers=1, **KW)
    simulate_ad(tmp_path / "two", n=6, seed=2, workers=2, **KW)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    simulate_brain_age(tmp_path / "age1", n=4, seed=2, workers=1, **KW)
    simulate_brain_age(tmp_path / "age2", n=4, seed=2, workers=2, **KW)
    assert _files(tmp_path / "age1") == _files(tmp_path / "age2")


def test_pool_resumes_an_interrupted_run(tmp_path):
    whole = tmp_path / "whole"
    simulate_ad(whole, n=5, seed=1, workers=1, **KW)
    again = tmp_path / "again"
    simulate_ad(again, n=5, seed=1, workers=2, **KW)
    images = sorted((again / "images").iterdir())
    images[1].unlink()
    images[3].unlink()
    (again / "ADNIMERGE.csv").unlink()
    (again / "cohort.yaml").unlink()
    simulate_ad(again, n=5, seed=1, workers=2, **KW)
    assert _files(again) == _files(whole)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_workers(bad, tmp_path):
    with pytest.raises(ValueError, match="workers"):
        checked_workers(bad)
    with pytest.raises(ValueError, match="workers"):
        simulate_ad(tmp_path, n=3, workers=bad, **KW)


def test_default_workers_is_every_available_core():
    assert checked_workers(None) == available_cores() >= 1
    assert checked_workers(3) == 3


def test_a_process_with_native_threads_never_forks_its_workers(tmp_path):
    """A fork beside gRPC's threads (after ray.init) hung a run; with such a thread alive the pool uses forkserver
    and writes the same bytes. The thread is named by the OS as a native runtime names its threads."""
    import ctypes
    import threading
    import time

    from hyperfusion.simulate.writer import foreign_threads, start_method

    before = foreign_threads()  # empty alone; Ray's gRPC threads after the Ray tests of a whole suite
    named, stop = threading.Event(), threading.Event()

    def native_like() -> None:
        ctypes.CDLL(None).prctl(15, b"native_runtime", 0, 0, 0)  # PR_SET_NAME: this thread's OS name
        named.set()
        stop.wait()

    alive = threading.Thread(target=native_like)
    alive.start()
    try:
        named.wait()
        assert "native_runtime" in foreign_threads()
        assert start_method() == "forkserver"
        simulate_ad(tmp_path / "threaded", n=4, seed=3, workers=2, **KW)
    finally:
        stop.set()
        alive.join()
    deadline = time.monotonic() + 5  # join returns before the OS thread is gone
    while foreign_threads() != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert start_method() == ("fork" if not before else "forkserver")
    simulate_ad(tmp_path / "alone", n=4, seed=3, workers=1, **KW)
    assert _files(tmp_path / "threaded") == _files(tmp_path / "alone")
