"""weights.py against a real HTTP server on 127.0.0.1, real files in tmp_path, and the real libraries."""

import hashlib
import http.server
import inspect
import itertools
import os
import re
import socket
import threading
import time
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from jojogan_ext.errors import CheckpointError, MissingWeightsError
from jojogan_ext.weights import (
    CACHE_SOURCE_MTIME,
    CACHE_SOURCE_NAME,
    CACHE_SOURCE_SIZE,
    CATALOG,
    STALE_TEMPORARY_AGE_S,
    WeightFile,
    WeightFolders,
    cached_conversion,
    download,
    human_size,
    locate,
    require,
)

SLOW_CHUNKS = 8
SLOW_CHUNK_DELAY_S = 0.06


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of a folder; `/slow/<f>` trickles them out, `/truncated/<f>` stops halfway."""

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        for prefix, send in (("/slow/", self._send_slowly), ("/truncated/", self._send_half)):
            if self.path.startswith(prefix):
                send((Path(self.directory) / self.path[len(prefix) :]).read_bytes())
                return
        super().do_GET()

    def _send_headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_slowly(self, data: bytes) -> None:
        self._send_headers(len(data))
        step = -(-len(data) // SLOW_CHUNKS)
        for start in range(0, len(data), step):
            self.wfile.write(data[start : start + step])
            self.wfile.flush()
            time.sleep(SLOW_CHUNK_DELAY_S)

    def _send_half(self, data: bytes) -> None:
        self._send_headers(len(data))  # promises everything...
        self.wfile.write(data[: len(data) // 2])  # ...then hangs up
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture()
def server(tmp_path: Path):
    """A real ThreadingHTTPServer on 127.0.0.1:<free port> serving tmp_path/'served'."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(served)))
    httpd.requests = []
    httpd.folder = served
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _serve(server, name: str, size: int = 150_000) -> bytes:
    data = os.urandom(size)
    (server.folder / name).write_bytes(data)
    return data


def _entry(name: str, url: str, data: bytes | None, **changes) -> WeightFile:
    fields = dict(
        name=name,
        url=url,
        size=len(data) if data is not None else None,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        kind="base",
        description="test file",
        license="test",
    )
    fields.update(changes)
    return WeightFile(**fields)


def _closed_port_url(name: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def _folders(tmp_path: Path) -> WeightFolders:
    return WeightFolders(
        models_dir=tmp_path / "models",
        webui_models_dir=tmp_path / "webui" / "models",
        torch_checkpoints_dir=tmp_path / "hub" / "checkpoints",
        facexlib_weights_dir=tmp_path / "facexlib" / "weights",
    )


# ---------------------------------------------------------------- catalog


def test_catalog_entries_are_well_formed():
    assert len(CATALOG) >= 8
    hugging_face = re.compile(r"https://huggingface\.co/[\w.-]+/[\w.-]+/resolve/main/[\w./-]+")
    for name, entry in CATALOG.items():
        assert name == entry.name
        assert entry.kind in ("base", "styles", "detection", "lpips")
        assert entry.description and entry.license
        for url in entry.urls:
            assert url.startswith("https://") and " " not in url
            if "huggingface.co" in url:
                assert hugging_face.fullmatch(url), url
        assert entry.url.rsplit("/", 1)[1] == name  # every source serves it under the same name
        assert entry.size is None or entry.size > 0
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    with pytest.raises(TypeError):
        CATALOG["x"] = CATALOG["art.pt"]  # read-only


def test_catalog_holds_the_design_facts():
    stylegan2 = CATALOG["stylegan2-ffhq-config-f.pt"]
    assert (
        stylegan2.url
        == "https://huggingface.co/akhaliq/OneshotCLIP-stylegan2-ffhq/resolve/main/stylegan2-ffhq-config-f.pt"
    )
    assert stylegan2.size == 381_462_551
    assert stylegan2.sha256 == "bae494ef77e32a9cd1792a81a3c167692a0e64f6bcd8b06592ff42917e2ed46e"
    e4e = CATALOG["e4e_ffhq_encode.pt"]
    assert e4e.url == "https://huggingface.co/wmpscc/StyleGene/resolve/main/e4e_ffhq_encode.pt"
    assert e4e.size == 1_201_649_680
    assert e4e.sha256 == "2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999"
    assert {CATALOG[name].kind for name in ("stylegan2-ffhq-config-f.pt", "e4e_ffhq_encode.pt")} == {"base"}
    styles = {entry.name for entry in CATALOG.values() if entry.kind == "styles"}
    assert {"jojo_preserve_color.pt", "art.pt", "Spiderverse-face-500iters-8face.pt"} <= styles


def test_catalog_urls_are_the_ones_the_libraries_use():
    from facexlib.detection import init_detection_model
    from torchvision.models import VGG16_Weights

    facexlib_source = inspect.getsource(init_detection_model)
    for name in ("detection_Resnet50_Final.pth", "detection_mobilenet0.25_Final.pth"):
        assert CATALOG[name].url in facexlib_source
    vgg = CATALOG["vgg16-397923af.pth"]
    assert vgg.url == VGG16_Weights.IMAGENET1K_V1.url  # what lpips' tv.vgg16(pretrained=True) loads
    assert vgg.sha256.startswith(vgg.name.split("-")[1].split(".")[0])  # torchvision's hash prefix


def test_weight_file_rejects_bad_fields():
    good = dict(name="a.pt", url="https://x/a.pt", size=1, sha256=None, kind="base", description="d", license="l")
    for change in ({"name": "../a.pt"}, {"kind": "models"}, {"size": 0}, {"sha256": "ABC"}, {"sha256": "0" * 63}):
        with pytest.raises(ValueError):
            WeightFile(**{**good, **change})


def test_human_size():
    assert human_size(None) == "size unknown"
    assert human_size(999) == "999 B"
    assert human_size(1_000) == "1.0 kB"
    assert human_size(999_949) == "999.9 kB"
    assert human_size(999_950) == "1.0 MB"
    assert human_size(381_462_551) == "381.5 MB"
    assert human_size(1_201_649_680) == "1.2 GB"
    assert human_size(2_000_000_000_000) == "2.0 TB"


# ---------------------------------------------------------------- locate / folders


def test_search_order_and_first_hit_wins(tmp_path: Path):
    folders = _folders(tmp_path)
    base = tmp_path / "models" / "base"
    gfpgan = tmp_path / "webui" / "models" / "GFPGAN"
    facexlib = tmp_path / "facexlib" / "weights"
    assert folders.search_dirs("detection") == [base, gfpgan, facexlib]
    assert folders.search_dirs("lpips") == [tmp_path / "hub" / "checkpoints"]
    assert folders.search_dirs("styles") == [tmp_path / "models" / "styles"]
    assert folders.download_dir("detection") == base

    name = "detection_Resnet50_Final.pth"
    assert locate(name, folders.search_dirs("detection")) is None
    for folder in (facexlib, gfpgan):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(folder.name.encode())
    assert locate(name, folders.search_dirs("detection")) == gfpgan / name
    base.mkdir(parents=True)
    (base / name).mkdir()  # a folder with the file's name is not the file
    assert locate(name, folders.search_dirs("detection")) == gfpgan / name
    (base / name).rmdir()
    (base / name).write_bytes(b"ours")
    assert locate(name, folders.search_dirs("detection")) == base / name


def test_default_folders_follow_torch_hub_and_the_installed_facexlib(tmp_path: Path):
    import facexlib

    folders = WeightFolders(models_dir=str(tmp_path))  # strings are accepted too
    assert folders.search_dirs("lpips") == [Path(torch.hub.get_dir()) / "checkpoints"]
    assert folders.search_dirs("detection")[-1] == Path(facexlib.__file__).parent / "weights"
    assert folders.search_dirs("base") == [tmp_path / "base"]


# ---------------------------------------------------------------- download


def test_download_writes_the_file_and_reports_growing_progress(server, tmp_path: Path):
    data = _serve(server, "tiny.bin", size=256_000)
    entry = _entry("tiny.bin", f"{server.base_url}/slow/tiny.bin", data)
    calls = []
    dst_dir = tmp_path / "dst"
    path = download(entry, dst_dir, on_progress=lambda done, total: calls.append((done, total)), progress=False)
    assert path == dst_dir / "tiny.bin"
    assert path.read_bytes() == data
    assert sorted(os.listdir(dst_dir)) == ["tiny.bin"]
    assert len(calls) >= 2, calls  # the slow server gives the watcher several growing sizes
    dones = [done for done, _ in calls]
    assert all(later > earlier for earlier, later in itertools.pairwise(dones)), calls
    assert all(total == len(data) for _, total in calls)
    assert calls[-1] == (len(data), len(data))


def test_download_by_name_and_without_known_size(server, tmp_path: Path):
    data = _serve(server, "nosize.bin")
    entry = _entry("nosize.bin", f"{server.base_url}/nosize.bin", None)
    calls = []
    path = download("nosize.bin", tmp_path, catalog={"nosize.bin": entry}, on_progress=lambda *a: calls.append(a))
    assert path.read_bytes() == data
    assert calls[-1] == (len(data), len(data))  # unknown total: the last call still has done == total
    with pytest.raises(KeyError, match="not in the weights catalog"):
        download("other.bin", tmp_path, catalog={"nosize.bin": entry})


def test_hash_mismatch_leaves_no_file(server, tmp_path: Path):
    data = _serve(server, "bad.bin")
    entry = _entry("bad.bin", f"{server.base_url}/bad.bin", data, sha256=hashlib.sha256(b"other").hexdigest())
    dst_dir = tmp_path / "dst"
    with pytest.raises(MissingWeightsError, match="sha256") as error:
        download(entry, dst_dir, progress=False)
    assert "bad.bin" in str(error.value) and str(dst_dir) in str(error.value)
    assert os.listdir(dst_dir) == []  # neither the file nor torch.hub's .partial nor our staging file


def test_cut_stream_fails_and_keeps_the_previous_good_file(server, tmp_path: Path):
    data = _serve(server, "model.bin")
    dst_dir = tmp_path / "dst"
    dst_dir.mkdir()
    (dst_dir / "model.bin").write_bytes(b"the previous good copy")
    for sha256 in (None, hashlib.sha256(data).hexdigest()):  # caught by the size check, then by the hash
        entry = _entry("model.bin", f"{server.base_url}/truncated/model.bin", data, sha256=sha256)
        with pytest.raises(MissingWeightsError, match=r"model\.bin"):
            download(entry, dst_dir, progress=False)
        assert (dst_dir / "model.bin").read_bytes() == b"the previous good copy"
        assert os.listdir(dst_dir) == ["model.bin"]


def test_network_failure_names_file_url_and_folder(server, tmp_path: Path):
    url = _closed_port_url("gone.bin")
    entry = _entry("gone.bin", url, b"x" * 10)
    with pytest.raises(MissingWeightsError) as error:
        download(entry, tmp_path / "dst", progress=False)
    message = str(error.value)
    assert "gone.bin" in message and url in message and str(tmp_path / "dst") in message
    assert "\n" not in message
    with pytest.raises(MissingWeightsError, match="HTTP 404"):
        download(_entry("absent.bin", f"{server.base_url}/absent.bin", b"x"), tmp_path / "dst", progress=False)
    assert os.listdir(tmp_path / "dst") == []


def test_mirror_is_used_when_the_main_url_fails(server, tmp_path: Path):
    data = _serve(server, "mirrored.bin")
    entry = _entry(
        "mirrored.bin", f"{server.base_url}/missing/mirrored.bin", data, mirrors=(f"{server.base_url}/mirrored.bin",)
    )
    assert download(entry, tmp_path, progress=False).read_bytes() == data
    assert server.requests == ["/missing/mirrored.bin", "/mirrored.bin"]


def test_stale_partials_are_removed_and_fresh_ones_kept(server, tmp_path: Path):
    data = _serve(server, "w.bin")
    dst_dir = tmp_path / "dst"
    dst_dir.mkdir()
    stale = [dst_dir / "w.bin.0123abcd.incoming.0123456789abcdef.partial", dst_dir / "w.bin.89abcdef.incoming"]
    fresh = dst_dir / "w.bin.fedcba98.partial"
    long_ago = time.time() - 2 * STALE_TEMPORARY_AGE_S
    for path in [*stale, fresh]:
        path.write_bytes(b"left over")
    for path in stale:
        os.utime(path, (long_ago, long_ago))
    download(_entry("w.bin", f"{server.base_url}/w.bin", data), dst_dir, progress=False)
    assert sorted(os.listdir(dst_dir)) == sorted(["w.bin", fresh.name])


# ---------------------------------------------------------------- require


def test_require_offline_lists_every_missing_file_in_one_message(server, tmp_path: Path):
    folders = _folders(tmp_path)
    present = folders.facexlib_weights_dir / "detection_Resnet50_Final.pth"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"weights")
    local = _entry("local.bin", f"{server.base_url}/local.bin", _serve(server, "local.bin"))
    wanted = ["stylegan2-ffhq-config-f.pt", "e4e_ffhq_encode.pt", "detection_Resnet50_Final.pth"]
    wanted += ["vgg16-397923af.pth", local]
    with pytest.raises(MissingWeightsError) as error:
        require(wanted, folders, allow_download=False)
    message = str(error.value)
    assert message.startswith("4 model files are missing and automatic download is off")
    base = str(tmp_path / "models" / "base")
    for name, size, folder in (
        ("stylegan2-ffhq-config-f.pt", "381.5 MB", base),
        ("e4e_ffhq_encode.pt", "1.2 GB", base),
        ("vgg16-397923af.pth", "553.4 MB", str(tmp_path / "hub" / "checkpoints")),
        ("local.bin", human_size(local.size), base),
    ):
        line = next(line for line in message.splitlines() if f" {name} " in line)
        entry = local if name == "local.bin" else CATALOG[name]
        assert f"({size})" in line and folder in line and entry.url in line
    assert "detection_Resnet50_Final.pth" not in message  # found in facexlib's folder
    assert server.requests == []  # nothing was fetched
    assert require(["detection_Resnet50_Final.pth"], folders, allow_download=False) == {
        "detection_Resnet50_Final.pth": present
    }


def test_require_downloads_what_it_can_and_reports_the_rest(server, tmp_path: Path):
    folders = _folders(tmp_path)
    data = _serve(server, "good.bin")
    good = _entry("good.bin", f"{server.base_url}/slow/good.bin", data, kind="detection")
    broken = _entry("broken.bin", f"{server.base_url}/broken.bin", b"never served")
    calls = []
    with pytest.raises(MissingWeightsError) as error:
        require([good, broken], folders, allow_download=True, progress=False, on_progress=lambda *a: calls.append(a))
    message = str(error.value)
    assert message.startswith("1 model file is missing and could not be downloaded")
    assert "broken.bin" in message and "HTTP 404" in message and "good.bin" not in message
    downloaded = folders.download_dir("detection") / "good.bin"
    assert downloaded.read_bytes() == data
    assert {name for name, _, _ in calls} == {"good.bin"} and calls[-1] == ("good.bin", len(data), len(data))
    assert require([good], folders, allow_download=False) == {"good.bin": downloaded}


# ---------------------------------------------------------------- cached_conversion


class _Converter:
    """A real `.pt` -> tensors conversion that counts how often it ran."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {name: tensor * 2 for name, tensor in torch.load(path, weights_only=True).items()}


def _save_source(path: Path, seed: int) -> dict[str, torch.Tensor]:
    tensors = {"w": torch.randn(4, 3, generator=torch.Generator().manual_seed(seed)), "b": torch.arange(5.0) + seed}
    torch.save(tensors, path)
    return tensors


def test_cached_conversion_writes_once_reuses_and_rebuilds(tmp_path: Path):
    src = tmp_path / "gen.pt"
    original = _save_source(src, seed=1)
    convert = _Converter()
    cache = cached_conversion(src, convert, metadata={"format": "1"})
    assert cache == tmp_path / "gen.safetensors" and convert.calls == 1
    assert sorted(os.listdir(tmp_path)) == ["gen.pt", "gen.safetensors"]
    loaded = load_file(cache)
    assert loaded.keys() == original.keys() and all(torch.equal(loaded[k], original[k] * 2) for k in loaded)
    with safe_open(str(cache), framework="pt") as file:
        stored = file.metadata()
    assert stored["format"] == "1" and stored[CACHE_SOURCE_NAME] == "gen.pt"
    assert stored[CACHE_SOURCE_SIZE] == str(src.stat().st_size)
    assert stored[CACHE_SOURCE_MTIME] == str(src.stat().st_mtime_ns)

    written = cache.stat().st_mtime_ns
    assert cached_conversion(src, convert, metadata={"format": "1"}) == cache
    assert convert.calls == 1 and cache.stat().st_mtime_ns == written

    # another source copied in with an older mtime (cp -p): the cache is newer, its record no longer fits
    changed = _save_source(src, seed=2)
    earlier = src.stat().st_mtime - 100
    os.utime(src, (earlier, earlier))
    assert cached_conversion(src, convert, metadata={"format": "1"}) == cache and convert.calls == 2
    assert torch.equal(load_file(cache)["w"], changed["w"] * 2)

    # a cache older than its source is rebuilt even when its record fits
    earliest = src.stat().st_mtime - 50
    os.utime(cache, (earliest, earliest))
    cached_conversion(src, convert, metadata={"format": "1"})
    assert convert.calls == 3

    cached_conversion(src, convert, metadata={"format": "2"})  # the caller's format changed
    assert convert.calls == 4
    assert sorted(os.listdir(tmp_path)) == ["gen.pt", "gen.safetensors"]


def test_cached_conversion_replaces_a_broken_cache(tmp_path: Path):
    src = tmp_path / "gen.pt"
    original = _save_source(src, seed=3)
    (tmp_path / "gen.safetensors").write_bytes(b"not a safetensors file")
    convert = _Converter()
    cache = cached_conversion(src, convert)
    assert convert.calls == 1 and torch.equal(load_file(cache)["b"], original["b"] * 2)


def test_failing_conversion_leaves_nothing(tmp_path: Path):
    src = tmp_path / "gen.pt"
    _save_source(src, seed=4)
    stale = tmp_path / ".gen.safetensors.0badc0de.tmp"
    stale.write_bytes(b"from a crashed run")
    long_ago = time.time() - 2 * STALE_TEMPORARY_AGE_S
    os.utime(stale, (long_ago, long_ago))

    def convert(path: Path) -> dict[str, torch.Tensor]:
        raise CheckpointError(f"{path.name} is not a StyleGAN2 checkpoint.")

    with pytest.raises(CheckpointError, match="not a StyleGAN2 checkpoint"):
        cached_conversion(src, convert)
    assert os.listdir(tmp_path) == ["gen.pt"]
    with pytest.raises(CheckpointError, match="does not exist"):
        cached_conversion(tmp_path / "absent.pt", convert)


def test_cached_conversion_reuses_a_fresh_cache_in_the_cache_dir(tmp_path: Path):
    src_dir, cache_dir = tmp_path / "src", tmp_path / "cache"
    src_dir.mkdir()
    src = src_dir / "gen.pt"
    _save_source(src, seed=5)
    convert = _Converter()
    first = cached_conversion(src, convert)
    cache_dir.mkdir()
    moved = cache_dir / first.name
    first.rename(moved)
    assert cached_conversion(src, convert, cache_dir=cache_dir) == moved and convert.calls == 1


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_cached_conversion_falls_back_to_cache_dir_when_the_source_folder_is_read_only(tmp_path: Path):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    src = src_dir / "gen.pt"
    _save_source(src, seed=6)
    src_dir.chmod(0o555)
    try:
        with pytest.raises(CheckpointError, match="no writable folder"):
            cached_conversion(src, _Converter())
        cache = cached_conversion(src, _Converter(), cache_dir=tmp_path / "cache")
        assert cache == tmp_path / "cache" / "gen.safetensors" and cache.is_file()
    finally:
        src_dir.chmod(0o755)
