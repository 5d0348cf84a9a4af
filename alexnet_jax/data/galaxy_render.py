"""How one synthetic galaxy is drawn and rendered: the physics behind `alexnet_jax.data.synthetic`.

1. draw the galaxy's physical parameters from its class (overlapping class-conditional
   distributions; see `docs/synthetic.md`): Sersic bulge, exponential disc seen at some
   inclination, logarithmic spiral arms with star-forming knots, bar, ring, dust lane,
   clumps, tidal tails, second nucleus;
2. render surface brightness in g, r and i (nanomaggies per 0.396" pixel) on an
   oversampled grid of the native cut-out, add neighbour galaxies and foreground stars;
3. convolve with a Moffat PSF (seeing 1.0-1.6"), bin to native pixels, saturate, add sky
   and photon noise;
4. asinh-stretch i, r, g -> R, G, B (Lupton et al. 2004), JPEG-compress at native size, and
   resize to `image_size` as the paper resized its JPEGs to 256 x 256.

`render_example(label, rng, image_size)` does all four from one random stream. Any change
to the pixels for a given stream needs a new `synthetic.GENERATOR_VERSION`.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage, signal

from alexnet_jax.data.galaxy_params import (
    DISPLAY_SCALES,
    DUST_RELATIVE,
    ELECTRONS_PER_NMGY,
    PIXEL_ARCSEC,
    SATURATION_NMGY,
    SEEING_RELATIVE,
    SKY_NMGY,
    STRETCH_Q,
    STRETCH_SOFTENING,
    draw_parameters,
    r90_arcsec,
)

# --------------------------------------------------------------------------------------
# Photometry helpers


def _fluxes(r_flux: float, g_r: float, r_i: float) -> np.ndarray:
    """(g, r, i) fluxes in nanomaggies from an r flux and two colours."""
    return np.array([r_flux * 10 ** (-0.4 * g_r), r_flux, r_flux * 10 ** (0.4 * r_i)], np.float32)


def _mag_to_nmgy(mag: float) -> float:
    return 10 ** (-0.4 * (mag - 22.5))


def sersic_b(n: float) -> float:
    """b_n such that R_e encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2) + 131 / (1148175 * n**3) - 2194697 / (30690717750 * n**4)


def sersic_total(n: float, re: float, q: float) -> float:
    """Total flux of a Sersic profile with I(R_e) = 1 and axis ratio q."""
    b = sersic_b(n)
    return 2 * math.pi * q * re**2 * n * math.exp(b + math.lgamma(2 * n) - 2 * n * math.log(b))


class _Grid:
    """Sample points of a native n x n cut-out, oversampled `os` times, in native pixels."""

    def __init__(self, native: int, oversample: int, arcsec: float = PIXEL_ARCSEC):
        self.native, self.os, self.arcsec = native, oversample, arcsec
        self.n = native * oversample
        self.coords = ((np.arange(self.n, dtype=np.float32) + 0.5) / oversample - native / 2).astype(np.float32)

    def window(self, cx: float, cy: float, half: float):
        """Index slices and coordinates of the sub-grid within `half` pixels of (cx, cy)."""
        c = self.coords
        xs = slice(int(np.searchsorted(c, cx - half)), int(np.searchsorted(c, cx + half)))
        ys = slice(int(np.searchsorted(c, cy - half)), int(np.searchsorted(c, cy + half)))
        return ys, xs, c[xs][None, :] - cx, c[ys][:, None] - cy

    def index(self, x: np.ndarray, y: np.ndarray):
        """Grid indices of points (x, y), and a mask of those inside the grid."""
        ix = np.floor((x + self.native / 2) * self.os).astype(np.int64)
        iy = np.floor((y + self.native / 2) * self.os).astype(np.int64)
        inside = (ix >= 0) & (ix < self.n) & (iy >= 0) & (iy < self.n)
        return iy[inside], ix[inside], inside


def _rotate(dx, dy, pa_rad):
    """Coordinates along (x') and across (y') a major axis at position angle pa."""
    c, s = math.cos(pa_rad), math.sin(pa_rad)
    return dx * c + dy * s, -dx * s + dy * c


def _deposit(maps: np.ndarray, grid: _Grid, x, y, fluxes) -> None:
    """Add point fluxes (k, 3) at positions (x, y) into an (n, n, 3) surface-brightness map."""
    iy, ix, inside = grid.index(np.asarray(x), np.asarray(y))
    if len(iy):
        per_sample = np.asarray(fluxes, np.float32)[inside] * grid.os**2  # flux -> per native px^2
        np.add.at(maps, (iy[:, None], ix[:, None], np.arange(3)[None, :]), per_sample)


def _smooth_field(rng, n: int, sigma: float) -> np.ndarray:
    """A Gaussian random field with unit variance and correlation length ~sigma samples."""
    small = max(8, int(round(n / max(sigma / 2, 1.0))))
    field = rng.standard_normal((small, small)).astype(np.float32)
    field = ndimage.gaussian_filter(field, small * sigma / n, mode="wrap")
    field = ndimage.zoom(field, n / small, order=1, mode="grid-wrap", grid_mode=True)[:n, :n]
    return (field - field.mean()) / (field.std() + 1e-6)


# --------------------------------------------------------------------------------------
# Rendering


def _render_galaxy(grid: _Grid, p, r_flux, cx, cy, smooth, clumps, tails, rng) -> None:
    """Add one galaxy (surface brightness, nmgy per native pixel) to the three maps."""
    scale = 1 / grid.arcsec
    pa = math.radians(p["position_angle_deg"])
    incl = math.radians(p["inclination_deg"])
    q_disc = math.sqrt(math.cos(incl) ** 2 + (p["disc_thickness"] * math.sin(incl)) ** 2)
    bt = p["bulge_to_total"]
    os2 = grid.os**2

    # Bulge (or the whole elliptical): generalised-ellipse Sersic.
    if bt > 0:
        re = p["bulge_re_arcsec"] * scale
        n = p["sersic_n"]
        # Ellipticals: apparent axis ratio drawn directly; bulges: intrinsic flattening seen at the disc's inclination.
        q = p["bulge_q"] if p["kind"] == "E" else math.sqrt(math.cos(incl) ** 2 + (p["bulge_q"] * math.sin(incl)) ** 2)
        ys, xs, dx, dy = grid.window(cx, cy, min(12 * re, grid.native))
        xp, yp = _rotate(dx, dy, pa)
        c = p["bulge_boxiness"]
        r = (np.abs(xp) ** c + np.abs(yp / q) ** c) ** (1 / c) if c != 2.0 else np.sqrt(xp**2 + (yp / q) ** 2)
        r = np.maximum(r, 1e-3)
        profile = np.exp(-sersic_b(n) * ((r / re) ** (1 / n) - 1)) / sersic_total(n, re, q)
        if p["second_nucleus"]:
            sep = p["second_nucleus"] * re * 2
            ang = rng.uniform(0, 2 * np.pi)
            nuclei = [(0.6, 0.0, 0.0), (0.4, sep * math.cos(ang), sep * math.sin(ang))]
            core = lambda ox, oy: np.exp(-np.hypot(dx - ox, dy - oy) / (0.12 * re + 0.3))  # noqa: E731
            extra = sum(w * core(ox, oy) for w, ox, oy in nuclei)
            profile = 0.7 * profile + 0.3 * extra / (extra.sum() / os2)
        flux = _fluxes(r_flux * bt, p["bulge_g_r"], p["bulge_r_i"])
        smooth[ys, xs] += profile[..., None] * flux

    if bt >= 1:
        return
    # Disc plane: deprojected coordinates (thick-disc axis ratio from the Hubble formula).
    h = p["disc_scale_arcsec"] * scale
    ys, xs, dx, dy = grid.window(cx, cy, grid.native)
    xp, yp = _rotate(dx, dy, pa)
    xd, yd = xp, yp / q_disc
    radius = np.sqrt(xd**2 + yd**2) + 1e-3
    disc = np.exp(-radius / h)
    disc_flux = r_flux * (1 - bt)
    if p["lopsidedness"] or p["clumpiness"]:
        phi_l = rng.uniform(0, 2 * np.pi)
        lop = 1 + p["lopsidedness"] * np.minimum(radius / h, 3) * np.cos(np.arctan2(yd, xd) - phi_l)
        disc = disc * np.maximum(lop, 0.05)
        if p["clumpiness"]:
            field = _smooth_field(rng, grid.n, 0.5 * h * grid.os)[ys, xs]
            disc = disc * np.exp(p["clumpiness"] * field)
    disc = disc / (disc.sum() / os2)

    # Star formation: arms and knots.
    arm_frac = p["arm_strength"]
    components = [(disc, 1 - arm_frac - p["bar_strength"] - p["ring_strength"], p["disc_g_r"], p["disc_r_i"])]
    theta = np.arctan2(yd, xd)
    bar_len = p["bar_length_arcsec"] * scale
    r_in = max(bar_len, 0.6 * h, 2.0)
    if p["n_arms"] and arm_frac > 0:
        m = p["n_arms"]
        tan_p = math.tan(math.radians(p["pitch_deg"]))
        phase0 = math.radians(p["bar_angle_deg"]) if bar_len else rng.uniform(0, 2 * np.pi)
        sense = rng.choice([-1.0, 1.0])
        psi = m * (sense * theta - phase0 - np.log(radius / r_in) / tan_p)
        sharp = 1.0 / p["arm_width"] ** 2
        arms = ((1 + np.cos(psi)) / 2) ** sharp
        if p["flocculence"]:
            patches = _smooth_field(rng, grid.n, 0.35 * h * grid.os)[ys, xs]
            arms = arms * np.exp(1.2 * p["flocculence"] * patches)
        taper = 1 / (1 + np.exp(-(radius - r_in) / (0.25 * r_in))) * np.exp(-radius / (1.3 * h))
        arms = arms * taper
        total = arms.sum() / os2
        if total > 0:
            components.append((arms / total, arm_frac, p["arm_g_r"], p["disc_r_i"] - 0.1))
        # Knots along the arms, HII regions unresolved or barely resolved.
        k = p["n_knots"]
        if k and p["knot_fraction"]:
            rk = r_in + rng.gamma(2.0, 0.8 * h, k)
            arm_idx = rng.integers(0, m, k)
            th = sense * (phase0 + 2 * np.pi * arm_idx / m + np.log(rk / r_in) / tan_p) + rng.normal(0, 0.2, k)
            _add_knots(grid, clumps, p, rk, th, pa, q_disc, cx, cy, disc_flux, rng)
    elif p["n_knots"] and p["knot_fraction"]:
        # Irregulars and disturbed discs: knots scattered over the disc.
        k = p["n_knots"]
        rk = rng.gamma(2.0, 0.7 * h, k)
        th = rng.uniform(0, 2 * np.pi, k)
        _add_knots(grid, clumps, p, rk, th, pa, q_disc, cx, cy, disc_flux, rng)

    if p["bar_strength"]:
        ang = math.radians(p["bar_angle_deg"])
        u, v = xd * math.cos(ang) + yd * math.sin(ang), -xd * math.sin(ang) + yd * math.cos(ang)
        rb = (np.abs(u) ** 2.5 + np.abs(v / p["bar_q"]) ** 2.5) ** 0.4
        bar = np.exp(-((rb / (0.6 * bar_len)) ** 2))
        components.append((bar / (bar.sum() / os2), p["bar_strength"], p["bulge_g_r"] - 0.03, p["bulge_r_i"]))
    if p["ring_strength"]:
        rr = max(bar_len, 1.2 * h)
        ring = np.exp(-0.5 * ((radius - rr) / (0.12 * rr + 0.8)) ** 2)
        components.append((ring / (ring.sum() / os2), p["ring_strength"], p["disc_g_r"] - 0.1, p["disc_r_i"] - 0.05))

    layer = np.zeros(disc.shape + (3,), np.float32)
    for profile, frac, gr, ri in components:
        layer += profile[..., None] * _fluxes(disc_flux * max(frac, 0.0), gr, ri)
    if p["dust_tau"]:  # mid-plane dust lane, offset towards the near side
        lane = np.exp(-np.abs(yp - 0.15 * h * math.cos(incl)) / (0.08 * h + 0.3)) * np.exp(-np.abs(xp) / (2.5 * h))
        layer *= np.exp(-p["dust_tau"] * lane[..., None] * DUST_RELATIVE.astype(np.float32))
    smooth[ys, xs] += layer

    for _ in range(p["n_tails"]):
        _add_tail(grid, tails, p, cx, cy, h, r_flux, rng)


def _add_knots(grid, clumps, p, rk, th, pa, q_disc, cx, cy, disc_flux, rng) -> None:
    xd, yd = rk * np.cos(th), rk * np.sin(th) * q_disc
    c, s = math.cos(pa), math.sin(pa)
    x, y = cx + xd * c - yd * s, cy + xd * s + yd * c
    weights = rng.pareto(1.5, len(rk)) + 1
    weights /= weights.sum()
    r = disc_flux * p["knot_fraction"] * weights
    gr = rng.normal(0.15, 0.12, len(rk))
    flux = np.stack([r * 10 ** (-0.4 * gr), r, r * 10 ** (0.4 * (0.02 + 0.3 * gr))], axis=1)
    _deposit(clumps, grid, x, y, flux)


def _add_tail(grid, tails, p, cx, cy, h, r_flux, rng) -> None:
    """A tidal tail: a curved, widening, fading stream of stars."""
    k = 400
    t = np.sort(rng.uniform(0, 1, k))
    length = rng.uniform(2.5, 5.0) * h
    start = rng.uniform(0, 2 * np.pi)
    curl = rng.uniform(0.8, 2.2) * rng.choice([-1, 1])
    rad = h * 0.8 + length * t
    ang = start + curl * t
    width = (0.2 + 0.5 * t) * h
    x = cx + rad * np.cos(ang) + rng.normal(0, 1, k) * width
    y = cy + rad * np.sin(ang) + rng.normal(0, 1, k) * width
    frac = rng.uniform(0.04, 0.12)
    fade = np.exp(-2 * t)
    r = r_flux * frac * fade / fade.sum()
    gr = p["disc_g_r"] - 0.1
    _deposit(tails, grid, x, y, np.stack([r * 10 ** (-0.4 * gr), r, r * 10 ** (0.4 * 0.25)], axis=1))


def _add_field(grid: _Grid, smooth, points, rng, exclude: float) -> dict[str, int]:
    """Background galaxies, a possible physical companion, and foreground stars."""
    side = grid.native
    area = (side * grid.arcsec / 60) ** 2  # arcmin^2
    n_gal = rng.poisson(1.6 * area + 0.4)
    for _ in range(n_gal):
        x, y = rng.uniform(-side / 2, side / 2, 2)
        if math.hypot(x, y) < exclude:
            x, y = x * 2.5, y * 2.5
        mag = 21.5 - 4.5 * rng.uniform() ** 1.7
        _small_galaxy(grid, smooth, rng, x, y, mag)
    companion = rng.uniform() < 0.12
    if companion:
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.45) * side
        _small_galaxy(grid, smooth, rng, dist * math.cos(ang), dist * math.sin(ang), rng.uniform(16.5, 18.5), big=True)
    n_star = rng.poisson(1.0 * area + 0.3) + (rng.uniform() < 0.06)
    mags = 22.0 - 7.0 * rng.uniform(size=n_star) ** 2.0
    if n_star and rng.uniform() < 0.06:
        mags[0] = rng.uniform(11.5, 14.0)  # a bright, saturated star
    gr = rng.uniform(0.25, 1.45, n_star)
    ri = np.clip(0.42 * gr - 0.1, -0.05, None) + rng.normal(0, 0.03, n_star)
    r = 10 ** (-0.4 * (mags - 22.5))
    xy = rng.uniform(-side / 2, side / 2, (n_star, 2))
    _deposit(points, grid, xy[:, 0], xy[:, 1], np.stack([r * 10 ** (-0.4 * gr), r, r * 10 ** (0.4 * ri)], 1))
    return {"n_neighbours": int(n_gal + companion), "n_stars": int(n_star)}


def _small_galaxy(grid, smooth, rng, x, y, mag, big=False) -> None:
    re = float(np.exp(rng.normal(np.log(2.5 if big else 1.2), 0.35))) / grid.arcsec
    n = float(rng.uniform(0.7, 4.0))
    q = float(rng.uniform(0.3, 1.0))
    ys, xs, dx, dy = grid.window(x, y, 10 * re + 4)
    if dx.size == 0 or dy.size == 0:
        return
    xp, yp = _rotate(dx, dy, rng.uniform(0, np.pi))
    r = np.sqrt(xp**2 + (yp / q) ** 2) + 1e-3
    profile = np.exp(-sersic_b(n) * ((r / re) ** (1 / n) - 1)) / sersic_total(n, re, q)
    gr = rng.uniform(0.4, 1.4) if not big else rng.uniform(0.4, 0.85)
    smooth[ys, xs] += profile[..., None] * _fluxes(_mag_to_nmgy(mag), gr, 0.3 + 0.3 * (gr - 0.7))


def _moffat(fwhm: float, beta: float, half: int, sub: int = 5) -> np.ndarray:
    """A Moffat PSF integrated over pixels (sub x sub samples each), (2 half + 1)^2, sum 1."""
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    side = 2 * half + 1
    c = (np.arange(side * sub, dtype=np.float64) + 0.5) / sub - side / 2
    r2 = c[None, :] ** 2 + c[:, None] ** 2
    kernel = ((1 + r2 / alpha**2) ** (-beta)).reshape(side, sub, side, sub).sum(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def asinh_stretch(g, r, i) -> np.ndarray:
    """Lupton et al. (2004) colour-preserving asinh stretch of (i, r, g) -> uint8 RGB."""
    rgb = np.stack([i, r, g], axis=-1) * DISPLAY_SCALES.astype(np.float32)
    rgb = np.maximum(rgb, 0)
    intensity = rgb.mean(axis=-1, keepdims=True)
    safe = np.maximum(intensity, 1e-12)
    factor = np.arcsinh(STRETCH_Q * safe / STRETCH_SOFTENING) / STRETCH_Q / safe
    out = rgb * factor
    peak = np.maximum(out.max(axis=-1, keepdims=True), 1.0)
    return np.clip(out / peak * 255 + 0.5, 0, 255).astype(np.uint8)


def render_example(label: int, rng: np.random.Generator, image_size: int = 256) -> tuple[np.ndarray, dict]:
    """One (image_size, image_size, 3) uint8 image of class `label` and its parameters."""
    spec = draw_parameters(label, rng)
    native = spec["native_px"]
    grid = _Grid(native, max(1, min(3, 256 // native)), spec["pixel_arcsec"])
    binning = (grid.arcsec / PIXEL_ARCSEC) ** 2  # native pixels per (binned) pixel
    smooth = np.zeros((grid.n, grid.n, 3), np.float32)
    clumps = np.zeros_like(smooth)
    tails = np.zeros_like(smooth)
    points = np.zeros_like(smooth)
    main = spec["main"]
    r_flux = _mag_to_nmgy(main["r_mag"])
    cx, cy = spec["center"]
    companion = spec["companion"]
    if companion is not None:
        geo = spec["geometry"]
        sep = geo["separation"] * r90_arcsec(main) / grid.arcsec * 0.5
        ox, oy = 0.5 * sep * math.cos(geo["angle"]), 0.5 * sep * math.sin(geo["angle"])
        _render_galaxy(grid, main, r_flux, cx - ox, cy - oy, smooth, clumps, tails, rng)
        _render_galaxy(grid, companion, r_flux * geo["flux_ratio"], cx + ox, cy + oy, smooth, clumps, tails, rng)
    else:
        _render_galaxy(grid, main, r_flux, cx, cy, smooth, clumps, tails, rng)
    field = _add_field(grid, smooth, points, rng, exclude=0.15 * native)

    # Integrate over native pixels (the oversampling's purpose: steep cores), then blur:
    # knots are barely resolved, tails diffuse, and everything sees the PSF. The PSF is
    # pixel-integrated, so convolving after binning matches binning after convolving.
    def binned(maps):
        return maps.reshape(native, grid.os, native, grid.os, 3).mean(axis=(1, 3))

    model = binned(smooth + points)
    sigma_knot = float(rng.uniform(0.3, 0.9))
    if clumps.any():
        model += ndimage.gaussian_filter(binned(clumps), (sigma_knot, sigma_knot, 0))
    if tails.any():
        model += ndimage.gaussian_filter(binned(tails), (1.5, 1.5, 0))
    fwhm = spec["seeing_arcsec"] / grid.arcsec * SEEING_RELATIVE
    half = int(math.ceil(4 * fwhm.max()))
    psf = np.stack([_moffat(f, spec["psf_beta"], half) for f in fwhm], axis=-1)
    # Linear (zero-padded) convolution: light from outside the frame is absent, none wraps.
    model = signal.fftconvolve(model, psf, mode="same", axes=(0, 1)).astype(np.float32)
    saturated = (model >= SATURATION_NMGY * binning).any(axis=-1)
    model = np.minimum(model, SATURATION_NMGY * binning)

    sky = SKY_NMGY * spec["sky_factor"] * binning
    variance = (sky + np.maximum(model, 0)) / ELECTRONS_PER_NMGY
    noisy = model + rng.standard_normal(model.shape).astype(np.float32) * np.sqrt(variance).astype(np.float32)
    noisy += rng.normal(0, 0.2, 3).astype(np.float32) * np.sqrt(sky / ELECTRONS_PER_NMGY).astype(np.float32)
    rgb = asinh_stretch(noisy[..., 0], noisy[..., 1], noisy[..., 2])
    rgb[saturated] = 255  # a full well reads white in every band, as in SDSS JPEGs

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=spec["jpeg_quality"])
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(image, np.uint8), _flat_parameters(spec, field)


def _flat_parameters(spec, field) -> dict[str, Any]:
    m = spec["main"]
    out = {
        "subtype": m["kind"],
        "r_mag": m["r_mag"],
        "r90_arcsec": r90_arcsec(m),
        "sersic_n": m["sersic_n"],
        "bulge_re_arcsec": m["bulge_re_arcsec"],
        "bulge_to_total": m["bulge_to_total"],
        "disc_scale_arcsec": m["disc_scale_arcsec"] if m["bulge_to_total"] < 1 else np.nan,
        "inclination_deg": m["inclination_deg"],
        "position_angle_deg": m["position_angle_deg"],
        "bulge_g_r": m["bulge_g_r"],
        "disc_g_r": m["disc_g_r"] if m["bulge_to_total"] < 1 else np.nan,
        "n_arms": m["n_arms"],
        "pitch_deg": m["pitch_deg"],
        "arm_strength": m["arm_strength"],
        "bar_strength": m["bar_strength"],
        "ring_strength": m["ring_strength"],
        "dust_tau": m["dust_tau"],
        "clumpiness": m["clumpiness"],
        "knot_fraction": m["knot_fraction"],
        "n_tails": m["n_tails"] + (spec["companion"]["n_tails"] if spec["companion"] else 0),
        "merger": spec["companion"] is not None,
        "frame_arcsec": spec["frame_arcsec"],
        "native_px": spec["native_px"],
        "pixel_arcsec": spec["pixel_arcsec"],
        "seeing_arcsec": spec["seeing_arcsec"],
        "psf_beta": spec["psf_beta"],
        "sky_factor": spec["sky_factor"],
        "jpeg_quality": spec["jpeg_quality"],
        **field,
    }
    return {"ttype": spec["ttype"], **out}
