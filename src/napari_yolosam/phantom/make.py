"""Synthetic short-axis LGE slices and stacks, with semi-automatic-style label noise.

The phantom is the project's own data: every core test can run on it, and it
is the npe2 sample. Label values follow EMIDEC (1 blood pool, 2 healthy
myocardium, 3 scar, 4 no-reflow), so :meth:`LabelSpec.emidec` applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..labelspec import LabelSpec
from ..stack import Stack

BLOOD_POOL, MYOCARDIUM, SCAR, NO_REFLOW = 1, 2, 3, 4
CORRUPTIONS = ("nsd_over", "fwhm_under", "dilate", "erode", "drop", "spurious", "jitter")

# Relative intensities of an inversion-recovery LGE image (healthy myocardium nulled).
INTENSITY = {
    "background": 0.02,
    "body": 0.30,
    "lung": 0.06,
    "fat": 0.62,
    "rv_blood": 0.50,
    "blood": 0.55,
    "myocardium": 0.10,
    "scar": 0.85,
    "no_reflow": 0.14,
}


@dataclass
class ScarSector:
    """A scar territory: centre angle and half-width (radians), transmural extent 0..1."""

    angle: float
    half_width: float
    transmurality: float
    no_reflow: bool = False


@dataclass
class Corruption:
    """How one slice's label was corrupted, and its Dice against the truth afterwards."""

    slice: int
    name: str
    kind: str
    params: dict = field(default_factory=dict)
    dice: float = 1.0


@dataclass
class Phantom:
    """A phantom stack: ``stack`` holds the (possibly corrupted) labels, ``truth`` the clean ones."""

    stack: Stack
    truth: np.ndarray
    corruptions: list[Corruption]

    @property
    def corrupted(self) -> np.ndarray:
        """Boolean per slice: was its label corrupted?"""
        flags = np.zeros(len(self.stack), dtype=bool)
        for c in self.corruptions:
            flags[c.slice] = True
        return flags

    def corruption_records(self) -> list[dict]:
        """The corruptions as plain dictionaries (JSON)."""
        return [asdict(c) for c in self.corruptions]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def _angle_diff(theta: np.ndarray, centre: float) -> np.ndarray:
    return np.abs((theta - centre + np.pi) % (2 * np.pi) - np.pi)


def make_slice(
    rng: np.random.Generator,
    shape: tuple[int, int] = (256, 256),
    sectors: list[ScarSector] | None = None,
    radius_scale: float = 1.0,
    noise: float = 0.04,
    bias: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic short-axis LGE slice.

    Parameters
    ----------
    rng
        Random generator (reproducibility).
    shape
        Image shape; anatomy scales with the smaller side (256 px ~ EMIDEC).
    sectors
        Scar territories; ``None`` draws 0-3 at random.
    radius_scale
        LV size factor (smaller towards the apex).
    noise
        Rician noise sigma relative to blood-pool intensity.
    bias
        Amplitude of the smooth multiplicative bias field.

    Returns
    -------
    image, labels
        ``float32`` image scaled to 0..255 and ``uint8`` EMIDEC-style labels.
    """
    geometry = _geometry(rng, shape, radius_scale)
    image = _anatomy_image(rng, geometry)
    labels = np.zeros(shape, np.uint8)
    labels[geometry["blood"]] = BLOOD_POOL
    labels[geometry["myo"]] = MYOCARDIUM
    if sectors is None:
        sectors = random_sectors(rng, rng.integers(0, 4))
    for sector in sectors:
        _add_scar(rng, geometry, sector, image, labels)
    return _acquire(rng, geometry, image, noise, bias), labels


def _geometry(rng: np.random.Generator, shape: tuple[int, int], radius_scale: float) -> dict:
    """The LV: centre, polar coordinates, a slightly elliptical ring whose wall varies."""
    height, width = shape
    unit = min(shape) / 256.0
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy = height / 2 + rng.uniform(-12, 12) * unit
    cx = width / 2 + rng.uniform(-12, 12) * unit
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    r = np.hypot(dy, dx)
    r_in = (rng.uniform(22, 32) * radius_scale) * unit
    ellipse = 1 + rng.uniform(0, 0.12) * np.cos(2 * (theta - rng.uniform(0, np.pi)))
    thickness = rng.uniform(8, 13) * unit * (1 + 0.2 * np.cos(theta - rng.uniform(-np.pi, np.pi)))
    endo = r_in * ellipse
    epi = endo + thickness
    return {
        "shape": shape,
        "unit": unit,
        "yy": yy,
        "xx": xx,
        "cy": cy,
        "cx": cx,
        "dy": dy,
        "dx": dx,
        "theta": theta,
        "r": r,
        "r_in": r_in,
        "epi": epi,
        "blood": r < endo,
        "myo": (r >= endo) & (r < epi),
        "depth": np.clip((r - endo) / np.maximum(epi - endo, 1e-3), 0, 1),
    }


def _anatomy_image(rng: np.random.Generator, g: dict) -> np.ndarray:
    """Body, lung, epicardial fat, right ventricle, nulled myocardium and bright blood pool."""
    shape, unit, dy, dx, r, epi = g["shape"], g["unit"], g["dy"], g["dx"], g["r"], g["epi"]
    image = np.full(shape, INTENSITY["background"], np.float32)
    body = ((dy / (110 * unit)) ** 2 + ((dx + 8 * unit) / (125 * unit)) ** 2) < 1
    image[body] = (
        INTENSITY["body"]
        * (1 + 0.25 * ndi.gaussian_filter(rng.normal(0, 1, shape), 6 * unit) * 6)[body]
    )
    lung = body & (
        ((dy + 5 * unit) / (60 * unit)) ** 2 + ((dx - 70 * unit) / (35 * unit)) ** 2 < 1
    )
    image[lung] = INTENSITY["lung"]
    fat = (r >= epi) & (r < epi + 3 * unit) & (np.cos(g["theta"] - 2.2) > 0.2)
    image[fat] = INTENSITY["fat"]
    rv_centre = (g["cy"] - 6 * unit, g["cx"] - (g["r_in"] + 26 * unit))
    rv = ((g["yy"] - rv_centre[0]) / (28 * unit)) ** 2 + (
        (g["xx"] - rv_centre[1]) / (16 * unit)
    ) ** 2 < 1
    rv &= r >= epi + 2 * unit
    image[rv] = INTENSITY["rv_blood"]
    image[g["myo"]] = INTENSITY["myocardium"]
    image[g["blood"]] = INTENSITY["blood"]
    return image


def _add_scar(rng, g: dict, sector: ScarSector, image: np.ndarray, labels: np.ndarray) -> None:
    """One scar territory (and its no-reflow core), enhancement fading to a grey zone."""
    theta, depth = g["theta"], g["depth"]
    wobble = 1 + 0.15 * np.sin(3 * theta + sector.angle)
    extent = np.clip(sector.transmurality * wobble, 0.15, 1.0)
    in_sector = _angle_diff(theta, sector.angle) <= sector.half_width
    scar = g["myo"] & in_sector & (depth <= extent)
    labels[scar] = SCAR
    fade = 1 - 0.5 * np.clip(depth / np.maximum(extent, 1e-3), 0, 1) ** 2
    image[scar] = (INTENSITY["scar"] * rng.uniform(0.9, 1.05) * fade)[scar]
    if sector.no_reflow and sector.transmurality >= 0.5:
        core = scar & (_angle_diff(theta, sector.angle) <= sector.half_width * 0.4)
        core &= depth <= extent * 0.5
        labels[core] = NO_REFLOW
        image[core] = INTENSITY["no_reflow"]


def _acquire(rng, g: dict, image: np.ndarray, noise: float, bias: float) -> np.ndarray:
    """Blur, a smooth multiplicative bias field and Rician noise; scaled to 0..255."""
    height, width = g["shape"]
    yy, xx = g["yy"], g["xx"]
    image = ndi.gaussian_filter(image, 0.8 * g["unit"])
    coeffs = rng.uniform(-1, 1, size=4) * bias
    field_ = 1 + coeffs[0] * (yy / height - 0.5) + coeffs[1] * (xx / width - 0.5)
    field_ += coeffs[2] * (yy / height - 0.5) * (xx / width - 0.5) * 2 + coeffs[3] * (
        (yy / height - 0.5) ** 2
    )
    image *= np.clip(field_, 0.5, 1.5)
    sigma = noise * INTENSITY["blood"]
    shape = g["shape"]
    image = np.sqrt((image + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    return np.clip(image / 0.9 * 255, 0, 255).astype(np.float32)


def random_sectors(rng: np.random.Generator, count: int) -> list[ScarSector]:
    """``count`` random scar territories (subendocardial to transmural)."""
    return [
        ScarSector(
            angle=float(rng.uniform(-np.pi, np.pi)),
            half_width=float(rng.uniform(np.deg2rad(20), np.deg2rad(60))),
            transmurality=float(rng.uniform(0.3, 1.0)),
            no_reflow=bool(rng.random() < 0.35),
        )
        for _ in range(int(count))
    ]


def _case_sectors(rng: np.random.Generator, n_slices: int) -> list[list[ScarSector]]:
    """Scar territories per slice that persist over neighbouring slices, as infarcts do."""
    count = 0 if rng.random() < 0.15 else int(rng.integers(1, 4))
    territories = random_sectors(rng, count)
    per_slice: list[list[ScarSector]] = [[] for _ in range(n_slices)]
    for t in territories:
        length = int(rng.integers(max(1, n_slices // 2), n_slices + 1))
        start = int(rng.integers(0, n_slices - length + 1))
        for i in range(start, start + length):
            per_slice[i].append(
                ScarSector(
                    angle=t.angle + float(rng.normal(0, 0.08)),
                    half_width=max(0.15, t.half_width * float(rng.uniform(0.8, 1.15))),
                    transmurality=float(np.clip(t.transmurality + rng.normal(0, 0.1), 0.2, 1.0)),
                    no_reflow=t.no_reflow,
                )
            )
    return per_slice


def corrupt_label(
    image: np.ndarray, labels: np.ndarray, kind: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Corrupt one slice's scar label the way semi-automatic tools go wrong.

    ``nsd_over`` re-thresholds the myocardium at mean + n SD of the remote
    myocardium with a low n (1-2: over-segments); ``fwhm_under`` at a high
    fraction (55-75%) of the maximum myocardial intensity (under-segments the
    grey zone, as FWHM and high n-SD do); ``dilate`` and
    ``erode`` move the boundary; ``drop`` removes a scar component;
    ``spurious`` adds a blob in the blood pool; ``jitter`` makes the boundary
    ragged. All but ``spurious`` stay inside the myocardium, as thresholding
    tools do. Anatomy (blood pool, myocardium) is kept.
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; known: {CORRUPTIONS}")
    myo = np.isin(labels, (MYOCARDIUM, SCAR, NO_REFLOW))
    scar = np.isin(labels, (SCAR, NO_REFLOW))
    params: dict = {}
    if kind == "nsd_over":
        remote = myo & ~ndi.binary_dilation(scar, iterations=3)
        if remote.sum() < 10:
            remote = myo & ~scar
        values = image[remote] if remote.any() else image[myo]
        n = float(rng.uniform(1.0, 2.0))
        threshold = values.mean() + n * values.std()
        new = myo & (image > threshold)
        params = {"n": round(n, 2), "threshold": round(float(threshold), 2)}
    elif kind == "fwhm_under":
        fraction = float(rng.uniform(0.55, 0.75))
        threshold = fraction * float(image[myo].max(initial=0))
        new = myo & (image > threshold)
        params = {"fraction": round(fraction, 2), "threshold": round(float(threshold), 2)}
    elif kind in ("dilate", "erode"):
        k = int(rng.integers(2, 4))
        op = ndi.binary_dilation if kind == "dilate" else ndi.binary_erosion
        new = op(scar, iterations=k) & myo
        params = {"pixels": k}
    elif kind == "drop":
        comps, count = ndi.label(scar, structure=np.ones((3, 3)))
        new = scar.copy()
        if count:
            drop = int(rng.integers(1, count + 1))
            new[comps == drop] = False
            params = {"component": drop, "of": int(count)}
    elif kind == "spurious":
        pool = np.argwhere(labels == BLOOD_POOL)
        new = scar.copy()
        if len(pool):
            cy, cx = pool[rng.integers(len(pool))]
            radius = float(rng.uniform(3, 6)) * min(image.shape) / 256
            yy, xx = np.ogrid[: image.shape[0], : image.shape[1]]
            new |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
            params = {"centre": [int(cy), int(cx)], "radius": round(radius, 1)}
    else:  # jitter
        amplitude = float(rng.uniform(1.5, 3.0))
        noise = ndi.gaussian_filter(rng.normal(0, 1, image.shape), 2.0)
        noise /= noise.std() + 1e-6
        distance = ndi.distance_transform_edt(scar) - ndi.distance_transform_edt(~scar)
        new = ((distance + amplitude * noise) > 0) & myo
        params = {"amplitude": round(amplitude, 2)}
    out = labels.copy()
    out[scar] = MYOCARDIUM  # remove the old scar (it lay inside the myocardium)
    out[new & (out == 0)] = SCAR
    out[new] = np.where(np.isin(out[new], (BLOOD_POOL, MYOCARDIUM, SCAR)), SCAR, out[new])
    return out, params


def make_phantom(
    n_slices: int = 8,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    n_cases: int = 1,
    corrupt: float = 0.0,
    kinds: tuple[str, ...] = CORRUPTIONS,
    spacing: tuple[float, float] | None = (1.4, 1.4),
    thickness: float | None = 8.0,
    noise: float = 0.04,
) -> Phantom:
    """A phantom data set: ``n_cases`` cases of ``n_slices`` short-axis slices each.

    Parameters
    ----------
    corrupt
        Fraction of slices whose label is corrupted (0 keeps the truth). A
        corrupted slice gets one corruption from ``kinds``; corruptions that
        change nothing (e.g. ``drop`` on a slice without scar) are redrawn.
    seed
        Everything (anatomy, scar, noise, corruptions) follows from it.

    Returns
    -------
    Phantom
        ``stack`` (EMIDEC label values, names ``Phantom_Cxx_slicennn.png``),
        the true labels and the corruption record.
    """
    if not 0 <= corrupt <= 1:
        raise ValueError(f"corrupt must lie in 0..1, got {corrupt}")
    rng = np.random.default_rng(seed)
    images, truth, names = [], [], []
    for case in range(n_cases):
        per_slice = _case_sectors(rng, n_slices)
        for i in range(n_slices):
            scale = 1.0 - 0.35 * i / max(n_slices - 1, 1)
            image, labels = make_slice(rng, shape, per_slice[i], radius_scale=scale, noise=noise)
            images.append(image)
            truth.append(labels)
            names.append(f"Phantom_C{case + 1:02d}_slice{i:03d}.png")
    images_a = np.stack(images)
    truth_a = np.stack(truth)
    noisy = truth_a.copy()
    corruptions: list[Corruption] = []
    n_total = len(images)
    chosen = rng.choice(n_total, size=int(round(corrupt * n_total)), replace=False)
    for index in sorted(int(i) for i in chosen):
        true_scar = np.isin(truth_a[index], (SCAR, NO_REFLOW))
        for _ in range(10):
            kind = str(rng.choice(kinds))
            new, params = corrupt_label(images_a[index], truth_a[index], kind, rng)
            new_scar = np.isin(new, (SCAR, NO_REFLOW))
            if not np.array_equal(new_scar, true_scar):
                noisy[index] = new
                corruptions.append(
                    Corruption(
                        index, names[index], kind, params, round(_dice(new_scar, true_scar), 4)
                    )
                )
                break
    stack = Stack(
        images=images_a,
        labels=noisy,
        names=names,
        spec=LabelSpec.emidec(),
        spacing=spacing,
        thickness=thickness,
        slice_spacing=thickness,
        layout="memory",
    )
    return Phantom(stack=stack, truth=truth_a, corruptions=corruptions)
