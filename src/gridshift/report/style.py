"""The one stylesheet of every GridShift HTML page: the run report, the sweep report and the capacity study.

Each page inlines :data:`CSS` in a ``<style>`` element, so pages stay self-contained and work offline.
Classes: ``summary`` (scenario summary table), ``best`` (best value of a metric), ``key`` (a metric's
key under its label), ``cells`` (the sweep's table of cells, compact, with a monospace cell id), ``failed``
(a failed row), ``l`` (left-aligned cell), ``total`` (a total row), ``caption`` (how to read a figure).
"""

from __future__ import annotations

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1200px;padding:1rem 1.5rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}th,td{padding:.3rem .7rem;border:1px solid #ddd;
text-align:right;vertical-align:top}th[scope=row]{text-align:left;font-weight:600}.summary td{text-align:left}
thead th,th.l{background:#f4f4f4}td.best{background:#d9f2d9;font-weight:700}
td.l,th.l{text-align:left}tr.total td{font-weight:700}
table.cells{font-size:.85rem}table.cells th,table.cells td{padding:.25rem .6rem}
table.cells td:first-child{font-family:ui-monospace,monospace}.failed td{background:#fbe3e3}
.key{display:block;font-weight:400;font-size:.75rem;color:#777;font-family:ui-monospace,monospace}
.caption{font-size:.9rem;color:#444;background:#fafafa;border-left:3px solid #bbb;padding:.4rem .8rem}
img{max-width:100%}footer{margin-top:2.5rem;font-size:.8rem;color:#666;border-top:1px solid #ddd}
"""

__all__ = ["CSS"]
