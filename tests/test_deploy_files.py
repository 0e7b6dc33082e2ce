"""Deployment: the health probe containers run, and the deployment files, checked
without a Docker engine or a cluster."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from musicsync import cli
from musicsync.config import DEFAULT_PORTS, OPTIONS, SERVICES
from musicsync.server import SERVICE_NAMES, App

from .conftest import make_settings
from .helpers import free_port

# -- `musicsync health`, the probe of the compose file and the image ---------------


async def health(*args: str) -> int:
    return await asyncio.to_thread(cli.main, ["health", *args])


async def test_health_exits_0_while_the_server_serves(app, capsys):
    port = app.ports["file"]
    assert await health("--port", str(port)) == 0
    assert await health("--port", str(port), "--service", "file.FileService") == 0
    assert capsys.readouterr().out.strip().endswith("file.FileService: SERVING")


async def test_health_exits_1_when_nothing_listens(capsys):
    assert await health("--port", str(free_port()), "--timeout", "2") == 1
    assert "UNAVAILABLE" in capsys.readouterr().out


async def test_health_exits_1_for_a_service_the_server_does_not_run(tmp_path, capsys):
    async with App(make_settings(tmp_path, port=0), services=("file",)) as app:
        port = str(app.ports["file"])
        assert await health("--port", port, "--service", "file.FileService") == 0
        assert await health("--port", port, "--service", "auth.AuthService") == 1
    assert "NOT_FOUND" in capsys.readouterr().out


async def test_health_asks_the_port_in_the_environment(app, monkeypatch):
    monkeypatch.setenv("PORT", str(app.ports["sync"]))
    monkeypatch.setenv("HOST", "0.0.0.0")  # a wildcard: the probe asks 127.0.0.1
    assert await health() == 0
    monkeypatch.setenv("PORT", str(free_port()))
    assert await health("--timeout", "2") == 1


@pytest.mark.parametrize("host, expected", [
    ("0.0.0.0", "127.0.0.1:50051"), ("::", "127.0.0.1:50051"),
    ("10.0.0.7", "10.0.0.7:50051"), ("fd00::7", "[fd00::7]:50051"),
])
def test_health_probe_address_follows_the_listen_address(host, expected):
    from musicsync.probe import probe_address

    assert probe_address(make_settings(".", host=host, auth_port=50051)) == expected


# -- The deployment files ------------------------------------------------------------
#
# No Docker engine or cluster here: the compose file is checked against the
# compose-spec schema (check-jsonschema, schema vendored in the package), the
# manifests against the Kubernetes schemas (kubernetes-validate, bundled), both
# offline; and every variable the files set must be one the server reads.

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "build" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
K8S = REPO / "k8s"
SCALE = K8S / "scale"
ENVOY_COMPOSE = REPO / "deploy" / "envoy.yaml"
ENVOY_K8S = SCALE / "envoy.yaml"
SERVER_ENV = frozenset(option.env for option in OPTIONS)
# Variables of MinIO (and of its `mc` client), set on MinIO's image only.
MINIO_ENV = re.compile(r"(MINIO|MC)_[A-Z0-9_]+")
# Variables of the official PostgreSQL image (its entry point's and libpq's).
POSTGRES_ENV = re.compile(r"(POSTGRES|PG)[A-Z0-9_]*")
CONSTRAINTS = REPO / "constraints.txt"
MAKEFILE = REPO / "Makefile"
# Kubernetes releases checked: the first with gRPC probes (GA), and the newest known.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_documents(folder: Path = K8S) -> list[tuple[str, dict]]:
    return [(path.name, document) for path in sorted(folder.glob("*.yaml"))
            if path.name != "kustomization.yaml"
            for document in yaml.safe_load_all(path.read_text()) if document]


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value for key, value in pairs}


def image_name(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":")[0]


def is_minio(image: str) -> bool:
    return image_name(image) == "minio"


def script_variables(*scripts) -> set[str]:
    """The variables a container's shell script reads ($NAME, ${NAME}; $$ in compose),
    or that Kubernetes expands in its command, args and env values ($(NAME))."""
    text = " ".join(" ".join(str(p) for p in part if p) if isinstance(part, list)
                    else str(part or "") for part in scripts)
    return set(re.findall(r"\$\$?[{(]?([A-Za-z_][A-Za-z0-9_]*)", text))


def variable_problem(where: str, key: str, image: str,
                     script_reads: frozenset[str] = frozenset()) -> str | None:
    """Why setting ``key`` in a container of ``image`` is wrong, or None if it is read."""
    if is_minio(image):
        if MINIO_ENV.fullmatch(key) or key in script_reads:
            return None
        return f"{where}: MinIO does not read {key}"
    if image_name(image) == "postgres":
        return None if POSTGRES_ENV.fullmatch(key) else f"{where}: PostgreSQL does not read {key}"
    if MINIO_ENV.fullmatch(key):
        return f"{where}: {key} is MinIO's, set on a musicsync container"
    if key in SERVER_ENV or key in script_reads:
        return None
    return f"{where}: the server does not read {key}"


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], check=False, capture_output=True, text=True, timeout=60)


def test_compose_file_follows_the_compose_spec():
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_catches_a_misspelt_key(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("healthcheck:", "healthchek:", 1))
    result = check_compose_schema(broken)
    assert result.returncode != 0
    assert "healthchek" in result.stdout + result.stderr


def k8s_schema_errors(documents: list[tuple[str, dict]]) -> list[str]:
    errors = []
    for name, document in documents:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except (kubernetes_validate.ValidationError,
                    kubernetes_validate.SchemaNotFoundError) as error:
                errors.append(f"{name} {document.get('kind')} (k8s {version}): {error}")
    return errors


def test_k8s_manifests_follow_the_kubernetes_schemas():
    documents = k8s_documents()
    assert {document["kind"] for _, document in documents} >= {
        "Namespace", "Secret", "PersistentVolumeClaim", "Deployment", "Service"}
    assert k8s_schema_errors(documents) == []


def test_k8s_schema_check_catches_a_misspelt_field_and_an_unknown_kind(tmp_path):
    text = (K8S / "musicsync.yaml").read_text()
    (tmp_path / "typo.yaml").write_text(text.replace("readinessProbe:", "readinesProbe:", 1))
    (tmp_path / "kind.yaml").write_text(text.replace("kind: Service", "kind: Servise", 1))
    errors = k8s_schema_errors(k8s_documents(tmp_path))
    assert any("readinesProbe" in error for error in errors)
    assert any("Servise" in error for error in errors)


def test_kustomization_applies_every_manifest_but_the_placeholder_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests - {"secret.yaml"}


# Variables ---------------------------------------------------------------------------

def compose_env_problems(data: dict) -> list[str]:
    """Variables a compose service sets that nothing reads: [] when all is well."""
    problems = []
    for name, service in data["services"].items():
        reads = frozenset(script_variables(service.get("entrypoint"), service.get("command")))
        for key in service.get("environment") or {}:
            problems.append(variable_problem(name, key, service["image"], reads))
        if "env_file" in service:
            problems.append(f"{name}: env_file passes variables this check cannot see")
    return [problem for problem in problems if problem]


def test_compose_sets_only_variables_the_server_or_minio_reads():
    assert compose_env_problems(compose()) == []


def test_compose_variable_check_catches_strays():
    data = compose()
    data["services"]["file"]["environment"]["S3_REGION"] = "eu"
    data["services"]["sync"]["environment"]["MINIO_ROOT_USER"] = "x"
    data["services"]["minio"]["environment"]["SECRET_KEY"] = "x"
    assert len(compose_env_problems(data)) == 3


# MinIO's root account: .env sets it for MinIO and minio-init, never for musicsync.
MINIO_ROOT = frozenset({"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"})


def test_env_example_holds_server_settings_that_compose_uses():
    example = env_example()
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    assert set(example) - SERVER_ENV - MINIO_ROOT - {"POSTGRES_PASSWORD"} == set(), \
        "only the server's variable names"
    assert used - set(example) == set(), "every variable compose reads is explained"
    assert set(example) - used == set(), "every variable offered is passed on"


def test_env_example_holds_no_secrets():
    example = env_example()
    keys = ("SECRET_KEY", "SECURITY_KEY", "S3_ACCESS_KEY", "S3_SECRET_KEY", *sorted(MINIO_ROOT))
    for key in keys:
        assert example[key] == "", f"{key} must be left for the operator to fill in"
    # ...and compose refuses to start without them.
    for key in keys:
        assert f"${{{key}:?" in COMPOSE.read_text()
    # The `scale` profile's PostgreSQL password too; not required by compose, so
    # that the other layouts start without it (PostgreSQL refuses an empty one).
    assert example["POSTGRES_PASSWORD"] == ""


def k8s_env_problems(documents: list[tuple[str, dict]]) -> list[str]:
    """Variables a container sets that nothing reads, or secret keys that do not exist."""
    secrets = {document["metadata"]["name"]: set(document.get("stringData", {}))
               | set(document.get("data", {}))
               for _, document in documents if document["kind"] == "Secret"}
    problems = []
    for file, document in documents:
        if document["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            where = f"{file} {container['name']}"
            if "envFrom" in container:
                problems.append(f"{where}: envFrom hides variable names from this check")
            # A variable only other values expand ($(NAME)) is read too.
            reads = frozenset(script_variables(
                container.get("command"), container.get("args"),
                [variable.get("value") for variable in container.get("env", [])]))
            for variable in container.get("env", []):
                problems.append(variable_problem(where, variable["name"], container["image"],
                                                 reads))
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secrets.get(ref["name"], ()):
                    problems.append(f"{where}: secret {ref['name']} has no key {ref['key']}")
    return [problem for problem in problems if problem]


def test_k8s_containers_set_only_variables_the_server_or_minio_reads():
    assert k8s_env_problems(k8s_documents()) == []


def test_k8s_variable_check_catches_strays_and_missing_secret_keys():
    documents = k8s_documents()
    deployment = next(d for f, d in documents
                      if f == "musicsync.yaml" and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "SECRETKEY", "value": "x"})
    container["env"].append({"name": "MINIO_ROOT_USER", "value": "x"})
    container["env"].append({"name": "SECRET_KEY", "valueFrom": {
        "secretKeyRef": {"name": "musicsync", "key": "SECRET-KEY"}}})
    minio = next(d for f, d in documents if f == "minio.yaml" and d["kind"] == "Deployment")
    minio["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "S3_BUCKET", "value": "music"})
    assert len(k8s_env_problems(documents)) == 4


def test_k8s_secret_holds_placeholders_only():
    secret = next(d for _, d in k8s_documents() if d["kind"] == "Secret")
    assert "data" not in secret
    assert all(value.startswith("CHANGE-ME") for value in secret["stringData"].values())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_sets_only_variables_the_server_or_python_reads():
    names = set()
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            names |= set(re.findall(r"([A-Z_][A-Z0-9_]*)=", arguments))
    python = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR",
              "PIP_DISABLE_PIP_VERSION_CHECK"}
    assert "DATA_DIR" in names
    assert names - python - SERVER_ENV == set()


# The image's build context ------------------------------------------------------------

def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, with /) out of the build context.

    Docker's rules: the last matching pattern wins, ``!`` re-includes, a pattern
    matching a folder matches everything in it, ``*`` stays within one path
    segment and ``**`` spans any number.
    """
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip().strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path, expected", [
    (".venv/bin/python", True), ("data/musicsync.db", True), (".env", True), (".git/HEAD", True),
    ("tests/test_auth.py", True), ("src/musicsync/__pycache__/cli.cpython-312.pyc", True),
    ("src/musicsync/cli.py", False), ("pyproject.toml", False), ("cmd/file.py", False),
])
def test_dockerignore_sends_the_builder_only_what_the_image_needs(path, expected):
    assert dockerignored(path, dockerignore_patterns()) is expected


def test_dockerfile_copies_only_paths_that_exist_in_the_build_context():
    patterns = dockerignore_patterns()
    sources = []
    for instruction, arguments in dockerfile_instructions():
        if instruction in ("COPY", "ADD") and "--from=" not in arguments:
            sources += [word for word in arguments.split()[:-1] if not word.startswith("--")]
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "src/", "cmd/"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
        files = [source] if (REPO / source).is_file() else [
            str(p.relative_to(REPO)) for p in (REPO / source).rglob("*.py")]
        assert files and not any(dockerignored(f, patterns) for f in files), source


# Ports and health checks agree with the server ----------------------------------------

def test_compose_services_listen_probe_and_publish_on_the_original_ports():
    services = compose()["services"]
    for name in SERVICES:
        service = services[name]
        port = str(DEFAULT_PORTS[name])
        assert service["command"] == ["musicsync", "serve", name]
        assert service["environment"]["PORT"] == port
        assert service["ports"] == [f"{port}:{port}"]
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "musicsync", "health"]
        assert test[test.index("--service") + 1] == SERVICE_NAMES[name]
    single = services["musicsync"]
    assert single["command"] == ["musicsync", "serve"] and single["profiles"] == ["single"]
    assert "S3_ENDPOINT" not in single["environment"]
    assert {p.split(":")[0] for p in single["ports"]} == {str(p) for p in DEFAULT_PORTS.values()}


def test_k8s_containers_listen_and_are_probed_on_their_ports():
    deployment = next(d for f, d in k8s_documents()
                      if f == "musicsync.yaml" and d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == set(SERVICES)
    for name, container in containers.items():
        port = DEFAULT_PORTS[name]
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert container["command"] == ["musicsync", "serve", name]
        assert env["PORT"] == str(port)
        assert [p["containerPort"] for p in container["ports"]] == [port]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)
        assert [m["mountPath"] for m in container["volumeMounts"]
                if m["name"] == "data"] == ["/data"]


# Secrets and exposure ---------------------------------------------------------------------

def bucket_policy(script: str, bucket: str) -> dict:
    """The policy an init script gives musicsync's MinIO user, for ``bucket``."""
    body = script.split("<<POLICY\n", 1)[1].split("\nPOLICY", 1)[0]
    return json.loads(re.sub(r"\$\$?S3_BUCKET", bucket, body))


def assert_bucket_scoped(policy: dict, bucket: str) -> None:
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions


def test_compose_gives_musicsync_a_bucket_scoped_minio_user_not_the_root_account():
    services = compose()["services"]
    root = services["minio"]["environment"]["MINIO_ROOT_USER"]
    for name, service in services.items():
        if not is_minio(service["image"]):
            assert not set(service.get("environment") or {}) & MINIO_ROOT, name
            assert root not in (service.get("environment") or {}).values(), name
    init = services["minio-init"]
    assert services["file"]["depends_on"] == {
        "minio-init": {"condition": "service_completed_successfully"}}
    assert init["environment"]["S3_ACCESS_KEY"] == services["file"]["environment"]["S3_ACCESS_KEY"]
    script = init["command"][0]
    assert 'mc admin user add root "$$S3_ACCESS_KEY" "$$S3_SECRET_KEY"' in script
    assert "mc admin policy attach root musicsync-bucket" in script
    assert_bucket_scoped(bucket_policy(script, "music"), "music")


def test_k8s_gives_musicsync_a_bucket_scoped_minio_user_not_the_root_account():
    documents = k8s_documents()
    job = next(d for _, d in documents if d["kind"] == "Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v for v in container["env"]}
    assert_bucket_scoped(bucket_policy(container["args"][0], "music"), env["S3_BUCKET"]["value"])
    minio = next(d for f, d in documents if f == "minio.yaml" and d["kind"] == "Deployment")
    root_keys = {v["valueFrom"]["secretKeyRef"]["key"]
                 for v in minio["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert root_keys == MINIO_ROOT
    deployment = next(d for f, d in documents if f == "musicsync.yaml")
    for musicsync_container in deployment["spec"]["template"]["spec"]["containers"]:
        for variable in musicsync_container["env"]:
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            assert not ref or ref["key"] not in MINIO_ROOT, musicsync_container["name"]


def test_compose_serves_metrics_only_inside_its_network():
    services = compose()["services"]
    metrics_port = "${METRICS_PORT"
    for name in (*SERVICES, "musicsync"):
        assert services[name]["environment"]["METRICS_HOST"] == "0.0.0.0"
        assert not any(metrics_port in port for port in services[name]["ports"]), name


# Pinned dependencies ---------------------------------------------------------------------

def constraints() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_dependency_within_the_ranges_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = constraints()
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (spec, pins[name])


def test_the_image_and_ci_install_the_pinned_versions():
    installs = [arguments for instruction, arguments in dockerfile_instructions()
                if instruction == "RUN" and "pip install" in arguments]
    assert any("-c constraints.txt" in run and "requirements.txt" in run for run in installs)
    assert any("constraints.txt" in arguments.split()
               for instruction, arguments in dockerfile_instructions() if instruction == "COPY")
    makefile = MAKEFILE.read_text()
    project_installs = re.findall(r"pip install [^\n]*-e [^\n]*", makefile)
    assert len(project_installs) == 2
    assert all("-c $(CONSTRAINTS)" in line for line in project_installs)
    assert re.search(r"^CONSTRAINTS := constraints\.txt$", makefile, re.M)


# Beyond one box: the `scale` profile and k8s/scale/ -----------------------------------
#
# PostgreSQL, MinIO and N stateless replicas behind Envoy, which balances each gRPC call
# (not each connection: a phone keeps one HTTP/2 connection for all its calls).

SCALE_SERVICES = ("postgres", "replica", "proxy")
# The longest a Watch may stay quiet between heartbeats (sync.proto: 10 to 3600 s).
LONGEST_HEARTBEAT = 3600


def scale_documents() -> list[tuple[str, dict]]:
    """The manifests of k8s/scale/ (not Envoy's configuration beside them)."""
    return [(name, document) for name, document in k8s_documents(SCALE)
            if name != ENVOY_K8S.name]


def envoy(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def envoy_listener_ports(config: dict) -> set[int]:
    [phones] = [listener for listener in config["static_resources"]["listeners"]
                if listener["name"] == "phones"]
    addresses = [phones["address"], *(a["address"] for a in phones["additional_addresses"])]
    return {address["socket_address"]["port_value"] for address in addresses}


def envoy_replicas_address(config: dict) -> dict:
    [cluster] = config["static_resources"]["clusters"]
    [endpoint] = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    return endpoint["endpoint"]["address"]["socket_address"]


def test_compose_scale_profile_runs_replicas_on_postgresql_behind_the_proxy():
    services = compose()["services"]
    for name in SCALE_SERVICES:
        assert services[name]["profiles"] == ["scale"], name
    postgres, replica, proxy = (services[name] for name in SCALE_SERVICES)
    assert image_name(postgres["image"]) == "postgres"
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert any(volume.startswith("postgres:") for volume in postgres["volumes"])
    assert "ports" not in postgres, "PostgreSQL stays on the compose network"
    # Several stateless replicas of the whole server, on PostgreSQL and MinIO.
    assert replica["command"] == ["musicsync", "serve"]
    assert replica["deploy"]["replicas"] >= 2
    env = replica["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://musicsync:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/musicsync")
    assert env["S3_ENDPOINT"] == "minio:9000"
    assert {"SECRET_KEY", "SECURITY_KEY"} <= set(env)
    assert replica["volumes"] == [], "nothing of a replica outlives it"
    assert "ports" not in replica, "phones reach the replicas through the proxy only"
    assert replica["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"}}
    assert replica["healthcheck"]["test"] == ["CMD", "musicsync", "health"]
    # The proxy: the phones' original ports, its configuration from deploy/.
    assert image_name(proxy["image"]) == "envoy"
    assert proxy["ports"] == [f"{port}:{port}" for port in sorted(DEFAULT_PORTS.values())]
    config_path = proxy["command"][proxy["command"].index("-c") + 1]
    assert f"./deploy/envoy.yaml:{config_path}:ro" in proxy["volumes"]
    # MinIO and its bucket-scoped user are the default layout's, without a profile.
    assert "profiles" not in services["minio"] and "profiles" not in services["minio-init"]


def test_envoy_balances_each_call_over_healthy_replicas_on_the_original_ports():
    config = envoy(ENVOY_COMPOSE)
    assert envoy_listener_ports(config) == set(DEFAULT_PORTS.values())
    [cluster] = config["static_resources"]["clusters"]
    # One host per address the replicas' name resolves to, HTTP/2 to each.
    assert cluster["type"] == "STRICT_DNS"
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    assert [check.get("grpc_health_check") for check in cluster["health_checks"]] == [{}]
    # Long calls live: no per-call time limit, and Watch's quiet spells pass.
    [phones] = [listener for listener in config["static_resources"]["listeners"]
                if listener["name"] == "phones"]
    manager = phones["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["codec_type"] == "HTTP2"
    [route] = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert route["route"]["timeout"] == "0s"
    assert int(manager["stream_idle_timeout"].removesuffix("s")) > LONGEST_HEARTBEAT
    # The replicas: the compose service, on the port that serves every service.
    address = envoy_replicas_address(config)
    assert address["address"] in compose()["services"]
    assert address["port_value"] == DEFAULT_PORTS["auth"]


def test_envoy_configs_of_compose_and_kubernetes_differ_only_in_the_replicas_name():
    compose_config, k8s_config = envoy(ENVOY_COMPOSE), envoy(ENVOY_K8S)
    service = next(d for f, d in scale_documents()
                   if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"
                   and d["metadata"]["name"] != "postgres")
    assert envoy_replicas_address(compose_config)["address"] == "replica"
    assert envoy_replicas_address(k8s_config)["address"] == (
        f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc")
    envoy_replicas_address(k8s_config)["address"] = "replica"
    assert k8s_config == compose_config


def envoy_bootstrap_errors(path: Path) -> str | None:
    """Envoy's own schema (its protos, from xds-protos): None when the file parses."""
    bootstrap = pytest.importorskip("envoy.config.bootstrap.v3.bootstrap_pb2",
                                    reason="xds-protos (Envoy's protos) is not installed")
    import importlib
    import pkgutil

    from google.protobuf import json_format

    import envoy.extensions

    # Every typed_config ("@type") resolves only once its module is loaded.
    for module in pkgutil.walk_packages(envoy.extensions.__path__, "envoy.extensions."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)
    try:
        json_format.ParseDict(yaml.safe_load(path.read_text()), bootstrap.Bootstrap())
    except json_format.ParseError as error:
        return str(error)
    return None


@pytest.mark.parametrize("path", [ENVOY_COMPOSE, ENVOY_K8S], ids=["compose", "k8s"])
def test_envoy_config_follows_envoys_schema(path):
    assert envoy_bootstrap_errors(path) is None


def test_envoy_schema_check_catches_a_misspelt_field_and_an_unknown_type(tmp_path):
    text = ENVOY_COMPOSE.read_text()
    (tmp_path / "field.yaml").write_text(text.replace("stream_idle_timeout", "stream_idle_timout"))
    (tmp_path / "type.yaml").write_text(text.replace("router.v3.Router", "router.v3.Ruoter", 1))
    assert "stream_idle_timout" in envoy_bootstrap_errors(tmp_path / "field.yaml")
    assert "Ruoter" in envoy_bootstrap_errors(tmp_path / "type.yaml")


def test_k8s_scale_manifests_follow_the_kubernetes_schemas():
    documents = scale_documents()
    assert {document["kind"] for _, document in documents} >= {
        "StatefulSet", "Deployment", "Service", "PodDisruptionBudget", "Secret", "Job"}
    assert k8s_schema_errors(documents) == []


def test_k8s_scale_component_adds_every_manifest_but_the_placeholder_secret_and_the_copy_job():
    component = yaml.safe_load((SCALE / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    manifests = {path.name for path in SCALE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(component["resources"]) == manifests - {"secret.yaml", "db-copy.yaml", "envoy.yaml"}
    assert component["configMapGenerator"][0]["files"] == ["envoy.yaml"]
    for patch in component["patches"]:
        assert (SCALE / patch["path"]).is_file(), patch


def test_k8s_scale_containers_set_only_variables_the_server_postgres_or_minio_reads():
    assert k8s_env_problems(k8s_documents() + scale_documents()) == []


def test_k8s_scale_secret_holds_placeholders_only():
    secret = next(d for _, d in scale_documents() if d["kind"] == "Secret")
    assert "data" not in secret
    assert all(value.startswith("CHANGE-ME") for value in secret["stringData"].values())


def test_k8s_scale_replicas_roll_one_at_a_time_with_grpc_probes_and_a_disruption_budget():
    documents = dict(((d["kind"], d["metadata"]["name"]), d) for _, d in scale_documents())
    deployment = documents["Deployment", "musicsync-server"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    labels = spec["template"]["metadata"]["labels"]
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"] == ["musicsync", "serve"]
    assert {p["containerPort"] for p in container["ports"]} == set(DEFAULT_PORTS.values())
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == DEFAULT_PORTS["auth"], probe
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["DATABASE_URL"].startswith("postgresql://musicsync:$(POSTGRES_PASSWORD)@postgres.")
    assert not any("persistentVolumeClaim" in v for v in spec["template"]["spec"]["volumes"])
    budget = documents["PodDisruptionBudget", "musicsync-server"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # Headless: Envoy's DNS lookup sees every ready replica, not one virtual address.
    headless = documents["Service", "musicsync-server"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= labels.items()
    postgres = documents["StatefulSet", "postgres"]
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_k8s_scale_proxy_serves_the_original_ports_from_the_generated_config():
    documents = dict(((d["kind"], d["metadata"]["name"]), d) for _, d in scale_documents())
    proxy = documents["Deployment", "musicsync-proxy"]["spec"]["template"]["spec"]
    [container] = proxy["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {ports[name] for name in SERVICES} == envoy_listener_ports(envoy(ENVOY_K8S))
    assert {name: ports[name] for name in SERVICES} == DEFAULT_PORTS
    config = next(v for v in proxy["volumes"] if "configMap" in v)
    assert config["configMap"]["name"] == "musicsync-proxy"
    mount = next(m for m in container["volumeMounts"] if m["name"] == config["name"])
    assert container["args"][container["args"].index("-c") + 1] == f"{mount['mountPath']}/envoy.yaml"


def kustomize_build(folder: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(folder)], check=False,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def test_k8s_with_the_scale_component_builds_valid_manifests_without_the_sqlite_pod(tmp_path):
    shutil.copytree(K8S, tmp_path / "k8s")
    kustomization = tmp_path / "k8s" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "# components:\n" in text and "#   - scale\n" in text
    kustomization.write_text(text.replace("# components:\n", "components:\n")
                             .replace("#   - scale\n", "  - scale\n"))
    documents = kustomize_build(tmp_path / "k8s")
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("Deployment", "musicsync") not in names
    assert ("PersistentVolumeClaim", "musicsync-data") not in names
    assert {("Deployment", "minio"), ("Job", "minio-init"), ("StatefulSet", "postgres"),
            ("Deployment", "musicsync-server"), ("Deployment", "musicsync-proxy")} <= names
    assert all(d["metadata"].get("namespace") == "musicsync"
               for d in documents if d["kind"] != "Namespace")
    # The phones' Service leads to Envoy, whose generated ConfigMap the pods mount.
    service = next(d for d in documents if d["kind"] == "Service"
                   and d["metadata"]["name"] == "musicsync")
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "musicsync-proxy"}
    configmap = next(d for d in documents if d["kind"] == "ConfigMap")
    proxy = next(d for d in documents if d["metadata"]["name"] == "musicsync-proxy"
                 and d["kind"] == "Deployment")
    assert {"configMap": {"name": configmap["metadata"]["name"]}, "name": "config"} in (
        proxy["spec"]["template"]["spec"]["volumes"])
    assert yaml.safe_load(configmap["data"]["envoy.yaml"]) == envoy(ENVOY_K8S)
    assert k8s_schema_errors([("built", d) for d in documents]) == []


# The image installs the `postgresql` extra (asyncpg) for the scale layouts.

def dockerfile_extras() -> list[str]:
    [default] = [arguments.split("=", 1)[1] for instruction, arguments in dockerfile_instructions()
                 if instruction == "ARG" and arguments.startswith("EXTRAS=")]
    return default.replace(",", " ").split()


def test_the_image_installs_the_postgresql_extra():
    assert "postgresql" in dockerfile_extras()
    installs = [arguments for instruction, arguments in dockerfile_instructions()
                if instruction == "RUN" and "requirements.txt" in arguments]
    assert any('EXTRAS="${EXTRAS}"' in run and "optional-dependencies" in run
               for run in installs)


def test_constraints_pin_the_extras_the_image_installs():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    if "postgresql" not in extras:
        pytest.skip("pyproject.toml has no `postgresql` extra yet (issue 14's PostgreSQL "
                    "support adds it); until then the image build stops, naming it")
    pins = constraints()
    for spec in (spec for name in dockerfile_extras() for spec in extras[name]):
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (spec, pins[name])
