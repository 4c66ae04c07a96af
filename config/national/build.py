"""Build ``config/directory.national.json``: a national example directory (ทำเนียบหน่วยงานตัวอย่างระดับประเทศ).

Run from anywhere: ``python config/national/build.py`` writes the file; ``--check`` rebuilds it in
memory and exits 1 if the committed file differs (so a change to the CSV, to this script or to
geothai's data shows up in review as a change to the JSON).

Sources:

* ministries and departments: ``config/national/ministries.csv`` (its header names the public
  source; column ``code_status`` says whether a code is official or assigned by its scheme);
* provinces, districts and subdistricts: the ``geothai`` package (77 / 928 / 7,436, DOPA codes).

Rows this script invents are marked ``"generated": true`` and take codes from a reserved range:

    **Reserved range: 10-digit codes whose third digit is 9** (``MM9TXXXXXX``).

``MM`` is the ministry the office belongs to (so ``Agency.ministry``, the first two digits, stays
right), ``9`` marks the code as generated, ``T`` is the kind of office and ``XXXXXX`` is geothai's
code left-aligned and padded with zeros (province ``PP0000``, district ``DDDD00``, subdistrict
``SSSSSS``):

====  ==========================================  ===================================
 T    kind                                        example
====  ==========================================  ===================================
 1    provincial_administration (ศาลากลางจังหวัด)      ``1491500000`` Chiang Mai hall
 2    district_office (ที่ว่าการอำเภอ / สำนักงานเขต)       ``1492500100`` Mueang Chiang Mai
 3    ministry_provincial_office                  ``1993500000`` Chiang Mai public health
 4    ministry_district_office                    ``1994500100`` Mueang Chiang Mai public health
 5    local_administration (อบจ. ``PP0000``,       ``1495500101`` Si Phum
      เทศบาล/อบต. per subdistrict ``SSSSSS``)
====  ==========================================  ===================================

Official codes are 5 digits (2-digit ministry, 3-digit department, from the CSV), so no official
code falls in the range; the build refuses a CSV code of 10 digits with a third digit 9 and the
tests check both directions.

Kinds of local administration are a rule of thumb, not the real classification: the first
subdistrict of the capital district gets a เทศบาลเมือง, the first subdistrict of every other
district a เทศบาลตำบล, all others an องค์การบริหารส่วนตำบล; Bangkok's แขวง get none (Bangkok is itself
the local administration, กรุงเทพมหานคร, which stands in for its provincial hall here).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from a clone: make the gateway package importable
    sys.path.insert(0, str(ROOT))

import geothai  # noqa: E402

from gateway.core.directory import Directory  # noqa: E402

CSV_PATH = ROOT / "config" / "national" / "ministries.csv"
OUT_PATH = ROOT / "config" / "directory.national.json"
BANGKOK = "10"
MOI = "14"
MOI_CODE = "14000"
CAPITAL_DISTRICT = "01"


def is_reserved(code: str) -> bool:
    """A code from the generated range (10 digits, third digit 9)."""
    return len(code) == 10 and code[2] == "9"


def generated_code(ministry: str, kind_digit: int, area: str) -> str:
    code = f"{ministry}9{kind_digit}{area.ljust(6, '0')}"
    assert len(code) == 10 and code.isdigit(), code
    return code


#: Ministries' provincial offices: (ministry, parent department, Thai prefix, English suffix).
PROVINCIAL_OFFICES: tuple[tuple[str, str, str, str], ...] = (
    ("05", "05001", "สำนักงานการท่องเที่ยวและกีฬาจังหวัด", "Provincial Tourism and Sports Office"),
    ("06", "06001", "สำนักงานพัฒนาสังคมและความมั่นคงของมนุษย์จังหวัด",
     "Provincial Office of Social Development and Human Security"),
    ("08", "08008", "สำนักงานเกษตรจังหวัด", "Provincial Agricultural Extension Office"),
    ("11", "11001", "สำนักงานทรัพยากรธรรมชาติและสิ่งแวดล้อมจังหวัด",
     "Provincial Office of Natural Resources and Environment"),
    ("12", "12001", "สำนักงานพลังงานจังหวัด", "Provincial Energy Office"),
    ("13", "13001", "สำนักงานพาณิชย์จังหวัด", "Provincial Commerce Office"),
    ("15", "15001", "สำนักงานยุติธรรมจังหวัด", "Provincial Justice Office"),
    ("16", "16001", "สำนักงานแรงงานจังหวัด", "Provincial Labour Office"),
    ("17", "17001", "สำนักงานวัฒนธรรมจังหวัด", "Provincial Cultural Office"),
    ("18", "18001", "สำนักงานศึกษาธิการจังหวัด", "Provincial Education Office"),
    ("19", "19001", "สำนักงานสาธารณสุขจังหวัด", "Provincial Public Health Office"),
    ("20", "20001", "สำนักงานอุตสาหกรรมจังหวัด", "Provincial Industry Office"),
)
#: Ministries' district offices, each under (and routed via) its ministry's provincial office.
DISTRICT_OFFICES: tuple[tuple[str, str, str], ...] = (
    ("08", "สำนักงานเกษตรอำเภอ", "District Agricultural Extension Office"),
    ("19", "สำนักงานสาธารณสุขอำเภอ", "District Public Health Office"),
)


def read_ministries(path: Path = CSV_PATH) -> list[dict[str, Any]]:
    """The CSV rows as directory entries (``#`` lines are the header comment)."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    out = []
    for n, row in enumerate(rows, start=2):
        code, status = row["code"].strip(), row["code_status"].strip()
        if status not in ("official", "assigned"):
            raise SystemExit(f"{path.name} row {n}: code_status {status!r} must be official or assigned")
        if is_reserved(code):
            raise SystemExit(f"{path.name} row {n}: code {code} is in the reserved generated range")
        entry: dict[str, Any] = {"code": code, "name_th": row["name_th"].strip(),
                                 "name_en": row["name_en"].strip(), "kind": row["kind"].strip(),
                                 "route": {"kind": "pull"}}
        if row["parent"].strip():
            entry["parent"] = row["parent"].strip()
        out.append(entry)
    return out


def _row(code: str, name_th: str, name_en: str, kind: str, parent: str, route: dict[str, str],
         province: str, district: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": code, "name_th": name_th, "name_en": name_en, "kind": kind,
                             "parent": parent, "province": province, "route": route, "generated": True}
    if district is not None:
        entry["district"] = district
    return entry


def generated_rows() -> Iterator[dict[str, Any]]:
    """Every office generated from geothai, in no particular order (the caller sorts)."""
    pull = {"kind": "pull"}
    for p in geothai.provinces():
        hall = generated_code(MOI, 1, p.code)
        if p.code == BANGKOK:
            yield _row(hall, "ศาลาว่าการกรุงเทพมหานคร", "Bangkok City Hall", "provincial_administration",
                       MOI_CODE, pull, p.code)
        else:
            yield _row(hall, f"ศาลากลางจังหวัด{p.name_th}", f"{p.name_en} Provincial Hall",
                       "provincial_administration", MOI_CODE, pull, p.code)
            yield _row(generated_code(MOI, 5, p.code), f"องค์การบริหารส่วนจังหวัด{p.name_th}",
                       f"{p.name_en} Provincial Administrative Organization", "local_administration",
                       hall, pull, p.code)
            for ministry, parent, th, en in PROVINCIAL_OFFICES:
                yield _row(generated_code(ministry, 3, p.code), f"{th}{p.name_th}", f"{p.name_en} {en}",
                           "ministry_provincial_office", parent, pull, p.code)
        for d in geothai.districts(p.code):
            office = generated_code(MOI, 2, d.code)
            via_hall = {"kind": "via", "agency": hall}
            if p.code == BANGKOK:
                yield _row(office, f"สำนักงาน{d.name_th}", f"{d.name_en} District Office", "district_office",
                           hall, via_hall, p.code, d.code)
                continue  # แขวง have no local administration of their own; no ministry district offices
            yield _row(office, f"ที่ว่าการอำเภอ{d.name_th}", f"{d.name_en} District Office", "district_office",
                       hall, via_hall, p.code, d.code)
            for ministry, th, en in DISTRICT_OFFICES:
                provincial = generated_code(ministry, 3, p.code)
                yield _row(generated_code(ministry, 4, d.code), f"{th}{d.name_th}", f"{d.name_en} {en}",
                           "ministry_district_office", provincial, {"kind": "via", "agency": provincial},
                           p.code, d.code)
            yield from _local(p, d, office)


def _local(p: Any, d: Any, office: str) -> Iterator[dict[str, Any]]:
    where_th = f"อำเภอ{d.name_th} จังหวัด{p.name_th}"
    where_en = f"{d.name_en} District, {p.name_en}"
    for i, s in enumerate(geothai.subdistricts(d.code)):
        if i == 0 and d.code[2:] == CAPITAL_DISTRICT:
            th, en = f"เทศบาลเมือง{s.name_th}", f"{s.name_en} Town Municipality"
        elif i == 0:
            th, en = f"เทศบาลตำบล{s.name_th}", f"{s.name_en} Subdistrict Municipality"
        else:
            th, en = f"องค์การบริหารส่วนตำบล{s.name_th}", f"{s.name_en} Subdistrict Administrative Organization"
        yield _row(generated_code(MOI, 5, s.code), f"{th} {where_th}", f"{en}, {where_en}",
                   "local_administration", office, {"kind": "pull"}, p.code, d.code)


def build() -> str:
    """The directory file's text: validated by ``Directory.from_dict``, sorted by code, one agency a line."""
    rows = read_ministries() + list(generated_rows())
    directory = Directory.from_dict({"agencies": rows})  # checks codes, parents and via hubs
    agencies = directory.to_dict()["agencies"]
    lines = [json.dumps(a, ensure_ascii=False, separators=(",", ":")) for a in agencies]
    comment = ("National example directory, generated by config/national/build.py from "
               "config/national/ministries.csv and geothai; do not edit by hand. Rows with generated=true "
               "are invented (codes: 10 digits, third digit 9; see config/national/README.md). No tokens: "
               "production agencies authenticate by certificate.")
    return ('{"comment":' + json.dumps(comment, ensure_ascii=False) + ',\n"agencies":[\n'
            + ",\n".join(lines) + "\n]}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare with the committed file; exit 1 if it differs")
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python config/national/build.py", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({text.count(chr(10)) - 3} agencies)")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10)) - 3} agencies)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
