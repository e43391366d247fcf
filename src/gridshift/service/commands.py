"""Who may submit a free-form command: the operator's ``tenant_commands`` setting and the job templates.

``tenant_commands`` is ``allowed`` (default) or ``templates-only``. With ``templates-only`` a tenant's job may
not carry a ``command`` (403): it runs the built-in simulated workload, or names a template (``template``)
from the operator's ``job_templates`` setting (name -> argv list). Operators may always submit commands.
Both settings are stored (``settings`` table) and changed through the API or ``gridshift serve``.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from gridshift.service.store import InvalidSpec, PermissionDenied, Principal, Store

TENANT_COMMANDS_KEY = "tenant_commands"
JOB_TEMPLATES_KEY = "job_templates"
TENANT_COMMANDS: tuple[str, ...] = ("allowed", "templates-only")
MAX_TEMPLATES = 200
TEMPLATE_NAME = r"[A-Za-z0-9._-]{1,64}"


def tenant_commands(store: Store) -> str:
    """The stored ``tenant_commands`` mode (``allowed`` if never set)."""
    doc = store.get_setting(TENANT_COMMANDS_KEY) or {}
    mode = doc.get("mode", "allowed")
    return mode if mode in TENANT_COMMANDS else "templates-only"  # an unreadable value: the safe side


def put_tenant_commands(store: Store, mode: str, *, actor: str | None) -> str:
    """Store the ``tenant_commands`` mode, else InvalidSpec naming the allowed values."""
    if mode not in TENANT_COMMANDS:
        raise InvalidSpec(f"tenant_commands must be one of {', '.join(TENANT_COMMANDS)}, got '{mode}'",
                          field="tenant_commands")
    store.put_setting(TENANT_COMMANDS_KEY, {"mode": mode}, actor=actor)
    return mode


def job_templates(store: Store) -> dict[str, list[str]]:
    """The operator's job templates: name -> argv list."""
    return dict((store.get_setting(JOB_TEMPLATES_KEY) or {}).get("templates", {}))


def put_job_templates(store: Store, templates: dict[str, list[str]], *, actor: str | None) -> dict[str, list[str]]:
    """Replace the job templates (name -> non-empty argv list of strings), else InvalidSpec."""
    if len(templates) > MAX_TEMPLATES:
        raise InvalidSpec(f"at most {MAX_TEMPLATES} job templates, got {len(templates)}", field="templates")
    for name, argv in templates.items():
        if not re.fullmatch(TEMPLATE_NAME, name):
            raise InvalidSpec(f"template name '{name[:80]}' must be 1-64 letters, digits, . _ -",
                              field="templates")
        if not argv or not all(isinstance(a, str) and "\x00" not in a for a in argv):
            raise InvalidSpec(f"template '{name}' must be a non-empty list of strings", field=f"templates.{name}")
    store.put_setting(JOB_TEMPLATES_KEY, {"templates": templates}, actor=actor)
    return templates


def resolve_submission(store: Store, principal: Principal, spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with its ``template`` replaced by the template's command; a tenant's free-form ``command``
    refused (PermissionDenied) while tenant commands are ``templates-only``."""
    template = spec.pop("template", None)
    if template is not None:
        if spec.get("command") is not None:
            raise InvalidSpec("give either command or template, not both", field="template")
        templates = job_templates(store)
        if template not in templates:
            raise InvalidSpec(f"no job template '{template}' (known: {', '.join(sorted(templates)) or 'none'})",
                              field="template")
        spec["command"] = shlex.join(templates[template])
        return spec
    if (spec.get("command") is not None and principal.role != "operator"
            and tenant_commands(store) == "templates-only"):
        raise PermissionDenied("tenant commands are templates-only on this service: submit without a command or "
                               "name a job template", field="command")
    return spec
