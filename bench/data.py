"""Datasets: where the files are, that they are the right files, and fast arrays from them.

Look-up order for a dataset's files: the spec's `data_dir`, `$BENCH_DATA`, the user cache
(`$BENCH_CACHE`, else `$XDG_CACHE_HOME/bench` or `~/.cache/bench`), system locations (Debian's
`/usr/share/datasets/...`). `bench data fetch` downloads the official files there with their
checksums; nothing is ever downloaded during a run. Every file is checked by the sha256 of its
*decompressed* content, so re-gzipped copies of the official bytes are accepted. Decoded arrays
are cached as .npy beside a record of the verified source files, so later loads take
milliseconds and skip re-hashing unless a source file changed.

Readers: gzip or raw IDX for MNIST and Fashion-MNIST; CIFAR-10's python batches through a
restricted unpickler that can build numpy arrays and nothing else (no code execution).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DataError(Exception):
    """A dataset is missing, damaged or not the expected one; the message says what to do."""


@dataclass(frozen=True)
class DataFile:
    name: str                       # canonical name, without .gz
    sha256: tuple[str, ...]         # accepted digests of the decompressed content
    url: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    about: str
    folders: tuple[str, ...]        # sub-folders of a base directory to look in
    files: tuple[DataFile, ...]
    classes: int
    shape: tuple[int, int, int]     # C, H, W
    system: tuple[str, ...] = ()
    notes: str = ""
    archive: dict = field(default_factory=dict)

    def file(self, name: str) -> DataFile:
        return next(f for f in self.files if f.name == name)


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# CIFAR-10 batches: the official files' digests come from the verified archive at fetch time
# (its md5 is the one published on the dataset page); the digests listed are those of the
# offline copy in this project's shared/data, whose test images 1000–9999 are JPEG-decoded.
CIFAR_SHARED = {
    "data_batch_1": "caa1893e059371cd2455946f3a122aa561c9c1fa4abf3f7368fc54022adacc19",
    "data_batch_2": "a861baec58424384fcc518ece5a1f45b977dba82043d3f908d4caec7b8a7c462",
    "data_batch_3": "b119a0d99ee36a80d6901dca7b7819a2e1eaf958cd8c00216a1d617a6dc7f40f",
    "data_batch_4": "456d70ad1053204ae89940196ecdc62c395ee9760d05bb764a9b2acacf221578",
    "data_batch_5": "255baf385dde5459bd72b798da00bebc38a83bc17f660fdb60456b8d8edb5698",
    "test_batch": "691f3d9af299804b2b940d00096c19a534735b1cdf072fcfa1c344de0d56cb00",
}

DATASETS = {
    "mnist": Dataset(
        "mnist", "MNIST handwritten digits, 60,000 + 10,000 28×28 grey images",
        ("mnist", "MNIST/raw", "MNIST"), (
            DataFile("train-images-idx3-ubyte",
                     ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",), MNIST_URL),
            DataFile("train-labels-idx1-ubyte",
                     ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",), MNIST_URL),
            DataFile("t10k-images-idx3-ubyte",
                     ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",), MNIST_URL),
            DataFile("t10k-labels-idx1-ubyte",
                     ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",), MNIST_URL)),
        10, (1, 28, 28)),
    "fashion-mnist": Dataset(
        "fashion-mnist", "Zalando's Fashion-MNIST, 60,000 + 10,000 28×28 grey images of clothes",
        ("fashion-mnist", "FashionMNIST/raw", "FashionMNIST"), (
            DataFile("train-images-idx3-ubyte",
                     ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",), FASHION_URL),
            DataFile("train-labels-idx1-ubyte",
                     ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",), FASHION_URL),
            DataFile("t10k-images-idx3-ubyte",
                     ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",), FASHION_URL),
            DataFile("t10k-labels-idx1-ubyte",
                     ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",), FASHION_URL)),
        10, (1, 28, 28), system=("/usr/share/datasets/fashion-mnist",),
        notes="Debian: apt-get install dataset-fashion-mnist"),
    "cifar10": Dataset(
        "cifar10", "CIFAR-10, 50,000 + 10,000 32×32 colour images in 10 classes",
        ("cifar10/cifar-10-batches-py", "cifar-10-batches-py"),
        tuple(DataFile(n, (h,)) for n, h in CIFAR_SHARED.items()),
        10, (3, 32, 32),
        notes="The offline copy's test images 1000–9999 are JPEG-decoded (lossy) and not in the "
              "official order; expect test accuracy slightly off the official test set.",
        archive={"url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 "md5": "c58f30108f718f92721af3b95e74349a"}),
}


@dataclass
class Arrays:
    """A dataset as uint8 images [N, C, H, W] and int64 labels, train and test."""
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    source: str


def cache_dir(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("BENCH_CACHE"):
        return Path(env["BENCH_CACHE"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bench"


def search_bases(data_dir: str | None = None, env: dict | None = None) -> list[Path]:
    env = os.environ if env is None else env
    bases = [Path(data_dir)] if data_dir else []
    if env.get("BENCH_DATA"):
        bases.append(Path(env["BENCH_DATA"]))
    bases.append(cache_dir(env))
    return bases


def candidates(ds: Dataset, data_dir: str | None = None, env: dict | None = None) -> list[Path]:
    """Every folder looked in, in order."""
    out = [base / sub for base in search_bases(data_dir, env) for sub in ds.folders]
    return out + [Path(p) for p in ds.system]


def file_path(folder: Path, f: DataFile) -> Path | None:
    for name in (f.name, f.name + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(name: str, data_dir: str | None = None, env: dict | None = None) -> Path:
    ds = dataset(name)
    looked = candidates(ds, data_dir, env)
    for folder in looked:
        if all(file_path(folder, f) for f in ds.files):
            return folder
    places = "\n".join(f"  - {p}" for p in looked)
    hint = f"\n{ds.notes}" if ds.notes and ds.system else ""
    raise DataError(f"dataset '{name}' not found; looked in:\n{places}\n"
                    f"Put the files ({', '.join(f.name + '[.gz]' for f in ds.files)}) in one of "
                    f"these, set BENCH_DATA or the spec's data_dir, or run "
                    f"`bench data fetch {name}` where the internet is reachable.{hint}")


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is damaged or truncated: "
                        "delete it and fetch it again") from None


def verified(path: Path, f: DataFile, extra: dict) -> bytes:
    content = read_bytes(path)
    digest = hashlib.sha256(content).hexdigest()
    accepted = f.sha256 + tuple(extra.get(f.name, ()))
    if digest not in accepted:
        raise DataError(f"{path}: sha256 of the content is {digest}, expected "
                        f"{' or '.join(accepted)}: the file is damaged, truncated or not the "
                        "official one; delete it and fetch it again")
    return content


# ---- readers --------------------------------------------------------------------------------
def parse_idx(content: bytes, source: Path) -> np.ndarray:
    """IDX: magic 0x0000 08 D (unsigned bytes, D dimensions), D big-endian sizes, the data."""
    if len(content) < 4 or content[:3] != b"\x00\x00\x08":
        raise DataError(f"{source}: not an IDX file of unsigned bytes")
    dims = content[3]
    sizes = np.frombuffer(content, dtype=">u4", count=dims, offset=4).astype(int)
    data = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(sizes)):
        raise DataError(f"{source}: holds {data.size} values, the header says {np.prod(sizes)}")
    return data.reshape(tuple(sizes))


class _NumpyOnly(pickle.Unpickler):
    """Builds the dicts, lists and numpy arrays of CIFAR batches; refuses anything else."""
    # _codecs.encode turns the str a Python 3 pickle stores for bytes back into bytes: data only
    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def parse_cifar_batch(content: bytes, source: Path) -> tuple[np.ndarray, np.ndarray]:
    import io
    try:
        batch = _NumpyOnly(io.BytesIO(content), encoding="bytes").load()
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
        raise DataError(f"{source}: not a CIFAR-10 python batch ({exc})") from None
    return x, y


def _decode(ds: Dataset, folder: Path, extra: dict) -> Arrays:
    content = {f.name: verified(file_path(folder, f), f, extra) for f in ds.files}
    src = lambda n: file_path(folder, ds.file(n))  # noqa: E731
    if ds.name == "cifar10":
        train = [parse_cifar_batch(content[f"data_batch_{i}"], src(f"data_batch_{i}"))
                 for i in range(1, 6)]
        test_x, test_y = parse_cifar_batch(content["test_batch"], src("test_batch"))
        return Arrays(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]),
                      test_x, test_y, str(folder))
    idx = {n: parse_idx(c, src(n)) for n, c in content.items()}
    images = lambda n: idx[n][:, None, :, :]  # noqa: E731
    return Arrays(images("train-images-idx3-ubyte"), idx["train-labels-idx1-ubyte"].astype(np.int64),
                  images("t10k-images-idx3-ubyte"), idx["t10k-labels-idx1-ubyte"].astype(np.int64),
                  str(folder))


# ---- loading with a cache of decoded arrays ---------------------------------------------------
def load(name: str, data_dir: str | None = None, env: dict | None = None) -> Arrays:
    """The verified dataset as arrays, from the decoded cache when the sources are unchanged."""
    ds = dataset(name)
    folder = locate(name, data_dir, env)
    extra = _fetched_digests(folder)
    stamp = {f.name: _stamp(file_path(folder, f)) for f in ds.files}
    cache = cache_dir(env) / "arrays" / name / hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    record = cache / "sources.json"
    if record.exists() and json.loads(record.read_text()) == stamp:
        try:
            parts = [np.load(cache / f"{k}.npy") for k in ("train_x", "train_y", "test_x", "test_y")]
            return Arrays(*parts, source=str(folder))
        except (OSError, ValueError, EOFError):
            pass   # a damaged cache is rebuilt below
    arrays = _decode(ds, folder, extra)
    _write_cache(cache, arrays, stamp)
    return arrays


def _stamp(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _write_cache(cache: Path, arrays: Arrays, stamp: dict) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for key in ("train_x", "train_y", "test_x", "test_y"):
            tmp = cache / f".{key}.{os.getpid()}.npy"
            np.save(tmp, getattr(arrays, key))
            os.replace(tmp, cache / f"{key}.npy")
        (cache / "sources.json").write_text(json.dumps(stamp))
    except OSError:
        pass   # a read-only cache only costs speed


def _fetched_digests(folder: Path) -> dict:
    """Digests recorded by `bench data fetch` after it verified an official archive."""
    try:
        return {k: [v] for k, v in json.loads((folder / ".bench-verified.json").read_text()).items()}
    except (OSError, ValueError):
        return {}
