"""Which resources the stand-in serves: the built-in kinds the operator and kubectl use,
plus every custom resource whose CRD has been created.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kubestandin import cel


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale"
    read_only: bool = False
    generation: bool = False  # metadata.generation is maintained
    # annotations count as a spec change for generation (Deployments, SPEC section 11)
    annotations_bump_generation: bool = False
    # a write to the status subresource may change annotations too (Deployments)
    status_writes_annotations: bool = False
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    rules: tuple[Any, ...] = field(default=(), compare=False, hash=False)  # the schema's CEL rules, compiled

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` / ``configmaps``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def custom(self) -> bool:
        return self.schema is not None

    def verbs(self) -> list[str]:
        if self.read_only:
            return ["get", "list", "watch"]
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


BUILTINS: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        namespaced=False,
        short_names=("ns",),
        subresources=("status",),
    ),
    ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", short_names=("cm",)),
    ResourceType("", "v1", "Secret", "secrets", "secret"),
    ResourceType(
        "", "v1", "Service", "services", "service", short_names=("svc",), categories=("all",), subresources=("status",)
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        short_names=("pvc",),
        subresources=("status",),
    ),
    ResourceType("", "v1", "Event", "events", "event", short_names=("ev",)),
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        short_names=("po",),
        categories=("all",),
        subresources=("status",),
    ),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", short_names=("sa",)),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
        generation=True,
        annotations_bump_generation=True,
        status_writes_annotations=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
        generation=True,
    ),
    ResourceType(
        "batch", "v1", "Job", "jobs", "job", categories=("all",), subresources=("status",), generation=True
    ),
    ResourceType(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
        generation=True,
    ),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", "lease"),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", "role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding"),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", namespaced=False),
    ResourceType(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        namespaced=False,
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        subresources=("status",),
        generation=True,
    ),
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CRD serves (one per served version)."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                singular=names.get("singular", names["kind"].lower()),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", [])),
                categories=tuple(names.get("categories", [])),
                subresources=tuple(s for s in ("status", "scale") if s in subresources),
                generation=True,
                schema=schema,
                rules=tuple(cel.compile_schema(schema, "")[0]),
                printer_columns=tuple(version.get("additionalPrinterColumns", [])),
            )
        )
    return out


class Registry:
    """Thread-safe lookup of resource types by (group, version, plural) and by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._by_crd: dict[str, list[ResourceType]] = {}
        for rt in BUILTINS:
            self._types[(rt.group, rt.version, rt.plural)] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        with self._lock:
            for rt in self._types.values():
                if rt.group == group and rt.version == version and rt.kind == kind:
                    return rt
        return None

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def install_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        name = crd["metadata"]["name"]
        types = from_crd(crd)
        with self._lock:
            for old in self._by_crd.pop(name, []):
                self._types.pop((old.group, old.version, old.plural), None)
            for rt in types:
                self._types[(rt.group, rt.version, rt.plural)] = rt
            self._by_crd[name] = types
        return types

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            types = self._by_crd.pop(name, [])
            for old in types:
                self._types.pop((old.group, old.version, old.plural), None)
        return types
