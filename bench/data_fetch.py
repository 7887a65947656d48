"""`bench data fetch`: download the official files into the user cache, checking every digest.

Run where the internet is reachable; a run never downloads. A file that fails its check is
deleted, so a later look-up cannot pick it up.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from bench.data import DataError, cache_dir, dataset, read_bytes


def fetch(name: str, env: dict | None = None, timeout: float = 30.0) -> Path:
    ds = dataset(name)
    target = cache_dir(env) / ds.folders[0]
    target.mkdir(parents=True, exist_ok=True)
    if ds.archive:
        return _fetch_archive(ds, target, timeout)
    for f in ds.files:
        path = target / f"{f.name}.gz"
        _download(f.url + path.name, path, timeout)
        digest = hashlib.sha256(read_bytes(path)).hexdigest()
        if digest not in f.sha256:
            path.unlink()
            raise DataError(f"{f.url + path.name}: content sha256 {digest} is not the official "
                            f"{f.sha256[0]}; the download was deleted")
    return target


def _download(url: str, path: Path, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            shutil.copyfileobj(response, tmp)
        Path(tmp.name).replace(path)
    except OSError as exc:
        raise DataError(f"cannot download {url}: {exc}. Without internet, copy the files by "
                        "hand (see `bench data path`)") from None


def _fetch_archive(ds, target: Path, timeout: float) -> Path:
    archive = target.parent / Path(ds.archive["url"]).name
    _download(ds.archive["url"], archive, timeout)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    if md5 != ds.archive["md5"]:
        archive.unlink()
        raise DataError(f"{ds.archive['url']}: md5 {md5} is not the published "
                        f"{ds.archive['md5']}; the download was deleted")
    with tarfile.open(archive) as tar:
        # the archive holds cifar-10-batches-py/…: extract beside it, into target's parent
        tar.extractall(target.parent, filter="data")   # filter: no links or paths outside
    digests = {f.name: hashlib.sha256((target / f.name).read_bytes()).hexdigest() for f in ds.files}
    (target / ".bench-verified.json").write_text(json.dumps(digests, indent=1))
    return target
