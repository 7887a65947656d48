"""Dataset loaders on the real files: counts, label counts, and clear errors for missing,
damaged and truncated files (nothing is trained then)."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from bench import data
from bench.data import DataError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("name, shape, train_counts, test_counts", [
    ("mnist", (1, 28, 28), MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS),
    ("fashion-mnist", (1, 28, 28), [6000] * 10, [1000] * 10),
    ("cifar10", (3, 32, 32), [5000] * 10, [1000] * 10)])
def test_real_datasets_have_published_sizes_and_label_counts(name, shape, train_counts,
                                                            test_counts, cache):
    arrays = data.load(name)
    assert arrays.train_x.shape == (sum(train_counts), *shape)
    assert arrays.test_x.shape == (sum(test_counts), *shape)
    assert arrays.train_x.dtype == np.uint8
    assert np.bincount(arrays.train_y).tolist() == train_counts
    assert np.bincount(arrays.test_y).tolist() == test_counts
    again = data.load(name)                       # from the decoded cache now
    assert np.array_equal(again.train_x, arrays.train_x)
    assert list((cache / "arrays" / name).glob("*/train_x.npy"))


def test_mnist_first_labels_and_pixels_are_the_originals(cache):
    arrays = data.load("mnist")
    assert arrays.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert arrays.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert arrays.train_x.mean() == pytest.approx(33.318, abs=1e-3)


def _copy_mnist(tmp_path):
    folder = tmp_path / "mine" / "mnist"
    shutil.copytree(data.locate("mnist"), folder)
    return folder


def test_missing_dataset_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        data.locate("mnist", data_dir=str(tmp_path / "spec-dir"))
    text = str(err.value)
    for place in ("spec-dir/mnist", "nowhere/mnist", "cache/mnist", "bench data fetch mnist"):
        assert place in text


def test_wrong_checksum_is_refused(tmp_path, cache, monkeypatch):
    folder = _copy_mnist(tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] = (content[100] + 1) % 10        # one label changed
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: sha256 .* expected"):
        data.load("mnist", data_dir=str(tmp_path / "mine"))


def test_truncated_file_is_refused(tmp_path, cache):
    folder = _copy_mnist(tmp_path)
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100_000])
    with pytest.raises(DataError, match="damaged or truncated"):
        data.load("mnist", data_dir=str(tmp_path / "mine"))


def test_a_changed_source_is_verified_again_despite_the_cache(tmp_path, cache):
    folder = _copy_mnist(tmp_path)
    data.load("mnist", data_dir=str(tmp_path / "mine"))
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-10])
    with pytest.raises(DataError):
        data.load("mnist", data_dir=str(tmp_path / "mine"))


def test_cifar_reader_refuses_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))
    blob = pickle.dumps({b"data": Evil(), b"labels": [1]})
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        data.parse_cifar_batch(blob, tmp_path / "evil")


def test_missing_dataset_in_a_spec_fails_validation_and_trains_nothing(write_spec, cli, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    spec = write_spec("""
        name: t
        seeds: [0]
        experiments:
          e:
            problem: {name: mlp, data: mnist}
            optimizer: adam
            budget: {epochs: 1}
        """)
    assert cli("run", spec) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:5:" in err and "dataset 'mnist' not found" in err
    assert not (tmp_path / "results").exists()


def test_bench_data_path_and_list(cli, capsys):
    assert cli("data", "list") == 0
    assert "cifar10" in capsys.readouterr().out
    assert cli("data", "path", "mnist") == 0
    assert "mnist" in capsys.readouterr().out


def test_corrupted_dataset_in_a_spec_fails_validation_and_trains_nothing(write_spec, cli,
                                                                         tmp_path, cache, capsys):
    folder = _copy_mnist(tmp_path)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-100])          # truncated
    spec = write_spec(f"""
        name: t
        seeds: [0]
        data_dir: {tmp_path / "mine"}
        experiments:
          e:
            problem: {{name: logreg, data: mnist, subset: 100}}
            optimizer: adam
            budget: {{epochs: 1}}
        """)
    assert cli("run", spec) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:6:" in err and "train-labels-idx1-ubyte.gz" in err
    assert "truncated" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_fetch_cifar_verifies_the_archive_extracts_it_and_loads(tmp_path, monkeypatch):
    """`bench data fetch` on a small stand-in archive served from a file:// URL: md5 checked,
    extracted where the look-up finds it, digests recorded, then loaded and verified."""
    import dataclasses
    import hashlib
    import pickle
    import tarfile

    from bench.data_fetch import fetch
    rng = np.random.default_rng(0)
    source = tmp_path / "src" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(20)]}
        (source / name).write_bytes(pickle.dumps(batch, protocol=2))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="cifar-10-batches-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    fake = dataclasses.replace(data.DATASETS["cifar10"],
                               archive={"url": archive.as_uri(), "md5": md5})
    monkeypatch.setitem(data.DATASETS, "cifar10", fake)
    env = {"BENCH_CACHE": str(tmp_path / "cache")}
    folder = fetch("cifar10", env=env)
    assert folder == data.locate("cifar10", env=env)
    arrays = data.load("cifar10", env=env)
    assert arrays.train_x.shape == (100, 3, 32, 32) and arrays.test_y.tolist()[:3] == [0, 1, 2]
    bad = dataclasses.replace(fake, archive={"url": archive.as_uri(), "md5": "0" * 32})
    monkeypatch.setitem(data.DATASETS, "cifar10", bad)
    with pytest.raises(DataError, match="not the published"):
        fetch("cifar10", env={"BENCH_CACHE": str(tmp_path / "other")})
