"""Inter-region network latency (GCP) and the mapping from cloud region to grid zone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data._cache import cached_parse, source_path
from gridshift.errors import DataError

# Zone codes used by the latency files that name a zone this package has carbon data for under another
# name. AUS-* vs AU-* is only spelling; BR-CS, CL-SEN and DE are the Zone Ids inside the BR-SP, CL-SIC
# and DE-LU carbon files; IN-MH (Maharashtra) lies in India's Western grid (IN-WE): an approximation.
GRID_ZONE_TO_DATA_ZONE: dict[str, str] = {
    "AUS-NSW": "AU-NSW",
    "AUS-VIC": "AU-VIC",
    "BR-CS": "BR-SP",
    "CL-SEN": "CL-SIC",
    "DE": "DE-LU",
    "IN-MH": "IN-WE",
}


def load_region_zone_map(path: str | Path | None = None, *, data_zone_names: bool = False) -> dict[str, str]:
    """GCP region → grid zone code, in file order (34 regions; us-east4 and us-east5 share US-MIDA-PJM).

    With ``data_zone_names=True`` zone codes are translated to the names of this package's carbon/price
    datasets where one exists (see ``GRID_ZONE_TO_DATA_ZONE``); other codes are returned unchanged.
    """
    p = source_path("latency/gcp-zone-map", path)
    mapping = _zone_map(p)
    if data_zone_names:
        return {r: GRID_ZONE_TO_DATA_ZONE.get(z, z) for r, z in mapping.items()}
    return mapping


@cached_parse
def _zone_map(p: Path) -> dict[str, str]:
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"invalid JSON: {exc}", file=p, row=getattr(exc, "lineno", None)) from exc
    if not isinstance(raw, dict) or not raw:
        raise DataError("expected a JSON object mapping GCP region to zone code", file=p)
    for region, zone in raw.items():
        if not isinstance(zone, str) or not zone.strip():
            raise DataError(f"zone code must be a non-empty string, got {zone!r}", file=p, field=region)
    return {str(k): str(val) for k, val in raw.items()}


def load_latency_matrix(path: str | Path | None = None, *, zone_map_path: str | Path | None = None) -> pd.DataFrame:
    """Round-trip time in milliseconds between GCP regions: square frame, index = origin region,
    columns = destination region, both GCP region names (e.g. ``europe-west2``).

    The upstream CSV labels rows and columns by *grid zone code*, which is ambiguous (``US-MIDA-PJM``
    appears twice: us-east4 and us-east5 — their rows differ, e.g. 5 ms vs 18 ms to us-east4). The rows
    and columns are in the order of ``gcp_dc_zonecode_mapper.json``, so they are keyed by position: the
    i-th row/column is the i-th region of the mapper, after checking that its zone code matches.
    Diagonal entries (about 5 ms) are the intra-region RTT; the matrix is only approximately symmetric.
    """
    p = source_path("latency/gcp-matrix", path)
    regions = load_region_zone_map(zone_map_path)
    return _latency(p, tuple(regions.items()))


@cached_parse
def _latency(p: Path, regions: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    try:
        with open(p, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read file: {exc}", file=p) from exc
    if not rows:
        raise DataError("file is empty (no header)", file=p, row=1)
    header, body = rows[0], rows[1:]
    n = len(regions)
    if not header or header[0].strip() != "origin":
        raise DataError(f"first header cell must be 'origin', got {header[:1]}", file=p, row=1, field="origin")
    if len(header) != n + 1:
        raise DataError(f"header has {len(header) - 1} destination columns, the zone map has {n} regions",
                        file=p, row=1)
    for j, (region, zone) in enumerate(regions):
        if header[j + 1].strip() != zone:
            raise DataError(f"column {j + 1} is '{header[j + 1]}' but region {region} maps to {zone}",
                            file=p, row=1, field=header[j + 1])
    if len(body) != n:
        raise DataError(f"expected {n} origin rows, found {len(body)} (truncated?)", file=p, row=len(rows))
    values = np.empty((n, n))
    for i, (row, (region, zone)) in enumerate(zip(body, regions, strict=True)):
        line = i + 2
        if not row or row[0].strip() != zone:
            raise DataError(f"row label '{row[0] if row else ''}' but region {region} maps to {zone}",
                            file=p, row=line, field="origin")
        if len(row) != n + 1:
            raise DataError(f"expected {n + 1} cells, found {len(row)} (truncated?)", file=p, row=line)
        for j, cell in enumerate(row[1:]):
            col = header[j + 1]
            try:
                x = float(cell)
            except ValueError:
                raise DataError(f"non-numeric value '{cell}'", file=p, row=line, field=col) from None
            if not np.isfinite(x) or x < 0 or x > 2000:
                raise DataError(f"RTT {cell} ms outside the plausible range 0..2000 ms", file=p, row=line,
                                field=col)
            values[i, j] = x
    names = [r for r, _ in regions]
    out = pd.DataFrame(values, index=pd.Index(names, name="origin"), columns=pd.Index(names, name="dest"))
    out.attrs.update(source=str(p), unit="ms")
    return out
