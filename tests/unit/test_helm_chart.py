"""The Helm chart (deploy/helm/pharmacy), rendered by the pinned helm and checked against the code it runs.

helm and kubeconform come from scripts/k8s-tools.sh (built from the Go module proxy once, kept under
.run/bin). Every rendered manifest is validated offline against the Kubernetes JSON schemas the
`kubernetes-validate` package bundles, strictly (no unknown fields); the custom resources (KEDA's,
the Prometheus Operator's, the RabbitMQ and MongoDB operators') against their operators' own CRDs,
pinned, made strict JSON schemas by scripts/crd-schemas.sh; a kind neither covers must be named in
UNCHECKED. Then what no schema can know: every process of the code has a
Deployment running it as compose does, every variable it is given is a setting it reads, every
variable compose gives it is given here too, and its probes ask a real port and path.

As in test_compose.py, each check lists problems, and a broken copy must make each report one.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from pydantic import TypeAdapter, ValidationError
from test_compose import (
    BOOTSTRAP_VARIABLES,
    SETTINGS,
    Project,
    command_package,
    environment,
    platform_services,
    read_project,
)

from contracts import topology
from service_runtime.messaging import GRACEFUL_STOP_SECONDS
from service_runtime.metrics import OpsServer, Readiness
from service_runtime.settings import RuntimeSettings
from user_service.app import create_app
from user_service.settings import Settings as GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "pharmacy"
PRODUCTION_VALUES = CHART / "examples" / "values-production.yaml"
PREREQUISITES = CHART / "examples" / "prerequisites.yaml"
KUBERNETES_VERSION = "1.37.0"
GATEWAY = "user_service"
# Where the chart mounts the Secrets' files: each file is the setting of its name (SECRETS_DIR).
SECRETS_DIR = "/run/secrets"
# Custom resources neither the Kubernetes schemas nor an operator's CRD from scripts/crd-schemas.sh
# covers, each with the reason. None today: every kind the chart and its examples use has its CRD.
UNCHECKED: dict[str, str] = {}
# How kubeconform names a CRD's schema in that folder; crd_schema() below says the same in Python.
CRD_SCHEMA_LOCATION = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"

Manifest = dict[str, Any]


@dataclass
class Rendered:
    manifests: list[Manifest]
    values: dict[str, Any]


@pytest.fixture(scope="session")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubernetes-validate's strict schemas, as kubeconform can read them from files.

    Each schema names itself by an https `$id` and refers to `/api/_definitions.json` under it, which
    kubeconform would then fetch: without the `$id`, the reference is the file beside it.
    """
    bundled = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = tmp_path_factory.mktemp("schemas")
    for source in (bundled / f"v{KUBERNETES_VERSION}-local-strict").glob("*.json"):
        schema = json.loads(source.read_text().replace('"/api/_definitions.json#', '"_definitions.json#'))
        schema.pop("$id", None)
        (folder / source.name).write_text(json.dumps(schema))
    return folder


@pytest.fixture(scope="session")
def tools() -> dict[str, Path]:
    """helm and kubeconform, built by the project's script when missing (minutes, once)."""
    done = subprocess.run(  # noqa: S603
        [ROOT / "scripts" / "k8s-tools.sh"], check=True, capture_output=True, text=True, timeout=1800
    )
    found = dict(line.split("=", 1) for line in done.stdout.split())
    return {name: Path(path) for name, path in found.items()}


def helm(tools: dict[str, Path], *args: str | Path) -> str:
    done = subprocess.run(  # noqa: S603
        [tools["helm"], *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"helm {' '.join(map(str, args))}: {done.stdout}{done.stderr}"
    return done.stdout


def value_files(production: bool) -> list[str | Path]:
    return ["-f", PRODUCTION_VALUES] if production else []


def render(tools: dict[str, Path], *args: str | Path) -> list[Manifest]:
    out = helm(tools, "template", "pharmacy", CHART, "--namespace", "pharmacy", *args)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def chart_values(production: bool) -> dict[str, Any]:
    """The values a render used: the chart's defaults, with the production example's sections over them."""
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    if production:
        for section, override in yaml.safe_load(PRODUCTION_VALUES.read_text()).items():
            values[section] = {**values[section], **override} if isinstance(override, dict) else override
    return values


@pytest.fixture(scope="module", params=["defaults", "production"])
def rendered(request: pytest.FixtureRequest, tools: dict[str, Path]) -> Rendered:
    production = request.param == "production"
    return Rendered(render(tools, *value_files(production)), chart_values(production))


@pytest.fixture(scope="module")
def project() -> Project:
    return read_project()


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def container(deployment: Manifest) -> Manifest:
    found: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return found


def module_of(deployment: Manifest) -> str | None:
    return command_package({"command": container(deployment).get("command")})


def deployments_by_module(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m: d for d in of_kind(manifests, "Deployment") if (m := module_of(d))}


def variables(manifests: list[Manifest], deployment: Manifest) -> dict[str, str | None]:
    """What a process's settings see: its ConfigMaps, its own env, its Secrets' files (value unknown)."""
    configmaps = {m["metadata"]["name"]: m.get("data") or {} for m in of_kind(manifests, "ConfigMap")}
    spec = container(deployment)
    seen: dict[str, str | None] = {}
    for source in spec.get("envFrom") or []:
        seen.update(configmaps.get(source.get("configMapRef", {}).get("name"), {}))
    seen.update({e["name"]: e.get("value") for e in spec.get("env") or []})
    if seen.get("SECRETS_DIR") == SECRETS_DIR:
        mounted = {m["name"] for m in spec.get("volumeMounts") or [] if m["mountPath"] == SECRETS_DIR}
        for volume in deployment["spec"]["template"]["spec"].get("volumes") or []:
            if volume["name"] in mounted:
                for source in volume.get("projected", {}).get("sources") or []:
                    seen.update({item["path"].upper(): None for item in source["secret"]["items"]})
    return seen


@pytest.fixture(scope="session")
def crds(tools: dict[str, Path]) -> Path:
    """The operators' CRDs as strict JSON schemas, `<group>/<kind>_<version>.json` (crd-schemas.sh)."""
    return tools["crd-schemas"]


def crd_schema(crds: Path, manifest: Manifest) -> Path:
    """Where kubeconform's `{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json` finds a resource's."""
    group, _, version = str(manifest.get("apiVersion")).rpartition("/")
    return crds / group / f"{str(manifest.get('kind')).lower()}_{version}.json"


@cache
def crd_validator(schema: Path) -> Any:
    loaded = json.loads(schema.read_text())
    return jsonschema.validators.validator_for(loaded)(loaded)


def schema_problems(manifests: list[Manifest], crds: Path) -> list[str]:
    """Each manifest against the Kubernetes schemas, or its operator's CRD, strictly; UNCHECKED skipped."""
    problems = []
    for manifest in manifests:
        name = f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if (schema := crd_schema(crds, manifest)).exists():
                problems += [
                    f"{name}: {error.message} at {'.'.join(map(str, error.absolute_path))}"
                    for error in crd_validator(schema).iter_errors(manifest)
                ]
            elif manifest.get("kind") not in UNCHECKED:
                problems.append(f"{name}: no schema, and not named as unchecked")
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name}: {error.message} at {'.'.join(map(str, error.path))}")
    return problems


def kubeconform_problems(tools: dict[str, Path], schemas: Path, manifests: list[Manifest]) -> list[str]:
    """The same manifests through kubeconform, strict, with the same CRDs; only UNCHECKED skipped."""
    skip = ["-skip", ",".join(sorted(UNCHECKED))] if UNCHECKED else []
    done = subprocess.run(  # noqa: S603
        [
            tools["kubeconform"],
            "-strict",
            "-output",
            "json",
            *skip,
            "-schema-location",
            f"{schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
            "-schema-location",
            f"{tools['crd-schemas']}/{CRD_SCHEMA_LOCATION}",
            "-",
        ],
        input="\n---\n".join(yaml.safe_dump(m) for m in manifests),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    results = json.loads(done.stdout)["resources"]
    if done.returncode != 0 and not results:
        return [f"kubeconform failed: {done.stderr}"]
    return [
        f"{r['kind']} {r['name']}: {r['status']} {r['msg']}" for r in results if r["status"] != "statusValid"
    ]


def deployment_problems(manifests: list[Manifest], project: Project) -> list[str]:
    """Every process of the code runs in a Deployment, on compose's image and command, once."""
    deployments = of_kind(manifests, "Deployment")
    modules = [module_of(d) for d in deployments]
    problems = [f"no Deployment runs python -m {m}" for m in SETTINGS if m not in modules]
    problems += [
        f"python -m {m} runs in {modules.count(m)} Deployments" for m in set(modules) if modules.count(m) > 1
    ]
    compose = {command_package(s): s for s in platform_services(project).values()}
    images = {container(d)["image"] for d in deployments}
    if len(images) != 1:
        problems.append(f"the processes run {len(images)} images, not compose's one: {sorted(images)}")
    for deployment in deployments:
        module, spec = module_of(deployment), container(deployment)
        if module not in compose:
            problems.append(
                f"{deployment['metadata']['name']}: runs {spec.get('command')}, which compose does not"
            )
            continue
        if spec.get("command") != compose[module]["command"] or spec.get("args"):
            problems.append(
                f"{module}: command {spec.get('command')} is not compose's {compose[module]['command']}"
            )
        image = str(compose[module]["image"]).rsplit(":", 1)[0]
        if str(spec["image"]).rsplit(":", 1)[0].rsplit("/", 1)[-1] != image:
            problems.append(f"{module}: image {spec['image']} is not compose's {image}")
    return problems


def environment_problems(manifests: list[Manifest], project: Project) -> list[str]:
    """Each variable given is a valid setting; any read without a default, or set by compose, is given."""
    compose = {command_package(s): s for s in platform_services(project).values()}
    problems = []
    for module, deployment in deployments_by_module(manifests).items():
        cls = SETTINGS.get(module)
        if cls is None:
            problems.append(f"{module}: no settings class to check its environment against")
            continue
        given = variables(manifests, deployment)
        for variable, value in given.items():
            field = cls.model_fields.get(variable.lower())
            if variable in BOOTSTRAP_VARIABLES:
                continue
            if variable != variable.upper() or field is None:
                problems.append(f"{module}: {variable} is not a field of {cls.__name__}")
            elif value is not None and field.annotation is not None:
                try:
                    TypeAdapter(field.annotation).validate_python(value)
                except ValidationError as error:
                    problems.append(f"{module}: {variable}={value!r} is refused: {error.errors()[0]['msg']}")
        required = [name.upper() for name, field in cls.model_fields.items() if field.is_required()]
        problems += [f"{module}: {v} has no default and is not given" for v in required if v not in given]
        # Passed through from the shell in compose (no value): optional there, optional here.
        wanted = [v for v, value in environment(compose.get(module, {})).items() if value is not None]
        problems += [f"{module}: compose sets {v}, the chart does not" for v in wanted if v not in given]
        if given.get("ENVIRONMENT") != "production":
            problems.append(f"{module}: ENVIRONMENT is {given.get('ENVIRONMENT')!r}, not production")
    return problems


def operator_paths() -> set[str]:
    ops = OpsServer("any", Readiness("any", {}, timeout=1), host="127.0.0.1", port=0)
    return {str(getattr(route, "path", "")) for route in ops.app.routes}


def gateway_paths() -> set[str]:
    # model_construct reads no environment: only the routes matter (as in test_compose.py).
    return set(create_app(GatewaySettings.model_construct()).openapi()["paths"])


def probe_problems(manifests: list[Manifest]) -> list[str]:
    """Liveness and readiness ask the port the process listens on, at a path it serves."""
    served = {GATEWAY: gateway_paths()}
    problems = []
    for module, deployment in deployments_by_module(manifests).items():
        spec, given = container(deployment), variables(manifests, deployment)
        port = given.get("PORT") if module == GATEWAY else given.get("METRICS_PORT")
        probes: dict[str, Manifest] = {
            k: spec[k] for k in ("livenessProbe", "readinessProbe", "startupProbe") if spec.get(k)
        }
        if port is None:
            if probes:
                problems.append(f"{module}: probes {sorted(probes)} but serves no port")
            continue
        if module != GATEWAY and given.get("METRICS_HOST") != "0.0.0.0":  # noqa: S104 - in a pod, on purpose
            problems.append(f"{module}: METRICS_HOST is not 0.0.0.0: the kubelet cannot reach its probes")
        if module == GATEWAY and given.get("HOST") != "0.0.0.0":  # noqa: S104
            problems.append(f"{module}: HOST is not 0.0.0.0: the kubelet cannot reach its probes")
        for kind in ("livenessProbe", "readinessProbe"):
            if kind not in probes:
                problems.append(f"{module}: no {kind}")
        paths = served.get(module) or operator_paths()
        for kind, probe in probes.items():
            get = probe.get("httpGet") or {}
            if str(get.get("port")) != str(port):
                problems.append(f"{module}: {kind} asks port {get.get('port')}, it listens on {port}")
            if get.get("path") not in paths:
                problems.append(f"{module}: {kind} asks {get.get('path')}, which it does not serve")
        if (probes.get("readinessProbe") or {}).get("httpGet", {}).get("path", "").endswith("/live"):
            problems.append(f"{module}: readiness asks liveness: a pod cut off from the broker stays ready")
    return problems


def security_problems(manifests: list[Manifest]) -> list[str]:
    """Non-root, read-only root filesystem, a writable /tmp, no secret value in any manifest."""
    problems = []
    for deployment in of_kind(manifests, "Deployment"):
        name, pod = deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]
        spec = container(deployment)
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            problems.append(f"{name}: may run as root")
        context = spec.get("securityContext") or {}
        if not context.get("readOnlyRootFilesystem") or context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: root filesystem writable or privilege escalation allowed")
        if "/tmp" not in {m["mountPath"] for m in spec.get("volumeMounts") or []}:  # noqa: S108
            problems.append(f"{name}: no writable /tmp under a read-only root")
        if not (spec.get("resources") or {}).get("requests") or not (spec.get("resources") or {}).get(
            "limits"
        ):
            problems.append(f"{name}: no resource requests and limits")
    problems += [f"Secret {m['metadata']['name']} in the chart" for m in of_kind(manifests, "Secret")]
    return problems


def shutdown_problems(manifests: list[Manifest]) -> list[str]:
    """A back-end pod told to stop gives its partitions up (drained for at most
    PARTITION_DRAIN_SECONDS, then their subscribers' graceful stop), then the broker's graceful stop
    waits for the RPC handlers: all of it before Kubernetes kills the pod, or a partition is left
    claimed until its lease runs out."""
    problems = []
    default_drain = RuntimeSettings.model_fields["partition_drain_seconds"].default
    for module, deployment in deployments_by_module(manifests).items():
        if module not in topology.SUBSCRIPTIONS:
            continue  # no partitions to give up
        drain = float(variables(manifests, deployment).get("PARTITION_DRAIN_SECONDS") or default_drain)
        grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if grace <= drain + 2 * GRACEFUL_STOP_SECONDS + 5:
            problems.append(
                f"{module}: {grace} s to stop, not enough for a drain of {drain} s and two graceful "
                f"stops of {GRACEFUL_STOP_SECONDS} s, and 5 s to spare"
            )
    return problems


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def network_problems(manifests: list[Manifest], values: dict[str, Any]) -> list[str]:
    """Only the gateway takes traffic from the ingress controller; every pod is under a policy."""
    policies = of_kind(manifests, "NetworkPolicy")
    ingress_from = values["networkPolicy"]["ingressFrom"]
    problems = []
    for module, deployment in deployments_by_module(manifests).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        if not mine:
            problems.append(f"{module}: no NetworkPolicy selects its pods")
        for policy in mine:
            if set(policy["spec"].get("policyTypes") or []) != {"Ingress", "Egress"}:
                problems.append(f"{module}: {policy['metadata']['name']} does not limit both directions")
            peers = [
                peer for rule in policy["spec"].get("ingress") or [] for peer in rule.get("from") or [None]
            ]
            if None in peers:
                problems.append(f"{module}: takes traffic from anywhere")
            outside = any(peer in peers for peer in ingress_from)
            if outside != (module == GATEWAY):
                problems.append(
                    f"{module}: {'takes' if outside else 'does not take'} the ingress controller's traffic"
                )
    for ingress in of_kind(manifests, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                target = path["backend"]["service"]["name"]
                if not target.endswith(GATEWAY.replace("_", "-")):
                    problems.append(
                        f"Ingress {ingress['metadata']['name']} reaches {target}, not the gateway"
                    )
    return problems


def service_problems(manifests: list[Manifest]) -> list[str]:
    """Each Service selects pods of one Deployment and targets a port they declare."""
    problems = []
    deployments = of_kind(manifests, "Deployment")
    for service in of_kind(manifests, "Service"):
        name = service["metadata"]["name"]
        matched = [
            d
            for d in deployments
            if selects(
                {"matchLabels": service["spec"]["selector"]}, d["spec"]["template"]["metadata"]["labels"]
            )
        ]
        if len(matched) != 1:
            problems.append(f"Service {name} selects {len(matched)} Deployments")
            continue
        declared = {p.get("name") for p in container(matched[0]).get("ports") or []}
        problems += [
            f"Service {name}: targets {p['targetPort']}, not a port its pods declare"
            for p in service["spec"]["ports"]
            if p["targetPort"] not in declared
        ]
    for pdb in of_kind(manifests, "PodDisruptionBudget"):
        if not any(
            selects(pdb["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]) for d in deployments
        ):
            problems.append(f"PodDisruptionBudget {pdb['metadata']['name']} selects no pods")
    return problems


def autoscaling_problems(manifests: list[Manifest], values: dict[str, Any]) -> list[str]:
    """Each back-end scales on its own partition and RPC queues, never past its partitions."""
    scaled = {m["spec"]["scaleTargetRef"]["name"]: m for m in of_kind(manifests, "ScaledObject")}
    if not values["autoscaling"]["enabled"]:
        return [f"ScaledObject {n} while autoscaling is off" for n in scaled]
    namespace = values["platform"]["brokerNamespace"]
    partitions = int(values["platform"]["eventPartitions"])
    ceiling = max(partitions, int(values["autoscaling"]["rpcMaxReplicas"]))
    # KEDA's CRD says this one in CEL (x-kubernetes-validations), which its JSON schema cannot carry.
    problems = [
        f"ScaledObject {n}: minReplicaCount {least} above maxReplicaCount {most}"
        for n, s in scaled.items()
        if (least := s["spec"].get("minReplicaCount", 0)) > (most := s["spec"].get("maxReplicaCount", 100))
    ]
    for module, deployment in deployments_by_module(manifests).items():
        name = deployment["metadata"]["name"]
        if module == "operations.journal":
            if name in scaled:
                problems.append("the journal's single archiver is scaled")
            continue
        if name not in scaled:
            problems.append(f"{module}: no ScaledObject")
            continue
        if "replicas" in deployment["spec"]:
            problems.append(f"{module}: replicas fixed in its Deployment, fighting its autoscaler")
        triggers = scaled[name]["spec"]["triggers"]
        if module == GATEWAY:
            if [t["type"] for t in triggers] != ["cpu"]:
                problems.append(f"{module}: scales on {[t['type'] for t in triggers]}, not CPU")
            continue
        queues = {t["metadata"]["queueName"] for t in triggers if t["type"] == "rabbitmq"}
        wanted = {topology.partition_queue(namespace, module, k) for k in range(partitions)}
        wanted.add(topology.rpc_queue(namespace, module))
        if queues != wanted:
            problems.append(f"{module}: scales on {sorted(queues)}, its queues are {sorted(wanted)}")
        if (most := scaled[name]["spec"]["maxReplicaCount"]) > ceiling:
            problems.append(f"{module}: scales past its {partitions} partitions to {most}")
    return problems


def test_helm_lints_the_chart_with_defaults_and_the_production_example(tools: dict[str, Path]) -> None:
    for production in (False, True):
        assert "0 chart(s) failed" in helm(tools, "lint", "--strict", CHART, *value_files(production))


def test_every_rendered_manifest_is_valid_against_the_kubernetes_schemas_and_crds(
    rendered: Rendered, crds: Path
) -> None:
    assert schema_problems(rendered.manifests, crds) == []


def test_kubeconform_finds_every_rendered_manifest_valid(
    tools: dict[str, Path], schemas: Path, rendered: Rendered
) -> None:
    assert kubeconform_problems(tools, schemas, rendered.manifests) == []


def prerequisites() -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(PREREQUISITES.read_text()) if doc]


def test_the_operators_example_resources_are_valid_against_their_crds(
    tools: dict[str, Path], schemas: Path, crds: Path
) -> None:
    manifests = prerequisites()
    assert all(crd_schema(crds, m).exists() for m in manifests)
    assert schema_problems(manifests, crds) == []
    assert kubeconform_problems(tools, schemas, manifests) == []


def test_the_custom_resources_the_chart_renders_are_found_by_their_crds(
    production: Rendered, crds: Path
) -> None:
    covered = {m["kind"] for m in production.manifests if crd_schema(crds, m).exists()}
    assert covered == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}


def test_every_process_of_the_code_has_a_deployment_like_compose(
    rendered: Rendered, project: Project
) -> None:
    assert deployment_problems(rendered.manifests, project) == []


def test_every_variable_given_is_a_setting_and_compose_gives_none_the_chart_does_not(
    rendered: Rendered, project: Project
) -> None:
    assert environment_problems(rendered.manifests, project) == []


def test_probes_ask_real_ports_and_paths(rendered: Rendered) -> None:
    assert probe_problems(rendered.manifests) == []


def test_pods_run_non_root_read_only_with_limits_and_no_secret_values(rendered: Rendered) -> None:
    assert security_problems(rendered.manifests) == []


def test_a_stopping_pod_has_time_to_give_its_partitions_up(rendered: Rendered) -> None:
    assert shutdown_problems(rendered.manifests) == []


def test_only_the_gateway_takes_traffic_from_outside(rendered: Rendered) -> None:
    assert network_problems(rendered.manifests, rendered.values) == []


def test_services_and_disruption_budgets_select_real_pods(rendered: Rendered) -> None:
    assert service_problems(rendered.manifests) == []


def test_autoscaling_follows_the_queues_up_to_their_partitions(rendered: Rendered) -> None:
    assert autoscaling_problems(rendered.manifests, rendered.values) == []


def test_a_value_the_schema_refuses_fails_validation(
    tools: dict[str, Path], schemas: Path, crds: Path
) -> None:
    broken = render(tools, "--set", "services.order_service.replicas=two")
    assert schema_problems(broken, crds) != []
    assert kubeconform_problems(tools, schemas, broken) != []


def _deployment(module: str) -> Callable[[list[Manifest]], Manifest]:
    return lambda ms: deployments_by_module(ms)[module]


def _edit(module: str, change: Callable[[Manifest], None]) -> Callable[[list[Manifest]], None]:
    return lambda ms: change(deployments_by_module(ms)[module])


def _env(module: str, variable: str, value: str) -> Callable[[list[Manifest]], None]:
    def change(d: Manifest) -> None:
        container(d).setdefault("env", []).append({"name": variable, "value": value})

    return _edit(module, change)


def _drop_env(module: str, variable: str) -> Callable[[list[Manifest]], None]:
    def change(d: Manifest) -> None:
        container(d)["env"] = [e for e in container(d)["env"] if e["name"] != variable]

    return _edit(module, change)


def _container(module: str, key: str, value: object) -> Callable[[list[Manifest]], None]:
    return _edit(module, lambda d: container(d).__setitem__(key, value))


def _probe(module: str, kind: str, key: str, value: object) -> Callable[[list[Manifest]], None]:
    return _edit(module, lambda d: container(d)[kind]["httpGet"].__setitem__(key, value))


Check = Callable[[list[Manifest], Project, dict[str, Any]], list[str]]
# Broken copies of the production render with the operators' example resources, for both validators.
SCHEMA_BREAKAGES: dict[str, Callable[[list[Manifest]], None]] = {
    "unknown field": _container("order_service", "imagePullPolicyy", "Always"),
    "unnamed custom resource": lambda ms: ms.append(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    ),
    # The queue's name beside the trigger's metadata instead of in it: KEDA's CRD has no such field.
    "unknown field in a KEDA trigger": lambda ms: of_kind(ms, "ScaledObject")[0]["spec"]["triggers"][
        0
    ].__setitem__("queueName", "pharmacy.order_service.rpc"),
    "RabbitmqCluster replicas a string": lambda ms: of_kind(ms, "RabbitmqCluster")[0]["spec"].__setitem__(
        "replicas", "3"
    ),
    "unknown field in a ServiceMonitor endpoint": lambda ms: of_kind(ms, "ServiceMonitor")[0]["spec"][
        "endpoints"
    ][0].__setitem__("scrapeInterval", "30s"),
    "MongoDBCommunity members a string": lambda ms: of_kind(ms, "MongoDBCommunity")[0]["spec"].__setitem__(
        "members", "three"
    ),
    "unknown field in a Permission": lambda ms: of_kind(ms, "Permission")[0]["spec"][
        "permissions"
    ].__setitem__("admin", ".*"),
}

BREAKAGES: dict[str, tuple[Callable[[list[Manifest]], None], Check]] = {
    "deployment removed": (
        lambda ms: ms.remove(_deployment("payment_service")(ms)),
        lambda ms, p, v: deployment_problems(ms, p),
    ),
    "other command": (
        _container("order_service", "command", ["python", "-m", "order_service", "--fast"]),
        lambda ms, p, v: deployment_problems(ms, p),
    ),
    "other image": (
        _container("operations.journal", "image", "busybox:1"),
        lambda ms, p, v: deployment_problems(ms, p),
    ),
    "unknown variable": (
        _env("order_service", "MONGO_URL", "mongodb://x/"),
        lambda ms, p, v: environment_problems(ms, p),
    ),
    "gateway-only variable": (
        _env("payment_service", "SECRET_KEY", "x" * 40),
        lambda ms, p, v: environment_problems(ms, p),
    ),
    "invalid value": (
        _env("inventory_service", "EVENT_PREFETCH", "many"),
        lambda ms, p, v: environment_problems(ms, p),
    ),
    "database not set": (
        _drop_env("delivery_service", "MONGODB_DATABASE"),
        lambda ms, p, v: environment_problems(ms, p),
    ),
    "pin key not mounted": (
        _edit(
            "delivery_service",
            lambda d: d["spec"]["template"]["spec"]["volumes"][1]["projected"]["sources"].pop(),
        ),
        lambda ms, p, v: environment_problems(ms, p),
    ),
    "probe on the wrong port": (
        _probe("order_service", "readinessProbe", "port", 8000),
        lambda ms, p, v: probe_problems(ms),
    ),
    "probe on a missing path": (
        _probe(GATEWAY, "livenessProbe", "path", "/healthz"),
        lambda ms, p, v: probe_problems(ms),
    ),
    "readiness asks liveness": (
        _probe("payment_service", "readinessProbe", "path", "/health/live"),
        lambda ms, p, v: probe_problems(ms),
    ),
    "operator port on loopback": (
        _env("inventory_service", "METRICS_HOST", "127.0.0.1"),
        lambda ms, p, v: probe_problems(ms),
    ),
    "runs as root": (
        _edit(
            "order_service", lambda d: d["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
        ),
        lambda ms, p, v: security_problems(ms),
    ),
    "no /tmp": (
        _edit("prescription_service", lambda d: container(d)["volumeMounts"].pop(0)),
        lambda ms, p, v: security_problems(ms),
    ),
    "a secret value": (
        lambda ms: ms.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}),
        lambda ms, p, v: security_problems(ms),
    ),
    "service open to the ingress": (
        lambda ms: next(
            n for n in of_kind(ms, "NetworkPolicy") if n["metadata"]["name"].endswith("order-service")
        )["spec"]["ingress"][0]["from"].extend(
            copy.deepcopy(chart_values(production=False)["networkPolicy"]["ingressFrom"])
        ),
        lambda ms, p, v: network_problems(ms, v),
    ),
    "policy removed": (
        lambda ms: ms.remove(
            next(n for n in of_kind(ms, "NetworkPolicy") if n["metadata"]["name"].endswith("journal"))
        ),
        lambda ms, p, v: network_problems(ms, v),
    ),
    "drain longer than the pod may take to stop": (
        _env("inventory_service", "PARTITION_DRAIN_SECONDS", "25"),
        lambda ms, p, v: shutdown_problems(ms),
    ),
    "service targets nothing": (
        lambda ms: of_kind(ms, "Service")[0]["spec"]["ports"][0].__setitem__("targetPort", "grpc"),
        lambda ms, p, v: service_problems(ms),
    ),
}


AUTOSCALING_BREAKAGES: dict[str, Callable[[list[Manifest]], None]] = {
    "past the partitions": lambda ms: of_kind(ms, "ScaledObject")[0]["spec"].__setitem__(
        "maxReplicaCount", 99
    ),
    "a queue forgotten": lambda ms: of_kind(ms, "ScaledObject")[0]["spec"]["triggers"].pop(0),
    "replicas fixed": _edit("order_service", lambda d: d["spec"].__setitem__("replicas", 2)),
    "fewer at most than at least": lambda ms: next(
        s for s in of_kind(ms, "ScaledObject") if s["metadata"]["name"].endswith("user-service")
    )["spec"].__setitem__("minReplicaCount", 50),
}


@pytest.fixture(scope="module")
def defaults(tools: dict[str, Path]) -> Rendered:
    return Rendered(render(tools), chart_values(production=False))


@pytest.fixture(scope="module")
def production(tools: dict[str, Path]) -> Rendered:
    return Rendered(render(tools, *value_files(production=True)), chart_values(production=True))


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_check_reports_a_broken_copy(defaults: Rendered, project: Project, breakage: str) -> None:
    breaks, check = BREAKAGES[breakage]
    broken = copy.deepcopy(defaults.manifests)
    assert check(broken, project, defaults.values) == []
    breaks(broken)
    assert check(broken, project, defaults.values) != []


@pytest.mark.parametrize("breakage", list(AUTOSCALING_BREAKAGES))
def test_each_autoscaling_check_reports_a_broken_copy(production: Rendered, breakage: str) -> None:
    broken = copy.deepcopy(production.manifests)
    AUTOSCALING_BREAKAGES[breakage](broken)
    assert autoscaling_problems(broken, production.values) != []


@pytest.mark.parametrize("breakage", list(SCHEMA_BREAKAGES))
def test_both_validators_report_a_broken_resource(
    tools: dict[str, Path], schemas: Path, crds: Path, production: Rendered, breakage: str
) -> None:
    broken = copy.deepcopy(production.manifests) + prerequisites()
    assert schema_problems(broken, crds) == []
    SCHEMA_BREAKAGES[breakage](broken)
    assert schema_problems(broken, crds) != []
    assert kubeconform_problems(tools, schemas, broken) != []
