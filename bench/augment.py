"""Batch data augmentation: the `augment` regularizer and the batched image transforms it uses.

Every transform works on a whole batch of images [N, C, H, W] at once (no per-image Python
loop), on the batch's device. All randomness is drawn from the cell's `torch.Generator` on the
CPU and then moved to the device, so a cell's augmented batches are the same on every device.

The images are normalised per channel by the training subset's mean and std
(`problems/imagedata.py`), so 0 is the average colour, not black: zero padding and the empty
border of a zoomed-out image are filled with the mean colour, and brightness offsets are in
units of a channel's standard deviation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from bench.regularizers import REGULARIZERS, Regularizer


# ---- random draws: on the CPU generator, then moved to the batch ----------------------------
def _uniform(count: int, low: float, high: float, generator: torch.Generator,
             like: torch.Tensor) -> torch.Tensor:
    """`count` draws from U[low, high], as float32 on the CPU (so the stream does not depend on
    the batch's dtype), then cast to the batch's dtype and device."""
    draw = torch.rand(count, generator=generator, dtype=torch.float32)
    return (low + (high - low) * draw).to(like.device, like.dtype)


def _per_image(values: torch.Tensor) -> torch.Tensor:
    """[N] → [N, 1, 1, 1], to broadcast one value per image over its pixels."""
    return values.view(-1, 1, 1, 1)


# ---- the transforms ---------------------------------------------------------------------------
def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad every image by `padding` pixels on each side, then cut an H×W window back out
    at an independent random offset per image (each of the (2·padding + 1)² offsets equally
    likely): every image is shifted by a whole number of pixels, at most `padding` each way.

    Exact (a copy of pixels, no interpolation); padding 0 returns `x` itself and draws nothing.
    """
    if padding == 0:
        return x
    n, c, h, w = x.shape
    shifts = 2 * padding + 1
    offsets = torch.randint(0, shifts, (n, 2), generator=generator).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    # every window of every padded image as a view [N, dy, dx, C, H, W] (no copy); picking one
    # window per image then copies whole images, several times faster than gathering pixels
    # through a per-pixel index
    image, channel, row, col = padded.stride()
    windows = padded.as_strided((n, shifts, shifts, c, h, w), (image, row, col, channel, row, col))
    return windows[torch.arange(n, device=x.device), offsets[:, 0], offsets[:, 1]]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left to right with probability ½, independently per image."""
    flipped = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(_per_image(flipped.to(x.device)), x.flip(-1), x)


def random_scale(x: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Zoom each image about its centre by a factor s ~ U[1 − scale, 1 + scale] drawn per
    image: s > 1 enlarges the middle of the image (its edges leave the frame), s < 1 shrinks it
    inside a border of zeros. Bilinear interpolation; s = 1 is the identity (to rounding)."""
    factors = _uniform(len(x), 1 - scale, 1 + scale, generator, x)
    theta = torch.zeros(len(x), 2, 3, dtype=x.dtype, device=x.device)
    # the output pixel at (normalised) position u samples the input at u / s
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / factors
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def brightness_contrast(x: torch.Tensor, brightness: float, contrast: float,
                        generator: torch.Generator) -> torch.Tensor:
    """Per image, scale the deviations from the image's mean (over all its channels and
    pixels) by c ~ U[1 − contrast, 1 + contrast] and add b ~ U[−brightness, brightness] to every
    pixel: the image's mean moves by exactly b and its standard deviation is multiplied by c."""
    offsets = _per_image(_uniform(len(x), -brightness, brightness, generator, x))
    factors = _per_image(_uniform(len(x), 1 - contrast, 1 + contrast, generator, x))
    means = x.mean(dim=(1, 2, 3), keepdim=True)
    return means + factors * (x - means) + offsets


def pca_colour(x: torch.Tensor, eigvecs: torch.Tensor, eigvals: torch.Tensor, std: float,
               generator: torch.Generator) -> torch.Tensor:
    """AlexNet's PCA colour augmentation (Krizhevsky et al. 2012, the lecture notes): add
    Σ_i α_i λ_i p_i to every pixel of an image, with α_i ~ N(0, std²) drawn per image and p_i,
    λ_i the eigenvectors (the columns of `eigvecs`, [C, C]) and eigenvalues (`eigvals`, [C]) of
    the covariance of the training pixels' channel values (`channel_covariance`). The offset is
    one colour per image, so it shifts the image along the data's principal colour directions.

    For 1-channel images p = [1] and λ is the pixel variance: a per-image brightness offset.
    """
    alphas = std * torch.randn(len(x), len(eigvals), generator=generator, dtype=torch.float32)
    eigvecs, eigvals = eigvecs.to(x.device, x.dtype), eigvals.to(x.device, x.dtype)
    weights = alphas.to(x.device, x.dtype) * eigvals   # [N, C]: α_i λ_i per image
    colours = weights @ eigvecs.T                      # row n: Σ_i α_ni λ_i p_i
    return x + colours.view(len(x), -1, 1, 1)


def channel_covariance(images: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """The C×C covariance of the channel values of every pixel of `images` [N, C, H, W], in
    float64; computed a chunk of images at a time so that a large training set is never
    copied whole (the channels-first reshape copies)."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64, device=images.device)
    products = torch.zeros(channels, channels, dtype=torch.float64, device=images.device)
    for part in images.split(chunk):
        pixels = part.transpose(0, 1).reshape(channels, -1).double()
        total += pixels.sum(1)
        products += pixels @ pixels.T
    count = images.numel() // channels
    mean = total / count
    return products / count - torch.outer(mean, mean)


# ---- the regularizer --------------------------------------------------------------------------
def _training_images(problem) -> torch.Tensor | None:
    """The problem's training images [N, C, H, W], or None when it has none."""
    images = getattr(getattr(getattr(problem, "data", None), "train", None), "x", None)
    return images if isinstance(images, torch.Tensor) and images.dim() == 4 else None


@REGULARIZERS.register("augment", sample={"flip": True})
@dataclass(frozen=True)
class Augment(Regularizer):
    """Random transforms of every training batch's images (labels unchanged, evaluation clean).

    Applied in this order, each only when switched on: crop, flip, scale, brightness and
    contrast, PCA colour. Each image gets its own random draws, from the cell's generator.
    Pixels are the normalised ones, so padding is the average colour and brightness is in
    units of a channel's standard deviation. `flip` is allowed on MNIST and Fashion-MNIST but
    a mirrored digit is often not a digit of its class (a 2 or a 7 mirrored): on those data
    sets it is a different, probably harmful, regularizer rather than a free one.

    Args:
        padding: ≥ 0 pixels: pad every side by this much and crop back to the image's size at
            a random offset per image (random translations of up to `padding` pixels; 4 is
            the usual choice for CIFAR-10). Smaller than the images. 0: no crop.
        flip: mirror each image left to right with probability ½.
        scale: 0 ≤ scale < 1: zoom each image about its centre by a factor drawn uniformly
            from [1 − scale, 1 + scale] (bilinear). 0: no zoom.
        brightness: ≥ 0: add b ~ U[−brightness, brightness] to every pixel of an image, in
            normalised units. 0: none.
        contrast: 0 ≤ contrast < 1: scale each image's deviations from its own mean by
            c ~ U[1 − contrast, 1 + contrast]. 0: none.
        pca_std: ≥ 0, the std of α in AlexNet's PCA colour augmentation: add Σ_i α_i λ_i p_i to
            every pixel of an image, p_i and λ_i the eigenvectors and eigenvalues of the
            covariance of the training pixels' channel values (AlexNet used 0.1; for 1-channel
            images a brightness offset of std pca_std × the pixel variance). 0: none.
    """
    padding: int = 0
    flip: bool = False
    scale: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    pca_std: float = 0.0
    # the training pixels' eigen-decomposition, set by build (the dataclass itself is frozen)
    eigen: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("padding", "scale", "brightness", "contrast", "pca_std"):
            if not getattr(self, name) >= 0:   # written so that NaN is refused too
                raise ValueError(f"augment {name} must be >= 0, got {getattr(self, name)}")
        for name in ("scale", "contrast"):
            if getattr(self, name) >= 1:   # a factor 1 − value ≤ 0 would erase or invert images
                raise ValueError(f"augment {name} must be < 1, got {getattr(self, name)}")
        if not (self.padding or self.flip or self.scale or self.brightness or self.contrast
                or self.pca_std):
            raise ValueError("augment with nothing to do: switch on at least one of padding "
                             "(e.g. 4), flip: true, scale, brightness, contrast or pca_std "
                             "(or use regularizer 'none')")

    def unsuitable(self, problem) -> str | None:
        images = _training_images(problem)
        if images is None:
            return "augment transforms images; this problem has no training images [N, C, H, W]"
        if self.padding >= min(images.shape[2:]):
            return (f"augment padding {self.padding} must be smaller than the "
                    f"{images.shape[2]}×{images.shape[3]} images")
        return None

    def build(self, problem, generator) -> None:
        if not self.pca_std:
            return
        images = _training_images(problem)
        if images is None:
            raise ValueError(self.unsuitable(problem))
        # eigh of a tiny symmetric matrix: on the CPU, in float64, then stored beside the data
        values, vectors = torch.linalg.eigh(channel_covariance(images).cpu())
        self.eigen.update(values=values.clamp(min=0).to(images.device, images.dtype),
                          vectors=vectors.to(images.device, images.dtype))

    def on_batch(self, inputs, targets, generator):
        x = inputs
        if self.padding:
            x = random_crop(x, self.padding, generator)
        if self.flip:
            x = random_flip(x, generator)
        if self.scale:
            x = random_scale(x, self.scale, generator)
        if self.brightness or self.contrast:
            x = brightness_contrast(x, self.brightness, self.contrast, generator)
        if self.pca_std:
            if not self.eigen:
                raise RuntimeError("augment pca_std needs build(problem, generator) first")
            x = pca_colour(x, self.eigen["vectors"], self.eigen["values"], self.pca_std, generator)
        return x, targets
