"""Export simulated ECGs to vendor formats the readers of :mod:`cardiacnets.io` read: GE CardioSoft XML (UK Biobank
layout), HL7 aECG and WFDB. Patient fields are FAKE (``SYNTHETIC``, ``SIM-<index>``): these files are examples.

Every writer quantises to its format's resolution (CardioSoft 5 uV/LSB, aECG 2.5 uV, WFDB 1 uV), so reading a file
back gives the simulated signal within one LSB.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from cardiacnets.errors import InputError
from cardiacnets.record import LEADS

FS = 500


def _check_signal(signal: np.ndarray) -> np.ndarray:
    sig = np.asarray(signal, dtype=np.float64)
    if sig.ndim != 2 or sig.shape[0] != 12 or sig.shape[1] < 10:
        raise InputError(f"signal must be (12, n) mV with n >= 10, got shape {sig.shape}")
    if not np.all(np.isfinite(sig)):
        raise InputError("signal contains NaN or infinite values")
    return sig


def _median_beat(signal: np.ndarray, onsets: np.ndarray | None, length: int = 600) -> np.ndarray:
    """Average beat ``(12, 600)`` around the QRS onsets (onset at sample 200), or the first 600 samples."""
    if onsets is None:
        return signal[:, :length]
    ok = [int(o) for o in onsets if o >= 200 and o + length - 200 <= signal.shape[1]]
    if not ok:
        return signal[:, :length]
    return np.mean([signal[:, o - 200 : o - 200 + length] for o in ok], axis=0)


def _csv_block(counts: np.ndarray, per_line: int = 500) -> str:
    lines = [",".join(str(int(v)) for v in counts[i : i + per_line]) for i in range(0, counts.size, per_line)]
    return "\n\t\t\t".join(lines)


#: GE CardioSoft ``CardiologyXML`` as UK Biobank field 20205 stores it (the writer fills the fields).
_CARDIOSOFT_TEMPLATE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<CardiologyXML>
\t<ObservationType>RestECG</ObservationType>
\t<ObservationDateTime>
\t\t<Hour>9</Hour>
\t\t<Minute>0</Minute>
\t\t<Second>0</Second>
\t\t<Day>1</Day>
\t\t<Month>1</Month>
\t\t<Year>2000</Year>
\t</ObservationDateTime>
\t<ClinicalInfo>
\t\t<DeviceInfo>
\t\t\t<Desc>CardioSoft</Desc>
\t\t\t<SoftwareVer>cardiacnets synthetic</SoftwareVer>
\t\t</DeviceInfo>
\t</ClinicalInfo>
\t<PatientInfo>
\t\t<PID>{pid}</PID>
\t\t<Name>
\t\t\t<FamilyName>SYNTHETIC</FamilyName>
\t\t\t<GivenName>SUBJECT</GivenName>
\t\t</Name>
\t\t<Age units="YEARS">{age}</Age>
\t\t<Gender>{gender}</Gender>
\t\t<PaceMaker>no</PaceMaker>
\t</PatientInfo>
\t<FilterSetting>
\t\t<CubicSpline>No</CubicSpline>
\t\t<Filter50Hz>Yes</Filter50Hz>
\t\t<Filter60Hz>No</Filter60Hz>
\t\t<LowPass units="Hz">100</LowPass>
\t\t<HighPass units="Hz">0.01</HighPass>
\t</FilterSetting>
\t<RestingECGMeasurements>
\t\t<VentricularRate units="BPM">{rate}</VentricularRate>
\t\t<MedianSamples>
\t\t\t<NumberOfLeads>12</NumberOfLeads>
\t\t\t<SampleRate units="Hz">{fs}</SampleRate>
\t\t\t<ChannelSampleCountTotal>{median_samples}</ChannelSampleCountTotal>
\t\t\t<Resolution units="uVperLsb">5</Resolution>
\t\t\t<FirstValid units="Sample">0</FirstValid>
\t\t\t<LastValid units="Sample">{median_last}</LastValid>
{median_waveforms}
\t\t</MedianSamples>
\t</RestingECGMeasurements>
\t<StripData>
\t\t<NumberOfLeads>12</NumberOfLeads>
\t\t<SampleRate units="Hz">{fs}</SampleRate>
\t\t<ChannelSampleCountTotal>{strip_samples}</ChannelSampleCountTotal>
\t\t<Resolution units="uVperLsb">5</Resolution>
{strip_waveforms}
\t</StripData>
</CardiologyXML>
"""


def write_cardiosoft_xml(
    path: str | Path,
    signal: np.ndarray,
    *,
    subject_id: str = "SIM-0",
    sex: int = 0,
    age: float = 60.0,
    heart_rate: float | None = None,
    qrs_onsets: np.ndarray | None = None,
) -> Path:
    """GE CardioSoft ``CardiologyXML`` as UK Biobank field 20205 stores it: ``StripData`` (500 Hz, 5 uV/LSB,
    comma-separated integers per lead) and ``RestingECGMeasurements/MedianSamples``. ``signal`` ``(12, n)`` mV."""
    sig = _check_signal(signal)
    counts = np.round(sig / 0.005).astype(np.int64)
    median = np.round(_median_beat(sig, qrs_onsets) / 0.005).astype(np.int64)
    gender = "MALE" if sex == 1 else "FEMALE"
    rate = "" if heart_rate is None else str(int(round(heart_rate)))

    def waveforms(block: np.ndarray, indent: str) -> str:
        return "\n".join(
            f'{indent}<WaveformData lead="{lead}">\t\t{_csv_block(block[k])}\n{indent}</WaveformData>'
            for k, lead in enumerate(LEADS)
        )

    xml = _CARDIOSOFT_TEMPLATE.format(
        pid=escape(subject_id),
        age=int(age),
        gender=gender,
        rate=rate,
        fs=FS,
        median_samples=median.shape[1],
        median_last=median.shape[1] - 1,
        median_waveforms=waveforms(median, chr(9) * 3),
        strip_samples=counts.shape[1],
        strip_waveforms=waveforms(counts, chr(9) * 2),
    )
    path = Path(path)
    path.write_text(xml, encoding="iso-8859-1")
    return path


_AECG_CODES = {lead: f"MDC_ECG_LEAD_{lead.upper()}" for lead in LEADS}


def write_hl7_aecg(
    path: str | Path, signal: np.ndarray, *, subject_id: str = "SIM-0", sex: int = 0, scale_uv: float = 2.5
) -> Path:
    """HL7 aECG (``AnnotatedECG``, urn:hl7-org:v3): one RHYTHM series with a ``TIME_ABSOLUTE`` GLIST_TS sequence
    (increment 0.002 s) and one SLIST_PQ sequence per lead (origin 0 uV, scale ``scale_uv`` uV, digits)."""
    sig = _check_signal(signal)
    digits = np.round(sig * 1000.0 / scale_uv).astype(np.int64)
    sequences = []
    for k, lead in enumerate(LEADS):
        values = " ".join(str(int(v)) for v in digits[k])
        sequences.append(
            f"""          <component>
            <sequence>
              <code code="{_AECG_CODES[lead]}" codeSystem="2.16.840.1.113883.6.24" codeSystemName="MDC"/>
              <value xsi:type="SLIST_PQ">
                <origin value="0" unit="uV"/>
                <scale value="{scale_uv:g}" unit="uV"/>
                <digits>{values}</digits>
              </value>
            </sequence>
          </component>"""
        )
    gender = "M" if sex == 1 else "F"
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Synthetic ECG generated by cardiacnets.synth; not a real patient. -->
<AnnotatedECG xmlns="urn:hl7-org:v3" xmlns:voc="urn:hl7-org:v3/voc" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <id root="2.25.1" extension="{escape(subject_id)}"/>
  <code code="93000" codeSystem="2.16.840.1.113883.6.12" codeSystemName="CPT-4"/>
  <effectiveTime>
    <low value="20000101090000"/>
    <high value="20000101090010"/>
  </effectiveTime>
  <componentOf>
    <timepointEvent>
      <componentOf>
        <subjectAssignment>
          <subject>
            <trialSubject>
              <id root="2.25.1" extension="{escape(subject_id)}"/>
              <subjectDemographicPerson>
                <name>SYNTHETIC</name>
                <administrativeGenderCode code="{gender}" codeSystem="2.16.840.1.113883.5.1"/>
              </subjectDemographicPerson>
            </trialSubject>
          </subject>
        </subjectAssignment>
      </componentOf>
    </timepointEvent>
  </componentOf>
  <component>
    <series>
      <code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode"/>
      <effectiveTime>
        <low value="20000101090000" inclusive="true"/>
        <high value="20000101090010" inclusive="false"/>
      </effectiveTime>
      <component>
        <sequenceSet>
          <component>
            <sequence>
              <code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4" codeSystemName="ActCode"/>
              <value xsi:type="GLIST_TS">
                <head value="20000101090000"/>
                <increment value="{1.0 / FS:g}" unit="s"/>
              </value>
            </sequence>
          </component>
{chr(10).join(sequences)}
        </sequenceSet>
      </component>
    </series>
  </component>
</AnnotatedECG>
"""
    path = Path(path)
    path.write_text(xml, encoding="utf-8")
    return path


def write_wfdb(path_stem: str | Path, signal: np.ndarray, *, comments: list[str] | None = None) -> Path:
    """WFDB record (``.hea`` + ``.dat``, format 16, 1000 adu/mV = 1 uV per LSB) written with ``wfdb.wrsamp``.
    Returns the header path."""
    import wfdb

    sig = _check_signal(signal)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        stem.name,
        fs=FS,
        units=["mV"] * 12,
        sig_name=list(LEADS),
        p_signal=sig.T,
        fmt=["16"] * 12,
        adc_gain=[1000.0] * 12,
        baseline=[0] * 12,
        comments=comments or ["synthetic ECG generated by cardiacnets.synth; not a real patient"],
        write_dir=str(stem.parent),
    )
    return stem.with_suffix(".hea")
