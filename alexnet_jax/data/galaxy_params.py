"""The class-conditional physical parameters of a synthetic galaxy, and the instrument's constants.

Distances are arcsec, angles degrees, colours SDSS g-r and r-i. The distributions overlap
between neighbouring classes on purpose (docs/synthetic.md); `galaxy_render` turns a draw
into pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PIXEL_ARCSEC = 0.396  # SDSS native pixel
BANDS = ("g", "r", "i")
# Photometry per band (g, r, i): electrons per nanomaggy, sky in nanomaggies per pixel,
# seeing relative to r, dust attenuation relative to r (Milky-Way-like curve).
ELECTRONS_PER_NMGY = np.array([700.0, 900.0, 600.0])
SKY_NMGY = np.array([0.35, 0.7, 1.1])
SEEING_RELATIVE = np.array([1.06, 1.0, 0.96])
DUST_RELATIVE = np.array([1.35, 1.0, 0.75])
SATURATION_NMGY = 250.0  # per native pixel; saturated pixels read the same in every band
# Display: RGB = (i, r, g) * DISPLAY_SCALES, then asinh stretch.
DISPLAY_SCALES = np.array([0.85, 1.0, 1.55])  # applied to (i, r, g)
STRETCH_Q = 8.0
STRETCH_SOFTENING = 0.55  # nanomaggies/pixel where the stretch turns from linear to log
NATIVE_MIN, NATIVE_MAX = 48, 256  # native cut-out side, pixels

# T-types drawn per class: Nair & Abraham's scheme (-5 E; -3..0 S0-, S0, S0+, S0/a;
# 1..9 Sa..Sm; 10 Im; 99 peculiar/merger), weights roughly as in the catalogue.
TTYPE_CHOICES = {
    0: ((-5,), (1.0,)),
    1: ((-3, -2, -1, 0), (0.28, 0.34, 0.16, 0.22)),
    2: (tuple(range(1, 10)), (0.15, 0.12, 0.20, 0.18, 0.16, 0.09, 0.05, 0.03, 0.02)),
    3: ((10, 99), (0.4, 0.6)),
}


# --------------------------------------------------------------------------------------
# Class-conditional galaxy parameters. Distances are arcsec, angles degrees, colours
# SDSS g-r and r-i (observed, z ~ 0.05). Lenticulars overlap ellipticals (high B/T,
# face-on, faint disc) and early spirals (S0/a with faint tight arms); Sa overlap S0;
# Sm overlap Im; disturbed spirals and pairs overlap the peculiar class.


def _clip_normal(rng, mean, sd, lo, hi):
    return float(np.clip(rng.normal(mean, sd), lo, hi))


def _base(rng, kind: str) -> dict[str, Any]:
    cos_i = rng.uniform(0.0, 1.0)  # random orientation
    return {
        "kind": kind,
        "r_mag": float(rng.uniform(13.2, 16.2)),
        "inclination_deg": float(np.degrees(np.arccos(cos_i))),
        "position_angle_deg": float(rng.uniform(0, 180)),
        "disc_thickness": float(rng.uniform(0.1, 0.2)),
        "bulge_to_total": 1.0,
        "bulge_re_arcsec": 3.0,
        "sersic_n": 4.0,
        "bulge_q": 1.0,
        "bulge_boxiness": 2.0,
        "disc_scale_arcsec": 4.0,
        "bulge_g_r": 0.78,
        "bulge_r_i": 0.40,
        "disc_g_r": 0.70,
        "disc_r_i": 0.36,
        "n_arms": 0,
        "pitch_deg": 0.0,
        "arm_strength": 0.0,
        "arm_width": 0.5,
        "arm_g_r": 0.45,
        "flocculence": 0.0,
        "knot_fraction": 0.0,
        "n_knots": 0,
        "bar_strength": 0.0,
        "bar_length_arcsec": 0.0,
        "bar_q": 0.3,
        "bar_angle_deg": 0.0,
        "ring_strength": 0.0,
        "dust_tau": 0.0,
        "clumpiness": 0.0,
        "lopsidedness": 0.0,
        "n_tails": 0,
        "second_nucleus": 0.0,
    }


def _elliptical(rng, latent: float | None = None) -> dict[str, Any]:
    p = _base(rng, "E")
    p["sersic_n"] = _clip_normal(rng, 4.0, 0.9, 2.2, 7.0)
    p["bulge_re_arcsec"] = float(np.exp(rng.normal(np.log(4.0), 0.4)))
    p["bulge_q"] = float(np.clip(1 - rng.gamma(2.0, 0.09), 0.35, 1.0))  # E0..E6, mostly round
    p["bulge_boxiness"] = float(rng.uniform(1.8, 2.3))
    gr = _clip_normal(rng, 0.77, 0.05, 0.55, 0.95)
    p["bulge_g_r"], p["bulge_r_i"] = gr, 0.40 + 0.5 * (gr - 0.77) + rng.normal(0, 0.02)
    if rng.uniform() < 0.25:  # a faint embedded disc: the E/S0 boundary
        p["bulge_to_total"] = float(rng.uniform(0.8, 0.95))
        p["disc_scale_arcsec"] = p["bulge_re_arcsec"] * float(rng.uniform(0.8, 1.6))
        p["disc_g_r"], p["disc_r_i"] = gr - 0.03, p["bulge_r_i"] - 0.02
    else:
        p["inclination_deg"] = 0.0  # no disc: the bulge axis ratio sets the shape
    return p


def _lenticular(rng, ttype: int) -> dict[str, Any]:
    p = _base(rng, "S0")
    t = ttype + rng.uniform(-0.5, 0.5)  # -3.5 .. 0.5
    p["bulge_to_total"] = _clip_normal(rng, 0.52 - 0.06 * (t + 2), 0.14, 0.2, 0.92)
    p["sersic_n"] = _clip_normal(rng, 3.2, 0.9, 1.5, 5.5)
    p["bulge_re_arcsec"] = float(np.exp(rng.normal(np.log(2.2), 0.35)))
    p["bulge_q"] = float(rng.uniform(0.7, 1.0))
    p["disc_scale_arcsec"] = p["bulge_re_arcsec"] * float(np.exp(rng.normal(np.log(1.7), 0.25)))
    gr = _clip_normal(rng, 0.75, 0.05, 0.55, 0.92)
    p["bulge_g_r"], p["bulge_r_i"] = gr + 0.02, 0.40 + 0.5 * (gr - 0.75)
    p["disc_g_r"], p["disc_r_i"] = gr - 0.03, 0.37 + 0.5 * (gr - 0.75)
    if rng.uniform() < 0.3:
        p["bar_strength"] = float(rng.uniform(0.05, 0.2))
    if rng.uniform() < 0.25:
        p["ring_strength"] = float(rng.uniform(0.03, 0.12))
    if t > -0.7:  # S0/a: faint, tightly wound arms
        _arms(rng, p, t, strength=(0.0, 0.18))
    if p["inclination_deg"] > 75 and rng.uniform() < 0.3:
        p["dust_tau"] = float(rng.uniform(0.2, 0.8))
    _bar_geometry(rng, p)
    return p


def _arms(rng, p, t: float, strength) -> None:
    p["n_arms"] = int(rng.choice([2, 2, 2, 2, 2, 3, 4]))
    p["pitch_deg"] = _clip_normal(rng, 9 + 2.6 * max(t - 1, -1), 4.0, 5.0, 38.0)
    p["arm_strength"] = float(rng.uniform(*strength))
    p["arm_width"] = float(rng.uniform(0.35, 0.7))


def _bar_geometry(rng, p) -> None:
    p["bar_length_arcsec"] = p["disc_scale_arcsec"] * float(rng.uniform(0.7, 1.6)) if p["bar_strength"] else 0.0
    p["bar_q"] = float(rng.uniform(0.22, 0.4))
    p["bar_angle_deg"] = float(rng.uniform(0, 180))


def _spiral(rng, ttype: int) -> dict[str, Any]:
    p = _base(rng, "S")
    t = ttype + rng.uniform(-0.5, 0.5)  # 0.5 .. 9.5
    p["bulge_to_total"] = _clip_normal(rng, 0.42 - 0.055 * (t - 1), 0.1, 0.0, 0.75)
    p["sersic_n"] = _clip_normal(rng, 3.0 - 0.25 * (t - 1), 0.6, 0.8, 5.0)
    p["bulge_re_arcsec"] = float(np.exp(rng.normal(np.log(1.8), 0.35)))
    p["bulge_q"] = float(rng.uniform(0.7, 1.0))
    p["disc_scale_arcsec"] = float(np.exp(rng.normal(np.log(4.5), 0.3)))
    gr = _clip_normal(rng, 0.70 - 0.035 * (t - 1), 0.07, 0.3, 0.9)
    p["disc_g_r"], p["disc_r_i"] = gr, 0.36 + 0.4 * (gr - 0.7) + rng.normal(0, 0.02)
    p["bulge_g_r"], p["bulge_r_i"] = _clip_normal(rng, 0.76, 0.04, 0.6, 0.9), 0.40
    _arms(rng, p, t, strength=(0.06 + 0.035 * t, 0.22 + 0.06 * t))
    p["arm_g_r"] = gr - float(rng.uniform(0.1, 0.3))
    p["flocculence"] = float(np.clip(rng.normal(0.1 * (t - 2), 0.25), 0, 1))
    p["knot_fraction"] = float(np.clip(rng.normal(0.01 + 0.012 * t, 0.02), 0, 0.15))
    p["n_knots"] = int(rng.integers(5, 15 + 6 * int(t)))
    p["clumpiness"] = float(np.clip(rng.normal(0.05 * (t - 3), 0.1), 0, 0.6))
    if rng.uniform() < 0.45:
        p["bar_strength"] = float(rng.uniform(0.05, 0.25))
    if rng.uniform() < 0.12 and t < 5:
        p["ring_strength"] = float(rng.uniform(0.03, 0.1))
    if p["inclination_deg"] > 65:
        p["dust_tau"] = float(rng.uniform(0.4, 2.0) * (p["inclination_deg"] - 60) / 30)
    _bar_geometry(rng, p)
    return p


def _irregular(rng) -> dict[str, Any]:
    p = _base(rng, "Im")
    p["r_mag"] = float(rng.uniform(14.0, 16.8))
    p["bulge_to_total"] = float(rng.uniform(0.0, 0.1))
    p["sersic_n"] = float(rng.uniform(0.8, 1.5))
    p["bulge_re_arcsec"] = float(np.exp(rng.normal(np.log(1.2), 0.3)))
    p["disc_scale_arcsec"] = float(np.exp(rng.normal(np.log(4.0), 0.3)))
    p["disc_thickness"] = float(rng.uniform(0.25, 0.45))  # irregulars are thick
    gr = _clip_normal(rng, 0.42, 0.1, 0.1, 0.7)
    p["disc_g_r"], p["disc_r_i"] = gr, 0.2 + 0.4 * (gr - 0.42)
    p["bulge_g_r"], p["bulge_r_i"] = gr + 0.05, 0.22
    p["arm_g_r"] = gr - 0.2
    p["knot_fraction"] = float(rng.uniform(0.05, 0.2))
    p["n_knots"] = int(rng.integers(10, 45))
    p["clumpiness"] = float(rng.uniform(0.4, 0.9))
    p["lopsidedness"] = float(rng.uniform(0.1, 0.5))
    if rng.uniform() < 0.2:  # Magellanic bar
        p["bar_strength"] = float(rng.uniform(0.08, 0.25))
    _bar_geometry(rng, p)
    return p


def _peculiar(rng) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """A peculiar galaxy: (primary, companion or None, interaction geometry)."""
    kind = rng.choice(["merger", "double_nucleus", "disturbed"], p=[0.5, 0.2, 0.3])
    host_type = rng.choice(["E", "S0", "S"], p=[0.25, 0.2, 0.55])

    def draw(h):
        if h == "E":
            return _elliptical(rng)
        if h == "S0":
            return _lenticular(rng, int(rng.integers(-3, 1)))
        return _spiral(rng, int(rng.integers(1, 8)))

    main = draw(host_type)
    main["kind"] = str(kind)
    geometry = {"separation": 0.0, "angle": float(rng.uniform(0, 2 * np.pi)), "flux_ratio": 0.0}
    companion = None
    if kind == "merger":
        companion = draw(rng.choice(["E", "S0", "S"], p=[0.3, 0.2, 0.5]))
        geometry["separation"] = float(rng.uniform(0.8, 2.2))  # in units of the primary's size
        geometry["flux_ratio"] = float(rng.uniform(0.25, 1.0))
        main["n_tails"] = int(rng.choice([1, 2, 2]))
        companion["n_tails"] = int(rng.choice([0, 1]))
        for g in (main, companion):
            g["lopsidedness"] = max(g["lopsidedness"], float(rng.uniform(0.05, 0.3)))
    elif kind == "double_nucleus":
        main["second_nucleus"] = float(rng.uniform(0.2, 0.6))
        main["n_tails"] = int(rng.choice([0, 0, 1]))
    else:
        main["lopsidedness"] = float(rng.uniform(0.3, 0.7))
        main["clumpiness"] = max(main["clumpiness"], float(rng.uniform(0.3, 0.7)))
        main["n_tails"] = int(rng.choice([0, 1, 1, 2]))
        main["knot_fraction"] = max(main["knot_fraction"], float(rng.uniform(0.03, 0.12)))
        main["n_knots"] = max(main["n_knots"], int(rng.integers(10, 30)))
        main["disc_g_r"] -= float(rng.uniform(0.0, 0.2))  # interaction-triggered star formation
    return main, companion, geometry


def r90_arcsec(p) -> float:
    """Rough Petrosian R90 of the whole galaxy, to size the cut-out."""
    bt = p["bulge_to_total"]
    bulge = p["bulge_re_arcsec"] * (2.3 + 0.25 * (p["sersic_n"] - 1))
    disc = 3.9 * p["disc_scale_arcsec"]
    return bt * bulge + (1 - bt) * disc


def draw_parameters(label: int, rng: np.random.Generator) -> dict[str, Any]:
    """All random choices of one example except the noise: class -> T-type -> physics."""
    values, weights = TTYPE_CHOICES[label]
    ttype = int(rng.choice(values, p=weights))
    companion = geometry = None
    if label == 0:
        main = _elliptical(rng)
    elif label == 1:
        main = _lenticular(rng, ttype)
    elif label == 2:
        main = _spiral(rng, ttype)
    elif ttype == 10:
        main = _irregular(rng)
    else:
        main, companion, geometry = _peculiar(rng)
    r90 = r90_arcsec(main)
    if companion is not None:
        r90 *= 1 + 0.5 * geometry["separation"]
    frame = float(np.clip(np.exp(rng.normal(np.log(4.5), 0.25)), 3.0, 8.0)) * r90  # cut-out side, arcsec
    native = int(np.clip(round(frame / PIXEL_ARCSEC), NATIVE_MIN, NATIVE_MAX))
    # Cut-outs wider than NATIVE_MAX native pixels are binned (coarser pixels), not cropped.
    seeing = float(rng.uniform(1.0, 1.6))
    return {
        "ttype": ttype,
        "main": main,
        "companion": companion,
        "geometry": geometry,
        "frame_arcsec": frame,
        "native_px": native,
        "pixel_arcsec": max(PIXEL_ARCSEC, frame / NATIVE_MAX),
        "seeing_arcsec": seeing,
        "psf_beta": float(rng.uniform(2.5, 4.5)),
        "sky_factor": float(rng.uniform(0.7, 1.5)),
        "jpeg_quality": int(rng.integers(75, 96)),
        "center": rng.normal(0, 0.7, 2),
    }
