"""pipeline.parallel: block loops in-process (thread pool) or on a dask.distributed cluster."""

from __future__ import annotations

import hashlib
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import DaskConfig
from pipeline.errors import ConfigError, InputError, PipelineError
from pipeline.parallel import (
    PerProcess,
    executor,
    forked_map,
    get_client,
    map_blocks,
    ordered_map,
    read_ahead,
)


def _square_and_thread(x: int) -> tuple[int, str]:
    return x * x, threading.current_thread().name


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("block 3 is bad")
    return x


class _Counter:
    """Stand-in for a source: holds a lock (unpicklable) and counts builds."""

    built = 0

    def __init__(self, base: int) -> None:
        type(self).built += 1
        self.base = base
        self.lock = threading.Lock()
        self.closed = False

    def add(self, x: int) -> int:
        with self.lock:
            return self.base + x

    def close(self) -> None:
        self.closed = True


def _use_counter(args: tuple[PerProcess, int]) -> int:
    ref, x = args
    return ref.add(x)


@pytest.fixture(scope="module")
def local_cluster():  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    yield cluster
    cluster.close()


def test_in_process_default_keeps_order_on_a_thread_pool() -> None:
    out = map_blocks(_square_and_thread, range(10), DaskConfig(), threads=3)
    assert [v for v, _ in out] == [x * x for x in range(10)]
    assert all(name.startswith("ThreadPoolExecutor") for _, name in out)
    with executor(None, threads=2) as ex:
        assert ex.submit(_square_and_thread, 4).result()[0] == 16


def test_dask_cluster_runs_the_blocks(local_cluster) -> None:  # type: ignore[no-untyped-def]
    cfg = DaskConfig(address=local_cluster.scheduler_address)
    assert cfg.address.startswith("tcp://127.0.0.1:")
    out = map_blocks(_square_and_thread, range(10), cfg)
    assert [v for v, _ in out] == [x * x for x in range(10)]
    # the tasks ran in the dask worker's threads, not a pool of ours
    assert not any(name.startswith("ThreadPoolExecutor") for _, name in out)
    with pytest.raises(ValueError, match="block 3 is bad"):
        map_blocks(_fail_on_three, range(6), cfg)


def test_per_process_objects_are_built_once_and_pickle_without_state(
    local_cluster,  # type: ignore[no-untyped-def]
) -> None:
    _Counter.built = 0
    ref = PerProcess(_Counter, (100,))
    clone = pickle.loads(pickle.dumps(ref))  # the lock is not shipped, only the recipe
    assert clone == ref and _Counter.built == 0
    assert clone.add(5) == 105 and ref.add(1) == 101
    assert _Counter.built == 1  # one object per process, shared by equal recipes
    cfg = DaskConfig(address=local_cluster.scheduler_address)
    assert map_blocks(_use_counter, [(ref, i) for i in range(4)], cfg) == [100, 101, 102, 103]
    assert _Counter.built == 1  # in-process worker (processes=False) reuses it
    obj = ref.get()
    ref.close()
    assert obj.closed and ref.get() is not obj


def test_ordered_map_keeps_order_bounds_look_ahead_and_wraps_each_call() -> None:
    import contextlib
    import time

    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "wrapped": 0}
    local = threading.local()

    @contextlib.contextmanager
    def wrap():  # type: ignore[no-untyped-def]
        local.inside = True
        with lock:
            state["wrapped"] += 1
        yield
        local.inside = False

    def slow(x: int) -> int:
        assert getattr(local, "inside", False)  # entered in the worker's own thread
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02 * (5 - x % 5))  # later items finish first
        with lock:
            state["now"] -= 1
        return x * 10

    out = []
    for v in ordered_map(slow, range(12), workers=3, wrap=wrap):
        out.append(v)
        assert state["now"] <= 3
    assert out == [x * 10 for x in range(12)]
    assert 2 <= state["peak"] <= 3 and state["wrapped"] == 12
    assert list(ordered_map(lambda x: x + 1, iter(range(4)))) == [1, 2, 3, 4]  # in-thread
    with pytest.raises(ValueError, match="block 3 is bad"):
        list(ordered_map(_fail_on_three, range(8), workers=2))


LINUX = pytest.mark.skipif(not __import__("sys").platform.startswith("linux"),
                           reason="forked_map forks on Linux only (threads elsewhere)")


@LINUX
def test_forked_map_keeps_order_on_other_processes_with_closures() -> None:
    import os
    import time

    parent = os.getpid()
    offset = 7  # a closure over a local: nothing is pickled but chunk bounds and results
    def slow(x: int) -> tuple[int, int]:  # slow enough that both children take chunks
        time.sleep(0.005)
        return x + offset, os.getpid()

    out = list(forked_map(slow, list(range(50)), workers=2, chunk=4))
    assert [v for v, _ in out] == [x + offset for x in range(50)]
    pids = {p for _, p in out}
    assert parent not in pids and len(pids) == 2  # both children worked
    # one worker, or too few items for two chunks: in this process, on threads
    assert {p for _, p in forked_map(lambda x: (x, os.getpid()), list(range(50)), 1)} == {parent}
    assert {p for _, p in forked_map(lambda x: (x, os.getpid()), list(range(4)), 2,
                                     chunk=4)} == {parent}


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_forked_map_runs_on_threads_where_fork_is_not_safe(
    platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import sys

    monkeypatch.setattr(sys, "platform", platform)  # forked_map reads it when called
    parent = os.getpid()
    seen: set[tuple[int, int]] = set()

    def where(x: int) -> int:
        seen.add((os.getpid(), threading.get_ident()))
        return x * 3

    # enough items for several chunks, two workers: on Linux this forks (test above)
    assert list(forked_map(where, list(range(40)), workers=2, chunk=4)) == [
        x * 3 for x in range(40)]
    tids = {tid for _, tid in seen}
    assert {pid for pid, _ in seen} == {parent}  # no child process
    # on the pool's threads (at most two), not in the calling thread
    assert threading.get_ident() not in tids and 1 <= len(tids) <= 2
    with pytest.raises(ValueError, match="block 3 is bad"):  # errors as ordered_map's
        list(forked_map(_fail_on_three, list(range(40)), workers=2, chunk=4))


@LINUX
def test_forked_map_re_raises_a_childs_error_and_names_a_dead_child() -> None:
    import os

    def bad(x: int) -> int:
        if x == 13:
            raise InputError(f"patch {x}: its label file is truncated: rerun labels")
        return x

    got = []
    with pytest.raises(InputError, match="patch 13: its label file is truncated"):
        for v in forked_map(bad, list(range(40)), workers=2, chunk=4):
            got.append(v)
    assert got == list(range(12))  # every result before the failing chunk, in order

    def die(x: int) -> int:
        if x == 9:
            os._exit(9)  # as the kernel's OOM killer would
        return x

    with pytest.raises(PipelineError, match="labels of AOI 'x': a worker process died"):
        list(forked_map(die, list(range(40)), workers=2, what="labels of AOI 'x'", chunk=4))
    # the pool is free again: a later call forks as before
    assert list(forked_map(lambda x: -x, list(range(20)), workers=2, chunk=4)) == [
        -x for x in range(20)]


@LINUX
def test_a_forked_map_inside_another_runs_on_threads_instead_of_waiting() -> None:
    def outer(x: int) -> list[int]:  # in a child, whose copy of the pool lock is held
        return list(forked_map(lambda y: x * y, list(range(20)), workers=2, chunk=4))

    out = list(forked_map(outer, list(range(12)), workers=2, chunk=4))
    assert out == [[x * y for y in range(20)] for x in range(12)]
    # and in the parent, while its own pool is running
    nested = [list(forked_map(lambda y: y, list(range(20)), workers=2, chunk=4))
              for _ in forked_map(lambda x: x, list(range(20)), workers=2, chunk=4)]
    assert nested == [list(range(20))] * 20


def test_unreachable_scheduler_names_the_address_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"tcp://127\.0\.0\.1:9.*dask.address: null"):
        get_client(DaskConfig(address="tcp://127.0.0.1:9"), timeout_s=1.0)
    assert get_client(DaskConfig()) is None


def _store_digest(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*")) if p.is_file()
    }


def _sentinel_month_store(root: Path, archive: Path, dask_cfg: DaskConfig,
                          cfg: Any = None) -> dict[str, str]:
    """sentinel_init + sentinel_month (local source unless ``cfg`` says otherwise, real
    s2cloudless) of a two-block AOI under ``root`` (may be relative) from a two-scene archive;
    returns the staging store digest."""
    import pandas as pd

    from pipeline.config import SentinelConfig
    from pipeline.grid import AoiGrid
    from pipeline.io.jsonfile import read_json, write_json
    from pipeline.io.parquet import write_geoparquet
    from pipeline.layout import Layout
    from pipeline.sentinel.drivers import fetch_month, init_aoi
    from tests.sentinel_helpers import GRID as SCENE_GRID
    from tests.sentinel_helpers import sentinel_aoi, write_scene

    # two 64 px blocks (the mosaic chunk); the scenes cover the west one and part of the east
    grid = AoiGrid(**(SCENE_GRID.to_dict() | {"width": 128}))
    if not archive.is_dir():
        from pipeline.io.stac_catalog import write_scene_catalog

        write_scene(archive, 3, 0.1)
        write_scene(archive, 13, 0.3, cloud_left_half=True)
        write_scene_catalog(archive)
    cfg = cfg or SentinelConfig(source="local", block_size_px=64)
    lay = Layout(root)
    write_json(lay.grid("a"), grid.to_dict() | {"rule": "t", "size_px": 64, "scale": 5.0})
    fp = pd.DataFrame({"patch_id": ["a_r000_c000", "a_r000_c001"], "fp_col0": [0, 64],
                       "fp_row0": [0, 0], "fp_size_px": [64, 64]})
    write_geoparquet(fp, lay.footprints("a"))
    aoi = sentinel_aoi("a", "2020-03", "2020-03", str(archive))
    marker = init_aoi(aoi, cfg, lay)
    s = fetch_month(aoi, "2020-03", cfg, lay, threads=2, dask=dask_cfg)
    assert s["blocks_done"] == marker["n_blocks"] == 2 and s["s2_product"] == "L2A"
    assert read_json(lay.month_summary("a", "2020-03"))["blocks"] == 2
    return _store_digest(lay.mosaic_staging("a"))


def test_sentinel_month_on_a_dask_cluster_equals_in_process(
    tmp_path: Path, local_cluster  # type: ignore[no-untyped-def]
) -> None:
    """Local source (real s2cloudless) blocks run as dask tasks: identical mosaic bytes."""
    archive = tmp_path / "scenes"
    inproc = _sentinel_month_store(tmp_path / "inproc", archive, DaskConfig())
    dask = _sentinel_month_store(
        tmp_path / "dask", archive, DaskConfig(address=local_cluster.scheduler_address)
    )
    assert dask == inproc
    # the blocks were tasks of the dask scheduler (one per block), not threads of ours
    prefixes = local_cluster.scheduler.task_prefixes
    assert "fetch_block_into_mosaic" in prefixes
    assert sum(prefixes["fetch_block_into_mosaic"].state_counts.values()) >= 2


def test_dask_worker_process_elsewhere_gets_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker in another process and working directory (as on another node) resolves the
    job's relative results_dir / sentinel_archive paths correctly."""
    import os

    from distributed import Client, LocalCluster

    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    reference = _sentinel_month_store(Path("inproc"), Path("scenes"), DaskConfig())
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        client.run(os.chdir, str(elsewhere))
        assert set(client.run(os.getcwd).values()) == {str(elsewhere)}
        got = _sentinel_month_store(Path("remote"), Path("scenes"),
                                    DaskConfig(address=cluster.scheduler_address))
    assert got == reference
    assert not any(elsewhere.iterdir())  # nothing was written relative to the worker's cwd


def test_stac_month_on_dask_worker_processes_searches_once_and_equals_in_process(
    tmp_path: Path
) -> None:
    """STAC source on a dask cluster of worker processes: the job searches the STAC API once,
    the workers (fresh processes: nothing shared but what is shipped) get the month's scenes,
    read the COGs over HTTP and write the same mosaic bytes as the in-process run."""
    from distributed import LocalCluster

    from pipeline.config import SentinelConfig
    from tests.fake_stac import FakeStac

    archive = tmp_path / "scenes"
    _sentinel_month_store(tmp_path / "local", archive, DaskConfig())  # writes the archive
    with FakeStac(archive) as srv:
        srv.items = srv.items_from_catalog(archive / "catalog.json")
        cfg = SentinelConfig(source="stac", block_size_px=64,
                             stac={"url": srv.api, "s1_collection": ""})
        inproc = _sentinel_month_store(tmp_path / "inproc", archive, DaskConfig(), cfg)
        searches = srv.counters.search_requests
        assert searches >= 2  # L2A + L1C
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster:
            files_before = srv.counters.file_requests
            remote = _sentinel_month_store(
                tmp_path / "remote", archive, DaskConfig(address=cluster.scheduler_address), cfg)
            prefixes = cluster.scheduler.task_prefixes  # the blocks were the cluster's tasks
            assert sum(prefixes["fetch_block_into_mosaic"].state_counts.values()) >= 2
        assert srv.counters.search_requests == 2 * searches  # the job's searches only
        assert srv.counters.file_requests > files_before  # the workers read the COGs
    assert remote == inproc


def test_expansion_blocks_run_on_the_dask_cluster_with_the_stac_source(
    tmp_path: Path, local_cluster  # type: ignore[no-untyped-def]
) -> None:
    """One month-fetch path: with ``dask.address`` set, an expansion's STAC blocks are tasks of
    the cluster (as a native AOI's are) and write the same bytes as the in-process run."""
    from pipeline.config import ExpandConfig, FootprintsConfig, SentinelConfig
    from pipeline.expand.drivers import expand_index, expand_init, expand_month
    from pipeline.io.stac_catalog import write_scene_catalog
    from pipeline.layout import Layout
    from tests.expand_helpers import make_pairs
    from tests.sentinel_helpers import write_scene

    root = make_pairs(tmp_path / "pairs")
    archive = tmp_path / "archive"
    write_scene(archive, 3, 0.1)
    write_scene(archive, 13, 0.3, cloud_left_half=True)
    write_scene_catalog(archive)
    cfg = ExpandConfig(adapter="pairs", path=str(root), sentinel_archive=str(archive))
    stac = SentinelConfig(source="stac", block_size_px=64, stac={"s1_collection": ""})

    def run(out: Path, dask: DaskConfig) -> dict[str, str]:
        layout = Layout(out)
        expand_index(cfg, FootprintsConfig(), stac, layout, "ds")
        expand_init("ds-g000", layout)
        s = expand_month("ds-g000", "2020-03", stac, cfg, layout, threads=2, dask=dask)
        assert s["blocks_done"] >= 1 and s["s2_product"] == "L2A"
        return _store_digest(layout.expand_layout().mosaic_staging("ds-g000"))

    before = sum(local_cluster.scheduler.task_prefixes["fetch_block_into_mosaic"]
                 .state_counts.values()) \
        if "fetch_block_into_mosaic" in local_cluster.scheduler.task_prefixes else 0
    inproc = run(tmp_path / "inproc", DaskConfig())
    on_dask = run(tmp_path / "dask", DaskConfig(address=local_cluster.scheduler_address))
    prefixes = local_cluster.scheduler.task_prefixes
    assert sum(prefixes["fetch_block_into_mosaic"].state_counts.values()) > before
    assert on_dask == inproc


def test_read_ahead_keeps_order_uses_one_thread_and_reraises() -> None:
    seen: list[tuple[int, str]] = []

    def read(x: int) -> int:
        seen.append((x, threading.current_thread().name))
        if x == 3:
            raise ValueError("bad strip 3")
        return 10 * x

    assert list(read_ahead(read, [0, 1, 2])) == [0, 10, 20]
    assert len({name for _, name in seen}) == 1  # one reader thread, never the caller's
    assert threading.current_thread().name not in {name for _, name in seen}
    got = []
    with pytest.raises(ValueError, match="bad strip 3"):
        for v in read_ahead(read, [1, 2, 3, 4]):
            got.append(v)
    assert got == [10, 20]
    assert list(read_ahead(read, [])) == []
