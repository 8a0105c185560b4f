"""compose.yaml and the Dockerfile, checked against the code they run, with no Docker engine.

Each check lists the problems it finds. The tests assert the real files have none, and that every
check does report a deliberately broken copy, so no check can pass by looking at nothing.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import TypeAdapter, ValidationError
from pydantic_settings import BaseSettings

from delivery_service.app import Settings as DeliverySettings
from inventory_service.handlers import InventorySettings
from operations.journal import JournalSettings
from order_service.app import Settings as OrderSettings
from payment_service.app import Settings as PaymentSettings
from prescription_service.app import Settings as PrescriptionSettings
from service_runtime.settings import RuntimeSettings, plaintext_connections
from user_service.app import create_app
from user_service.settings import Settings as GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "user_service"
# The settings class each package reads its environment with, keyed by the package compose runs.
SETTINGS: dict[str, type[BaseSettings]] = {
    "user_service": GatewaySettings,
    "prescription_service": PrescriptionSettings,
    "order_service": OrderSettings,
    "payment_service": PaymentSettings,
    "inventory_service": InventorySettings,
    "delivery_service": DeliverySettings,
    "operations.journal": JournalSettings,
}
# The compose service that runs a module, where its name is not the module's.
SERVICE_NAMES = {"operations.journal": "journal"}
BACKING = ("rabbitmq", "mongodb")
HEALTH_PATH = "/api/v1/health"
# Every service must share one broker, one exchange namespace and one store server.
SHARED_VARIABLES = ("ENVIRONMENT", "RABBITMQ_URL", "MONGODB_URL", "BROKER_NAMESPACE")
# Read before the settings are, to say where they come from (service_runtime/settings.py).
BOOTSTRAP_VARIABLES = {"SECRETS_DIR"}
# compose.production.yaml: the settings each service reads from a secret file, never the environment.
PRODUCTION_SECRETS = ("rabbitmq_url", "mongodb_url", "field_encryption_keys")
GATEWAY_SECRETS = (*PRODUCTION_SECRETS, "secret_key", "email_index_key", "admin_password")
# Besides the ones every service reads: the secrets of one service alone.
OWN_SECRETS = {GATEWAY: GATEWAY_SECRETS, "delivery_service": (*PRODUCTION_SECRETS, "delivery_pin_key")}

Service = dict[str, Any]


@dataclass
class Project:
    compose: dict[str, Any]
    dockerfile: str
    dockerignore: str
    pyproject: dict[str, Any]


def read_project(compose: str = "compose.yaml") -> Project:
    return Project(
        compose=yaml.safe_load((ROOT / compose).read_text()),
        dockerfile=(ROOT / "Dockerfile").read_text(),
        dockerignore=(ROOT / ".dockerignore").read_text(),
        pyproject=tomllib.loads((ROOT / "pyproject.toml").read_text()),
    )


def services(project: Project) -> dict[str, Service]:
    found: dict[str, Service] = project.compose.get("services") or {}
    return found


def platform_services(project: Project) -> dict[str, Service]:
    return {name: s for name, s in services(project).items() if name not in BACKING}


def command_package(service: Service) -> str | None:
    """The package a `python -m <package>` command runs, or None for any other command."""
    command = service.get("command")
    words = shlex.split(command) if isinstance(command, str) else list(command or [])
    if len(words) >= 3 and Path(str(words[0])).name.startswith("python") and words[1] == "-m":
        return str(words[2])
    return None


def runnable(module: str) -> bool:
    """Whether `python -m <module>` finds something to run: a package's __main__ or a module file."""
    path = ROOT.joinpath(*module.split("."))
    return (path / "__main__.py").is_file() or path.with_suffix(".py").is_file()


def environment(service: Service) -> dict[str, str | None]:
    """A service's environment in either compose syntax; None means passed through from the shell."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (str(item).partition("=") for item in env)
        return {key: value if sep else None for key, sep, value in pairs}
    return {str(key): None if value is None else str(value) for key, value in env.items()}


def settings_of(name: str, service: Service) -> type[BaseSettings] | None:
    return SETTINGS.get(command_package(service) or name)


def effective(name: str, service: Service, variable: str) -> object:
    """The value the service sees: from compose when set there, else its settings class default."""
    value = environment(service).get(variable)
    cls = settings_of(name, service)
    if value is None and cls is not None and variable.lower() in cls.model_fields:
        return cls.model_fields[variable.lower()].default
    return value


def missing_services(project: Project) -> list[str]:
    names = [SERVICE_NAMES.get(module, module) for module in SETTINGS]
    problems = [f"no service {name}" for name in [*names, *BACKING] if name not in services(project)]
    run = {command_package(s) for s in platform_services(project).values()}
    return problems + [f"no service runs python -m {package}" for package in SETTINGS if package not in run]


def command_problems(project: Project) -> list[str]:
    problems = []
    for name, service in platform_services(project).items():
        package = command_package(service)
        if package is None:
            problems.append(f"{name}: command is not `python -m <package>`: {service.get('command')!r}")
        elif not runnable(package):
            problems.append(f"{name}: runs {package}, which has no __main__.py or module file")
        elif package not in SETTINGS:
            problems.append(f"{name}: runs {package}, whose settings class this test does not know")
    return problems


def environment_problems(project: Project) -> list[str]:
    problems = []
    for name, service in platform_services(project).items():
        cls = settings_of(name, service)
        if cls is None:
            problems.append(f"{name}: no settings class to check its environment against")
            continue
        for variable, value in environment(service).items():
            field = cls.model_fields.get(variable.lower())
            if variable in BOOTSTRAP_VARIABLES:
                continue
            if variable != variable.upper() or field is None:
                problems.append(f"{name}: {variable} is not a field of {cls.__name__}")
            elif value is not None and "${" not in value and field.annotation is not None:
                try:
                    TypeAdapter(field.annotation).validate_python(value)
                except ValidationError as error:
                    problems.append(f"{name}: {variable}={value!r} is refused: {error.errors()[0]['msg']}")
    return problems


def shared_environment_problems(project: Project) -> list[str]:
    platform = platform_services(project)
    problems = []
    for variable in SHARED_VARIABLES:
        values = {name: effective(name, s, variable) for name, s in platform.items()}
        if len(set(values.values())) > 1:
            problems.append(f"services disagree on {variable}: {values}")
    for name, service in platform.items():
        if effective(name, service, "ENVIRONMENT") != "production":
            problems.append(f"{name}: ENVIRONMENT is not production")
        for variable in ("RABBITMQ_URL", "MONGODB_URL"):
            host = urlsplit(str(effective(name, service, variable))).hostname
            if host not in BACKING:
                problems.append(f"{name}: {variable} points at {host!r}, not at a backing service")
    return problems


def database_problems(project: Project) -> list[str]:
    databases = {
        name: effective(name, s, "MONGODB_DATABASE") for name, s in platform_services(project).items()
    }
    shared = [db for db, count in Counter(databases.values()).items() if count > 1]
    return [f"database {db} is used by {[n for n, d in databases.items() if d == db]}" for db in shared]


def container_port(published: object) -> int | None:
    """The container side of a `ports` entry, in short ("[ip:]host:container[/proto]") or long syntax."""
    if isinstance(published, dict):
        return int(published["target"])
    container = str(published).rsplit(":", 1)[-1].split("/")[0]
    return int(container) if container.isdigit() else None


def gateway_problems(project: Project) -> list[str]:
    gateway = services(project).get(GATEWAY)
    if gateway is None:
        return [f"no service {GATEWAY}"]
    port = int(str(effective(GATEWAY, gateway, "PORT")))
    problems = []
    published = [container_port(p) for p in gateway.get("ports") or []]
    if published != [port]:
        problems.append(f"gateway listens on {port} but publishes container ports {published}")
    if effective(GATEWAY, gateway, "HOST") != "0.0.0.0":  # noqa: S104 - inside a container, on purpose
        problems.append("gateway does not listen on 0.0.0.0, so its published port reaches nothing")
    probe = " ".join(str(word) for word in (gateway.get("healthcheck") or {}).get("test") or [])
    if f"127.0.0.1:{port}{HEALTH_PATH}" not in probe:
        problems.append(f"gateway healthcheck does not probe 127.0.0.1:{port}{HEALTH_PATH}: {probe!r}")
    if not str(environment(gateway).get("SECRET_KEY")).startswith("${SECRET_KEY:?"):
        problems.append("gateway SECRET_KEY is not required from the shell with ${SECRET_KEY:?...}")
    return problems


def pin_key_problems(project: Project) -> list[str]:
    """Production refuses the development PIN key: compose.yaml must demand one from the shell."""
    delivery = services(project).get("delivery_service")
    if delivery is None:
        return ["no service delivery_service"]
    if not str(environment(delivery).get("DELIVERY_PIN_KEY")).startswith("${DELIVERY_PIN_KEY:?"):
        return ["DELIVERY_PIN_KEY is not required from the shell with ${DELIVERY_PIN_KEY:?...}"]
    return []


def volume_problems(project: Project) -> list[str]:
    declared = set(project.compose.get("volumes") or {})
    problems = []
    for name, service in services(project).items():
        for mount in service.get("volumes") or []:
            if isinstance(mount, dict):
                source = mount.get("source") if mount.get("type", "volume") == "volume" else None
            else:
                source = str(mount).split(":")[0]
            is_named = source and not source.startswith(("/", ".", "~", "$"))
            if is_named and source not in declared:
                problems.append(f"{name}: volume {source} is not declared under top-level volumes")
    return problems


def dependency_problems(project: Project) -> list[str]:
    known = services(project)
    problems = []
    for name, service in known.items():
        depends = service.get("depends_on") or {}
        conditions = depends if isinstance(depends, dict) else {target: {} for target in depends}
        for target, options in conditions.items():
            if target not in known:
                problems.append(f"{name}: depends on {target}, which is not a service")
            elif "healthcheck" not in known[target]:
                problems.append(f"{name}: depends on {target}, which has no healthcheck")
            if (options or {}).get("condition") != "service_healthy":
                problems.append(f"{name}: does not wait for {target} to be healthy")
        if name not in BACKING:
            problems.extend(f"{name}: does not depend on {b}" for b in BACKING if b not in conditions)
    return problems


def copied_sources(dockerfile: str) -> set[str]:
    """Every source path a COPY instruction names, in shell or JSON form, flags dropped."""
    sources: set[str] = set()
    for instruction in dockerfile.replace("\\\n", " ").splitlines():
        keyword, _, rest = instruction.strip().partition(" ")
        if keyword.upper() != "COPY":
            continue
        words = json.loads(rest) if rest.lstrip().startswith("[") else shlex.split(rest)
        paths = [str(w) for w in words if not str(w).startswith("--")]
        sources.update(p.removeprefix("./").rstrip("/") for p in paths[:-1])
    return sources


def dockerfile_problems(project: Project) -> list[str]:
    copied = copied_sources(project.dockerfile)
    installed = [
        p.rstrip("*") for p in project.pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    # A module (operations.journal) comes with its top-level package.
    run = [p.split(".")[0] for s in platform_services(project).values() if (p := command_package(s))]
    needed = ["pyproject.toml", "constraints.txt", *installed, *run]
    problems = [f"Dockerfile does not COPY {path}" for path in dict.fromkeys(needed) if path not in copied]
    ignored = [line.strip() for line in project.dockerignore.splitlines() if line.strip()]
    for path in sorted(copied):
        hits = [p for p in ignored if not p.startswith(("#", "!")) and fnmatch.fnmatch(path, p.rstrip("/"))]
        if hits:
            problems.append(f".dockerignore {hits} keeps {path} out of the build context")
    return problems


def transport_problems(project: Project) -> list[str]:
    """compose.yaml's plaintext URLs must be declared trusted, or production settings refuse them."""
    problems = []
    for name, service in platform_services(project).items():
        urls = (str(effective(name, service, v)) for v in ("RABBITMQ_URL", "MONGODB_URL"))
        trusted = str(effective(name, service, "ALLOW_PLAINTEXT_TRANSPORT")).lower() == "true"
        if (plaintext := plaintext_connections(*urls)) and not trusted:
            problems.append(f"{name}: {plaintext} without ALLOW_PLAINTEXT_TRANSPORT=true: it would not start")
    return problems


def secret_problems(project: Project) -> list[str]:
    """In production every secret comes from a compose secret file under ./secrets, none from the file."""
    declared = project.compose.get("secrets") or {}
    problems = []
    for name, service in platform_services(project).items():
        env = environment(service)
        if env.get("SECRETS_DIR") != "/run/secrets":
            problems.append(f"{name}: SECRETS_DIR is not /run/secrets")
        used = [s if isinstance(s, str) else s["source"] for s in service.get("secrets") or []]
        wanted = OWN_SECRETS.get(name, PRODUCTION_SECRETS)
        problems.extend(f"{name}: no secret {secret}" for secret in wanted if secret not in used)
        # The environment wins over a secret file: a variable of the same name would shadow it.
        problems.extend(f"{name}: {s.upper()} set in the environment" for s in used if s.upper() in env)
    for name, service in services(project).items():
        for secret in service.get("secrets") or []:
            source = secret if isinstance(secret, str) else secret["source"]
            if not str((declared.get(source) or {}).get("file", "")).startswith("./secrets/"):
                problems.append(f"{name}: secret {source} is not a file under ./secrets/")
    return problems


# A URL with a password in it, or a secret-looking variable given a value.
_CREDENTIALS = re.compile(r"[a-z+]+://[^/\s:@]+:[^/\s@]+@")
_SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN")


def literal_secret_problems(project: Project) -> list[str]:
    problems = [f"a URL with a password: {m}" for m in _CREDENTIALS.findall(yaml.safe_dump(project.compose))]
    for name, service in services(project).items():
        for variable, value in environment(service).items():
            if (
                _SECRET_NAME.search(variable)
                and not variable.endswith(("_FILE", "_DIR"))
                and value is not None
            ):
                problems.append(f"{name}: {variable} has a value in the file")
    return problems


def tls_problems(project: Project) -> list[str]:
    """Every service verifies the broker and the store against the CA; both servers listen with TLS."""
    problems = []
    for name, service in platform_services(project).items():
        mounted = {str(m).split(":")[1] for m in service.get("volumes") or []}
        for variable in ("RABBITMQ_TLS_CA_FILE", "MONGODB_TLS_CA_FILE"):
            if (path := environment(service).get(variable)) not in mounted:
                problems.append(f"{name}: {variable}={path!r} is not a file mounted into the container")
    command = " ".join(services(project).get("mongodb", {}).get("command") or [])
    if "--tlsMode requireTLS" not in command:
        problems.append("mongodb does not require TLS (--tlsMode requireTLS)")
    configs = project.compose.get("configs") or {}
    rabbitmq = "".join(
        (ROOT / configs[c["source"]]["file"]).read_text()
        for c in services(project).get("rabbitmq", {}).get("configs") or []
        if c["source"] in configs
    )
    if "listeners.ssl.default = 5671" not in rabbitmq or "listeners.tcp.default = 127.0.0.1:" not in rabbitmq:
        problems.append("rabbitmq does not listen with TLS on 5671 and plaintext on loopback only")
    return problems


@pytest.fixture(scope="module")
def project() -> Project:
    return read_project()


@pytest.fixture(scope="module")
def production() -> Project:
    return read_project("compose.production.yaml")


def test_compose_runs_the_six_services_with_rabbitmq_and_mongodb(project: Project) -> None:
    assert missing_services(project) == []


def test_every_service_command_runs_a_package_with_a_main_module(project: Project) -> None:
    assert command_problems(project) == []


def test_every_environment_variable_is_a_valid_settings_field(project: Project) -> None:
    assert environment_problems(project) == []


def test_services_share_one_broker_namespace_and_store_in_production(project: Project) -> None:
    assert shared_environment_problems(project) == []


def test_every_service_owns_its_database(project: Project) -> None:
    assert database_problems(project) == []


def test_gateway_publishes_its_port_probes_its_health_and_requires_a_secret(project: Project) -> None:
    assert gateway_problems(project) == []


def test_delivery_requires_its_pin_key_from_the_shell(project: Project) -> None:
    assert pin_key_problems(project) == []


def test_plaintext_in_compose_yaml_is_declared_trusted_so_production_settings_start(project: Project) -> None:
    assert transport_problems(project) == []


@pytest.mark.parametrize(
    "check",
    [
        missing_services,
        command_problems,
        environment_problems,
        database_problems,
        volume_problems,
        dependency_problems,
        secret_problems,
        literal_secret_problems,
        tls_problems,
    ],
)
def test_the_production_file_runs_the_same_platform_over_tls_with_secrets_from_files(
    production: Project, check: Callable[[Project], list[str]]
) -> None:
    assert check(production) == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_what_the_secrets_script_makes_starts_every_production_service(
    production: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "production-secrets.sh", tmp_path / "scripts")
    subprocess.run([tmp_path / "scripts" / "production-secrets.sh"], check=True, capture_output=True)  # noqa: S603
    for variable in [*os.environ]:
        monkeypatch.delenv(variable)
    for name, service in platform_services(production).items():
        cls = settings_of(name, service)
        assert cls is not None
        env = {k: v for k, v in environment(service).items() if v is not None}
        env["SECRETS_DIR"] = str(tmp_path / "secrets")  # where compose mounts them: /run/secrets
        for variable in ("RABBITMQ_TLS_CA_FILE", "MONGODB_TLS_CA_FILE"):
            env[variable] = str(tmp_path / "certs" / Path(env[variable]).name)
        with monkeypatch.context() as m:
            for variable, value in env.items():
                m.setenv(variable, value)
            settings = cls()
        assert isinstance(settings, RuntimeSettings)
        assert urlsplit(settings.rabbitmq_url).hostname == "rabbitmq", name
        assert plaintext_connections(settings.rabbitmq_url, settings.mongodb_url) == []


def test_gateway_healthcheck_probes_a_real_route() -> None:
    # model_construct reads no environment and skips the secret check: only the routes matter here.
    # The OpenAPI paths: FastAPI includes routers lazily, so app.routes does not list them.
    paths = create_app(GatewaySettings.model_construct()).openapi()["paths"]
    assert "get" in paths.get(HEALTH_PATH, {})


def broker_plugins(project: Project) -> set[str]:
    """The plugins the broker's container enables: the file compose mounts as its enabled_plugins."""
    broker = services(project)["rabbitmq"]
    for mount in broker.get("configs") or []:
        if mount.get("target") == "/etc/rabbitmq/enabled_plugins":
            path = ROOT / project.compose["configs"][mount["source"]]["file"]
            listed = path.read_text().strip().removeprefix("[").removesuffix("].")
            return {name.strip() for name in listed.split(",")}
    return set()


@pytest.mark.parametrize("compose", ["compose.yaml", "compose.production.yaml"])
def test_the_broker_has_the_consistent_hash_exchange_the_partitions_need(compose: str) -> None:
    # The image's own plugins stay: replacing its enabled_plugins must not lose the management API.
    assert broker_plugins(read_project(compose)) >= {
        "rabbitmq_consistent_hash_exchange",
        "rabbitmq_management",
        "rabbitmq_prometheus",
    }


def test_every_named_volume_is_declared(project: Project) -> None:
    assert volume_problems(project) == []


def test_every_dependency_exists_and_is_awaited_healthy(project: Project) -> None:
    assert dependency_problems(project) == []


def test_dockerfile_copies_every_package_compose_runs(project: Project) -> None:
    assert dockerfile_problems(project) == []


def _set_env(service: str, variable: str, value: str) -> Callable[[Project], None]:
    def breaks(p: Project) -> None:
        p.compose["services"][service]["environment"][variable] = value

    return breaks


def _without_env(service: str, variable: str) -> Callable[[Project], None]:
    return lambda p: p.compose["services"][service]["environment"].pop(variable)


def _set(service: str, key: str, value: object) -> Callable[[Project], None]:
    def breaks(p: Project) -> None:
        p.compose["services"][service][key] = value

    return breaks


def _dockerfile_without(line: str) -> Callable[[Project], None]:
    def breaks(p: Project) -> None:
        p.dockerfile = "\n".join(x for x in p.dockerfile.splitlines() if x.strip() != line)

    return breaks


def _ignore(pattern: str) -> Callable[[Project], None]:
    def breaks(p: Project) -> None:
        p.dockerignore += f"\n{pattern}\n"

    return breaks


BREAKAGES: dict[str, tuple[Callable[[Project], None], Callable[[Project], list[str]]]] = {
    "service removed": (lambda p: p.compose["services"].pop("order_service"), missing_services),
    "package run twice": (
        _set("order_service", "command", ["python", "-m", "payment_service"]),
        missing_services,
    ),
    "misspelt package": (
        _set("order_service", "command", ["python", "-m", "order_servce"]),
        command_problems,
    ),
    "not python -m": (_set("payment_service", "command", "uvicorn payment_service"), command_problems),
    "unknown variable": (_set_env("order_service", "MONGO_URL", "mongodb://mongodb/"), environment_problems),
    "lower-case variable": (
        _set_env("order_service", "mongodb_url", "mongodb://mongodb/"),
        environment_problems,
    ),
    "gateway-only variable": (_set_env("order_service", "SECRET_KEY", "x" * 40), environment_problems),
    "invalid value": (_set_env("payment_service", "ENVIRONMENT", "prod"), environment_problems),
    "invalid port": (_set_env(GATEWAY, "PORT", "eighty"), environment_problems),
    "development mode": (
        _set_env("order_service", "ENVIRONMENT", "development"),
        shared_environment_problems,
    ),
    "broker on localhost": (
        _set_env("payment_service", "RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        shared_environment_problems,
    ),
    "namespace split": (
        _set_env("inventory_service", "BROKER_NAMESPACE", "other"),
        shared_environment_problems,
    ),
    "shared database": (
        _set_env("payment_service", "MONGODB_DATABASE", "pharmacy_orders"),
        database_problems,
    ),
    "default database shared": (
        _set_env(
            "payment_service", "MONGODB_DATABASE", str(OrderSettings.model_fields["mongodb_database"].default)
        ),
        database_problems,
    ),
    "port mismatch": (_set_env(GATEWAY, "PORT", "9000"), gateway_problems),
    "wrong container port": (_set(GATEWAY, "ports", ["8000:8080"]), gateway_problems),
    "port unpublished": (_set(GATEWAY, "ports", []), gateway_problems),
    "loopback host": (_set_env(GATEWAY, "HOST", "127.0.0.1"), gateway_problems),
    "host left to default": (_without_env(GATEWAY, "HOST"), gateway_problems),
    "healthcheck elsewhere": (_set(GATEWAY, "healthcheck", {"test": ["CMD", "true"]}), gateway_problems),
    "secret with default": (_set_env(GATEWAY, "SECRET_KEY", "${SECRET_KEY:-change-me}"), gateway_problems),
    "pin key with default": (
        _set_env("delivery_service", "DELIVERY_PIN_KEY", "${DELIVERY_PIN_KEY:-change-me}"),
        pin_key_problems,
    ),
    "undeclared volume": (lambda p: p.compose["volumes"].pop("mongodb-data"), volume_problems),
    "unknown dependency": (
        _set("order_service", "depends_on", {"redis": {"condition": "service_healthy"}}),
        dependency_problems,
    ),
    "dependency without healthcheck": (
        lambda p: p.compose["services"]["rabbitmq"].pop("healthcheck"),
        dependency_problems,
    ),
    "dependency only started": (
        _set("order_service", "depends_on", ["rabbitmq", "mongodb"]),
        dependency_problems,
    ),
    "package not copied": (_dockerfile_without("COPY order_service ./order_service"), dockerfile_problems),
    "runtime not copied": (
        _dockerfile_without("COPY service_runtime ./service_runtime"),
        dockerfile_problems,
    ),
    "package ignored": (_ignore("*_service"), dockerfile_problems),
    "plaintext not declared trusted": (
        _without_env("payment_service", "ALLOW_PLAINTEXT_TRANSPORT"),
        transport_problems,
    ),
}
PRODUCTION_BREAKAGES: dict[str, tuple[Callable[[Project], None], Callable[[Project], list[str]]]] = {
    "no secrets dir": (_without_env("order_service", "SECRETS_DIR"), secret_problems),
    "secret missing": (_set("order_service", "secrets", ["rabbitmq_url", "mongodb_url"]), secret_problems),
    "gateway key missing": (
        _set(GATEWAY, "secrets", ["rabbitmq_url", "mongodb_url", "field_encryption_keys"]),
        secret_problems,
    ),
    "secret shadowed": (_set_env(GATEWAY, "SECRET_KEY", "${SECRET_KEY}"), secret_problems),
    "secret from elsewhere": (
        lambda p: p.compose["secrets"]["secret_key"].update(file="/tmp/key"),  # noqa: S108
        secret_problems,
    ),
    "password in a URL": (
        _set_env("order_service", "RABBITMQ_URL", "amqps://pharmacy:hunter2@rabbitmq:5671/"),
        literal_secret_problems,
    ),
    "key in the file": (_set_env(GATEWAY, "EMAIL_INDEX_KEY", "x" * 40), literal_secret_problems),
    "pin key missing": (
        _set("delivery_service", "secrets", ["rabbitmq_url", "mongodb_url", "field_encryption_keys"]),
        secret_problems,
    ),
    "pin key in the file": (
        _set_env("delivery_service", "DELIVERY_PIN_KEY", "x" * 40),
        literal_secret_problems,
    ),
    "CA not mounted": (_set("journal", "volumes", []), tls_problems),
    "CA not named": (_without_env("payment_service", "MONGODB_TLS_CA_FILE"), tls_problems),
    "store without TLS": (_set("mongodb", "command", ["mongod"]), tls_problems),
    "broker without TLS": (_set("rabbitmq", "configs", []), tls_problems),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_check_reports_a_broken_copy(project: Project, breakage: str) -> None:
    breaks, check = BREAKAGES[breakage]
    broken = copy.deepcopy(project)
    breaks(broken)
    assert check(broken) != []


@pytest.mark.parametrize("breakage", list(PRODUCTION_BREAKAGES))
def test_each_production_check_reports_a_broken_copy(production: Project, breakage: str) -> None:
    breaks, check = PRODUCTION_BREAKAGES[breakage]
    broken = copy.deepcopy(production)
    breaks(broken)
    assert check(broken) != []
