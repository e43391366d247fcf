"""Write tests/support/kueue_crds_v1beta2.json: the openAPIV3Schema of Kueue's Workload, AdmissionCheck and
LocalQueue CRDs (version v1beta2, descriptions dropped), which the tests validate GridShift's Kueue objects against.

Source: kubernetes-sigs/kueue, config/components/crd/bases/kueue.x-k8s.io_<plural>.yaml (Apache-2.0), read from a
local clone: ``python scripts/vendor_kueue_crds.py /path/to/kueue.git [ref]`` (a bare git directory works).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

PLURALS = ("workloads", "admissionchecks", "localqueues")
VERSION = "v1beta2"
OUT = Path(__file__).resolve().parents[1] / "tests" / "support" / "kueue_crds_v1beta2.json"


def strip(o: object) -> object:
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if k != "description"}
    if isinstance(o, list):
        return [strip(x) for x in o]
    return o


def main(git_dir: str, ref: str = "HEAD") -> None:
    commit = subprocess.run(["git", f"--git-dir={git_dir}", "rev-parse", ref], check=True, capture_output=True,
                            text=True).stdout.strip()
    out: dict[str, object] = {"source": f"https://github.com/kubernetes-sigs/kueue/tree/{commit}/config/components/crd/bases",
                              "license": "Apache-2.0", "version": VERSION, "schemas": {}}
    for plural in PLURALS:
        path = f"config/components/crd/bases/kueue.x-k8s.io_{plural}.yaml"
        text = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                              capture_output=True, text=True).stdout
        crd = yaml.safe_load(text)
        version = next(v for v in crd["spec"]["versions"] if v["name"] == VERSION)
        out["schemas"][plural] = strip(version["schema"]["openAPIV3Schema"])
    OUT.write_text(json.dumps(out, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} from {commit}")


if __name__ == "__main__":
    main(*sys.argv[1:])
