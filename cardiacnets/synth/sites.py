"""Simulated sites: hospitals that differ in population, cart and recording habits (issue 22).

A :class:`Site` is data: who is recorded (:class:`Population`: age, sex, body habitus, disease prevalence), with what
(:class:`Cart`: sampling rate, analogue filters, ADC resolution, mains frequency) and how (:class:`Acquisition`:
electrode-placement habits, limb-electrode reversals, noise). ``simulate(..., site=NAME)`` draws the cohort of a named
site. The ``default`` site is the cohort as it has always been (a UK-Biobank-like imaging centre); its values are the
simulator's historical constants, so its outputs are byte-identical to those of a call without ``site``.

The differences are chosen to look like the hospitals of an external validation (the paper's MIMIC-IV-ECG and
private-hospital cohorts; domain-notes section 3): an American inpatient hospital (older, heavier, sicker, 60 Hz
mains, diagnostic 0.05-150 Hz bandwidth, noisier wards and occasional reversed limb electrodes), a community screening
clinic (younger, healthier, a 250 Hz device with a 0.5-40 Hz monitoring filter and a coarse 10 uV ADC), and an East
Asian tertiary referral centre (smaller habitus, cardiomyopathy-enriched, a 1000 Hz high-resolution cart, 60 Hz).
``docs/synthetic-sites.md`` tabulates them; ``tests/test_synth_sites.py`` asserts each difference on the signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cardiacnets.errors import InputError

__all__ = ["SITES", "Acquisition", "Cart", "Population", "Site", "get_site", "site_names"]

DEFAULT_SITE = "default"


@dataclass(frozen=True)
class Population:
    """Who a site records. ``age``: normal(``age_mean``, ``age_sd``) clipped to [``age_min``, ``age_max``] years
    (+5 y for heart failure, CAD, RCM); ``male_shift`` is added to every subject's probability of being male;
    ``height_shift_cm`` to the sex-specific mean height; BMI is log-normal around ``bmi_median`` (kg/m²).
    ``prevalence``: population-mode disease prevalences (CAD, PH, PC, CM, HF)."""

    age_mean: float = 63.0
    age_sd: float = 7.5
    age_min: float = 40.0
    age_max: float = 85.0
    male_shift: float = 0.0
    height_shift_cm: float = 0.0
    bmi_median: float = 26.5
    bmi_log_sd: float = 0.15
    prevalence: dict[str, float] = field(
        default_factory=lambda: {"CAD": 0.08, "PH": 0.02, "PC": 0.02, "CM": 0.03, "HF": 0.04}
    )


@dataclass(frozen=True)
class Cart:
    """The recording device. ``fs``: sampling rate (Hz); ``highpass_hz``: analogue high-pass corner (None: none, DC
    coupled up to the baseline wander); ``lowpass_hz``: low-pass corner; ``lowpass_kind``: ``"fir15"`` (the default
    cart's 15-tap linear-phase FIR) or ``"butter2"`` (a causal 2nd-order Butterworth, as an analogue filter);
    ``lsb_mv``: ADC resolution (mV per count); ``mains_hz``: 50 or 60 Hz."""

    fs: int = 500
    highpass_hz: float | None = None
    lowpass_hz: float = 100.0
    lowpass_kind: str = "fir15"
    lsb_mv: float = 0.005
    mains_hz: float = 50.0


@dataclass(frozen=True)
class Acquisition:
    """Recording habits. ``electrode_jitter``: SD of the per-subject relative perturbation of the precordial lead
    vectors; ``precordial_shift``: habitual displacement of V1-V6 along the chest row, in electrode spacings (+
    lateral, - medial) with per-subject SD ``precordial_shift_sd``; ``limb_reversal_rate``: share of records with the
    RA and LA electrodes swapped; noise scales multiply the electrode noise of the default site (baseline wander,
    mains residual, EMG); ``motion_rate``: share of records with an electrode-motion transient."""

    electrode_jitter: float = 0.1
    precordial_shift: float = 0.0
    precordial_shift_sd: float = 0.0
    limb_reversal_rate: float = 0.0
    wander_scale: float = 1.0
    mains_scale: float = 1.0
    emg_scale: float = 1.0
    motion_rate: float = 0.1

    @property
    def default_noise(self) -> bool:
        """True when the electrode noise is the default site's (no scaling to apply)."""
        return (self.wander_scale, self.mains_scale, self.emg_scale, self.motion_rate) == (1.0, 1.0, 1.0, 0.1)


@dataclass(frozen=True)
class Site:
    """A simulated hospital: ``name``, a one-line ``description``, and its population, cart and habits."""

    name: str
    description: str
    population: Population = field(default_factory=Population)
    cart: Cart = field(default_factory=Cart)
    acquisition: Acquisition = field(default_factory=Acquisition)


SITES: dict[str, Site] = {
    site.name: site
    for site in (
        Site(
            DEFAULT_SITE,
            "UK-Biobank-like imaging centre (the cohort as before): 500 Hz, 100 Hz FIR low-pass, 5 uV, 50 Hz mains",
        ),
        Site(
            "us-hospital",
            "US inpatient hospital (MIMIC-IV-ECG-like): older, heavier and sicker; 500 Hz, 0.05-150 Hz, 5 uV, 60 Hz"
            " mains; noisier wards, precordial electrodes placed laterally, 2 % reversed limb electrodes",
            Population(age_mean=67.0, age_sd=12.0, age_min=25.0, age_max=95.0, male_shift=0.05, bmi_median=28.5,
                       bmi_log_sd=0.2, prevalence={"CAD": 0.2, "PH": 0.05, "PC": 0.03, "CM": 0.06, "HF": 0.15}),
            Cart(fs=500, highpass_hz=0.05, lowpass_hz=150.0, lowpass_kind="butter2", lsb_mv=0.005, mains_hz=60.0),
            Acquisition(electrode_jitter=0.15, precordial_shift=0.35, precordial_shift_sd=0.15,
                        limb_reversal_rate=0.02, wander_scale=1.5, mains_scale=2.5, emg_scale=1.5, motion_rate=0.2),
        ),
        Site(
            "community",
            "Community screening clinic: younger, more women, few cases; a 250 Hz device with a 0.5-40 Hz"
            " monitoring filter and a 10 uV ADC, 50 Hz mains; less practised staff (electrodes placed medially)",
            Population(age_mean=55.0, age_sd=10.0, age_min=30.0, age_max=85.0, male_shift=-0.08, bmi_median=27.5,
                       bmi_log_sd=0.17, prevalence={"CAD": 0.04, "PH": 0.01, "PC": 0.01, "CM": 0.015, "HF": 0.02}),
            Cart(fs=250, highpass_hz=0.5, lowpass_hz=40.0, lowpass_kind="butter2", lsb_mv=0.01, mains_hz=50.0),
            Acquisition(electrode_jitter=0.2, precordial_shift=-0.3, precordial_shift_sd=0.2, wander_scale=2.0,
                        emg_scale=1.3, motion_rate=0.15),
        ),
        Site(
            "asia-tertiary",
            "East Asian tertiary referral centre: smaller body habitus, cardiomyopathy-enriched; a 1000 Hz"
            " high-resolution cart, 0.05-150 Hz, 2.5 uV, 60 Hz mains; careful placement, quiet rooms",
            Population(age_mean=60.0, age_sd=12.0, age_min=25.0, age_max=90.0, male_shift=0.05, height_shift_cm=-9.0,
                       bmi_median=23.0, bmi_log_sd=0.13,
                       prevalence={"CAD": 0.1, "PH": 0.03, "PC": 0.02, "CM": 0.08, "HF": 0.08}),
            Cart(fs=1000, highpass_hz=0.05, lowpass_hz=150.0, lowpass_kind="butter2", lsb_mv=0.0025, mains_hz=60.0),
            Acquisition(electrode_jitter=0.08, wander_scale=0.8, emg_scale=0.8, motion_rate=0.05),
        ),
    )
}  # fmt: skip


def site_names() -> list[str]:
    """The named sites, the default first."""
    return list(SITES)


def get_site(name: str | Site | None) -> Site:
    """The site called ``name`` (None: the default site); unknown names raise with the list of known ones."""
    if isinstance(name, Site):
        return name
    key = DEFAULT_SITE if name is None else str(name)
    if key not in SITES:
        raise InputError(f"unknown site {name!r}; known sites: {', '.join(SITES)}")
    return SITES[key]
