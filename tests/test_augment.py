"""The `augment` regularizer and its batched image transforms: exact shifts and mirrors,
seeded draws, the ranges of brightness, contrast and zoom, AlexNet's PCA colour offsets, the
checks on its parameters and problems, and a real MNIST batch and training run."""
from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch

from bench.augment import (
    Augment,
    brightness_contrast,
    channel_covariance,
    pca_colour,
    random_crop,
    random_flip,
    random_scale,
)
from bench.cell import Cell
from bench.registry import param_docs
from bench.regularizers import REGULARIZERS
from bench.train import build_problem
from problems import PROBLEMS
from problems.base import Context


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n=64, c=3, h=8, w=8, seed=1) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=gen(seed))


def fake_problem(x: torch.Tensor):
    """Just what augment reads of an image problem: its training images."""
    return SimpleNamespace(data=SimpleNamespace(train=SimpleNamespace(x=x)))


# ---- crop ------------------------------------------------------------------------------------
def test_crop_moves_a_lone_bright_pixel_by_whole_pixels_within_the_padding():
    x = torch.zeros(1000, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0   # the centre: never cropped away with padding 3
    out = random_crop(x, 3, gen())
    assert out.shape == x.shape and torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(1000))
    where = out[:, 0].flatten(1).argmax(1)
    shifts = set(zip((where // 9 - 4).tolist(), (where % 9 - 4).tolist()))
    assert shifts == {(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)}   # all 49 occur


def test_crop_is_a_window_of_the_zero_padded_image_same_for_every_channel():
    x, p = images(n=32), 2
    out = random_crop(x, p, gen())
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    for image, result in zip(padded, out):
        windows = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                   if torch.equal(image[:, dy:dy + 8, dx:dx + 8], result)]
        assert len(windows) == 1


def test_crop_with_no_padding_is_the_batch_itself():
    x = images()
    assert torch.equal(random_crop(x, 0, gen()), x)


# ---- flip ------------------------------------------------------------------------------------
def test_flip_mirrors_about_half_of_the_images_and_leaves_the_rest():
    x = images(n=2000, h=4, w=5)
    out = random_flip(x, gen())
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())   # random images: never both
    assert 900 < int(mirrored.sum()) < 1100


# ---- scale -----------------------------------------------------------------------------------
def test_scale_zero_is_the_identity():
    x = images()
    assert torch.allclose(random_scale(x, 0.0, gen()), x, atol=1e-6, rtol=0)


def test_scale_zooms_about_the_centre():
    """The centre pixel of an odd-sized image maps to itself at any zoom; the rest moves."""
    x = images(h=9, w=9)
    out = random_scale(x, 0.5, gen())
    assert torch.allclose(out[..., 4, 4], x[..., 4, 4], atol=1e-6, rtol=0)
    assert not torch.allclose(out, x, atol=1e-2)


# ---- brightness and contrast -----------------------------------------------------------------
def test_brightness_shifts_each_mean_within_its_range_and_keeps_the_rest():
    x = images(n=500)
    out = brightness_contrast(x, 0.3, 0.0, gen())
    shift = (out - x).mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.3 + 1e-6 and shift.max() > 0.25 and shift.min() < -0.25
    # one offset per image: every pixel moved by the same amount
    assert torch.allclose(out - x, shift.view(-1, 1, 1, 1).expand_as(x), atol=1e-5)


def test_contrast_scales_each_spread_within_its_range_about_the_same_mean():
    x = images(n=500)
    out = brightness_contrast(x, 0.0, 0.4, gen())
    factor = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert factor.min() >= 0.6 - 1e-5 and factor.max() <= 1.4 + 1e-5
    assert factor.min() < 0.65 and factor.max() > 1.35
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)


# ---- PCA colour ------------------------------------------------------------------------------
def rotation(seed=3) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen(seed), dtype=torch.float64))
    return q


def test_pca_adds_one_colour_per_image_in_the_span_of_the_weighted_eigenvectors():
    """λ₃ = 0: the offset has no component along p₃ (so it lies in the span of p₁ and p₂)."""
    vectors, values = rotation().float(), torch.tensor([1.5, 0.4, 0.0])
    x = images(n=200, h=5, w=6)
    offset = pca_colour(x, vectors, values, 0.1, gen()) - x
    colour = offset[:, :, :1, :1]
    assert torch.allclose(offset, colour.expand_as(offset), atol=1e-6)
    along = colour.flatten(1) @ vectors   # the coordinates of each colour on p_1, p_2, p_3
    assert along[:, 2].abs().max() < 1e-6 and along[:, :2].abs().min(0).values.max() > 0


def test_pca_offsets_have_covariance_std_squared_p_lambda_squared_p_transposed():
    vectors, values, std = rotation().float(), torch.tensor([2.0, 0.5, 0.1]), 0.3
    x = torch.zeros(20000, 3, 1, 1)
    colours = pca_colour(x, vectors, values, std, gen()).flatten(1).double()
    expected = std ** 2 * vectors.double() @ torch.diag(values.double() ** 2) @ vectors.double().T
    assert torch.linalg.norm(torch.cov(colours.T) - expected) / torch.linalg.norm(expected) < 0.05


def test_build_decomposes_the_training_pixels_covariance():
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.3, 0.2]])
    train = torch.einsum("ij,njhw->nihw", mix, torch.randn(300, 3, 8, 8, generator=gen(5)))
    pixels = train.transpose(0, 1).reshape(3, -1).double()
    assert torch.allclose(channel_covariance(train, chunk=128), torch.cov(pixels, correction=0),
                          atol=1e-10)
    augment = Augment(pca_std=0.1)
    augment.build(fake_problem(train), gen())
    p, lam = augment.eigen["vectors"].double(), augment.eigen["values"].double()
    assert torch.allclose(p @ torch.diag(lam) @ p.T, torch.cov(pixels), atol=1e-3)


def test_pca_on_one_channel_is_a_brightness_offset_scaled_by_the_variance():
    train = 2.0 * torch.randn(500, 1, 6, 6, generator=gen(6))   # variance ≈ 4
    augment = Augment(pca_std=0.1)
    augment.build(fake_problem(train), gen())
    assert augment.eigen["vectors"].abs().item() == pytest.approx(1.0)
    assert augment.eigen["values"].item() == pytest.approx(float(train.var()), rel=1e-4)
    out, _ = augment.on_batch(torch.zeros(4000, 1, 6, 6), torch.zeros(4000), gen())
    assert float(out.flatten(1).std(1).max()) < 1e-6   # one offset per image
    assert float(out[:, 0, 0, 0].std()) == pytest.approx(0.1 * float(train.var()), rel=0.05)


# ---- the regularizer -------------------------------------------------------------------------
EVERYTHING = dict(padding=2, flip=True, scale=0.2, brightness=0.2, contrast=0.3, pca_std=0.1)


def everything_built() -> Augment:
    augment = Augment(**EVERYTHING)
    augment.build(fake_problem(images(n=100, seed=9)), gen())
    return augment


def test_a_seed_gives_its_batch_another_seed_another_and_labels_are_kept():
    augment, x, y = everything_built(), images(), torch.arange(64)
    first, labels = augment.on_batch(x, y, gen(0))
    again, _ = augment.on_batch(x, y, gen(0))
    other, _ = augment.on_batch(x, y, gen(1))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert labels is y and torch.equal(y, torch.arange(64))
    assert (first.shape, first.dtype, first.device) == (x.shape, x.dtype, x.device)
    assert not torch.allclose(first, x)


def test_float64_batches_stay_float64():
    x = images().double()
    out, _ = everything_built().on_batch(x, None, gen())
    assert out.dtype == torch.float64


@pytest.mark.parametrize("params, message", [
    ({"padding": -1}, "padding must be >= 0"),
    ({"flip": True, "brightness": -0.1}, "brightness must be >= 0"),
    ({"pca_std": float("nan")}, "pca_std must be >= 0"),
    ({"scale": 1.0}, "scale must be < 1"),
    ({"contrast": 1.5}, "contrast must be < 1"),
    ({}, "nothing to do"),
    ({"padding": 0, "flip": False, "scale": 0.0}, "nothing to do"),
])
def test_bad_parameters_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        Augment(**params)


def test_registered_with_every_parameter_documented():
    entry = REGULARIZERS.get("augment")
    assert entry.factory is Augment and entry.factory(**entry.sample).flip
    docs = param_docs(inspect.getdoc(Augment))
    assert [p.name for p in entry.parameters() if not docs.get(p.name)] == []


def test_unsuitable_without_images():
    ctx = Context(0, torch.device("cpu"), gen(), None)
    quadratic = PROBLEMS.get("quadratic").factory(ctx, dim=2, kappa=10.0)
    assert "no training images" in Augment(flip=True).unsuitable(quadratic)
    flat = fake_problem(torch.zeros(10, 784))   # a data set of vectors, not images
    assert "no training images" in Augment(flip=True).unsuitable(flat)
    assert "smaller than" in Augment(padding=8).unsuitable(fake_problem(torch.zeros(2, 1, 8, 8)))


@pytest.fixture(scope="module")
def mnist_mlp():
    ctx = Context(0, torch.device("cpu"), gen(), 32)
    return PROBLEMS.get("mlp").factory(ctx, data="mnist", subset=256, test_subset=128)


def test_on_a_real_mnist_batch(mnist_mlp):
    augment = Augment(padding=2, flip=True, pca_std=0.1)
    assert augment.unsuitable(mnist_mlp) is None
    generator = gen()
    augment.build(mnist_mlp, generator)
    # normalised pixels: their variance, the one eigenvalue, is about 1
    assert float(augment.eigen["values"]) == pytest.approx(1.0, rel=0.01)
    x, y = mnist_mlp.inputs(mnist_mlp.sample_batch(generator))
    out, labels = augment.on_batch(x, y, generator)
    assert out.shape == x.shape == (32, 1, 28, 28) and labels is y
    assert not torch.allclose(out, x) and torch.isfinite(out).all()
    assert torch.isfinite(mnist_mlp.criterion(mnist_mlp.forward(out), labels))


def test_a_cell_builds_augment_into_its_problem():
    """The suite's own path (a cell's choice → registry → build hook), without the optimizer
    (whose first use imports torch._dynamo: seconds, in a test meant to be quick)."""
    problem = {"name": "mlp", "params": {"data": "mnist", "hidden": [16], "subset": 256,
                                         "test_subset": 128}}
    regularizer = {"name": "augment", "params": {"padding": 2, "flip": True, "pca_std": 0.1}}
    cell = Cell.build("t", {"steps": 4, "eval_every": 4}, problem=problem, batch_size=32,
                      optimizer={"name": "sgd", "params": {"lr": 0.1}},
                      regularizer=regularizer, seed=0)
    built, augment, generator = build_problem(cell, torch.device("cpu"))
    assert augment == Augment(padding=2, flip=True, pca_std=0.1) and augment.eigen
    x, y = built.inputs(built.sample_batch(generator))
    out, labels = augment.on_batch(x, y, generator)
    assert out.shape == x.shape and labels is y and not torch.equal(out, x)
