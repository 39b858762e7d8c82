"""Benchmark: peak memory of the UK Biobank and MIMIC-IV-ECG converters on tables of the real datasets' size.

Run: ``.venv/bin/python benchmarks/bench_converters_memory.py [--rows 500000] [--columns 2000] [--ecgs 200]
[--mimic-rows 800000] [--work /tmp/cns-converter-bench]``

It writes synthetic inputs under ``--work`` (not committed; about 4 GB for the defaults, deleted afterwards unless
``--keep``): a legacy-named UK Biobank tabular file of ``rows`` participants x ``columns`` columns (the fields the
converter needs among filler fields) with ``ecgs`` CardioSoft ECG files for participants spread over the file, and a
MIMIC-IV-ECG ``record_list.csv``, ``machine_measurements.csv`` and an Ext-ICD ``records_w_diag_icd10.csv`` (all its
columns) of ``mimic-rows`` records. Each measurement runs in a fresh Python process that reports its own peak resident
memory (``ru_maxrss``):

- ``cntrain convert-ukb``'s converter on the whole tabular file (streamed: only needed cells of ECG participants);
- the previous UK Biobank reader (every cell of every row in a dict per participant), on the first ``--baseline-rows``
  rows only (the whole file would not fit in memory), for the side-by-side ratio;
- the MIMIC tables stage (labels, covariates, measurements of every record: everything before the waveforms);
- the previous MIMIC tables stage (record list and Ext-ICD rows kept whole as dicts).

The previous readers' runs import the converter modules first, so every run carries the same imports (torch comes in
through the dataset writer); a run that only imports them is measured too.

Writes ``benchmarks/results/converters-memory.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import machine_info, report_header  # noqa: E402

EXAMPLE_ECG = REPO / "examples" / "ecg" / "synthetic_ukb_cardiosoft.xml"
LIMIT_MIB = 2048
CODES = ["I214", "I251", "I500", "I420", "I10", "E119", "I480", "Z864", "K219", "I270", "I311", "J449", "N183"]
EXT_COLUMNS = [
    "file_name", "study_id", "subject_id", "ecg_time", "ed_stay_id", "ed_hadm_id", "hosp_hadm_id", "ed_diag_ed",
    "ed_diag_hosp", "hosp_diag_hosp", "all_diag_hosp", "all_diag_all", "gender", "age", "anchor_year", "anchor_age",
    "dod", "ecg_no_within_stay", "ecg_taken_in_ed", "ecg_taken_in_hosp", "ecg_taken_in_ed_or_hosp", "fold",
    "strat_fold",
]  # fmt: skip


# ------------------------------------------------------------------------------------------------ inputs


def write_ukb(work: Path, rows: int, columns: int, ecgs: int, rng: random.Random) -> dict[str, int]:
    """A legacy-named main dataset: needed fields (sex, age, imaging date, 20 diagnoses with dates, 82 phenotypes,
    ventricular rate) among filler fields, and ECG files for ``ecgs`` participants spread over the rows."""
    needed = ["31-0.0", "21003-2.0", "53-2.0", "12336-2.0"]
    needed += [f"41270-0.{j}" for j in range(20)] + [f"41280-0.{j}" for j in range(20)]
    needed += [f"{f}-2.0" for f in range(24100, 24182)]
    filler = [f"{100000 + j // 4}-{j % 4}.0" for j in range(columns - 1 - len(needed))]
    header = ["eid", *filler[: len(filler) // 2], *needed, *filler[len(filler) // 2 :]]
    tails = []
    for _ in range(97):  # distinct row bodies, reused: the reader's work does not depend on their variety
        n_codes = rng.randint(0, 6)
        cells = {"31-0.0": str(rng.randint(0, 1)), "21003-2.0": str(rng.randint(45, 80)), "53-2.0": "2016-05-01",
                 "12336-2.0": str(rng.randint(50, 90))}  # fmt: skip
        for j in range(20):
            cells[f"41270-0.{j}"] = rng.choice(CODES) if j < n_codes else ""
            cells[f"41280-0.{j}"] = (
                f"20{rng.randint(0, 22):02d}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}" if j < n_codes else ""
            )
        for f in range(24100, 24182):
            cells[f"{f}-2.0"] = f"{rng.uniform(1, 200):.2f}"
        body = [cells.get(name, str(rng.randint(0, 9999)) if rng.random() < 0.6 else "") for name in header[1:]]
        tails.append(",".join(body))
    ecg_dir = work / "20205"
    ecg_dir.mkdir(parents=True)
    step = max(1, rows // ecgs)
    chosen = {1000000 + k * step + step // 2 for k in range(ecgs)}
    for eid in chosen:
        shutil.copyfile(EXAMPLE_ECG, ecg_dir / f"{eid}_20205_2_0.xml")
    path = work / "ukb_main.csv"
    with open(path, "w", newline="") as handle:
        handle.write(",".join(header) + "\n")
        for start in range(0, rows, 1000):
            handle.write(
                "".join(f"{1000000 + r},{tails[r % len(tails)]}\n" for r in range(start, min(rows, start + 1000)))
            )
    return {"rows": rows, "columns": len(header), "ecg_files": len(chosen), "bytes": path.stat().st_size}


def write_mimic(work: Path, rows: int, rng: random.Random) -> dict[str, int]:
    """A MIMIC-IV-ECG record list, machine measurements and Ext-ICD table of ``rows`` records (5 ECGs a patient)."""
    root = work / "mimic-iv-ecg" / "1.0"
    root.mkdir(parents=True)
    with (open(root / "record_list.csv", "w") as records, open(root / "machine_measurements.csv", "w") as measured,
          open(work / "records_w_diag_icd10.csv", "w") as ext):  # fmt: skip
        records.write("subject_id,study_id,file_name,ecg_time,path\n")
        measured.write("subject_id,study_id,cart_id,ecg_time,rr_interval,p_onset,p_end,qrs_onset,qrs_end,t_end,"
                       "p_axis,qrs_axis,t_axis\n")  # fmt: skip
        ext.write(",".join(EXT_COLUMNS) + "\n")
        for k in range(rows):
            subject, study = 10000000 + k // 5, 40000000 + k
            when = f"21{rng.randint(10, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)} 08:{rng.randint(10, 59)}:00"
            rel = f"files/p{str(subject)[:4]}/p{subject}/s{study}/{study}"
            records.write(f"{subject},{study},{rel},{when},{rel}\n")
            measured.write(f"{subject},{study},cart1,{when},{rng.randint(600, 1200)},40,150,200,290,600,45,30,50\n")
            codes = str(rng.sample(CODES, rng.randint(0, 12)))
            stay = str(rng.randint(20000000, 29999999)) if codes != "[]" else ""
            ext.write(f'{rel},{study},{subject},{when},{stay},{stay},{stay},"{codes}","{codes}","{codes}","{codes}",'
                      f'"{codes}",{rng.choice("MF")},{rng.randint(18, 91)},2180,60,,1,True,False,True,'
                      f"{k % 20},{k % 10}\n")  # fmt: skip
    return {"records": rows, "ext_icd_columns": len(EXT_COLUMNS),
            "bytes": sum(p.stat().st_size for p in (root / "record_list.csv", root / "machine_measurements.csv",
                                                     work / "records_w_diag_icd10.csv"))}  # fmt: skip


# ------------------------------------------------------------------------------------------------ measurements

_CHILD = {
    "imports": """
import cardiacnets.converters.mimic, cardiacnets.converters.ukb
result = {}
""",
    "ukb": """
from cardiacnets.converters.ukb import convert_ukb
m = convert_ukb(WORK / "ukb_out", ecg_dir=WORK / "20205", tabular=[WORK / "ukb_main.csv"], overwrite=True)
result = {"converted": m["n_subjects"]}
""",
    "ukb_previous": """
import csv, itertools
import cardiacnets.converters.ukb  # the converter's imports (torch via the dataset writer), as before
merged = {}
with open(WORK / "ukb_main.csv", newline="") as handle:
    for row in itertools.islice(csv.DictReader(handle), BASELINE_ROWS):
        eid = row.pop("eid").strip()
        merged.setdefault(eid, {}).update({k: v for k, v in row.items() if k is not None})
result = {"participants_held": len(merged)}
""",
    "mimic": """
from cardiacnets.converters.mimic_tables import read_tables
t = read_tables(WORK / "mimic-iv-ecg" / "1.0", ext_icd=WORK / "records_w_diag_icd10.csv")
result = {"records": len(t), "labels_known": int((t.labels == t.labels).all(axis=1).sum())}
""",
    "mimic_previous": """
import csv
import numpy as np
import cardiacnets.converters.mimic  # the converter's imports (torch via the dataset writer), as before
root = WORK / "mimic-iv-ecg" / "1.0"
with open(root / "record_list.csv", newline="") as handle:
    records = list(csv.DictReader(handle))
with open(WORK / "records_w_diag_icd10.csv", newline="") as handle:
    ext = {row["study_id"].strip(): row for row in csv.DictReader(handle)}
measured = {}
with open(root / "machine_measurements.csv", newline="") as handle:
    for row in csv.DictReader(handle):
        measured[row["study_id"]] = np.asarray([float(row[c]) for c in list(row)[4:]], dtype=np.float32)
result = {"records": len(records), "ext_rows": len(ext)}
""",
}


def measure(name: str, work: Path, baseline_rows: int) -> dict:
    """Run one measurement in a fresh process; its peak RSS (MiB) and wall time."""
    code = (
        "import json, resource, sys, time\nfrom pathlib import Path\nimport numpy\n"
        f"sys.path.insert(0, {str(REPO)!r})\nWORK = Path({str(work)!r})\nBASELINE_ROWS = {baseline_rows}\n"
        "start = time.perf_counter()\n" + _CHILD[name] + "\nresult['seconds'] = round(time.perf_counter() - start, 1)\n"
        "result['peak_rss_mib'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)\n"
        "print(json.dumps(result))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--columns", type=int, default=2000)
    parser.add_argument("--ecgs", type=int, default=200)
    parser.add_argument("--mimic-rows", type=int, default=800_000)
    parser.add_argument("--baseline-rows", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cns-converter-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the generated inputs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if args.work.exists():
        shutil.rmtree(args.work)
    rng = random.Random(0)
    started = time.perf_counter()
    inputs = {"ukb": write_ukb(args.work, args.rows, args.columns, args.ecgs, rng),
              "mimic": write_mimic(args.work, args.mimic_rows, rng)}  # fmt: skip
    print(f"inputs written in {time.perf_counter() - started:.0f} s: {inputs}", flush=True)
    runs = {}
    for name in ("imports", "ukb", "ukb_previous", "mimic", "mimic_previous"):
        runs[name] = measure(name, args.work, args.baseline_rows)
        print(name, runs[name], flush=True)
    if not args.keep:
        shutil.rmtree(args.work)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "inputs": inputs,
        "baseline_rows": args.baseline_rows,
        "limit_mib": LIMIT_MIB,
        "runs": runs,
        "peak_rss_of_this_script_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "converters-memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "converters-memory.md").write_text(_markdown(result))
    print((args.out / "converters-memory.md").read_text())
    return 0


def _markdown(r: dict) -> str:
    ukb, mimic, runs = r["inputs"]["ukb"], r["inputs"]["mimic"], r["runs"]
    imports = runs["imports"]["peak_rss_mib"]
    per_row_old = (runs["ukb_previous"]["peak_rss_mib"] - imports) / r["baseline_rows"]
    ratio = runs["mimic"]["peak_rss_mib"] / runs["mimic_previous"]["peak_rss_mib"]
    lines = [
        *report_header("Converter peak memory on tables of the real datasets' size (synthetic tables)", r),
        "",
        "| run | input | peak RSS (MiB) | wall (s) | under 2 GiB |",
        "|---|---|---|---|---|",
        f"| UK Biobank converter (streamed) | {ukb['rows']:,} rows x {ukb['columns']:,} columns"
        f" ({ukb['bytes'] / 2**30:.1f} GiB), {ukb['ecg_files']} ECG files | {runs['ukb']['peak_rss_mib']:,.0f} |"
        f" {runs['ukb']['seconds']:.0f} | {'yes' if runs['ukb']['peak_rss_mib'] < r['limit_mib'] else 'NO'} |",
        f"| previous UK Biobank reader (all cells kept) | first {r['baseline_rows']:,} rows only |"
        f" {runs['ukb_previous']['peak_rss_mib']:,.0f} | {runs['ukb_previous']['seconds']:.0f} |"
        f" (whole file: about {(imports + per_row_old * ukb['rows']) / 1024:,.0f} GiB by linear extrapolation) |",
        f"| MIMIC tables stage (streamed, needed columns) | {mimic['records']:,} records, Ext-ICD with"
        f" {mimic['ext_icd_columns']} columns ({mimic['bytes'] / 2**30:.2f} GiB) |"
        f" {runs['mimic']['peak_rss_mib']:,.0f} |"
        f" {runs['mimic']['seconds']:.0f} | {'yes' if runs['mimic']['peak_rss_mib'] < r['limit_mib'] else 'NO'} |",
        f"| previous MIMIC tables stage (rows kept whole) | same | {runs['mimic_previous']['peak_rss_mib']:,.0f} |"
        f" {runs['mimic_previous']['seconds']:.0f} | |",
        "",
        f"MIMIC: the streamed tables stage holds {ratio:.2f} x the previous stage's peak, measured side by side in"
        " this run. Peak RSS includes the Python interpreter, numpy and the converter's imports (each run is a"
        " fresh process).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
