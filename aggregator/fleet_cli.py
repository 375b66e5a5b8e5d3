"""``footfall-aggregator fleet``: the fleet's status (the group's own action) and the operator's
commands: provision, add-user, rotate, revoke, list-provisioned, render, push-config.

Passwords are written into bundle files (mode 0600) and printed nowhere.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aggregator.cli_common import check_setup, domain_errors, load_config, opened_store
from footfall.cli_support import (
    JsonOpt,
    config_errors_exit,
    fail,
    print_json,
    print_table,
    required_spelling,
    warn_deprecated,
)

if TYPE_CHECKING:
    from aggregator.bundles import BrokerEndpoint
    from aggregator.provisioning import Registry

EXIT_UNHEALTHY_AGENTS = 3  # offline, silent or without video
EXIT_SILENT_AGENTS = EXIT_UNHEALTHY_AGENTS  # the name it had while only silence counted
EXIT_CONFIG_REJECTED = 3
EXIT_NO_ANSWER = 4

fleet_app = typer.Typer(
    help="Fleet status (without a subcommand), provisioning of broker accounts, remote config.",
    invoke_without_command=True,
)

RegistryOpt = Annotated[
    Path,
    typer.Option(
        "--registry",
        help="Registry directory (account records; generates mosquitto/passwd and mosquitto/acl)",
    ),
]
BrokerHostOpt = Annotated[
    str, typer.Option("--broker-host", help="Broker host name the bundle connects to")
]
BrokerPortOpt = Annotated[int, typer.Option("--broker-port", help="Broker TLS port", min=1)]
CaOpt = Annotated[
    Path | None,
    typer.Option("--ca", help="CA certificate (PEM) of the broker, copied into the bundle"),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="New directory for the bundle (default: ./bundle-<name>)"),
]
PrefixOpt = Annotated[str, typer.Option("--topic-prefix", help="First levels of every topic")]
BrokerUserOpt = Annotated[
    str | None,
    typer.Option(
        "--broker-user",
        help="System user Mosquitto runs as (e.g. mosquitto): generated files get its group, 0640",
    ),
]
InstallDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--install-dir",
        help="Directory the bundle's files will be in where they are used: the paths written "
        "into its TOML (default /etc/footfall-agent for an agent, /etc/footfall for a service; "
        "give the --out directory to use the bundle where it is)",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The agent's data_dir written into agent.toml (default /var/lib/footfall-agent)",
    ),
]
# Accounts are named by their kind: --agent for an agent's, --user for an aggregator's or an
# operator's. The old spellings (a positional NAME, add-user --name) are hidden and warn.
AgentAccountOpt = Annotated[
    str | None,
    typer.Option("--agent", help="Agent account (the agent id)", show_default=False),
]
UserAccountOpt = Annotated[
    str | None,
    typer.Option("--user", help="Aggregator or operator account", show_default=False),
]
LegacyNameArg = Annotated[
    str | None, typer.Argument(hidden=True, metavar="NAME", show_default=False)
]
ReloadOpt = Annotated[
    Path | None,
    typer.Option(
        "--reload-pid-file",
        help="Mosquitto's PID file: SIGHUP the broker so it re-reads passwd and acl",
    ),
]


@fleet_app.callback()
def fleet(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Aggregator configuration file (TOML)"),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL, overriding the configuration"),
    ] = None,
    site: Annotated[str | None, typer.Option("--site", help="Only this site")] = None,
    silent_after: Annotated[
        str | None,
        typer.Option(
            "--silent-after",
            help="Flag online agents not heard from for longer than this (e.g. 90s, 5m); default "
            "fleet.silent_after_seconds",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show every agent's last status; exit 3 if any agent is offline, silent (no message
    for longer than --silent-after) or without video (its source reconnecting)."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import timedelta

    from aggregator.fleet import fleet_table, parse_duration, unhealthy

    cfg = load_config(config, store)
    if silent_after is None:
        threshold = timedelta(seconds=cfg.fleet.silent_after_seconds)
    else:
        try:
            threshold = parse_duration(silent_after)
        except ValueError as exc:
            raise fail(f"--silent-after: {exc}", code=2) from None
    with opened_store(cfg, upgrade=False) as event_store:
        agents = event_store.agents(site)
    if not agents and as_json:
        print_json([])
        return
    if not agents:
        typer.echo("no agent has reported yet" + (f" for site {site}" if site else ""))
        return
    now = datetime.now(UTC)
    print_table(fleet_table(agents, now, threshold), as_json)
    failing = unhealthy(agents, now, threshold)
    if failing:
        names = ", ".join(f"{a.site}/{a.spot}/{a.agent} ({v.value})" for a, v in failing)
        typer.echo(f"{len(failing)} of {len(agents)} not counting: {names}", err=True)
        raise typer.Exit(EXIT_UNHEALTHY_AGENTS)


def _registry(path: Path, broker_user: str | None = None, *, writes: bool = True) -> "Registry":
    from aggregator.provisioning import Registry
    from footfall.preflight import check_directory, check_writable_directory

    if writes:
        check_setup([lambda: check_writable_directory("--registry", path)])
    else:
        check_setup([lambda: check_directory("--registry", path)])
    with domain_errors():
        return Registry(path, broker_user=broker_user)


def _account(agent: str | None, user: str | None, legacy: str | None) -> str:
    """The account ``--agent`` or ``--user`` names, or the old positional name (any kind) with
    a warning."""
    if legacy is not None:
        if agent is not None or user is not None:
            raise fail("give --agent or --user only: a positional NAME is their deprecated form", 2)
        warn_deprecated("a positional NAME", "--agent NAME or --user NAME")
        return legacy
    if (agent is None) == (user is None):
        raise fail("give one of --agent NAME or --user NAME", 2)
    name = agent if agent is not None else user
    assert name is not None
    return name


def _check_kind(reg: "Registry", name: str, agent: str | None, user: str | None) -> None:
    """An account named with ``--agent`` is an agent's, one named with ``--user`` is not."""
    from footfall.broker_auth import Role

    if agent is None and user is None:
        return  # the old positional name: any kind, as before
    with domain_errors():
        account = reg.get(name)
    if agent is not None and account.role is not Role.AGENT:
        raise fail(f"--agent {name}: a {account.role.value} account; use --user {name}", 2)
    if user is not None and account.role is Role.AGENT:
        raise fail(f"--user {name}: an agent account; use --agent {name}", 2)


def _endpoint(host: str, port: int, ca: Path | None) -> "BrokerEndpoint":
    from aggregator.bundles import BrokerEndpoint

    if ca is not None and not ca.is_file():
        raise fail(f"--ca {ca}: file not found", 2)
    return BrokerEndpoint(host, port, ca)


def _check_out(target: Path) -> None:
    """Before the registry changes: an account issued into a bundle that cannot be written
    would need rotating at once."""
    from footfall.preflight import check_writable_directory

    check_setup([lambda: check_writable_directory("--out", target)])


def _reload(pid_file: Path | None) -> None:
    from aggregator.provisioning import RegistryError, reload_broker

    if pid_file is None:
        typer.echo("broker files regenerated; make the broker re-read them (SIGHUP)")
        return
    try:
        pid = reload_broker(pid_file)
    except RegistryError as exc:
        raise fail(f"files regenerated, but the broker was not reloaded: {exc}") from None
    typer.echo(f"broker reloaded (SIGHUP to pid {pid})")


def _places(install_dir: Path | None, data_dir: Path | None = None) -> dict[str, Path]:
    """The bundle writer's keyword arguments for the paths given; absolute, since the TOML
    is read from wherever the program using it happens to start."""
    places = {"install_dir": install_dir, "data_dir": data_dir}
    return {key: path.expanduser().absolute() for key, path in places.items() if path is not None}


def _report_bundle(paths: list[Path]) -> None:
    typer.echo(f"bundle: {paths[0].parent}")
    for path in paths:
        note = "  (secret, mode 0600)" if path.name == "mqtt.password" else ""
        typer.echo(f"  {path.name}{note}")


@fleet_app.command("provision")
def provision(
    registry: RegistryOpt,
    site: Annotated[str, typer.Option("--site", help="Site id")],
    spot: Annotated[str, typer.Option("--spot", help="Spot id")],
    agent: Annotated[str, typer.Option("--agent", help="Agent id (also its broker user name)")],
    broker_host: BrokerHostOpt,
    broker_port: BrokerPortOpt = 8883,
    ca: CaOpt = None,
    out: OutOpt = None,
    topic_prefix: PrefixOpt = "footfall/v1",
    source_url: Annotated[
        str | None, typer.Option("--source-url", help="Camera URL written into agent.toml")
    ] = None,
    broker_user: BrokerUserOpt = None,
    reload_pid_file: ReloadOpt = None,
    install_dir: InstallDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an agent's broker account and its bundle (agent.toml, mqtt.password, ca.crt)."""
    from aggregator.bundles import write_agent_bundle

    endpoint = _endpoint(broker_host, broker_port, ca)
    target = out or Path(f"bundle-{agent}")
    _check_out(target)
    reg = _registry(registry, broker_user)
    with domain_errors():
        issued = reg.provision_agent(site, spot, agent, topic_prefix=topic_prefix)
        paths = write_agent_bundle(
            target, issued, endpoint, source_url=source_url, **_places(install_dir, data_dir)
        )
    typer.echo(f"provisioned agent {agent} at {site}/{spot}")
    _report_bundle(paths)
    _reload(reload_pid_file)


@fleet_app.command("add-user")
def add_user(
    registry: RegistryOpt,
    role: Annotated[str, typer.Option("--role", help="aggregator or operator")],
    broker_host: BrokerHostOpt,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Broker user name of the account", show_default=False),
    ] = None,
    legacy_name: Annotated[str | None, typer.Option("--name", hidden=True)] = None,
    broker_port: BrokerPortOpt = 8883,
    ca: CaOpt = None,
    out: OutOpt = None,
    topic_prefix: PrefixOpt = "footfall/v1",
    broker_user: BrokerUserOpt = None,
    reload_pid_file: ReloadOpt = None,
    install_dir: InstallDirOpt = None,
) -> None:
    """Create an aggregator account (reads everything) or an operator account (publishes
    agents' configs); writes mqtt.toml, mqtt.password and ca.crt."""
    from aggregator.bundles import write_service_bundle
    from footfall.broker_auth import Role

    name = required_spelling(user, legacy_name, new="--user NAME", old="--name NAME")
    try:
        parsed = Role(role)
    except ValueError:
        raise fail(f"--role must be aggregator or operator, not {role!r}", 2) from None
    endpoint = _endpoint(broker_host, broker_port, ca)
    target = out or Path(f"bundle-{name}")
    _check_out(target)
    reg = _registry(registry, broker_user)
    with domain_errors():
        issued = reg.add_service(parsed, name, topic_prefix=topic_prefix)
        paths = write_service_bundle(target, issued, endpoint, **_places(install_dir))
    typer.echo(f"provisioned {parsed.value} {name}")
    _report_bundle(paths)
    _reload(reload_pid_file)


@fleet_app.command("rotate")
def rotate(
    registry: RegistryOpt,
    broker_host: BrokerHostOpt,
    agent: AgentAccountOpt = None,
    user: UserAccountOpt = None,
    legacy_name: LegacyNameArg = None,
    broker_port: BrokerPortOpt = 8883,
    ca: CaOpt = None,
    out: OutOpt = None,
    source_url: Annotated[
        str | None, typer.Option("--source-url", help="Camera URL written into agent.toml")
    ] = None,
    broker_user: BrokerUserOpt = None,
    reload_pid_file: ReloadOpt = None,
    install_dir: InstallDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """New password for an account (--agent or --user), in a new bundle; the old password stops
    working when the broker reloads."""
    from aggregator.bundles import write_agent_bundle, write_service_bundle
    from footfall.broker_auth import Role

    endpoint = _endpoint(broker_host, broker_port, ca)
    reg = _registry(registry, broker_user)
    name = _account(agent, user, legacy_name)
    target = out or Path(f"bundle-{name}")
    _check_out(target)
    _check_kind(reg, name, agent, user)
    with domain_errors():
        issued = reg.rotate(name)
        if issued.account.role is Role.AGENT:
            places = _places(install_dir, data_dir)
            paths = write_agent_bundle(target, issued, endpoint, source_url=source_url, **places)
        else:
            paths = write_service_bundle(target, issued, endpoint, **_places(install_dir))
    typer.echo(f"new password for {name}")
    _report_bundle(paths)
    _reload(reload_pid_file)


@fleet_app.command("revoke")
def revoke(
    registry: RegistryOpt,
    agent: AgentAccountOpt = None,
    user: UserAccountOpt = None,
    legacy_name: LegacyNameArg = None,
    broker_user: BrokerUserOpt = None,
    reload_pid_file: ReloadOpt = None,
) -> None:
    """Remove an account (--agent or --user) from the broker's files (its record stays, marked
    revoked)."""
    reg = _registry(registry, broker_user)
    name = _account(agent, user, legacy_name)
    _check_kind(reg, name, agent, user)
    with domain_errors():
        reg.revoke(name)
    typer.echo(f"revoked {name}")
    _reload(reload_pid_file)


@fleet_app.command("render")
def render(
    registry: RegistryOpt,
    broker_user: BrokerUserOpt = None,
    reload_pid_file: ReloadOpt = None,
) -> None:
    """Regenerate mosquitto/passwd and mosquitto/acl from the account records."""
    reg = _registry(registry, broker_user)
    with domain_errors():
        reg.render()
    typer.echo(f"wrote {reg.passwd_file} and {reg.acl_file}")
    _reload(reload_pid_file)


@fleet_app.command("list-provisioned")
def list_provisioned(
    registry: RegistryOpt,
    as_json: JsonOpt = False,
) -> None:
    """Every account in the registry, revoked ones included."""
    reg = _registry(registry, writes=False)
    with domain_errors():
        accounts = reg.accounts()
    if as_json:
        rows = [a.model_dump(mode="json", exclude={"password_hash"}) for a in accounts]
        print_json(rows)
        return
    if not accounts:
        typer.echo(f"no accounts in {registry}")
        return
    table = Table("name", "role", "site/spot/agent", "prefix", "created", "rotated", "state")

    def day(value: datetime | None) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else "-"

    for a in accounts:
        state = f"revoked {day(a.revoked_at)}" if a.revoked_at else "active"
        table.add_row(
            *(
                Text(c)
                for c in (
                    a.name,
                    a.role.value,
                    a.address,
                    a.topic_prefix,
                    day(a.created_at),
                    day(a.rotated_at),
                    state,
                )
            )
        )
    Console(width=200).print(table)


@fleet_app.command("push-config")
def push_config(
    agent: Annotated[str, typer.Option("--agent", help="Agent id")],
    file: Annotated[
        Path | None,
        typer.Argument(help="Remote configuration (TOML); see docs/operator-guide.md"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Configuration with the [mqtt] section of an operator account (e.g. the "
            "mqtt.toml of `fleet add-user --role operator`)",
        ),
    ] = None,
    registry: Annotated[
        Path | None, typer.Option("--registry", help="Registry to look up the agent's site/spot")
    ] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id (without --registry)")] = None,
    spot: Annotated[str | None, typer.Option("--spot", help="Spot id (without --registry)")] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, help="Seconds to wait for the agent's answer (0: do not)"),
    ] = 30.0,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the remote config: back to the agent's file")
    ] = False,
) -> None:
    """Validate a remote configuration and publish it retained to one agent; wait for its answer.

    Exit 0 applied, 3 rejected by the agent (the reason is printed), 4 no answer yet (an
    offline agent takes the retained config when it next connects)."""
    from aggregator.remote_push import PushError
    from aggregator.remote_push import push_config as push
    from aggregator.setup_checks import broker_checks
    from footfall.contract import ConfigOutcome
    from footfall.contract.topics import AgentAddress
    from footfall.remote_config import load_remote_config

    if (file is None) == (not clear):
        raise fail("give a configuration FILE, or --clear", 2)
    if registry is not None:
        with domain_errors(code=2):
            account = _registry(registry, writes=False).find_agent(agent)
        site, spot = account.site, account.spot
    if site is None or spot is None:
        raise fail("give --registry, or --site and --spot", 2)
    try:
        address = AgentAddress(site, spot, agent)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    cfg = load_config(config)
    if cfg.mqtt is None:
        raise fail(f"{config}: no [mqtt] section", 2)
    check_setup(broker_checks(cfg))
    version = None
    payload = b""
    if file is not None:
        with config_errors_exit():
            remote = load_remote_config(file)
        version, payload = remote.config_version, remote.to_json()
    try:
        outcome = push(cfg.mqtt, address, payload, version=version, wait_seconds=wait)
    except PushError as exc:
        raise fail(str(exc)) from None
    what = f"config {version}" if version else "removal of the remote config"
    typer.echo(f"published {what} (retained) to {outcome.topic}")
    answer = outcome.answer
    if answer is None:
        if wait > 0:
            typer.echo(
                f"no answer from {agent} within {wait:g} s: it takes the config when it next "
                "connects; see `fleet` for its config version"
            )
            raise typer.Exit(EXIT_NO_ANSWER)
        return
    if answer.outcome is ConfigOutcome.APPLIED:
        typer.echo(f"{agent}: applied; configuration in effect: {answer.active_version}")
        return
    typer.secho(
        f"{agent}: REJECTED {answer.config_version}: {answer.reason}; still running "
        f"{answer.active_version}",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(EXIT_CONFIG_REJECTED)
