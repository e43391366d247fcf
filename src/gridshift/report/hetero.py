"""Console tables of the heterogeneity studies: Gavel's reproduction and the mixed fleet."""

from __future__ import annotations

import pandas as pd
from rich.table import Table


def gavel_table(rows: list[dict]) -> Table:
    """The reproduction beside the published figures, one row per experiment and policy."""
    t = Table(title="Gavel reproduction (ours vs published; mean over seeds)")
    for c in ("experiment", "policy", "jobs/h", "avg JCT h", "published", "makespan h", "published", "wall s"):
        t.add_column(c, justify="left" if c in ("experiment", "policy") else "right")

    def f(v):
        return "–" if v is None or v != v else f"{v:,.2f}"
    for r in rows:
        t.add_row(r["name"], r["policy_detail"], f(r["jobs_per_h"]), f(r["avg_jct_h"]), f(r["published_avg_jct_h"]),
                  f(r["makespan_h"]), f(r["published_makespan_h"]), f(r["wall_s"]))
    return t


def fleet_table(df: pd.DataFrame, window: tuple[int, int], n_jobs: int) -> Table:
    """The mixed fleet's variants: JCT, energy, carbon, rounds above the cap and energy per tenant."""
    t = Table(title=f"Mixed fleet, jobs {window[0]}–{window[1] - 1} of {n_jobs}")
    cols = ("variant", "avg_jct_h", "energy_mwh", "carbon_t", "rounds_above_cap", "energy_mwh_research",
            "energy_mwh_product", "energy_mwh_platform")
    for c in cols:
        t.add_column(c, justify="left" if c == "variant" else "right")
    for _, r in df.iterrows():
        t.add_row(*[str(r[c]) if c in ("variant", "rounds_above_cap") else f"{r[c]:,.2f}" for c in cols])
    return t
