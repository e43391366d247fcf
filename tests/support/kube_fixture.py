"""The fake Kubernetes API server for the Kubernetes executor's and Kueue admission check's tests, with every
object written validated: Jobs against the Kubernetes 1.37 OpenAPI schema (``kubernetes-validate``, strict: no
unknown fields; its schemas ship inside the package, nothing is downloaded) plus the API server's name and label
rules, and Kueue objects against Kueue's CRD openAPIV3Schema (``kueue_crds_v1beta2.json``, written by
scripts/vendor_kueue_crds.py; CEL ``x-kubernetes-validations`` rules are not evaluated). Without the
``kubernetes`` extra the tests are skipped, unless ``CI`` is set: then they fail."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gridshift.testing.fake_kube import FakeKubeApi, FakeKubeServer

CRDS = Path(__file__).with_name("kueue_crds_v1beta2.json")
K8S_VERSION = "1.37.0"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                       r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def require_kube() -> None:
    for mod in ("kubernetes", "kubernetes_validate", "jsonschema"):
        try:
            __import__(mod)
        except ImportError:
            if os.environ.get("CI"):
                pytest.fail(f"{mod} is required in CI (pip install 'gridshift[kubernetes,test]')")
            pytest.skip(f"{mod} not installed")


def _meta_problem(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    if len(name) > 63 or not DNS_LABEL.match(name):
        return f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 label of at most 63 characters"
    for where, labels in (("metadata.labels", meta.get("labels") or {}),
                          ("spec.template.metadata.labels",
                           (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})):
        for k, v in labels.items():
            if not LABEL_KEY.match(k) or len(k.rpartition("/")[2]) > 63:
                return f"{where}: Invalid value: {k!r}: not a qualified name"
            if len(v) > 63 or not LABEL_VALUE.match(v):
                return f"{where}: Invalid value: {v!r}: not a valid label value"
    return None


class SchemaValidator:
    """``validator(resource, obj)`` for :class:`FakeKubeApi`; counts what it checked."""

    def __init__(self) -> None:
        import jsonschema
        import kubernetes_validate

        self.kv = kubernetes_validate
        crds = json.loads(CRDS.read_text())
        self.kueue = {p: jsonschema.Draft7Validator(s) for p, s in crds["schemas"].items()}
        self.checked: dict[str, int] = {}

    def __call__(self, resource: str, obj: dict[str, Any]) -> str | None:
        self.checked[resource] = self.checked.get(resource, 0) + 1
        problem = _meta_problem(obj)
        if problem:
            return problem
        if resource in ("jobs", "pods", "nodes"):
            body = {k: v for k, v in obj.items() if k != "status"}  # status is the API server's, not ours
            try:
                self.kv.validate(body, K8S_VERSION, strict=True)
            except self.kv.ValidationError as e:
                return str(e).splitlines()[0]
            return None
        errors = sorted(self.kueue[resource].iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            return f"{'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}"
        return None


def start_server(*, kueue: bool = True) -> Iterator[FakeKubeServer]:
    """A fake API server (with Kueue's CRDs unless ``kueue=False``), every write validated."""
    require_kube()
    with FakeKubeServer(FakeKubeApi(kueue=kueue, validator=SchemaValidator())) as srv:
        yield srv
