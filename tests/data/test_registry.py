"""The data registry: entries, checksums, resolution order, and downloads (served locally, never online)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from gridshift.data import registry
from gridshift.data.http import HttpError, open_stream
from gridshift.errors import DataError

EXPECTED_NAMES = {
    "carbon/GB", "price/DE-LU", "load/CAL", "load/CONUS", "latency/gcp-matrix", "latency/gcp-zone-map",
    "azure-llm/code", "azure-llm/conv", "mooncake/conversation", "mooncake/synthetic", "philly/runtime",
    "philly/node-sequence", "gaia/pai-100k", "gaia/azure-100k", "gaia/mustang-100k", "gavel/throughputs",
    "accelerators/epoch", "accelerators/mlenergy-v3", "accelerators/splitwise", "accelerators/zeus-powercap",
    "accelerators/mlperf-inference-powercap", "accelerators/mlperf-training-power", "accelerators/emerald-dvfs",
}


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env override, no shared/data found by walking up, cache in tmp: nothing is available."""
    monkeypatch.delenv(registry.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(registry.ENV_OFFLINE, raising=False)
    monkeypatch.setattr(registry, "_search_starts", lambda: [tmp_path / "nowhere"])
    monkeypatch.setattr(registry, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path


def test_registry_entries_are_complete():
    reg = registry.load_registry()
    assert EXPECTED_NAMES <= set(reg)
    assert len(reg) == 64  # 16 carbon + 15 price + 14 load + 2 network + 11 workloads + 1 gavel + 7 accelerators
    assert sum(n.startswith("carbon/") for n in reg) == 16
    assert sum(n.startswith("price/") for n in reg) == 15
    assert sum(n.startswith("load/") for n in reg) == 14
    for ds in reg.values():
        if ds.upstream_commit:
            assert ds.url.startswith(f"https://raw.githubusercontent.com/{ds.upstream_repo}/{ds.upstream_commit}/")
        else:
            assert ds.url is None and ds.derived_from
        assert ds.license and ds.attribution and ds.bytes > 0


def test_every_registry_entry_verifies_against_the_shared_file():
    results = {name: registry.verify(name) for name in registry.load_registry()}
    bad = {n: d for n, (ok, d) in results.items() if not ok}
    assert not bad
    ok, detail = results["carbon/GB"]
    assert "\n" not in detail and "carbon/GB" in detail


def test_unknown_dataset_lists_close_matches():
    with pytest.raises(DataError) as err:
        registry.get_dataset("carbon/GBR")
    assert "carbon/GB" in one_line(err)
    with pytest.raises(DataError) as err:
        registry.resolve("GB")
    assert "carbon/GB" in one_line(err)


def test_default_resolution_finds_shared_data_beside_the_checkout(monkeypatch):
    monkeypatch.delenv(registry.ENV_DATA_DIR, raising=False)
    p = registry.resolve("carbon/GB", download=False)
    assert p.parts[-5:] == ("shared", "data", "grid", "carbon", "GB_2023_hourly.csv")
    assert registry.data_dirs()[-1] == registry.cache_dir()


def test_walk_up_finds_shared_data_of_a_clone_elsewhere(tmp_path, monkeypatch):
    clone = tmp_path / "work" / "checkout" / "src" / "pkg"
    clone.mkdir(parents=True)
    shared = tmp_path / "work" / "shared" / "data"
    (shared / "accelerators").mkdir(parents=True)
    monkeypatch.delenv(registry.ENV_DATA_DIR, raising=False)
    monkeypatch.chdir(clone)
    assert registry.data_dirs()[0] == shared.resolve()
    # the file is not in the fake shared dir, so the real one (walk from the source file) is used next
    assert registry.resolve("accelerators/zeus-powercap", download=False).is_file()


def test_env_override_comes_first(tmp_path, monkeypatch):
    real = registry.resolve("accelerators/zeus-powercap", download=False)
    mine = tmp_path / "accelerators" / real.name
    mine.parent.mkdir()
    shutil.copy(real, mine)
    monkeypatch.setenv(registry.ENV_DATA_DIR, str(tmp_path))
    assert registry.data_dirs()[0] == tmp_path
    assert registry.resolve("accelerators/zeus-powercap") == mine
    mine.write_text(mine.read_text().replace("0.725", "0.726"))
    ok, detail = registry.verify("accelerators/zeus-powercap")
    assert not ok and "mismatch" in detail and str(mine) in detail


def test_missing_without_url_says_how_to_supply_it(isolated):
    with pytest.raises(DataError) as err:
        registry.resolve("accelerators/zeus-powercap")
    text = one_line(err)
    assert "accelerators/zeus-powercap" in text and "GRIDSHIFT_DATA_DIR" in text and "no download URL" in text
    assert str(isolated / "cache") in text


def test_missing_and_offline_raises_one_line(isolated):
    def no_network(url, timeout):
        raise HttpError(url, "network is unreachable")

    with pytest.raises(DataError) as err:
        registry.resolve("carbon/GB", opener=no_network)
    text = one_line(err)
    assert "carbon/GB" in text and "GRIDSHIFT_DATA_DIR" in text and "unreachable" in text
    assert not (isolated / "cache").exists() or not any((isolated / "cache").rglob("*.csv"))


def test_offline_env_forbids_downloads(isolated, monkeypatch):
    monkeypatch.setenv(registry.ENV_OFFLINE, "1")

    def must_not_be_called(url, timeout):
        raise AssertionError("opener called while offline")

    with pytest.raises(DataError) as err:
        registry.resolve("carbon/GB", opener=must_not_be_called)
    assert "GRIDSHIFT_OFFLINE" in one_line(err)


@pytest.fixture
def local_server(tmp_path):
    """Serve tmp_path/www over HTTP on 127.0.0.1 from a thread; yields (root dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _opener_to(base: str, ds: registry.Dataset, calls: list[str]):
    def opener(url, timeout):
        calls.append(url)
        assert url == ds.url  # resolve asks for the pinned upstream URL; we redirect it to the local server
        return open_stream(f"{base}/{ds.relpath}", timeout_s=timeout)

    return opener


def test_download_verifies_sha256_and_renames_atomically(isolated, local_server):
    root, base = local_server
    ds = registry.get_dataset("carbon/GB")
    (root / ds.relpath).parent.mkdir(parents=True)
    shutil.copy(_real("carbon/GB"), root / ds.relpath)
    calls: list[str] = []
    path = registry.resolve("carbon/GB", opener=_opener_to(base, ds, calls))
    assert path == isolated / "cache" / ds.relpath
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ds.sha256
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert registry.resolve("carbon/GB", opener=_opener_to(base, ds, calls)) == path
    assert len(calls) == 1  # second resolve hits the cache


def test_download_with_wrong_sha256_leaves_nothing(isolated, local_server):
    root, base = local_server
    ds = registry.get_dataset("carbon/GB")
    served = root / ds.relpath
    served.parent.mkdir(parents=True)
    data = _real("carbon/GB").read_bytes()
    served.write_bytes(data.replace(b"91.44", b"91.45", 1))
    with pytest.raises(DataError) as err:
        registry.resolve("carbon/GB", opener=_opener_to(base, ds, []))
    assert "sha256" in one_line(err)
    dest_dir = isolated / "cache" / Path(ds.relpath).parent
    assert not (isolated / "cache" / ds.relpath).exists()
    assert not dest_dir.exists() or not any(dest_dir.iterdir())


def test_download_file_accepts_an_explicit_url(tmp_path, local_server):
    root, base = local_server
    ds = registry.get_dataset("accelerators/zeus-powercap")  # derived: no URL of its own
    shutil.copy(_real(ds.name), root / "zeus.csv")
    dest = tmp_path / "out" / "zeus.csv"
    assert registry.download_file(ds, dest, url=f"{base}/zeus.csv") == dest
    assert registry.sha256_file(dest) == ds.sha256


def _real(name: str) -> Path:
    """The shared file, found by walking up from the test file (independent of fixtures)."""
    rel = registry.get_dataset(name).relpath
    for p in Path(__file__).resolve().parents:
        cand = p / "shared" / "data" / rel
        if cand.is_file():
            return cand
    pytest.skip("shared data not found beside the checkout")


def test_an_explicit_data_dir_is_honoured_not_passed_over(tmp_path, monkeypatch):
    """GRIDSHIFT_DATA_DIR set to an empty or missing folder is refused in one line naming it, rather than
    silently passed over for a shared/data found elsewhere."""
    from gridshift.data.registry import resolve

    empty = tmp_path / "empty"
    empty.mkdir()
    for setting, word in ((empty, "empty"), (tmp_path / "missing", "not a directory")):
        monkeypatch.setenv("GRIDSHIFT_DATA_DIR", str(setting))
        with pytest.raises(DataError) as e:
            resolve("carbon/DE-LU")
        assert str(setting) in str(e.value) and word in str(e.value) and "\n" not in str(e.value)
