"""What the manifest tests share: the files under deploy/, pyrt's options as a container
would see them, and an offline structural check against Kubernetes' own API types.

Schema: no JSON schema of the Kubernetes API is packaged for Debian 12 (kubeconform,
kubeval and the kubernetes-json-schema sets are not in the archive; `kubectl --dry-run`
needs an API server). Debian does package the Kubernetes Python client
(python3-kubernetes, 22.6: the API of Kubernetes 1.22), whose model classes are
generated from the API's OpenAPI document: each knows its fields, their types and which
are required. `check_schema` walks a manifest against them, strictly: an unknown field
(a typo such as `readinessprobe`), a wrong type (`cpu: 2` instead of `"2"`, a string
where a list belongs) or a missing required field is an error. autoscaling/v2 became GA
after 1.22: its HorizontalPodAutoscaler is checked against autoscaling/v2beta2, which has
the same fields. Knative's Service is checked as what it embeds (ObjectMeta, PodSpec);
KEDA's ScaledObject by the field assertions alone.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import Any, Iterator, Optional, cast

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO / "deploy"
DEPLOYMENT = DEPLOY / "k8s" / "deployment.yaml"
SERVICE = DEPLOY / "k8s" / "service.yaml"
HPA = DEPLOY / "k8s" / "hpa.yaml"
KEDA = DEPLOY / "k8s" / "keda-scaledobject.yaml"
KNATIVE = DEPLOY / "knative" / "service.yaml"
CONTAINERFILE = DEPLOY / "function.Containerfile"
MANIFESTS = (DEPLOYMENT, SERVICE, HPA, KEDA, KNATIVE)

# pyrt's defaults (docs/operating.md, "Options") for what a manifest may leave out.
DEFAULTS = {
    "port": "3000",
    "max-timeout": "900",
    "read-timeout": "30",
    "drain-delay": "0",
    "shutdown-timeout": "0",
    "max-memory": "0",
    "archive": "/tmp/code.tar.gz",
    "code-dir": "/usr/code",
}
# Options whose variable is not PYRT_<OPTION> (docs/operating.md).
SPECIAL_VARS = {"PORT": "port", "ENTRYPOINT_NAME": "entrypoint"}


def load(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path}: expected one document, found {len(docs)}"
    doc = docs[0]
    assert isinstance(doc, dict), f"{path}: not a mapping"
    return cast(dict[str, Any], doc)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment or of a Knative Service's template."""
    return cast(dict[str, Any], doc["spec"]["template"]["spec"])


def container(doc: dict[str, Any], name: Optional[str] = None) -> dict[str, Any]:
    containers = pod_spec(doc)["containers"]
    if name is None:
        assert len(containers) == 1, "expected one container"
        return cast(dict[str, Any], containers[0])
    found = [c for c in containers if c.get("name") == name]
    assert found, f"no container named {name}"
    return cast(dict[str, Any], found[0])


def all_containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(doc)
    yield from spec.get("initContainers") or []
    yield from spec["containers"]


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env") or []}


def pyrt_options(c: dict[str, Any]) -> dict[str, str]:
    """pyrt's options as the container sets them: PYRT_* (and PORT, ENTRYPOINT_NAME)
    variables, then --option arguments after the command, which win, as in pyrt."""
    opts: dict[str, str] = {}
    for name, e in env_of(c).items():
        if "value" not in e:
            continue
        if name in SPECIAL_VARS:
            opts[SPECIAL_VARS[name]] = str(e["value"])
        elif name.startswith("PYRT_"):
            opts[name[5:].lower().replace("_", "-")] = str(e["value"])
    words = [str(w) for w in (c.get("command") or [])[1:] + (c.get("args") or [])]
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("--"):
            if "=" in w:
                key, value = w[2:].split("=", 1)
                opts[key] = value
            elif i + 1 < len(words) and not words[i + 1].startswith("--"):
                opts[w[2:]] = words[i + 1]
                i += 1
            else:
                opts[w[2:]] = "1"
        i += 1
    return opts


def option(opts: dict[str, str], name: str) -> str:
    return opts.get(name, DEFAULTS.get(name, ""))


def seconds(opts: dict[str, str], name: str) -> float:
    return float(option(opts, name))


def shutdown_bound(opts: dict[str, str]) -> float:
    """At most how long pyrt takes from closing its listener to exiting: an accepted
    request's body arrives within --read-timeout of its first byte and is answered
    within --max-timeout of that; --shutdown-timeout (when set) caps it."""
    natural = seconds(opts, "read-timeout") + seconds(opts, "max-timeout")
    capped = seconds(opts, "shutdown-timeout")
    return min(natural, capped) if capped > 0 else natural


def cpu_cores(quantity: str) -> float:
    q = str(quantity)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


_MEM_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}


def mem_bytes(quantity: str) -> int:
    m = re.fullmatch(r"([0-9.]+)([KMG]i?)?", str(quantity))
    assert m, f"unreadable memory quantity {quantity!r}"
    return int(float(m.group(1)) * _MEM_UNITS.get(m.group(2) or "", 1))


def workers(opts: dict[str, str], c: dict[str, Any]) -> int:
    """--workers, else what pyrt takes from the cgroup CPU quota: the CPU limit, rounded up."""
    if "workers" in opts:
        return int(opts["workers"])
    return math.ceil(cpu_cores(c["resources"]["limits"]["cpu"]))


def containerfile_archive() -> str:
    """Where deploy/function.Containerfile puts the archive (its COPY destination)."""
    for line in CONTAINERFILE.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0].upper() == "COPY":
            return [w for w in words[1:] if not w.startswith("--")][-1]
    raise AssertionError(f"no COPY in {CONTAINERFILE}")


def known_pyrt_variables() -> set[str]:
    """Every PYRT_* variable pyrt's option parser names (src/cli/)."""
    found: set[str] = set()
    for path in (REPO / "src" / "cli").glob("*.c"):
        found |= set(re.findall(r'"(PYRT_[A-Z_]+)"', path.read_text()))
    return found


# --------------------------------------------------------------------------- schema

def _models() -> Any:
    try:
        from kubernetes.client import models  # python3-kubernetes
    except ImportError as exc:  # a failure, not a skip: the check would silently vanish
        raise AssertionError("python3-kubernetes is not installed (apt-get install "
                             "python3-kubernetes; make test-manifests installs it)") from exc
    return models


# (apiVersion, kind) -> the client's model (see the module's docstring).
MODEL_FOR = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("v1", "Secret"): "V1Secret",
}
_PRIMITIVES: dict[str, Any] = {"str": str, "int": int, "float": (int, float), "bool": bool}


def check_schema(value: Any, type_name: str, where: str = "") -> list[str]:
    """Errors in value against the client's type type_name ("V1PodSpec", "list[...]",
    "dict(str, str)", "int", ...); an empty list when it conforms."""
    models = _models()
    errors: list[str] = []
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        for i, item in enumerate(value):
            errors += check_schema(item, m.group(1), f"{where}[{i}]")
        return errors
    m = re.fullmatch(r"dict\((\w+), (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping, got {type(value).__name__}"]
        for k, v in value.items():
            if not isinstance(k, str):
                errors.append(f"{where}: key {k!r} is not a string")
            errors += check_schema(v, m.group(2), f"{where}.{k}")
        return errors
    if type_name in ("object", "datetime", "date"):
        if type_name != "object" and not isinstance(value, str):
            return [f"{where}: expected a timestamp string"]
        return []
    if type_name in _PRIMITIVES:
        want = _PRIMITIVES[type_name]
        if isinstance(value, bool) and type_name != "bool":
            return [f"{where}: expected {type_name}, got a boolean"]
        if not isinstance(value, want):
            return [f"{where}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    cls = getattr(models, type_name, None)
    if cls is None:
        return [f"{where}: unknown type {type_name}"]
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} mapping, got {type(value).__name__}"]
    by_json = {j: py for py, j in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            errors.append(f"{where}.{key}: no such field in {type_name}")
            continue
        errors += check_schema(item, cls.openapi_types[by_json[key]], f"{where}.{key}")
    if not errors:
        # The model's setters refuse a missing required field (and a value outside an enum).
        try:
            cls(**{by_json[k]: v for k, v in value.items()})
        except (ValueError, TypeError) as exc:
            errors.append(f"{where or type_name}: {exc}")
    return errors
