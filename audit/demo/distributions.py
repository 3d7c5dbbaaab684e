"""The demo's dose model: per procedure type, log-normal fluoroscopy time and KAP drawn together
(correlated), Ka,r following KAP through the field area, every quantity kept below a cap at the
99.9th percentile of the published spread, and a documented number of planted outliers.

Why caps: a log-normal has no upper end, and multiplying its draw by the demo's factors
(physician, room, body size, levels treated, DSA) once gave a TFESI with 17,265 s of
fluoroscopy and a Ka,r of 28,579 mGy: a 4.8-hour epidural, which no clinic has logged, and
which made every dose page and alert list about the demo rather than the method. Published
series have long tails that end: Kim 2014's 181 lumbosacral TFESI ran 11-161 s and
0.03-10.5 Gy·cm² (docs/reference.md §4).

How (each step vectorised over a chunk of records):

1. ln(time) and ln(KAP) = ln(median) + ln(the record's factors) + noise, the noise bivariate
   normal (NOISE_SIGMA, correlation NOISE_RHO): a long case is usually a high-KAP case.
2. Each is then squeezed in log space (`squeeze`): unchanged within (cap - 1 sigma) of the
   median, above that bent smoothly (tanh) towards the cap, which it never reaches; the same
   below the median, so no value is absurdly small either. The cap is
   median x exp(3.09 x sigma), 3.09 being the standard normal's 99.9th percentile and sigma
   the published spread of the type (MODELS: "basis" says where each comes from).
3. Ka,r = KAP x 1000 / field area at the reference point, the area log-normal around
   120 cm² (sigma 0.25) and squeezed the same way (55-260 cm²): so Ka,r is correlated with
   KAP (about 0.9 in logs), and bounded by KAP's cap x 1000 / 55 cm².

Planted outliers (`plant`), so tests, dashboards and the alert work have known needles in the
haystack: n // 500 records of a spine type (0.2%) at 3-8x their type's median time and KAP,
and n // 2000 OTHER (non-spine) records above all three substantial radiation dose levels
(time >= 3700 s, KAP >= 520 Gy·cm², Ka,r >= 5200 mGy). Each carries the note
"demo: planted outlier (...)". Only planted records pass the caps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The standard normal's 99.9th percentile: the caps sit this many published sigmas out.
Z_999 = 3.090232306167813
#: Residual spread of ln(time) and ln(KAP) once the record's factors (physician, room, body size,
#: levels, DSA) are applied; with them the spread of a type comes close to the published one.
NOISE_SIGMA = {"time": 0.50, "kap": 0.60}
#: Correlation of the two residuals: a long case is usually a high-KAP case.
NOISE_RHO = 0.6
#: Field area at the reference point (cm²): Ka,r = KAP x 1000 / area.
FIELD_AREA_CM2 = 120.0
FIELD_AREA_SIGMA = 0.25

PLANTED_NOTE = "demo: planted outlier"
#: One planted spine outlier per this many records (0.2%), at PLANTED_FACTOR x the median.
PLANTED_EVERY = 500
PLANTED_FACTOR = (3.0, 8.0)
#: One planted OTHER record above every substantial radiation dose level per this many records.
SRDL_EVERY = 2000
SRDL_TIME_S = (3700.0, 6000.0)
SRDL_KAP_GYCM2 = (520.0, 800.0)
SRDL_FIELD_CM2 = (80.0, 100.0)  # so Ka,r = KAP x 1000 / area lies 5200-10000 mGy
#: Kinds of record in `plant`'s `kind` argument.
REGULAR, OUTLIER, SRDL = 0, 1, 2


@dataclass(frozen=True)
class DoseModel:
    """One procedure type's published centre and spread (log-normal)."""

    time_s: float  # median fluoroscopy time
    kap_gycm2: float  # median KAP
    time_sigma: float  # spread of ln(time) in the published series
    kap_sigma: float  # spread of ln(KAP)
    basis: str

    def cap(self, quantity: str) -> float:
        """The value no regular record of the type reaches (module docstring, step 2)."""
        if quantity == "fluoro_time_s":
            return self.time_s * math.exp(Z_999 * self.time_sigma)
        kap_cap = self.kap_gycm2 * math.exp(Z_999 * self.kap_sigma)
        if quantity == "dap_gycm2":
            return kap_cap
        if quantity == "air_kerma_mgy":
            return kap_cap * 1000 / (FIELD_AREA_CM2 * math.exp(-Z_999 * FIELD_AREA_SIGMA))
        raise ValueError(f"no cap for {quantity!r}")


# Spreads: ln(time) 0.55 from the published coefficients of variation (Cushman 2016 TFESI
# 30 ± 17.5 s, CV 0.58 -> sigma 0.54; McCormick 2016 cervical ILESI 18 ± 10 s -> 0.52); ln(KAP)
# 1.0 from Kim 2014's TFESI range 0.03-10.5 around 0.68 (181 cases span about ±2.7 sigma).
# Types without a published spread take the same (estimates, docs/reference.md §4 and §5).
_TIME_SIGMA, _KAP_SIGMA = 0.55, 1.0
MODELS: dict[str, DoseModel] = {
    "TFESI": DoseModel(29.0, 0.68, _TIME_SIGMA, _KAP_SIGMA,
                       "Kim 2014 medians (n = 181); time spread Cushman 2016; KAP spread "
                       "Kim 2014 range"),
    "ILESI": DoseModel(18.0, 0.6, _TIME_SIGMA, _KAP_SIGMA,
                       "time McCormick 2016 (18 ± 10 s); KAP estimate"),
    "CAUDAL": DoseModel(13.0, 0.55, 0.7, _KAP_SIGMA,
                        "Kim 2014 medians; time spread from its range 4-78 s (n = 47)"),
    "MBB": DoseModel(40.0, 0.9, _TIME_SIGMA, _KAP_SIGMA,
                     "estimate (Bakır 2024: 28-46 s, unverified)"),
    "RFA": DoseModel(90.0, 2.0, _TIME_SIGMA, _KAP_SIGMA, "estimate"),
    "FACET": DoseModel(81.5, 1.5, _TIME_SIGMA, _KAP_SIGMA, "time Zhou 2005 mean; KAP estimate"),
    "SIJ": DoseModel(50.6, 1.67, _TIME_SIGMA, _KAP_SIGMA,
                     "KAP Cushman PM&R 2016 median; time Zhou 2005 mean"),
    "DISCOGRAPHY": DoseModel(146.8, 3.0, _TIME_SIGMA, _KAP_SIGMA,
                             "time Zhou 2005 mean; KAP estimate"),
    "SYMPATHETIC": DoseModel(64.4, 1.5, _TIME_SIGMA, _KAP_SIGMA,
                             "time Zhou 2005 mean; KAP estimate"),
    "OTHER": DoseModel(120.0, 10.0, 0.8, 1.0,
                       "estimate: non-spine work varies widely (SRDL cases are planted)"),
}


def caps() -> dict[str, dict[str, float]]:
    """Per type, the cap of each quantity (documented in the demo docstring; tests check it)."""
    return {code: {q: model.cap(q) for q in ("fluoro_time_s", "dap_gycm2", "air_kerma_mgy")}
            for code, model in MODELS.items()}


def squeeze(values: np.ndarray, median: np.ndarray | float,
            sigma: np.ndarray | float) -> np.ndarray:
    """Bend ln(values / median) smoothly inside ±Z_999 x sigma (module docstring, step 2):
    identity within (Z_999 - 1) sigma, then tanh towards the bound. Monotone, so the order and
    the correlation of values survive; no pile of records at the cap."""
    deviation = np.log(values / median)
    bound = Z_999 * np.asarray(sigma, dtype=float)
    knee = bound - sigma
    excess = np.abs(deviation) - knee
    bent = np.sign(deviation) * (knee + sigma * np.tanh(np.maximum(excess, 0.0) / sigma))
    return np.asarray(median * np.exp(np.where(excess > 0, bent, deviation)))


def _column(codes: np.ndarray, attribute: str) -> np.ndarray:
    return np.array([getattr(MODELS[c], attribute) for c in codes.tolist()], dtype=float)


def draw_doses(rng: np.random.Generator, codes: np.ndarray, kap_factor: np.ndarray,
               time_factor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fluoroscopy time (s), KAP (Gy·cm²) and field area (cm²) for records of `codes`, each
    scaled by its record's factors, then squeezed under the caps."""
    n = len(codes)
    st, sk = NOISE_SIGMA["time"], NOISE_SIGMA["kap"]
    cov = [[sk * sk, NOISE_RHO * sk * st], [NOISE_RHO * sk * st, st * st]]
    noise = rng.multivariate_normal([0.0, 0.0], cov, size=n).T
    median_t, median_k = _column(codes, "time_s"), _column(codes, "kap_gycm2")
    time_s = squeeze(median_t * time_factor * np.exp(noise[1]), median_t,
                     _column(codes, "time_sigma"))
    kap = squeeze(median_k * kap_factor * np.exp(noise[0]), median_k,
                  _column(codes, "kap_sigma"))
    area = squeeze(rng.lognormal(math.log(FIELD_AREA_CM2), FIELD_AREA_SIGMA, n),
                   FIELD_AREA_CM2, FIELD_AREA_SIGMA)
    return time_s, kap, area


def plant(rng: np.random.Generator, kind: np.ndarray, codes: np.ndarray, time_s: np.ndarray,
          kap: np.ndarray, area: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
    """Overwrite the planted records' time, KAP and field area (module docstring) and give
    each its note; the other records pass through unchanged."""
    n = len(kind)
    factor = np.exp(rng.uniform(math.log(PLANTED_FACTOR[0]), math.log(PLANTED_FACTOR[1]), n))
    jitter = np.clip(factor * np.exp(rng.normal(0.0, 0.1, n)), *PLANTED_FACTOR)
    srdl_time = rng.uniform(*SRDL_TIME_S, n)
    srdl_kap = np.exp(rng.uniform(math.log(SRDL_KAP_GYCM2[0]), math.log(SRDL_KAP_GYCM2[1]), n))
    srdl_area = rng.uniform(*SRDL_FIELD_CM2, n)
    outlier, srdl = kind == OUTLIER, kind == SRDL
    time_s = np.where(outlier, _column(codes, "time_s") * factor, time_s)
    kap = np.where(outlier, _column(codes, "kap_gycm2") * jitter, kap)
    time_s = np.where(srdl, srdl_time, time_s)
    kap = np.where(srdl, srdl_kap, kap)
    area = np.where(srdl, srdl_area, area)
    notes: list[str | None] = [None] * n
    for i in np.flatnonzero(outlier).tolist():
        notes[i] = (f"{PLANTED_NOTE} (time {factor[i]:.1f}x and KAP {jitter[i]:.1f}x the "
                    f"typical {codes[i]})")
    for i in np.flatnonzero(srdl).tolist():
        notes[i] = f"{PLANTED_NOTE} (above the substantial radiation dose levels)"
    return time_s, kap, area, notes


def planted_kinds(seed: int, n: int) -> np.ndarray:
    """Which of a run's `n` records are planted, and how (REGULAR, OUTLIER or SRDL): exactly
    n // PLANTED_EVERY outliers and n // SRDL_EVERY SRDL cases, at places fixed by the seed
    (a stream of its own, so planting moves no other draw)."""
    kinds = np.full(n, REGULAR, dtype=np.int8)
    outliers, srdl = n // PLANTED_EVERY, n // SRDL_EVERY
    chosen = np.random.default_rng([seed, 0x0D1E]).choice(n, size=outliers + srdl,
                                                           replace=False)
    kinds[chosen[:outliers]] = OUTLIER
    kinds[chosen[outliers:]] = SRDL
    return kinds
