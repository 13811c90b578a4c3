"""What the real API server does to built-in objects: defaults, canonical quantities, checks.

Only what matters to a controller is modelled, but that part faithfully: the
defaults that appear on every Deployment, Service and claim (a differ that
compares whole objects sees them as changes), quantities stored canonicalised,
immutable fields refused with 422, and a Deployment's selector checked against
its template.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import re
import threading
from typing import Any

from kubestandin import crds, quantity
from kubestandin.names import DNS_1035, DNS_LABEL, DNS_SUBDOMAIN
from kubestandin.registry import ResourceType
from kubestandin.schema import Cause

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

_cluster_ips = itertools.count(10)
_ip_lock = threading.Lock()


def _next_cluster_ip() -> str:
    with _ip_lock:
        n = next(_cluster_ips)
    return str(ipaddress.IPv4Address("10.96.0.0") + n)


def _canonical(resources: dict[str, Any] | None, path: str, causes: list[Cause]) -> None:
    if not isinstance(resources, dict):
        return
    for section in ("limits", "requests"):
        values = resources.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            try:
                values[key] = quantity.parse(value).text
            except ValueError:
                field = f"{path}.{section}[{key}]"
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        field,
                        f"{field}: Invalid value: {json.dumps(value)}: must match the regex (\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?",
                    )
                )


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")


def _default_pod_spec(spec: dict[str, Any], path: str, causes: list[Cause]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            if not isinstance(container, dict):
                continue
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            image = str(container.get("image", ""))
            tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
            container.setdefault(
                "imagePullPolicy", "Always" if tagless or image.endswith(":latest") else "IfNotPresent"
            )
            container.setdefault("resources", {})
            _canonical(container.get("resources"), f"{path}.{kind}[{index}].resources", causes)
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                _default_probe(container.get(probe))
    for volume in spec.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def _default_job_spec(spec: dict[str, Any], metadata: dict[str, Any], path: str, causes: list[Cause]) -> None:
    """A Job as batch/v1 stores it: counts and policies filled in, and (on create) the
    selector and pod labels the Job controller keys on, from the Job's uid and name."""
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    uid, name = metadata.get("uid"), metadata.get("name")
    if uid and "selector" not in spec:
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        for key, value in (
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid),
            ("job-name", name),
        ):
            labels.setdefault(key, value)
    if isinstance(template.get("spec"), dict):
        _default_pod_spec(template["spec"], f"{path}.template.spec", causes)


def default(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    """Fill in server defaults in place; returns causes for values that cannot be stored."""
    causes: list[Cause] = []
    kind = rt.kind
    if kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {})
        if isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"], "spec.template.spec", causes)
    elif kind == "Job":
        _default_job_spec(obj.setdefault("spec", {}), obj["metadata"], "spec", causes)
        obj.setdefault("status", {})
    elif kind == "CronJob":
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        template = spec.setdefault("jobTemplate", {})
        template.setdefault("metadata", {})
        job = template.setdefault("spec", {})
        pod = job.setdefault("template", {})
        if isinstance(pod.get("spec"), dict):
            _default_pod_spec(pod["spec"], "spec.jobTemplate.spec.template.spec", causes)
        obj.setdefault("status", {})
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName" and "clusterIP" not in spec:
            spec["clusterIP"] = _next_cluster_ip()
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif kind == "PersistentVolumeClaim":
        spec = obj.setdefault("spec", {})
        spec.setdefault("volumeMode", "Filesystem")
        _canonical(spec.get("resources"), "spec.resources", causes)
        obj.setdefault("status", {"phase": "Pending"})
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind == "Pod" and isinstance(obj.get("spec"), dict):
        _default_pod_spec(obj["spec"], "spec", causes)
        obj.setdefault("status", {"phase": "Pending"})
    elif kind == "CustomResourceDefinition":
        crds.default(obj)
    return causes


def validate_name(rt: ResourceType, name: str) -> list[Cause]:
    if rt.kind in ("Service",):
        ok, rule = DNS_1035.match(name) and len(name) <= 63, "a DNS-1035 label"
    elif rt.kind in ("Namespace",):
        ok, rule = DNS_LABEL.match(name) and len(name) <= 63, "a lowercase RFC 1123 label"
    else:
        ok, rule = DNS_SUBDOMAIN.match(name) and len(name) <= 253, "a lowercase RFC 1123 subdomain"
    if ok:
        return []
    return [
        Cause("FieldValueInvalid", "metadata.name", f"metadata.name: Invalid value: {json.dumps(name)}: must be {rule}")
    ]


def validate_owner_references(obj: dict[str, Any]) -> list[Cause]:
    """apimachinery's ValidateOwnerReferences: at most one controller."""
    references = obj["metadata"].get("ownerReferences") or []
    controllers = [r for r in references if isinstance(r, dict) and r.get("controller")]
    if len(controllers) <= 1:
        return []
    return [
        _invalid(
            "metadata.ownerReferences",
            controllers,
            "Only one reference can have Controller set to true. Found \"true\" in references for "
            + " and ".join(f"{r.get('kind')}/{r.get('name')}" for r in controllers),
        )
    ]


def _selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _config_keys(keys: list[str], causes: list[Cause]) -> None:
    for key in keys:
        if not _CONFIG_KEY.match(key):
            message = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
            causes.append(
                Cause("FieldValueInvalid", f"data[{key}]", f"data[{key}]: Invalid value: {json.dumps(key)}: {message}")
            )


MAX_DATA_BYTES = 1024 * 1024  # a ConfigMap's or Secret's data, keys included (core.MaxSecretSize)
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_PROBE_COUNTS = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold")
_ENUMS = {
    "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
    "restartPolicy": ("Always", "OnFailure", "Never"),
    "protocol": ("TCP", "UDP", "SCTP"),
}


def _invalid(field: str, value: Any, message: str) -> Cause:
    return Cause("FieldValueInvalid", field, f"{field}: Invalid value: {json.dumps(value)}: {message}")


def _unsupported(field: str, value: Any, allowed: tuple[str, ...]) -> Cause:
    supported = ", ".join(json.dumps(a) for a in allowed)
    return Cause("FieldValueNotSupported", field, f"{field}: Unsupported value: {json.dumps(value)}: supported values: {supported}")


def _validate_probe(probe: Any, path: str, *, liveness_like: bool, causes: list[Cause]) -> None:
    """core/validation validateProbe: one handler, counts not negative, liveness/startup success 1."""
    if not isinstance(probe, dict):
        return
    handlers = [h for h in _PROBE_HANDLERS if probe.get(h) is not None]
    if not handlers:
        causes.append(Cause("FieldValueRequired", path, f"{path}: Required value: must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(Cause("FieldValueForbidden", path, f"{path}: Forbidden: may not specify more than 1 handler type"))
    for field in _PROBE_COUNTS:
        value = probe.get(field)
        if isinstance(value, int) and value < 0:
            causes.append(_invalid(f"{path}.{field}", value, "must be greater than or equal to 0"))
    if liveness_like and probe.get("successThreshold") not in (None, 1):
        causes.append(_invalid(f"{path}.successThreshold", probe["successThreshold"], "must be 1"))


def _validate_resources(resources: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(resources, dict):
        return
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    for section, values in (("limits", limits), ("requests", requests)):
        for name, raw in values.items():
            try:
                if quantity.parse(raw).value < 0:
                    causes.append(_invalid(f"{path}.{section}[{name}]", raw, "must be greater than or equal to 0"))
            except ValueError:
                continue  # reported by defaulting (canonical form)
    for name, raw in requests.items():
        if name not in limits:
            continue
        try:
            if quantity.parse(raw).value > quantity.parse(limits[name]).value:
                causes.append(
                    _invalid(f"{path}.requests", raw, f"must be less than or equal to {name} limit of {limits[name]}")
                )
        except ValueError:
            continue


def validate_pod_spec(spec: Any, path: str, causes: list[Cause]) -> None:
    """What core/validation checks of a pod spec that a controller can get wrong."""
    if not isinstance(spec, dict):
        return
    if spec.get("restartPolicy") not in (None, *_ENUMS["restartPolicy"]):
        causes.append(_unsupported(f"{path}.restartPolicy", spec["restartPolicy"], _ENUMS["restartPolicy"]))
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(kind) or []):
            if not isinstance(container, dict):
                continue
            where = f"{path}.{kind}[{index}]"
            image = container.get("image")
            if isinstance(image, str) and image != image.strip():
                causes.append(_invalid(f"{where}.image", image, "must not have leading or trailing whitespace"))
            policy = container.get("imagePullPolicy")
            if policy is not None and policy not in _ENUMS["imagePullPolicy"]:
                causes.append(_unsupported(f"{where}.imagePullPolicy", policy, _ENUMS["imagePullPolicy"]))
            for number, port in enumerate(container.get("ports") or []):
                value = port.get("containerPort") if isinstance(port, dict) else None
                if isinstance(value, int) and not 1 <= value <= 65535:
                    causes.append(_invalid(f"{where}.ports[{number}].containerPort", value, "must be between 1 and 65535, inclusive"))
                if isinstance(port, dict) and port.get("protocol") not in (None, *_ENUMS["protocol"]):
                    causes.append(_unsupported(f"{where}.ports[{number}].protocol", port["protocol"], _ENUMS["protocol"]))
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                _validate_probe(container.get(probe), f"{where}.{probe}", liveness_like=probe != "readinessProbe", causes=causes)
            _validate_resources(container.get("resources"), f"{where}.resources", causes)


def _data_size(obj: dict[str, Any], *, secret: bool) -> int:
    size = 0
    for key, value in (obj.get("data") or {}).items():
        if secret:
            try:
                size += len(key) + len(base64.b64decode(str(value)))
            except (binascii.Error, ValueError):
                size += len(key) + len(str(value))
        else:
            size += len(key) + len(str(value).encode())
    for key, value in (obj.get("binaryData") or {}).items():
        try:
            size += len(key) + len(base64.b64decode(str(value)))
        except (binascii.Error, ValueError):
            size += len(key) + len(str(value))
    return size


def _size_limit(obj: dict[str, Any], *, secret: bool, causes: list[Cause]) -> None:
    if _data_size(obj, secret=secret) > MAX_DATA_BYTES:
        causes.append(Cause("FieldValueTooLong", "data", f"data: Too long: may not be more than {MAX_DATA_BYTES} bytes"))


def validate(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Built-in checks after defaulting; ``old`` is the stored object on update."""
    causes: list[Cause] = []
    kind = rt.kind
    if kind == "CustomResourceDefinition":
        causes.extend(crds.validate(obj, old))
    if kind == "Pod":
        validate_pod_spec(obj.get("spec"), "spec", causes)
    if kind == "Deployment":
        spec = obj.get("spec") or {}
        validate_pod_spec((spec.get("template") or {}).get("spec"), "spec.template.spec", causes)
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(Cause("FieldValueRequired", "spec.selector", "spec.selector: Required value"))
        elif not _selector_matches(selector, labels):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    f"spec.template.metadata.labels: Invalid value: {json.dumps(labels, sort_keys=True)}: `selector` does not match template `labels`",
                )
            )
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        if not containers:
            causes.append(
                Cause(
                    "FieldValueRequired",
                    "spec.template.spec.containers",
                    "spec.template.spec.containers: Required value",
                )
            )
        for index, container in enumerate(containers or []):
            if not isinstance(container, dict) or not container.get("name"):
                causes.append(
                    Cause(
                        "FieldValueRequired",
                        f"spec.template.spec.containers[{index}].name",
                        f"spec.template.spec.containers[{index}].name: Required value",
                    )
                )
            elif not container.get("image"):
                causes.append(
                    Cause(
                        "FieldValueRequired",
                        f"spec.template.spec.containers[{index}].image",
                        f"spec.template.spec.containers[{index}].image: Required value",
                    )
                )
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "spec.replicas",
                    f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "spec.selector",
                    f"spec.selector: Invalid value: {json.dumps(selector, sort_keys=True)}: field is immutable",
                )
            )
    elif kind == "PersistentVolumeClaim":
        spec = obj.get("spec") or {}
        if old is None:
            if not spec.get("accessModes"):
                causes.append(
                    Cause(
                        "FieldValueRequired",
                        "spec.accessModes",
                        "spec.accessModes: Required value: at least 1 access mode is required",
                    )
                )
            if not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
                causes.append(
                    Cause("FieldValueRequired", "spec.resources[storage]", "spec.resources[storage]: Required value")
                )
        else:

            def frozen(s: dict[str, Any]) -> dict[str, Any]:
                s = json.loads(json.dumps(s or {}))
                (s.get("resources") or {}).pop("requests", None)
                s.pop("volumeAttributesClassName", None)
                return s

            was = (((old.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            now = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            try:
                shrunk = was is not None and now is not None and quantity.parse(now).value < quantity.parse(was).value
            except ValueError:
                shrunk = False
            if shrunk:
                causes.append(
                    Cause(
                        "FieldValueForbidden",
                        "spec.resources.requests.storage",
                        "spec.resources.requests.storage: Forbidden: field can not be less than previous value",
                    )
                )
            if frozen(old.get("spec")) != frozen(spec):
                causes.append(
                    Cause(
                        "FieldValueForbidden",
                        "spec",
                        "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                    )
                )
    elif kind == "Secret":
        _config_keys(list(obj.get("data") or {}), causes)
        _size_limit(obj, secret=True, causes=causes)
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f"data[{key}]",
                        f'data[{key}]: Invalid value: "<secret contents redacted>": illegal base64 data',
                    )
                )
        if old is not None and old.get("type") != obj.get("type"):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "type",
                    f"type: Invalid value: {json.dumps(obj.get('type'))}: field is immutable",
                )
            )
    elif kind == "ConfigMap":
        _config_keys(list(obj.get("data") or {}) + list(obj.get("binaryData") or {}), causes)
        _size_limit(obj, secret=False, causes=causes)
    elif kind in ("Job", "CronJob"):
        _validate_job(kind, obj, old, causes)
    elif kind == "Service":
        spec = obj.get("spec") or {}
        if spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("ports"):
            causes.append(Cause("FieldValueRequired", "spec.ports", "spec.ports: Required value"))
        if old is not None and (old.get("spec") or {}).get("clusterIP") != spec.get("clusterIP"):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    "spec.clusterIP",
                    f"spec.clusterIP: Invalid value: {json.dumps(spec.get('clusterIP'))}: field is immutable",
                )
            )
    return causes


_CRON_FIELD = re.compile(r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _validate_job(kind: str, obj: dict[str, Any], old: dict[str, Any] | None, causes: list[Cause]) -> None:
    """batch/v1 validation that a controller can trip over: the name length the Job and
    CronJob controllers need for their labels and children, the cron syntax, a pod that may
    only restart OnFailure or Never, and a Job's pod template fixed once created."""
    name = obj["metadata"].get("name", "")
    limit = 52 if kind == "CronJob" else 63
    if old is None and len(name) > limit:
        causes.append(_invalid("metadata.name", name, f"must be no more than {limit} characters"))
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        schedule = spec.get("schedule")
        fields = str(schedule or "").split()
        if not schedule:
            causes.append(Cause("FieldValueRequired", "spec.schedule", "spec.schedule: Required value"))
        elif not (
            (len(fields) == 1 and fields[0] in _CRON_MACROS)
            or (len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields))
        ):
            causes.append(_invalid("spec.schedule", schedule, "unparseable schedule"))
        if spec.get("concurrencyPolicy") not in ("Allow", "Forbid", "Replace"):
            causes.append(_unsupported("spec.concurrencyPolicy", spec.get("concurrencyPolicy"), ("Allow", "Forbid", "Replace")))
        template, path = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}, "spec.jobTemplate.spec.template"
    else:
        template, path = spec.get("template") or {}, "spec.template"
    pod = template.get("spec")
    validate_pod_spec(pod, f"{path}.spec", causes)
    if isinstance(pod, dict) and pod.get("restartPolicy") not in ("OnFailure", "Never"):
        causes.append(_unsupported(f"{path}.spec.restartPolicy", pod.get("restartPolicy"), ("OnFailure", "Never")))
    if isinstance(pod, dict) and not pod.get("containers"):
        causes.append(Cause("FieldValueRequired", f"{path}.spec.containers", f"{path}.spec.containers: Required value"))
    if kind == "Job" and old is not None and (old.get("spec") or {}).get("template") != spec.get("template"):
        causes.append(
            _invalid("spec.template", "core.PodTemplateSpec{...}", "field is immutable")
        )
