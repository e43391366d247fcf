"""A fake Kubernetes API server for tests: a real HTTP server on loopback serving exactly what GridShift's
Kubernetes executor and Kueue admission check use, with the API server's semantics where the code relies on them.

Resources: ``batch/v1`` Jobs and ``v1`` Pods (namespaced), ``v1`` Nodes (cluster-scoped) and, unless started with ``kueue=False`` (a cluster without Kueue's
CRDs: every ``kueue.x-k8s.io`` path answers 404), ``kueue.x-k8s.io/v1beta2`` Workloads and LocalQueues
(namespaced) and AdmissionChecks (cluster-scoped). Verbs: get, list (``labelSelector`` with ``k=v``, ``k!=v``,
``k``, ``!k``), watch (``?watch=true&resourceVersion=N``: a chunked stream of ``{"type", "object"}`` lines, an
``ERROR`` event with code 410 when ``N`` is older than the retained history), create (409 ``AlreadyExists``),
update (409 ``Conflict`` when ``metadata.resourceVersion`` is stale), merge patch (RFC 7386), delete, and the
``/status`` subresource (update, patch). One resourceVersion counter for every object, as etcd's revision.

Every object written is passed to ``validator(resource, obj)`` when one is given; a message it returns is
answered as 422 ``Invalid`` (tests validate every manifest against the Kubernetes and Kueue schemas this way).
``MiniKueue`` plays Kueue's part for the tests (create a Workload for a queued Job, admit it once every check is
Ready, evict on Retry); it is a model of the protocol, not of Kueue's quota logic.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

KUEUE = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
# (group, version, plural) -> (kind, namespaced)
RESOURCES: dict[tuple[str, str, str], tuple[str, bool]] = {
    ("", "v1", "pods"): ("Pod", True),
    ("", "v1", "nodes"): ("Node", False),
    ("batch", "v1", "jobs"): ("Job", True),
    (KUEUE, KUEUE_VERSION, "workloads"): ("Workload", True),
    (KUEUE, KUEUE_VERSION, "localqueues"): ("LocalQueue", True),
    (KUEUE, KUEUE_VERSION, "admissionchecks"): ("AdmissionCheck", False),
}
HISTORY = 2000  # watch events kept; an older resourceVersion is answered 410 Gone


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Equality-based label selector (``a=b,c!=d,e,!f``)."""
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class FakeKubeApi:
    """The object store and its semantics (thread-safe); ``FakeKubeServer`` serves it over HTTP."""

    def __init__(self, *, kueue: bool = True,
                 validator: Callable[[str, dict[str, Any]], str | None] | None = None) -> None:
        self.kueue = kueue
        self.validator = validator
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, namespace, name) -> object
        self.events: list[tuple[int, str, str, str, dict[str, Any]]] = []  # (rv, plural, ns, type, object)
        self.rv = 100
        self.cond = threading.Condition()
        self.requests: list[tuple[str, str]] = []  # (verb, path) of every request, for tests
        self.written: list[tuple[str, dict[str, Any]]] = []  # every object written, for schema checks
        self.fail_next: list[tuple[str, str, int]] = []  # (verb, plural, code): fail the next such call once

    def served(self, group: str, version: str, plural: str) -> tuple[str, bool]:
        key = (group, version, plural)
        if key not in RESOURCES or (group == KUEUE and not self.kueue):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural}.{group})")
        return RESOURCES[key]

    def _emit(self, plural: str, ns: str, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((int(obj["metadata"]["resourceVersion"]), plural, ns, kind, copy.deepcopy(obj)))
        del self.events[:-HISTORY]
        self.cond.notify_all()

    def _write(self, plural: str, ns: str, obj: dict[str, Any], kind: str) -> dict[str, Any]:
        if self.validator is not None:
            problem = self.validator(plural, obj)
            if problem:
                raise ApiError(422, "Invalid", f"{plural} \"{obj['metadata'].get('name')}\" is invalid: {problem}")
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[(plural, ns, obj["metadata"]["name"])] = obj
        self.written.append((plural, copy.deepcopy(obj)))
        self._emit(plural, ns, kind, obj)
        return copy.deepcopy(obj)

    def _check_fail(self, verb: str, plural: str) -> None:
        for i, (v, p, code) in enumerate(self.fail_next):
            if v == verb and p == plural:
                del self.fail_next[i]
                raise ApiError(code, "Conflict" if code == 409 else "InternalError", f"injected {code} on {verb}")

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            obj = self.objects.get((plural, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f"{plural} \"{name}\" not found")
            return copy.deepcopy(obj)

    def list(self, plural: str, ns: str | None, selector: str | None) -> tuple[list[dict[str, Any]], str]:
        with self.cond:
            hits = [(k, o) for k, o in self.objects.items() if k[0] == plural and (ns is None or k[1] == ns)
                    and selector_matches(selector, o["metadata"].get("labels") or {})]
            return [copy.deepcopy(o) for _, o in sorted(hits, key=lambda kv: kv[0])], str(self.rv)

    def create(self, group: str, version: str, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        kind, _ = self.served(group, version, plural)
        with self.cond:
            self._check_fail("create", plural)
            name = (obj.get("metadata") or {}).get("name")
            if not name:
                raise ApiError(422, "Invalid", "metadata.name: Required value")
            if (plural, ns, name) in self.objects:
                raise ApiError(409, "AlreadyExists", f"{plural}.{group} \"{name}\" already exists")
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
            if ns:
                meta["namespace"] = ns
            obj.setdefault("apiVersion", f"{group}/{version}" if group else version)
            obj.setdefault("kind", kind)
            return self._write(plural, ns, obj, "ADDED")

    def update(self, plural: str, ns: str, name: str, obj: dict[str, Any], *, status: bool = False,
               patch: bool = False) -> dict[str, Any]:
        with self.cond:
            self._check_fail("patch" if patch else "update", plural)
            cur = self.objects.get((plural, ns, name))
            if cur is None:
                raise ApiError(404, "NotFound", f"{plural} \"{name}\" not found")
            if patch:
                new = merge_patch(cur, obj)
            else:
                want = (obj.get("metadata") or {}).get("resourceVersion")
                if want and want != cur["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {plural} \"{name}\": the "
                                   "object has been modified; please apply your changes to the latest version "
                                   "and try again")
                new = copy.deepcopy(obj)
            if status:  # the status subresource changes status only
                new = dict(cur, status=new.get("status"))
            else:  # the main resource never changes status
                new["status"] = cur.get("status")
                if new.get("spec") != cur.get("spec"):
                    new.setdefault("metadata", {})["generation"] = int(cur["metadata"].get("generation", 1)) + 1
            new["metadata"] = dict(new.get("metadata") or {}, uid=cur["metadata"]["uid"], name=name,
                                   creationTimestamp=cur["metadata"]["creationTimestamp"])
            if not status and new.get("spec") == cur.get("spec"):
                new["metadata"]["generation"] = cur["metadata"].get("generation", 1)
            if new.get("status") is None:
                new.pop("status", None)
            return self._write(plural, ns, new, "MODIFIED")

    def delete(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        with self.cond:
            cur = self.objects.pop((plural, ns, name), None)
            if cur is None:
                raise ApiError(404, "NotFound", f"{plural} \"{name}\" not found")
            self.rv += 1
            cur["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(plural, ns, "DELETED", cur)
            return status_body(200, "", "") | {"status": "Success"}

    def watch(self, plural: str, ns: str | None, selector: str | None, since: int, timeout_s: float,
              stopping: threading.Event):
        """Yield watch events after resourceVersion ``since`` until ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            if self.events and since < self.events[0][0] - 1 and since < self.rv:
                yield {"type": "ERROR", "object": status_body(410, "Expired",
                                                              f"too old resource version: {since} ({self.rv})")}
                return
        while not stopping.is_set():
            with self.cond:
                batch = [(rv, kind, o) for rv, p, n, kind, o in self.events
                         if rv > since and p == plural and (ns is None or n == ns)]
                if not batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self.cond.wait(min(left, 0.2))
                    continue
            for rv, kind, o in batch:
                since = rv
                if selector_matches(selector, o["metadata"].get("labels") or {}):
                    yield {"type": kind, "object": o}
            if time.monotonic() >= deadline:
                return


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    api: FakeKubeApi
    stopping: threading.Event

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def _route(self) -> tuple[str, str, str, str | None, str | None, bool, dict[str, list[str]]]:
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        q = parse_qs(url.query)
        if parts[:1] == ["apis"] and len(parts) == 3:  # API group discovery: /apis/<group>/<version>
            raise _Discovery(parts[1], parts[2])
        if parts[:2] == ["api", "v1"] and len(parts) >= 3:  # the core group: /api/v1/...
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] != ["apis"] or len(parts) < 4:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({url.path})")
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        plural = rest[0]
        _, namespaced = self.api.served(group, version, plural)
        if namespaced and ns is None and len(rest) > 1:
            raise ApiError(404, "NotFound", f"{plural} is namespaced")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub not in (None, "status"):
            raise ApiError(404, "NotFound", f"no subresource {sub}")
        return group, version, plural, ns or "", name, sub == "status", q

    def _handle(self, verb: str) -> None:
        self.api.requests.append((verb, self.path))
        try:
            try:
                group, version, plural, ns, name, status, q = self._route()
            except _Discovery as d:
                self._discovery(d.group, d.version)
                return
            if verb == "GET" and name is None:
                sel = (q.get("labelSelector") or [None])[0]
                if (q.get("watch") or ["false"])[0] in ("true", "1"):
                    self._watch(group, version, plural, ns or None, sel, q)
                    return
                items, rv = self.api.list(plural, ns or None, sel)
                kind = RESOURCES[(group, version, plural)][0]
                self._send(200, {"apiVersion": f"{group}/{version}" if group else version, "kind": f"{kind}List",
                                 "metadata": {"resourceVersion": rv}, "items": items})
            elif verb == "GET":
                self._send(200, self.api.get(plural, ns, name))
            elif verb == "POST" and name is None:
                self._send(201, self.api.create(group, version, plural, ns, self._body()))
            elif verb in ("PUT", "PATCH") and name is not None:
                ctype = self.headers.get("Content-Type", "")
                if verb == "PATCH" and "json-patch" in ctype:
                    raise ApiError(415, "UnsupportedMediaType", "json-patch is not served by this fake")
                self._send(200, self.api.update(plural, ns, name, self._body(), status=status, patch=verb == "PATCH"))
            elif verb == "DELETE" and name is not None:
                self._send(200, self.api.delete(plural, ns, name))
            else:
                raise ApiError(405, "MethodNotAllowed", f"{verb} {self.path}")
        except ApiError as e:
            self._send(e.code, status_body(e.code, e.reason, e.message))

    def _discovery(self, group: str, version: str) -> None:
        res = [{"name": p, "singularName": k.lower(), "namespaced": nsd, "kind": k, "verbs": ["get", "list", "watch", "create", "update",
                                                                    "patch", "delete"]}
               for (g, v, p), (k, nsd) in RESOURCES.items() if g == group and v == version]
        if not res or (group == KUEUE and not self.api.kueue):
            raise_404 = status_body(404, "NotFound", "the server could not find the requested resource")
            self._send(404, raise_404)
            return
        self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                         "resources": res})

    def _watch(self, group: str, version: str, plural: str, ns: str | None, sel: str | None,
               q: dict[str, list[str]]) -> None:
        since = int((q.get("resourceVersion") or ["0"])[0] or 0) or self.api.rv
        timeout_s = float((q.get("timeoutSeconds") or ["30"])[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for ev in self.api.watch(plural, ns, sel, since, timeout_s, self.stopping):
                line = json.dumps(ev).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


class _Discovery(Exception):
    def __init__(self, group: str, version: str) -> None:
        super().__init__(group)
        self.group, self.version = group, version


class FakeKubeServer:
    """``FakeKubeApi`` over HTTP on 127.0.0.1 (a free port) in a background thread; ``url`` for clients."""

    def __init__(self, api: FakeKubeApi | None = None) -> None:
        self.api = api or FakeKubeApi()
        self.stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"api": self.api, "stopping": self.stopping})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="fake-kube", daemon=True)

    def start(self) -> FakeKubeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self.api.cond:
            self.api.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["KUEUE", "KUEUE_VERSION", "ApiError", "FakeKubeApi", "FakeKubeServer", "merge_patch", "selector_matches"]


def main() -> None:
    """``python -m gridshift.testing.fake_kube [--no-kueue]``: serve until killed; prints the URL first."""
    import sys

    srv = FakeKubeServer(FakeKubeApi(kueue="--no-kueue" not in sys.argv[1:]))
    srv.start()
    print(srv.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
