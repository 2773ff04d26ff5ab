"""Generate the embedded ``mini`` dataset offline, deterministically from a seed.

Anatomy is real: the MNI ICBM152 2009a symmetric T1 template and its grey/white matter maps,
read straight from nilearn's wheel (1 mm, RAS+). Each case resamples them onto its own
anisotropic grid through a small random affine, derives four labels (grey matter, white
matter, lateral ventricle, implanted tumour), and stores the image in either RAS or LPS axis
order so that readers must canonicalise. Each case also gets an X-ray-like lateral projection
(a ``1 x Y x Z`` volume, as the official code stores 2D cephalograms) with four drawn landmark
markers whose positions are written to a landmark JSON.

Everything analytic is also written to ``truth.json`` (tumour ellipsoids in mm, landmark
positions, distances and angles) so tests can check the planners against independent values.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial.transform import Rotation

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
LABELS = {"grey matter": 1, "white matter": 2, "lateral ventricle": 3, "brain tumour": 4}
MARKERS = ("cross", "ring", "square", "x")


class MiniDataError(RuntimeError):
    """The template files needed by the generator are not available."""


@dataclass(frozen=True)
class Template:
    """The MNI152 template on its 1 mm RAS+ grid (arrays of shape (X, Y, Z), float32)."""

    t1: NDArray[np.float32]
    gm: NDArray[np.float32]
    wm: NDArray[np.float32]
    vent: NDArray[np.float32]
    affine: NDArray[np.float64]


def template_dir() -> Path:
    """Return the folder of nilearn's packaged data without importing nilearn (it is slow).

    Raises:
        MiniDataError: If nilearn is not installed.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise MiniDataError(
            "the mini dataset needs the MNI152 template shipped in nilearn's wheel: "
            "pip install nilearn"
        )
    return Path(spec.origin).parent / "datasets" / "data"


def load_template() -> Template:
    """Load the template T1, GM and WM maps, cropped to the head plus a margin."""
    folder = template_dir()
    arrays: dict[str, NDArray[np.float32]] = {}
    affine: NDArray[np.float64] | None = None
    for key, name in TEMPLATE_FILES.items():
        path = folder / name
        if not path.exists():
            raise MiniDataError(f"template file missing: {path}")
        img = nib.as_closest_canonical(nib.load(path))  # type: ignore[no-untyped-call]
        arrays[key] = np.asarray(img.get_fdata(dtype=np.float32))
        affine = np.asarray(img.affine, dtype=np.float64)
    assert affine is not None
    # The sym 09a maps are stored as uint8 0..255 probabilities; bring them to 0..1.
    for key in ("gm", "wm"):
        arrays[key] = arrays[key] / max(float(arrays[key].max()), 1.0)
    head = arrays["t1"] > 0.1 * float(arrays["t1"].max())
    lo = np.maximum(np.argwhere(head).min(axis=0) - 4, 0)
    hi = np.argwhere(head).max(axis=0) + 5
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    t1, gm, wm = arrays["t1"][crop], arrays["gm"][crop], arrays["wm"][crop]
    return Template(t1=t1, gm=gm, wm=wm, vent=_ventricles(t1, gm, wm), affine=shifted)


def _ventricles(
    t1: NDArray[np.float32], gm: NDArray[np.float32], wm: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Lateral ventricles on the 1 mm template: dark CSF enclosed by tissue in axial slices.

    The template has no CSF label; the ventricles are the large dark holes of the tissue
    mask near the midline (the two largest such components, left and right).
    """
    tissue = (gm + wm) > 0.5
    enclosed = np.zeros_like(tissue)
    for k in range(tissue.shape[2]):
        enclosed[:, :, k] = ndimage.binary_fill_holes(tissue[:, :, k])
    csf = enclosed & ~tissue & (t1 < 0.35 * float(t1.max()))
    comp, n = ndimage.label(csf)
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    sizes[0] = 0
    centre = np.array(t1.shape) / 2.0
    keep = []
    for idx in np.argsort(sizes)[::-1][:6]:
        com = np.array(ndimage.center_of_mass(comp == idx))
        # Lateral ventricles sit off the midline (|dx| > 5 mm) in the central block.
        if sizes[idx] > 1000 and abs(com[0] - centre[0]) > 5 and abs(com[1] - centre[1]) < 30:
            keep.append(idx)
    return np.isin(comp, keep[:2]).astype(np.float32)


def _resample_case(
    tpl: Template, rng: np.random.Generator
) -> tuple[dict[str, NDArray[np.float32]], NDArray[np.float64]]:
    """Resample the template onto a random anisotropic grid through a small random affine.

    Returns:
        The resampled maps (shape (X', Y', Z')) and the RAS+ affine of the new grid (mm).
    """
    spacing = np.array([rng.uniform(1.3, 1.7), rng.uniform(1.3, 1.7), rng.uniform(1.8, 2.4)])
    extent_mm = np.array(tpl.t1.shape, dtype=float)  # template voxels are 1 mm
    shape = tuple(int(s) for s in np.ceil(extent_mm / spacing))
    rot = Rotation.from_euler("z", rng.uniform(-6, 6), degrees=True).as_matrix()
    scale = np.diag(rng.uniform(0.93, 1.07, size=3))
    deform = rot @ scale
    centre = extent_mm / 2.0
    shift = rng.uniform(-3, 3, size=3)
    # Output voxel v -> mm p = v * spacing; template index = deform^-1 (p - c - shift) + c.
    inv = np.linalg.inv(deform)
    matrix = inv @ np.diag(spacing)
    offset = centre - inv @ (centre + shift)
    out = {
        key: ndimage.affine_transform(
            getattr(tpl, key), matrix, offset=offset, output_shape=shape, order=1
        ).astype(np.float32)
        for key in ("t1", "gm", "wm", "vent")
    }
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = tpl.affine[:3, 3]
    return out, affine


def _labels(maps: dict[str, NDArray[np.float32]]) -> NDArray[np.uint8]:
    """Grey matter, white matter and lateral ventricles from the resampled maps."""
    gm, wm = maps["gm"], maps["wm"]
    labels = np.zeros(gm.shape, dtype=np.uint8)
    tissue = (gm + wm) > 0.5
    labels[tissue & (gm > wm)] = LABELS["grey matter"]
    labels[tissue & (wm >= gm)] = LABELS["white matter"]
    labels[maps["vent"] > 0.5] = LABELS["lateral ventricle"]
    return labels


def _implant_tumours(
    t1: NDArray[np.float32],
    labels: NDArray[np.uint8],
    spacing: NDArray[np.float64],
    rng: np.random.Generator,
    n: int,
) -> list[dict[str, Any]]:
    """Implant ``n`` rotated ellipsoids inside white matter; return their analytic description.

    A voxel belongs to a tumour when its centre (in mm) lies inside the ellipsoid.
    """
    tumours: list[dict[str, Any]] = []
    wm_core = ndimage.binary_erosion(labels == LABELS["white matter"], iterations=4)
    candidates = np.argwhere(wm_core)
    grid_mm = [np.arange(s, dtype=np.float64) * sp for s, sp in zip(t1.shape, spacing, strict=True)]
    for _ in range(n):
        centre_mm = candidates[rng.integers(len(candidates))] * spacing
        semi_mm = np.sort(rng.uniform(9.0, 18.0, size=3))[::-1]
        rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
        # Quadratic form Q so that (p - c)^T Q (p - c) <= 1 inside the ellipsoid.
        q = rot @ np.diag(1.0 / semi_mm**2) @ rot.T
        lo = np.maximum(((centre_mm - semi_mm.max()) / spacing).astype(int) - 1, 0)
        hi = np.minimum(((centre_mm + semi_mm.max()) / spacing).astype(int) + 2, t1.shape)
        sub = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        d = (
            np.stack(
                np.meshgrid(*(g[s] for g, s in zip(grid_mm, sub, strict=True)), indexing="ij"), -1
            )
            - centre_mm
        )
        inside = np.einsum("...i,ij,...j->...", d, q, d) <= 1.0
        labels[sub][inside] = LABELS["brain tumour"]
        t1[sub][inside] = t1[sub][inside] * 0.45 + 0.05 * float(t1.max())
        tumours.append(
            {
                "centre_mm": centre_mm.tolist(),
                "semi_axes_mm": semi_mm.tolist(),
                "rotation": rot.tolist(),
            }
        )
    return tumours


def _draw_marker(img: NDArray[np.float32], rc: tuple[int, int], kind: str, value: float) -> None:
    """Draw a 9 x 9 pixel marker of the given kind centred on ``rc`` (row, col)."""
    r, c = rc
    yy, xx = np.mgrid[-4:5, -4:5]
    shapes = {
        "cross": (np.abs(yy) <= 0) | (np.abs(xx) <= 0),
        "ring": np.abs(np.hypot(yy, xx) - 3.2) < 0.9,
        "square": (np.abs(yy) <= 3) & (np.abs(xx) <= 3),
        "x": (np.abs(yy - xx) <= 0) | (np.abs(yy + xx) <= 0),
    }
    patch = img[r - 4 : r + 5, c - 4 : c + 5]
    patch[shapes[kind]] = value


def _projection(
    t1: NDArray[np.float32], spacing: NDArray[np.float64], rng: np.random.Generator
) -> tuple[NDArray[np.float32], dict[str, list[int]], dict[str, Any]]:
    """X-ray-like lateral projection with four markers; landmark indices and analytic truth."""
    # (Y, Z): rows anterior, cols superior (the official raw indexing of a sagittal slice).
    proj = np.clip(t1, 0.0, None).mean(axis=0)
    proj = (proj / max(float(proj.max()), 1e-6)) ** 0.7 * 900.0
    sp = spacing[1:]
    head = np.argwhere(proj > 0.25 * proj.max())
    head = head[
        (head[:, 0] > 8)
        & (head[:, 1] > 8)
        & (head[:, 0] < proj.shape[0] - 9)
        & (head[:, 1] < proj.shape[1] - 9)
    ]
    for _attempt in range(1000):
        pts = head[rng.choice(len(head), size=4, replace=False)]
        mm = pts * sp
        dists = [np.linalg.norm(mm[i] - mm[j]) for i in range(4) for j in range(i + 1, 4)]
        v1, v2 = mm[1] - mm[0], mm[3] - mm[2]
        cos = abs(v1 @ v2) / (np.linalg.norm(v1) * np.linalg.norm(v2))
        if min(dists) > 25.0 and cos < np.cos(np.radians(10)):
            break
    else:  # pragma: no cover - the head region is large; a failure means a broken template
        raise MiniDataError("could not place four separated landmarks")
    out = proj.astype(np.float32)
    for p, kind in zip(pts, MARKERS, strict=True):
        _draw_marker(out, (int(p[0]), int(p[1])), kind, 1200.0)
    landmarks = {f"P{i + 1}": [0, int(p[0]), int(p[1])] for i, p in enumerate(pts)}
    truth = {"landmarks_mm": {k: (np.array(v[1:]) * sp).tolist() for k, v in landmarks.items()}}
    return out[None], landmarks, truth


def _to_lps(
    array: NDArray[Any], affine: NDArray[np.float64]
) -> tuple[NDArray[Any], NDArray[np.float64]]:
    """Flip the first two axes so the file is stored LPS (readers must canonicalise)."""
    flipped = array[::-1, ::-1, :]
    new = affine.copy()
    for ax in (0, 1):
        new[:, 3] = new[:, 3] + new[:, ax] * (array.shape[ax] - 1)
        new[:, ax] = -new[:, ax]
    return np.ascontiguousarray(flipped), new


def _save(array: NDArray[Any], affine: NDArray[np.float64], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(array, affine)  # type: ignore[no-untyped-call]
    img.set_qform(affine, code=1)  # type: ignore[no-untyped-call]
    img.set_sform(affine, code=1)  # type: ignore[no-untyped-call]
    nib.save(img, str(path))


def generate_mini(out_dir: str | Path, *, n_cases: int = 8, seed: int = 0) -> Path:
    """Write the mini source dataset (NIfTI images, masks, landmark JSON, truth.json).

    Layout (matching the ``mini`` catalog entry)::

        out_dir/Images-MR/case_000.nii.gz   T1 volume, int16, RAS or LPS on disk
        out_dir/Masks/case_000.nii.gz       labels 1..4, uint8, same grid
        out_dir/Images-XR/case_000.nii.gz   projection, shape (1, Y, Z), RAS
        out_dir/Landmarks/case_000.json     {"landmarks": {"P1": [0, row, col], ...}}
        out_dir/truth.json                  analytic tumours (mm) and landmark geometry

    Args:
        out_dir: Destination folder (created).
        n_cases: Number of cases.
        seed: Seed; the same seed gives byte-identical files.

    Returns:
        ``out_dir`` as a Path.
    """
    root = Path(out_dir)
    tpl = load_template()
    truth: dict[str, Any] = {"seed": seed, "cases": {}}
    for index in range(n_cases):
        rng = np.random.default_rng([seed, index])
        case = f"case_{index:03d}"
        maps, affine = _resample_case(tpl, rng)
        spacing = np.abs(np.diag(affine)[:3])
        labels = _labels(maps)
        t1 = maps["t1"]
        tumours = _implant_tumours(t1, labels, spacing, rng, n=1 + index % 2)
        t1 = t1 + rng.normal(0.0, 0.01 * float(t1.max()), size=t1.shape).astype(np.float32)
        image = np.clip(t1 / max(float(t1.max()), 1e-6) * 1000.0, 0, None).astype(np.int16)
        proj, landmarks, proj_truth = _projection(t1, spacing, rng)
        store_lps = index % 2 == 1
        img_arr, img_aff = _to_lps(image, affine) if store_lps else (image, affine)
        lab_arr, lab_aff = _to_lps(labels, affine) if store_lps else (labels, affine)
        _save(img_arr, img_aff, root / "Images-MR" / f"{case}.nii.gz")
        _save(lab_arr, lab_aff, root / "Masks" / f"{case}.nii.gz")
        xr_aff = np.diag([1.0, spacing[1], spacing[2], 1.0])
        _save(proj.astype(np.int16), xr_aff, root / "Images-XR" / f"{case}.nii.gz")
        (root / "Landmarks").mkdir(parents=True, exist_ok=True)
        (root / "Landmarks" / f"{case}.json").write_text(json.dumps({"landmarks": landmarks}))
        truth["cases"][case] = {
            "spacing_mm": spacing.tolist(),
            "stored_lps": store_lps,
            "tumours": tumours,
            **proj_truth,
        }
    (root / "truth.json").write_text(json.dumps(truth, indent=1))
    return root
