"""deploy/ cannot drift from the code: every command line and LEADERPOOL_* variable in the
Dockerfile, the Compose file, the Kubernetes manifests and the systemd unit is accepted by the
real worker's (or CLI's) parser, and the manifests are valid Kubernetes objects by the
Kubernetes schemas (kubernetes-validate, strict: an unknown field is an error)."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

import leaderpool
from leaderpool.cli import parser as cli_parser
from leaderpool.worker.settings import build_parser, parse_settings
from tests.support.worker_procs import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"
"""The oldest Kubernetes the manifests promise to work on (unhealthyPodEvictionPolicy is GA in 1.31
and beta, on by default, in 1.27-1.30)."""
GENERATION = "metadata.annotations['leaderpool/generation']"
FIELD_SAMPLES = {"metadata.name": "leaderpool-worker-7d9f-abcde", "spec.nodeName": "node-1", GENERATION: "1"}
"""What Kubernetes puts in a variable set from a field, for the parser to check."""


def known_variables() -> set[str]:
    """Every LEADERPOOL_* variable the worker reads, from its flags' help ("[LEADERPOOL_X]")."""
    helps = " ".join(a.help or "" for a in build_parser()._actions)
    return set(re.findall(r"\[(LEADERPOOL_[A-Z_]+)", helps))


def check_worker(args: list[str], env: dict[str, str], where: str) -> None:
    """The worker would start with these: the parser accepts them, no variable is unknown."""
    unknown = {k for k in env if k.startswith("LEADERPOOL_")} - known_variables()
    assert not unknown, f"{where}: variables the worker does not read: {sorted(unknown)}"
    settings = parse_settings(args, env)  # raises UsageError naming what is wrong
    assert settings.config.pool, where


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in dockerfile_instructions("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(line)))
    return env


def dockerfile_instructions(name: str) -> list[str]:
    text = (DEPLOY / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [name]]


# ---- the image ----


def test_dockerfile_runs_the_worker_as_a_user_with_a_health_check() -> None:
    import json

    (entrypoint,) = dockerfile_instructions("ENTRYPOINT")
    assert ["tini", "--", "leaderpool-worker"] == json.loads(entrypoint)
    users = dockerfile_instructions("USER")
    assert users and users[-1] not in ("root", "0")
    env = image_environment()
    check_worker([], {**env, "LEADERPOOL_POOL": "p"}, "Dockerfile ENV")
    liveness = env["LEADERPOOL_LIVENESS_ADDRESS"].rpartition(":")[2]
    assert liveness in dockerfile_instructions("EXPOSE")[0].split()
    (health,) = dockerfile_instructions("HEALTHCHECK")
    assert f"127.0.0.1:{env['LEADERPOOL_HTTP_PORT']}/healthz" in health
    assert [f"ARG VERSION={leaderpool.__version__}"] == [
        f"ARG {a}" for a in dockerfile_instructions("ARG") if a.startswith("VERSION=")
    ]
    assert dockerfile_instructions("STOPSIGNAL") == ["SIGTERM"]


def test_the_images_build_stage_copies_what_the_wheel_needs(tmp_path: Path) -> None:
    """The build stage's COPY lines, done by hand into an empty directory, make a wheel: a file
    the package's metadata names (the README, the LICENSE) left out fails the image's build."""
    import shutil
    import sys
    import zipfile

    from leaderpool.testing import processes

    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    build_stage = text.split("\nFROM ")[1]  # after the header comments, before the run stage
    for line in build_stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, dest = line.split()[1:]
            for source in sources:
                target = tmp_path / dest / (Path(source).name if dest.endswith("/") else "")
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy
                copy(ROOT / source, target)
    uv = str(Path(sys.executable).with_name("uv"))
    built = processes.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(tmp_path)], timeout=300)
    assert 0 == built.returncode, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as files:
        names = files.namelist()
        metadata = next(files.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "## Install" in metadata  # the README, as the package's description


def test_the_build_context_leaves_environments_and_caches_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".venv-lint", ".nox", "dist", "build"} <= set(ignored)


# ---- Compose ----


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    return data


def test_compose_workers_and_cli_are_accepted() -> None:
    services = compose()["services"]
    workers = {name: s for name, s in services.items() if "build" in s}
    assert {"a", "b", "c"} == set(workers)
    image = image_environment()
    for name, service in workers.items():
        env = {k: str(v) for k, v in service["environment"].items()}
        check_worker(service.get("command", []), {**image, **env}, f"compose service {name}")
        assert env["LEADERPOOL_MEMBER_ID"] == name
        assert env["LEADERPOOL_REDIS_URL"].startswith("redis://redis:")
    cli = services["cli"]
    argv = [*cli["entrypoint"][1:], *cli["command"]]
    assert "leaderpool-cli" == cli["entrypoint"][0]
    cli_parser.build_parser().parse_args(argv)
    cli_parser.build_parser().parse_args([*cli["entrypoint"][1:], "status", "--watch"])
    redis_args = services["redis"]["command"]
    flags = redis_args[redis_args.index("--notify-keyspace-events") + 1].replace("$$", "$")
    assert set("Kg$x") <= set(flags)


# ---- Kubernetes ----


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted((DEPLOY / "kubernetes").rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


COMPOSE_WALKTHROUGHS = [ROOT / "deploy" / "README.md", ROOT / "docs" / "operations" / "deploy.md"]


def compose_commands(text: str) -> list[list[str]]:
    """The walkthrough's ``docker compose -f ... ACTION ...`` lines, as words after ``-f FILE``."""
    found = []
    for line in text.splitlines():
        if line.startswith("docker compose -f "):
            found.append(shlex.split(line.split("#", 1)[0])[4:])
    return found


@pytest.mark.parametrize("page", COMPOSE_WALKTHROUGHS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_compose_walkthrough_agrees_with_docker(page: Path) -> None:
    """A container killed with ``docker compose kill`` counts as stopped by hand, which
    ``restart: unless-stopped`` never restarts: the walkthrough starts it again itself, and says
    a crashed leader is replaced in milliseconds (the image turns fast failover on), not after a lease."""
    text = page.read_text()
    steps = compose_commands(text)
    killed = [words[-1] for words in steps if words[:1] == ["kill"]]
    started = [words[-1] for words in steps if words[:1] == ["start"]]
    assert killed and killed == started, f"{page.name}: every killed service must be started again"
    assert "unless-stopped` brings" not in text and "lease has run out" not in text
    assert "within milliseconds" in text
    assert "restart: unless-stopped" in (DEPLOY / "compose" / "docker-compose.yml").read_text()
    assert "LEADERPOOL_LIVENESS_ADDRESS" in (DEPLOY / "docker" / "Dockerfile").read_text()


@pytest.mark.parametrize(("name", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_manifest_is_a_valid_kubernetes_object(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_refused() -> None:
    """The validator is not a rubber stamp: a misspelt field fails it."""
    deployment = next(doc for _, doc in manifests() if doc["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 40
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kubernetes_workers_are_accepted_and_probe_the_leader() -> None:
    (worker,) = [d for _, d in manifests() if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]]
    pod = worker["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {
        e["name"]: e["value"] if "value" in e else FIELD_SAMPLES[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in container["env"]
    }
    check_worker(container.get("args", []), {**image_environment(), **env}, "kubernetes worker")
    port = int(env["LEADERPOOL_HTTP_PORT"])
    assert [port] == [p["containerPort"] for p in container["ports"] if p["name"] == "http"]
    liveness = int(env["LEADERPOOL_LIVENESS_ADDRESS"].rpartition(":")[2])  # fast failover's endpoint
    assert [liveness] == [p["containerPort"] for p in container["ports"] if p["name"] == "liveness"]
    policy = next(d for _, d in manifests() if d["kind"] == "NetworkPolicy")
    assert liveness in [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert "/leader" == container["readinessProbe"]["httpGet"]["path"]
    assert "/healthz" == container["livenessProbe"]["httpGet"]["path"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    # the grace outlasts the preStop pause, so SIGTERM (the hand-over) always comes before SIGKILL
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + 10
    kinds = {d["kind"] for _, d in manifests()}
    assert {"Deployment", "Service", "PodDisruptionBudget"} <= kinds


def worker_deployment() -> dict[str, Any]:
    (worker,) = [d for _, d in manifests() if d["kind"] == "Deployment" and "worker" in d["metadata"]["name"]]
    return worker


def test_a_rollout_moves_the_lead_once() -> None:
    """All new pods start at once and outrank the old: their priority is the template's generation
    annotation (a whole number the worker accepts), so the old leader hands over to a new pod, not
    to an old follower that is stopping too (issue 24)."""
    worker = worker_deployment()
    assert {"maxSurge": "100%", "maxUnavailable": "100%"} == worker["spec"]["strategy"]["rollingUpdate"]
    template = worker["spec"]["template"]
    (container,) = template["spec"]["containers"]
    (priority,) = [e for e in container["env"] if e["name"] == "LEADERPOOL_PRIORITY"]
    assert GENERATION == priority["valueFrom"]["fieldRef"]["fieldPath"]
    generation = template["metadata"]["annotations"]["leaderpool/generation"]
    assert isinstance(generation, str) and 1 <= int(generation) <= 2047  # ranked exactly
    readme = (DEPLOY / "README.md").read_text()
    assert "leaderpool/generation" in readme and "The lead moves once" in readme


def test_the_manifests_image_is_built_and_loaded_as_the_readme_says() -> None:
    """No registry holds the image: the README builds it under the manifest's name and loads it
    into kind or minikube (or pushes it and sets the Deployment's image)."""
    (container,) = worker_deployment()["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    readme = (DEPLOY / "README.md").read_text()
    assert f"docker build -f deploy/docker/Dockerfile -t {image} ." in readme
    assert f"kind load docker-image {image}" in readme and f"minikube image load {image}" in readme
    assert f"kubectl set image deployment/{worker_deployment()['metadata']['name']} {container['name']}=" in readme
    assert image.rpartition(":")[2] == leaderpool.__version__ and "IfNotPresent" == container["imagePullPolicy"]


def test_the_sentinel_variant_points_the_workers_at_its_sentinels() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in manifests()}
    env = docs[("ConfigMap", "leaderpool-worker-sentinel")]["data"]
    check_worker([], {**image_environment(), **env, "LEADERPOOL_POOL": "scheduler"}, "sentinel worker env")
    url = urlsplit(env["LEADERPOOL_REDIS_URL"])
    master = url.path.strip("/").split("/")[0]
    sentinel_conf = docs[("ConfigMap", "leaderpool-redis-ha")]["data"]["sentinel.conf"]
    assert f"sentinel monitor {master} " in sentinel_conf
    service = docs[("Service", url.hostname)]
    assert [url.port] == [p["port"] for p in service["spec"]["ports"]]


# ---- systemd ----


def test_systemd_unit_is_accepted_and_hardened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the example's task, myapp.jobs:run_scheduler, stands for the application's: give it one
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "jobs.py").write_text("def run_scheduler(ctx):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    unit = configparser.RawConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "leaderpool-worker@.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/leaderpool-worker")
    key, _, value = service["Environment"].partition("=")  # the last Environment= line
    for example in ("scheduler.env.example", "sentinel.env.example"):
        env = env_file(DEPLOY / "systemd" / example)
        check_worker(argv[1:], {**env, key: value, "LEADERPOOL_POOL": "scheduler"}, f"systemd unit with {example}")
    assert "yes" == service["DynamicUser"] and "strict" == service["ProtectSystem"]
    # Documentation= names files of the checkout the unit runs from (leaderpool has no public site)
    docs = shlex.split(unit["Unit"]["Documentation"])
    assert docs and all(d.startswith("file:///opt/leaderpool/") for d in docs), docs
    for d in docs:
        assert (ROOT / d.removeprefix("file:///opt/leaderpool/")).is_file(), d
    assert argv[0].startswith("/opt/leaderpool/")
    assert "always" == service["Restart"] and "SIGTERM" == service["KillSignal"]


def env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def test_every_deploy_file_is_checked() -> None:
    checked = {
        "README.md",
        "Dockerfile",
        "docker-compose.yml",
        "leaderpool-worker@.service",
        "scheduler.env.example",
        "sentinel.env.example",
        *(p.name for p in (DEPLOY / "kubernetes").rglob("*.yaml")),
    }
    present = {p.name for p in DEPLOY.rglob("*") if p.is_file()}
    assert set() == present - checked, "a new file in deploy/ needs a check here"
