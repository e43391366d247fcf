"""Command line: ``gridshift serve`` (the API and, when available, the reconciler) and ``gridshift token``."""

from __future__ import annotations

import inspect
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gridshift.errors import GridShiftError, require

STATE_ENV = "GRIDSHIFT_STATE_DIR"
DEFAULT_STATE_DIR = Path(".gridshift")  # relative to the working directory; git-ignored in the repository
DB_HELP = "Database URL: sqlite:///PATH or postgresql://USER@HOST/DB (default: sqlite:///STATE_DIR/gridshift.db)."
STATE_HELP = (f"The service's state directory: the default SQLite database and the executor's state (default: "
              f"${STATE_ENV}, else ./{DEFAULT_STATE_DIR}).")
StateDir = Annotated[Path | None, typer.Option("--state-dir", help=STATE_HELP, show_default=False)]
DbUrl = Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)]


def state_dir(given: Path | None) -> Path:
    """The state directory (``--state-dir``, else ``$GRIDSHIFT_STATE_DIR``, else ``./.gridshift``), created
    0711 when new: other users (job users) may pass through to their job directories but list nothing."""
    path = given if given is not None else Path(os.environ.get(STATE_ENV) or DEFAULT_STATE_DIR)
    if not path.is_dir():
        try:
            path.mkdir(parents=True)
            os.chmod(path, 0o711)
        except OSError as e:
            raise GridShiftError(f"cannot create the state directory: {e.strerror}", file=path,
                                 field="state-dir") from None
    return path


def db_url(db: str | None, state: Path | None) -> str:
    """``--db``, else SQLite in the state directory."""
    return db if db else f"sqlite:///{state_dir(state) / 'gridshift.db'}"


def _policy_spec(name: str | None, params: list[str], scenario: Any) -> Any:
    """The planning policy from ``--policy`` and ``--policy-param KEY=VALUE`` (values read as YAML scalars),
    checked before anything is written; None without ``--policy``."""
    import yaml

    from gridshift.model.scenario import PolicySpec
    from gridshift.service.reconciler import check_live_policy

    if name is None:
        if params:
            raise GridShiftError("--policy-param needs --policy", field="policy-param")
        return None
    values: dict[str, Any] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise GridShiftError(f"expected KEY=VALUE, got '{item}'", field="policy-param")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            values[key.strip()] = raw
    return check_live_policy(PolicySpec(name=name, params=values), None if scenario is None else scenario.objective,
                             name_field="policy")


def _initial_policy(store: Any, given: Any, scenario: Any) -> Any:
    """The policy the reconciler starts with: ``--policy`` if given (and stored, so later restarts keep it),
    else the one an operator last set (``PUT /policy``, stored as the ``policy`` setting), else ``asap``."""
    from gridshift.model.scenario import PolicySpec
    from gridshift.service.reconciler import check_live_policy

    if given is not None:
        store.put_setting("policy", given.model_dump(), actor="gridshift serve --policy")
        return given
    stored = store.get_setting("policy")
    if stored is not None:
        try:
            return check_live_policy(PolicySpec.model_validate(stored), scenario.objective)
        except (GridShiftError, ValueError) as e:
            logging.getLogger("gridshift.serve").warning("stored policy %s not usable (%s): planning with asap",
                                                         stored, e)
    return PolicySpec(name="asap")


def _slurm_options(job_user: str | None, job_user_for: list[str], job_root: Path | None, job_env: list[str],
                   slurm_partition: list[str]) -> dict[str, Any]:
    """The Slurm executor's options: ``--slurm-partition SITE=PARTITION``, ``--job-root`` (on a file system the
    nodes share), ``--job-env``; jobs run as the service's Slurm user (no ``--job-user``)."""
    from gridshift.service.executors.isolation import DEFAULT_ENV_ALLOW

    if job_user is not None or job_user_for:
        raise GridShiftError("--job-user and --job-user-for apply to the local executor; Slurm runs jobs as the "
                             "submitting user", field="executor")
    partitions: dict[str, str] = {}
    for item in slurm_partition:
        site, sep, part = item.partition("=")
        if not sep or not site.strip() or not part.strip():
            raise GridShiftError(f"expected SITE=PARTITION, got '{item}'", field="slurm-partition")
        partitions[site.strip()] = part.strip()
    options: dict[str, Any] = {"env_allow": (*DEFAULT_ENV_ALLOW, *job_env)}
    if partitions:
        options["partitions"] = partitions
    if job_root is not None:
        options["job_root"] = job_root
    return options


KUBE_OPTIONS = ("namespace", "image", "pools", "resources", "queue_name", "instance", "api_url", "kubeconfig",
                "context", "cpu", "memory", "termination_grace_s", "service_account", "timeout_s")


def kube_options(path: Path) -> dict[str, Any]:
    """The Kubernetes executor's options from a YAML file (``--kube-config``): a mapping of the names in
    ``KUBE_OPTIONS`` (docs/service/executors.md); anything else is one clear error naming the file."""
    from gridshift.data.yaml_doc import read_yaml

    doc = read_yaml(path, "Kubernetes executor options")
    if not isinstance(doc, dict):
        raise GridShiftError(f"{path}: expected a mapping of executor options", field="kube-config")
    unknown = sorted(set(doc) - set(KUBE_OPTIONS))
    if unknown:
        raise GridShiftError(f"{path}: unknown option(s) {', '.join(unknown)} (known: {', '.join(KUBE_OPTIONS)})",
                             field="kube-config")
    return dict(doc)


def _executor_options(executor: str, job_user: str | None, job_user_for: list[str], job_root: Path | None,
                      job_env: list[str], slurm_partition: list[str] | None = None,
                      kube_config: Path | None = None) -> dict[str, Any]:
    """The local executor's isolation options from ``--job-user``, ``--job-user-for TENANT=USER``,
    ``--job-root`` and ``--job-env NAME``; without a job user, one warning that tenant commands run as the
    service's own user."""
    from gridshift.service.executors.isolation import DEFAULT_ENV_ALLOW

    given = job_user is not None or job_user_for or job_root is not None or job_env
    if kube_config is not None and executor != "kubernetes":
        raise GridShiftError("--kube-config applies to the kubernetes executor", field="executor")
    if executor == "kubernetes" and not given and not slurm_partition:
        return kube_options(kube_config) if kube_config is not None else {}
    if executor == "slurm":
        return _slurm_options(job_user, job_user_for, job_root, job_env, slurm_partition or [])
    if slurm_partition:
        raise GridShiftError("--slurm-partition applies to the slurm executor", field="executor")
    if executor != "local":
        if given:
            raise GridShiftError("--job-user, --job-user-for, --job-root and --job-env apply to the local executor",
                                 field="executor")
        return {}
    per_tenant: dict[str, str] = {}
    for item in job_user_for:
        tenant, sep, user = item.partition("=")
        if not sep or not tenant.strip() or not user.strip():
            raise GridShiftError(f"expected TENANT=USER, got '{item}'", field="job-user-for")
        per_tenant[tenant.strip()] = user.strip()
    options: dict[str, Any] = {"env_allow": (*DEFAULT_ENV_ALLOW, *job_env)}
    if job_user is not None:
        options["run_as"] = job_user
    if per_tenant:
        options["run_as_tenant"] = per_tenant
    if job_root is not None:
        options["job_root"] = job_root
    if job_user is None:
        logging.getLogger("gridshift.serve").warning(
            "job commands of %s run as the service's own user (uid %d); give --job-user USER (as root) so that "
            "a tenant's command cannot reach the service's files", "tenants without --job-user-for" if per_tenant
            else "every tenant", os.geteuid())
    return options


def _make_reconciler(store: Any, *, scenario: Any, fleet: dict | None, executor: str,
                     ray_address: str | None, policy: Any = None,
                     executor_options: dict[str, Any] | None = None) -> Any:
    """The reconciler, if ``gridshift.service.reconciler`` provides one with a start()/stop() lifecycle and
    everything its constructor needs is at hand (a fleet scenario for planning); else None."""
    try:
        from gridshift.service import reconciler as rec_mod
    except ImportError:
        return None
    cls = getattr(rec_mod, "Reconciler", None)
    if cls is None or not all(callable(getattr(cls, m, None)) for m in ("start", "stop")):
        return None
    params = inspect.signature(cls).parameters

    def make_executor() -> Any:
        from gridshift.service.executors import make_executor as make

        options = dict(executor_options or {})
        if executor == "ray" and ray_address:
            options["address"] = ray_address
        return make(executor, **options)

    offered = {"store": lambda: store, "executor": make_executor, "fleet_scenario": lambda: scenario,
               "scenario": lambda: scenario, "fleet": lambda: fleet, "ray_address": lambda: ray_address,
               "policy": lambda: policy}
    kwargs: dict[str, Any] = {}
    for name, p in params.items():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        value = offered[name]() if name in offered else None
        if value is None:
            if p.default is inspect.Parameter.empty:
                logging.getLogger("gridshift.serve").warning(
                    "no reconciler: it needs '%s' (give --fleet SCENARIO.yaml)", name)
                return None
            continue
        kwargs[name] = value
    return cls(**kwargs)


def ensure_operator_token(store: Any) -> tuple[str, str] | None:
    """A new operator token (id, secret) when the database holds no active one, else None: restarting with
    ``--create-operator-token`` does not mint a token each time."""
    if any(t.role == "operator" and t.revoked_at is None for t in store.list_tokens()):
        return None
    return store.create_token("operator (gridshift serve)", "operator")


def _service_stack() -> None:
    """The live service's optional dependencies, each failing in one line that names the ``service`` extra."""
    for module in ("fastapi", "sqlalchemy", "alembic", "uvicorn", "prometheus_client"):
        require(module, "service", "the live service")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``token`` to ``app``."""
    # every token and db command needs the service stack: checked once, before any of them runs
    token_app = typer.Typer(no_args_is_help=True, help="API tokens: create, list, revoke.", callback=_service_stack)
    app.add_typer(token_app, name="token")
    db_app = typer.Typer(no_args_is_help=True, help="The service's database: migrations.", callback=_service_stack)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def db_upgrade(db: DbUrl = None, state: StateDir = None) -> None:
        """Create or migrate the service's database to this version's schema (``gridshift serve`` does it too)."""
        from gridshift.cli.common import fail, out
        from gridshift.service.db import current_revision, make_engine, upgrade

        try:
            db = db_url(db, state)
            upgrade(db)
            engine = make_engine(db)
            try:
                rev = current_revision(engine)
            finally:
                engine.dispose()
        except GridShiftError as e:
            fail(e)
        out.print(f"database at schema revision {rev}", markup=False, highlight=False)

    @app.command("serve")
    def serve(
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
        db: DbUrl = None,
        state: StateDir = None,
        fleet: Annotated[Path | None, typer.Option(help="Scenario YAML whose sites and zones form the fleet.")] = None,
        executor: Annotated[str, typer.Option(help="Where jobs run: local | ray | slurm | kubernetes.")] = "local",
        kube_config: Annotated[Path | None, typer.Option(
            help="YAML file of the Kubernetes executor's options: namespace, image, pools, queue_name, kubeconfig, "
                 "context, api_url … (executor kubernetes; docs/service/executors.md).")] = None,
        slurm_partition: Annotated[list[str] | None, typer.Option(
            help="SITE=PARTITION: the Slurm partition of a site (repeatable; executor slurm; default: the site's "
                 "own name).")] = None,
        slurm_power_save: Annotated[bool, typer.Option(
            help="During grid events, power idle nodes of the site's partitions down through Slurm's power saving "
                 "and up afterwards (executor slurm; slurm.conf needs SuspendProgram and ResumeProgram).")] = False,
        policy: Annotated[str | None, typer.Option(
            help="Planning policy: asap | threshold | mpc (default: the one last set with PUT /api/v1/policy, "
                 "else asap).")] = None,
        policy_param: Annotated[list[str] | None, typer.Option(
            help="A policy parameter KEY=VALUE (repeatable), e.g. forecast=persistence for mpc.")] = None,
        ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (executor ray).")] = None,
        job_user: Annotated[str | None, typer.Option(
            help="OS user (name or uid) that job commands run as; the service must run as root. Default: the "
                 "service's own user (a warning says so).")] = None,
        job_user_for: Annotated[list[str] | None, typer.Option(
            help="TENANT=USER: run this tenant's job commands as USER (repeatable; others: --job-user).")] = None,
        job_root: Annotated[Path | None, typer.Option(
            help="Directory of the per-job working directories (default: <state dir>-jobs, outside the "
                 "executor's state directory).")] = None,
        job_env: Annotated[list[str] | None, typer.Option(
            help="Name of a service environment variable jobs also get (repeatable; always: PATH, LANG, "
                 "LC_ALL, TZ).")] = None,
        tenant_commands: Annotated[str | None, typer.Option(
            help="allowed | templates-only: whether tenants may submit free-form commands (stored; default: "
                 "the one last set with PUT /api/v1/settings/tenant-commands, else allowed).")] = None,
        create_operator_token: Annotated[bool, typer.Option(
            "--create-operator-token", help="Create an operator token and print its secret once.")] = False,
        rate_per_s: Annotated[float, typer.Option(help="Requests per second allowed per token.")] = 50.0,
        burst: Annotated[int, typer.Option(help="Requests a token may send at once above the rate.")] = 100,
        max_body_bytes: Annotated[int, typer.Option(help="Largest request body, bytes.")] = 1 << 20,
        pull_interval_s: Annotated[float | None, typer.Option(
            help="Pull the fleet zones' carbon and price from the data registry every this many seconds.")] = None,
        replay_from: Annotated[datetime | None, typer.Option(
            help="With --pull-interval-s: the data time (UTC) that stands for the start of the service, to replay "
                 "a past year as the present.", formats=["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])] = None,
        signal_files_dir: Annotated[Path | None, typer.Option(
            help="Directory of grid signal CSVs an operator may pull from (POST /signals/pull with 'file').")] = None,
        providers: Annotated[Path | None, typer.Option(
            help="YAML file of live grid-signal providers to pull, each on its own clock (docs/service/providers.md).")] = None,
        forecast_dir: Annotated[Path | None, typer.Option(
            help="Where the providers' issued forecasts are kept (default: issued-forecasts beside --providers).")] = None,
        header_timeout_s: Annotated[float, typer.Option(
            min=0.1, max=3600, help="Close a connection whose request headers are not complete within this many "
                                    "seconds (slow clients cannot hold connections).")] = 10.0,
        max_connections: Annotated[int, typer.Option(
            min=1, max=1_000_000, help="Open connections (or requests in progress) beyond which new requests get "
                                       "a 503 at once.")] = 1000,
        access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
        log_level: Annotated[str, typer.Option(help="debug | info | warning | error.")] = "info",
        trusted_proxy: Annotated[list[str] | None, typer.Option(
            "--trusted-proxy", help="Address of a reverse proxy whose X-Forwarded-For/-Proto headers are "
                                    "believed (repeatable); without it they are ignored.")] = None,
    ) -> None:
        """Run the GridShift service: migrate the database, then serve the API, dashboard and metrics."""
        from gridshift.cli.common import err, fail

        try:
            _service_stack()
        except GridShiftError as e:
            fail(e)
        import uvicorn

        from gridshift.service.app import ApiSettings, create_app, fleet_from_sites
        from gridshift.service.db import upgrade
        from gridshift.service.server import uvicorn_options
        from gridshift.service.store import Store

        if executor not in ("local", "ray", "slurm", "kubernetes"):
            fail(GridShiftError(f"unknown executor '{executor}' (use local, ray, slurm or kubernetes)",
                                field="executor"))
        logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        scenario = None
        fleet_doc = None
        try:
            if fleet is not None:
                from gridshift.data.scenario import load_scenario

                scenario = load_scenario(fleet)
                fleet_doc = fleet_from_sites(scenario.sites, scenario.zones)
            policy_spec = _policy_spec(policy, policy_param or [], scenario)
            if pull_interval_s is not None and scenario is None:
                raise GridShiftError("--pull-interval-s pulls the fleet's zones: give --fleet", field="fleet")
            shift_s = 0.0
            if replay_from is not None:
                start = replay_from.replace(tzinfo=UTC) if replay_from.tzinfo is None else replay_from
                shift_s = (datetime.now(UTC) - start).total_seconds()
            try:
                settings = ApiSettings(
                    max_body_bytes=max_body_bytes, rate_per_s=rate_per_s, burst=burst, pull_interval_s=pull_interval_s,
                    pull_zones=tuple(z.id for z in scenario.zones) if scenario is not None else (),
                    pull_signals=("carbon_g_per_kwh", "price_usd_per_mwh"), pull_shift_s=shift_s,
                    signal_files_dir=None if signal_files_dir is None else str(signal_files_dir))
            except ValueError as e:
                raise GridShiftError(str(e)) from None
            puller = None
            if providers is not None:
                from gridshift.service.provider_pull import load_puller

                puller = load_puller(providers, forecast_dir)
            executor_options = _executor_options(executor, job_user, job_user_for or [], job_root, job_env or [],
                                                 slurm_partition or [], kube_config)
            if slurm_power_save:
                if executor != "slurm":
                    raise GridShiftError("--slurm-power-save applies to the slurm executor", field="executor")
                executor_options["power_save"] = True
            if tenant_commands is not None and tenant_commands not in ("allowed", "templates-only"):
                raise GridShiftError(f"use allowed or templates-only, got '{tenant_commands}'",
                                     field="tenant-commands")
            db = db_url(db, state)
            executor_options.setdefault("state_dir", state_dir(state) / "executor")
            upgrade(db)
            store = Store(db)
            store.check_schema()
            if tenant_commands is not None:
                from gridshift.service.commands import put_tenant_commands

                put_tenant_commands(store, tenant_commands, actor="gridshift serve --tenant-commands")
        except GridShiftError as e:
            fail(e)
        if create_operator_token:
            made = ensure_operator_token(store)
            if made is not None:
                err.print(f"operator token {made[0]} (shown once): {made[1]}", markup=False, highlight=False,
                          soft_wrap=True)
            else:
                err.print("an operator token exists already, so none was made: `gridshift token create --role "
                          "operator` makes another, `gridshift token list` and `gridshift token revoke ID` rotate "
                          "them", markup=False, highlight=False, soft_wrap=True)
        reconciler = None
        try:
            reconciler = _make_reconciler(
                store, scenario=scenario, fleet=fleet_doc, executor=executor, ray_address=ray_address,
                policy=None if scenario is None else _initial_policy(store, policy_spec, scenario),
                executor_options=executor_options)
        except (GridShiftError, ValueError) as e:
            fail(e if isinstance(e, GridShiftError) else GridShiftError(f"cannot start the reconciler: {e}"))
        app = create_app(store, fleet=fleet_doc, reconciler=reconciler, settings=settings, providers=puller)
        if reconciler is not None:
            if settings.pull_interval_s and settings.pull_zones:  # the first plan needs the pulled signals
                from gridshift.service.signal_pull import pull_window

                pull_window(store, settings, datetime.now(UTC),
                            lambda kind, zone, signal, msg, *a: logging.getLogger("gridshift.serve").warning(msg, *a))
                app.state.pulled_at_start = True  # the pull clock waits one interval before its next pull
            reconciler.start()
        try:
            uvicorn.run(app, host=host, port=port, access_log=access_log, log_level=log_level.lower(),
                        proxy_headers=bool(trusted_proxy), forwarded_allow_ips=",".join(trusted_proxy or []) or None,
                        timeout_graceful_shutdown=10,
                        **uvicorn_options(header_timeout_s=header_timeout_s, max_connections=max_connections))
        finally:
            if reconciler is not None:
                reconciler.stop()
            store.close()

    @token_app.command("create")
    def token_create(
        role: Annotated[str, typer.Option(help="tenant | operator | grid.")],
        db: DbUrl = None,
        state: StateDir = None,
        tenant: Annotated[str | None, typer.Option(help="Tenant (role tenant only).")] = None,
        name: Annotated[str | None, typer.Option(help="A label for the token.")] = None,
    ) -> None:
        """Create an API token and print its secret (shown only this once)."""
        from gridshift.cli.common import fail, out
        from gridshift.service.store import Store

        try:
            with Store(db_url(db, state)) as store:
                store.check_schema()
                token_id, secret = store.create_token(name or f"{role} token", role, tenant)
        except GridShiftError as e:
            fail(e)
        out.print(secret, markup=False, highlight=False, soft_wrap=True)

    @token_app.command("list")
    def token_list(db: DbUrl = None, state: StateDir = None) -> None:
        """List API tokens (never their secrets)."""
        from rich.markup import escape
        from rich.table import Table

        from gridshift.cli.common import fail, out
        from gridshift.service.store import Store

        try:
            with Store(db_url(db, state)) as store:
                tokens = store.list_tokens()
        except GridShiftError as e:
            fail(e)
        table = Table()
        for c in ("id", "role", "tenant", "state", "name"):
            table.add_column(c)
        for t in tokens:
            state = f"revoked {t.revoked_at.isoformat()}" if t.revoked_at else "active"
            table.add_row(*(escape(v) for v in (t.id, t.role, t.tenant or "-", state, t.name)))
        out.print(table)

    @token_app.command("revoke")
    def token_revoke(token_id: str, db: DbUrl = None, state: StateDir = None) -> None:
        """Revoke an API token."""
        from gridshift.cli.common import fail
        from gridshift.service.store import NotFound, Store

        try:
            with Store(db_url(db, state)) as store:
                if not store.revoke_token(token_id):
                    raise NotFound(f"no active token '{token_id}'")
        except GridShiftError as e:
            fail(e)
