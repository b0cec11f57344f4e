"""The deployment manifests, offline: deploy/k8s/*.yaml, deploy/knative/service.yaml and
deploy/function.Containerfile.

- Each file parses (PyYAML) and conforms to the Kubernetes API's own types
  (deploy_helpers.check_schema: python3-kubernetes' models, strictly).
- Field assertions: the probes' paths and ports, the restricted Pod Security Standard on
  every container, resources, the key from a Secret, no preStop hook, the Service and
  the autoscalers pointing at the Deployment.
- The numbers agree: --max-timeout, --read-timeout, --drain-delay and
  --shutdown-timeout (from PYRT_* variables or arguments) against
  terminationGracePeriodSeconds, Knative's timeoutSeconds, the probes' timings,
  containerConcurrency, the CPU and memory limits and the autoscalers' targets.

Run: `make test-manifests`, or
`/usr/bin/python3 -m pytest tests/deploy/test_manifests.py -q -p no:cacheprovider`.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest

import deploy_helpers as h

MARGIN = 10          # seconds: SIGKILL must not come before pyrt has stopped by itself
KNATIVE_MAX_TIMEOUT = 600  # Knative's default max-revision-timeout-seconds
PYRT_OWN_MIB = 64    # the master and the zygote, beside the workers' --max-memory
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return h.load(h.DEPLOYMENT)


@pytest.fixture(scope="module")
def knative() -> dict[str, Any]:
    return h.load(h.KNATIVE)


def pyrt_container(doc: dict[str, Any]) -> dict[str, Any]:
    return h.container(doc, "pyrt")


# --------------------------------------------------------------------------- parsing, schema

@pytest.mark.parametrize("path", h.MANIFESTS, ids=lambda p: str(p.relative_to(h.REPO)))
def test_parses_with_kind_and_name(path: Any) -> None:
    doc = h.load(path)
    assert doc.get("apiVersion") and doc.get("kind"), path
    assert doc["metadata"]["name"] == "pyrt-function", path
    assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "pyrt-function", path


@pytest.mark.parametrize("path", [h.DEPLOYMENT, h.SERVICE, h.HPA],
                         ids=lambda p: str(p.relative_to(h.REPO)))
def test_kubernetes_schema(path: Any) -> None:
    doc = h.load(path)
    model = h.MODEL_FOR[(doc["apiVersion"], doc["kind"])]
    assert h.check_schema(doc, model, doc["kind"]) == []


def test_knative_schema(knative: dict[str, Any]) -> None:
    assert knative["apiVersion"] == "serving.knative.dev/v1" and knative["kind"] == "Service"
    assert h.check_schema(knative["metadata"], "V1ObjectMeta", "metadata") == []
    template = knative["spec"]["template"]
    assert set(knative["spec"]) <= {"template", "traffic"}
    assert h.check_schema(template["metadata"], "V1ObjectMeta", "template.metadata") == []
    # A RevisionSpec is a PodSpec plus Knative's own fields. Knative fills in a probe's
    # port (the containerPort); the schema wants one.
    spec = copy.deepcopy({k: v for k, v in template["spec"].items()
                          if k not in ("containerConcurrency", "timeoutSeconds",
                                       "responseStartTimeoutSeconds", "idleTimeoutSeconds")})
    for c in spec["containers"]:
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            get = (c.get(probe) or {}).get("httpGet")
            if get is not None:
                get.setdefault("port", c["ports"][0]["containerPort"])
    assert h.check_schema(spec, "V1PodSpec", "template.spec") == []
    assert isinstance(template["spec"]["containerConcurrency"], int)
    assert isinstance(template["spec"]["timeoutSeconds"], int)


def test_schema_check_catches_mistakes(deployment: dict[str, Any]) -> None:
    """The offline check is not vacuous: a typo, a number for a quantity and a missing
    required field are all reported."""
    bad = copy.deepcopy(deployment)
    c = pyrt_container(bad)
    c["readinessprobe"] = c.pop("readinessProbe")
    c["resources"]["limits"]["cpu"] = 2
    del bad["spec"]["selector"]
    errors = " | ".join(h.check_schema(bad, "V1Deployment", "Deployment"))
    assert "readinessprobe: no such field" in errors
    assert "limits.cpu: expected str" in errors
    bad2 = copy.deepcopy(deployment)
    del bad2["spec"]["selector"]
    assert "selector" in " ".join(h.check_schema(bad2, "V1Deployment", "Deployment"))


# --------------------------------------------------------------------------- the Deployment

def resolve_port(c: dict[str, Any], port: Any) -> int:
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
    assert port in named, f"port {port!r} is not a named port of {c['name']}"
    return int(named[port])


def test_deployment_probes(deployment: dict[str, Any]) -> None:
    c = pyrt_container(deployment)
    port = int(h.option(h.pyrt_options(c), "port"))
    assert [p["containerPort"] for p in c["ports"]] == [port] == [3000]
    want = {"startupProbe": "/__ready", "readinessProbe": "/__ready",
            "livenessProbe": "/__health"}
    for name, path in want.items():
        probe = c[name]
        assert probe["httpGet"]["path"] == path, name
        assert resolve_port(c, probe["httpGet"]["port"]) == port, name
        assert probe.get("httpGet", {}).get("httpHeaders") is None, f"{name}: no key needed"
        assert 1 <= probe["timeoutSeconds"] <= 5, name
    # Starting: extraction + zygote + first worker get at least 30 s before a restart.
    start = c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 30
    # Liveness is the master alone: it must not fail while workers are merely busy,
    # and must tolerate a missed answer or two.
    assert c["livenessProbe"]["failureThreshold"] >= 3


def effective_security(pod: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in (pod.get("securityContext") or {}).items()
              if k in ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile")}
    merged.update(c.get("securityContext") or {})
    return merged


def assert_restricted(pod: dict[str, Any], c: dict[str, Any]) -> None:
    """The restricted Pod Security Standard (plus a read-only root) for one container."""
    sc = effective_security(pod, c)
    name = c.get("name", "?")
    assert sc.get("runAsNonRoot") is True, name
    assert sc.get("runAsUser", 1) != 0, name
    assert sc.get("allowPrivilegeEscalation") is False, name
    assert sc.get("privileged") is not True, name
    assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), name
    assert set((sc.get("capabilities") or {}).get("add", [])) <= {"NET_BIND_SERVICE"}, name
    assert (sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost"), name
    assert sc.get("readOnlyRootFilesystem") is True, name
    assert sc.get("procMount") in (None, "Default"), name
    for port in c.get("ports") or []:
        assert "hostPort" not in port and "hostIP" not in port, name


def test_deployment_restricted(deployment: dict[str, Any]) -> None:
    pod = h.pod_spec(deployment)
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(flag), flag
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        assert kinds <= RESTRICTED_VOLUMES, vol
    uid = pod["securityContext"]["runAsUser"]
    assert uid == 10001, "the image's pyrt user (any non-zero uid works)"
    containers = list(h.all_containers(deployment))
    assert len(containers) == 2
    for c in containers:
        assert_restricted(pod, c)
    assert pod.get("automountServiceAccountToken") is False


def test_deployment_writable_paths(deployment: dict[str, Any]) -> None:
    """Read-only root: what pyrt writes is on emptyDir volumes; the init container puts
    the archive where launch.sh reads it."""
    pod = h.pod_spec(deployment)
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    c = pyrt_container(deployment)
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    opts = h.pyrt_options(c)
    archive, code_dir = h.option(opts, "archive"), h.option(opts, "code-dir")
    assert mounts.get("/tmp") in empty and mounts.get(code_dir) in empty, mounts
    assert c["command"] == ["/usr/local/src/launch.sh"]
    init = pod["initContainers"]
    assert len(init) == 1
    script = " ".join(init[0]["command"])
    init_mounts = {m["mountPath"]: m["name"] for m in init[0]["volumeMounts"]}
    # cp SOURCE PART && mv -f PART TARGET: the source is the code image's archive, the
    # target is launch.sh's archive on a volume the pyrt container mounts at the same path.
    m = re.search(r"\bcp (\S+) (\S+) && mv -f (\S+) (\S+)$", script)
    assert m and m.group(2) == m.group(3), script
    assert m.group(1) == h.containerfile_archive()
    assert m.group(4) == archive
    folder = archive.rsplit("/", 1)[0]
    assert init_mounts.get(folder) == mounts.get(folder) in empty


def test_deployment_resources(deployment: dict[str, Any]) -> None:
    for c in h.all_containers(deployment):
        res = c["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res[kind]), (c["name"], kind)
        assert h.mem_bytes(res["requests"]["memory"]) <= h.mem_bytes(res["limits"]["memory"])
        assert h.cpu_cores(res["requests"]["cpu"]) <= h.cpu_cores(res["limits"]["cpu"])


def test_key_from_secret(deployment: dict[str, Any], knative: dict[str, Any]) -> None:
    for doc in (deployment, knative):
        c = pyrt_container(doc)
        key = h.env_of(c)["INTERNAL_RUNTIME_KEY"]
        assert "value" not in key
        ref = key["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "pyrt-function-key", "key": "key"}
    for path in h.MANIFESTS:
        assert "kind: Secret" not in path.read_text(), f"{path}: no key in the repository"


def test_no_prestop_hook(deployment: dict[str, Any], knative: dict[str, Any]) -> None:
    """pyrt drains by itself (--drain-delay): no `sleep` in a preStop hook, which would
    need a shell and a sleep in the image and delay SIGTERM for every pod."""
    for doc in (deployment, knative):
        for c in h.all_containers(doc):
            assert "lifecycle" not in c, c["name"]


def test_pyrt_variables_exist(deployment: dict[str, Any], knative: dict[str, Any]) -> None:
    known = h.known_pyrt_variables()
    for doc in (deployment, knative):
        names = {n for n in h.env_of(pyrt_container(doc)) if n.startswith("PYRT_")}
        assert names <= known, f"unknown to pyrt: {sorted(names - known)}"
        for name, e in h.env_of(pyrt_container(doc)).items():
            if name.startswith("PYRT_") and name.endswith(("TIMEOUT", "DELAY")):
                assert float(e["value"]) >= 0, name


def test_service(deployment: dict[str, Any]) -> None:
    svc = h.load(h.SERVICE)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    c = pyrt_container(deployment)
    (port,) = svc["spec"]["ports"]
    assert resolve_port(c, port["targetPort"]) == int(h.option(h.pyrt_options(c), "port"))


def test_metrics_annotations(deployment: dict[str, Any]) -> None:
    ann = deployment["spec"]["template"]["metadata"]["annotations"]
    c = pyrt_container(deployment)
    assert ann["prometheus.io/path"] == "/__metrics"
    assert ann["prometheus.io/port"] == h.option(h.pyrt_options(c), "port")
    assert "no-metrics" not in h.pyrt_options(c)


# --------------------------------------------------------------------------- autoscaling

def test_hpa(deployment: dict[str, Any]) -> None:
    hpa = h.load(h.HPA)
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == \
        ("apps/v1", "Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # Scaling down drains pods: no faster than a drain takes.
    grace = h.pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= grace


def pyrt_metric_names() -> set[str]:
    text = (h.REPO / "src" / "master" / "metrics.c").read_text()
    return set(re.findall(r"\bpyrt_[a-z_]+", text))


def test_keda(deployment: dict[str, Any]) -> None:
    keda = h.load(h.KEDA)
    hpa = h.load(h.HPA)
    assert keda["apiVersion"] == "keda.sh/v1alpha1" and keda["kind"] == "ScaledObject"
    spec = keda["spec"]
    assert set(spec) <= {"scaleTargetRef", "minReplicaCount", "maxReplicaCount",
                         "pollingInterval", "cooldownPeriod", "advanced", "triggers",
                         "idleReplicaCount", "fallback"}
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert spec["minReplicaCount"] == hpa["spec"]["minReplicas"]
    assert spec["maxReplicaCount"] == hpa["spec"]["maxReplicas"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    used = set(re.findall(r"\bpyrt_[a-z_]+", query))
    assert "pyrt_executions_queued" in used
    assert used <= pyrt_metric_names(), f"not pyrt metrics: {used - pyrt_metric_names()}"
    assert 'state="busy"' in query
    c = pyrt_container(deployment)
    threshold = float(trigger["metadata"]["threshold"])
    assert 0 < threshold <= h.workers(h.pyrt_options(c), c), "at most a pod's workers"
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"] == hpa["spec"]["behavior"]["scaleDown"]


# --------------------------------------------------------------------------- Knative

def test_knative_fields(knative: dict[str, Any]) -> None:
    spec = h.pod_spec(knative)
    c = pyrt_container(knative)
    assert "securityContext" not in spec, "pod-level needs kubernetes.podspec-securitycontext"
    assert "initContainers" not in spec, "needs kubernetes.podspec-init-containers"
    assert_restricted({}, c)
    assert effective_security({}, c)["runAsUser"] == 10001
    (port,) = c["ports"]
    assert port["name"] in ("http1", "h2c") and port["containerPort"] == 3000
    assert "PORT" not in h.env_of(c), "Knative sets PORT itself"
    assert c["readinessProbe"]["httpGet"]["path"] == "/__ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/__health"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"].get("port", 3000) == 3000, probe
    opts = h.pyrt_options(c)
    assert h.option(opts, "archive") == h.containerfile_archive()
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/tmp", h.option(opts, "code-dir")} <= mounts
    assert all("emptyDir" in v for v in spec["volumes"])
    assert c["command"] == ["/usr/local/src/launch.sh"]
    ann = knative["spec"]["template"]["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/metric"] == "concurrency"


# --------------------------------------------------------------------------- the numbers

def test_drain_arithmetic(deployment: dict[str, Any]) -> None:
    """SIGTERM -> drain-delay (still accepting) -> listener closed -> in-flight work
    (bounded by read + max timeout, or shutdown-timeout) -> exit, all before SIGKILL."""
    c = pyrt_container(deployment)
    opts = h.pyrt_options(c)
    drain = h.seconds(opts, "drain-delay")
    grace = h.pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert drain > 0, "no preStop hook: pyrt itself must keep serving after SIGTERM"
    # Everything accepted may finish: shutdown-timeout cuts nothing pyrt would answer.
    natural = h.seconds(opts, "read-timeout") + h.seconds(opts, "max-timeout")
    assert h.seconds(opts, "shutdown-timeout") >= natural
    assert grace >= drain + h.shutdown_bound(opts) + MARGIN, \
        f"terminationGracePeriodSeconds {grace} < {drain} + {h.shutdown_bound(opts)} + {MARGIN}"
    # Probing load balancers see /__ready fail before the listener closes.
    ready = c["readinessProbe"]
    noticed = ready["periodSeconds"] * ready["failureThreshold"] + ready["timeoutSeconds"]
    assert drain >= noticed, f"drain-delay {drain} < readiness detection {noticed}"


def test_knative_arithmetic(knative: dict[str, Any]) -> None:
    c = pyrt_container(knative)
    opts = h.pyrt_options(c)
    timeout = knative["spec"]["template"]["spec"]["timeoutSeconds"]
    natural = h.seconds(opts, "read-timeout") + h.seconds(opts, "max-timeout")
    assert timeout >= natural + MARGIN, "pyrt must answer its own timeout first"
    assert timeout <= KNATIVE_MAX_TIMEOUT
    # The pod's grace period is timeoutSeconds; queue-proxy drains before SIGTERM.
    assert h.seconds(opts, "drain-delay") == 0
    assert timeout >= h.seconds(opts, "drain-delay") + h.shutdown_bound(opts) + MARGIN
    assert h.seconds(opts, "shutdown-timeout") >= natural


def test_numbers_agree_across_files(deployment: dict[str, Any],
                                    knative: dict[str, Any]) -> None:
    k8s, kn = pyrt_container(deployment), pyrt_container(knative)
    k8s_opts, kn_opts = h.pyrt_options(k8s), h.pyrt_options(kn)
    for name in ("max-timeout", "read-timeout", "max-memory", "workers", "entrypoint",
                 "log-format"):
        assert h.option(k8s_opts, name) == h.option(kn_opts, name), name
    for kind in ("cpu", "memory"):
        assert k8s["resources"]["limits"][kind] == kn["resources"]["limits"][kind], kind
    # One execution per worker: Knative never queues in pyrt.
    n = h.workers(k8s_opts, k8s)
    assert knative["spec"]["template"]["spec"]["containerConcurrency"] == n
    assert n == h.workers(kn_opts, kn)


@pytest.mark.parametrize("which", ["deployment", "knative"])
def test_workers_fit_the_limits(which: str, deployment: dict[str, Any],
                                knative: dict[str, Any]) -> None:
    doc = deployment if which == "deployment" else knative
    c = pyrt_container(doc)
    opts = h.pyrt_options(c)
    n = h.workers(opts, c)
    limits = c["resources"]["limits"]
    assert n == math.ceil(h.cpu_cores(limits["cpu"])), "one worker per CPU of the limit"
    per = int(h.option(opts, "max-memory"))
    assert per > 0, "a per-execution memory cap keeps one execution from the OOM killer"
    assert n * per + PYRT_OWN_MIB <= h.mem_bytes(limits["memory"]) // 2**20
