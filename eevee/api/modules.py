"""What the HTTP API says about bot modules: listing, one module, rolling restart.

Our own routes' summaries are read from the API server at request time (two list calls: the
BotModules, and the Deployments the operator manages); their pod summary comes from the
Deployment's status. The eevee operator's ``/api/bot-modules`` (``eevee_modules``) is read from the
operator's watch-fed cache instead, Pods included: its callers (the admin module's ``health``)
ask often, and it must cost no request whatever the number of modules.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from eevee.engine.pods import pod_status
from eevee.engine.render import CHILD_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from eevee.engine.tables import RuleSet
from eevee.kube.client import Kube, plural_of
from eevee.settings import Settings
from eevee.timestamps import rfc3339_now

MODULE_KIND = "BotModule"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` writes
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class ImageRef(TypedDict):
    repository: str
    tag: str | None
    digest: str | None


class PodSummary(TypedDict):
    desired: int
    ready: int
    updated: int
    available: int
    unavailable: int


class ModuleSummary(TypedDict):
    name: str
    namespace: str
    moduleName: str
    image: str
    imageRepository: str
    imageTag: str | None
    imageDigest: str | None
    size: int
    enabled: bool
    readyReplicas: int
    pods: PodSummary
    ready: str
    reason: str
    deployment: str | None


class ApiProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_image(image: str) -> ImageRef:
    """``repo[:tag][@digest]``; a registry port (``host:5000/repo``) is not a tag.
    With neither tag nor digest the runtime pulls ``latest``, so that is the tag."""
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        repository, tag = rest[:colon], rest[colon + 1 :]
    else:
        repository, tag = rest, None
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(repository=repository, tag=tag or None, digest=digest or None)


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


class Modules:
    def __init__(self, kube: Kube, settings: Settings, rules: RuleSet) -> None:
        self.kube = kube
        self.settings = settings
        self.rules = rules

    def _table(self) -> Any:
        table = self.rules.tables.get(MODULE_KIND)
        if table is None:
            raise ApiProblem(503, "no rule table for BotModule is loaded")
        return table

    def _scopes(self) -> list[str | None]:
        return [None] if self.settings.all_namespaces else list(self.settings.watch_namespaces)

    def _deployment_id(self) -> tuple[str, str] | None:
        for child in self._table().children:
            if child.kind == "Deployment":
                return child.id, child.api_version
        return None

    def list(self) -> list[ModuleSummary]:
        table = self._table()
        deployment = self._deployment_id()
        modules: list[dict[str, Any]] = []
        deployments: dict[str, dict[str, Any]] = {}
        for namespace in self._scopes():
            items, _ = self.kube.list(table.api_version, table.plural, namespace)
            modules.extend(items)
            if deployment is not None:
                child_id, api_version = deployment
                selector = f"{MANAGED_BY_LABEL}={MANAGED_BY},{CHILD_LABEL}={child_id}"
                for dep in self.kube.list(api_version, "deployments", namespace, label_selector=selector)[0]:
                    for ref in dep["metadata"].get("ownerReferences") or []:
                        deployments[ref.get("uid", "")] = dep
        modules.sort(key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"]))
        return [summarize(m, deployments.get(m["metadata"].get("uid", ""))) for m in modules]

    def find(self, name: str, namespace: str | None = None) -> ModuleSummary:
        if not valid_name(name) or (namespace is not None and not valid_name(namespace)):
            raise ApiProblem(400, "invalid module name: must be a Kubernetes object name")
        found = [m for m in self.list() if m["name"] == name and (namespace is None or m["namespace"] == namespace)]
        if not found:
            raise ApiProblem(404, f"bot module {name!r} not found")
        if len(found) > 1:
            raise ApiProblem(409, f"bot module {name!r} exists in several namespaces; add ?namespace=")
        return found[0]

    def restart(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        module = self.find(name, namespace)
        if not module["enabled"]:
            raise ApiProblem(409, f"bot module {name!r} is disabled (spec.enabled is false); enable it to restart it")
        if module["deployment"] is None:
            raise ApiProblem(409, f"bot module {name!r} has no Deployment yet; try again shortly")
        stamp = rfc3339_now()
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        self.kube.patch(
            "apps/v1",
            plural_of("Deployment"),
            module["namespace"],
            module["deployment"],
            patch,
            content_type="application/strategic-merge-patch+json",
        )
        return {
            "name": name,
            "namespace": module["namespace"],
            "deployment": module["deployment"],
            "restartedAt": stamp,
        }


class EeveeModule(TypedDict):
    """An item of the eevee operator 2.3's ``GET /api/bot-modules`` (eeveebot/operator
    ``src/api/routes.mts``; eeveebot/admin 2.8's ``health`` command reads it)."""

    name: str  # spec.moduleName, else the BotModule's name
    crName: str
    namespace: str
    image: str
    tag: str | None
    enabled: bool
    podStatus: dict[str, Any] | None


def eevee_modules(runner: Any, kind: str = MODULE_KIND) -> list[EeveeModule]:
    """Every BotModule with its Pod's status, from the operator's watch-fed cache: no request to
    the API server, whatever the number of modules. (Read from the HTTP thread: copies of the
    cache's dicts, made whole under the interpreter lock.)"""
    snapshot = runner.snapshot
    table = runner.rules.tables.get(kind)
    if table is None:
        raise ApiProblem(503, "no rule table for BotModule is loaded")
    child = next((c for c in table.children if c.id == table.pods_of), None)
    out: list[EeveeModule] = []
    for (found_kind, namespace, name), module in sorted(list(snapshot.resources.items())):
        if found_kind != kind:
            continue
        spec = module.get("spec") or {}
        image = str(spec.get("image", ""))
        ref = parse_image(image)
        pod = None
        if child is not None:
            uid = module["metadata"].get("uid", "")
            workload = next((o for o in list(snapshot.owned.get(uid, {}).values()) if o["kind"] == child.kind), None)
            pod = snapshot.speaking_pod(workload) if workload is not None else None
        out.append(EeveeModule(
            name=str(spec.get("moduleName") or name), crName=name, namespace=namespace, image=image,
            tag=ref["tag"] or ref["digest"], enabled=bool(spec.get("enabled", True)), podStatus=pod_status(pod),
        ))
    return out


def summarize(module: dict[str, Any], deployment: dict[str, Any] | None) -> ModuleSummary:
    spec = module.get("spec") or {}
    image = str(spec.get("image", ""))
    ref = parse_image(image)
    status = (deployment or {}).get("status") or {}
    desired = int(((deployment or {}).get("spec") or {}).get("replicas", 0)) if deployment else 0
    condition = next((c for c in (module.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
    return ModuleSummary(
        name=module["metadata"]["name"],
        namespace=module["metadata"].get("namespace", ""),
        moduleName=str(spec.get("moduleName", "")),
        image=image,
        imageRepository=ref["repository"],
        imageTag=ref["tag"],
        imageDigest=ref["digest"],
        size=int(spec.get("size", 1)),
        enabled=bool(spec.get("enabled", True)),
        readyReplicas=int(status.get("readyReplicas", 0)),
        pods=PodSummary(
            desired=desired,
            ready=int(status.get("readyReplicas", 0)),
            updated=int(status.get("updatedReplicas", 0)),
            available=int(status.get("availableReplicas", 0)),
            unavailable=int(status.get("unavailableReplicas", 0)),
        ),
        ready=str(condition.get("status", "Unknown")),
        reason=str(condition.get("reason", "")),
        deployment=(deployment or {}).get("metadata", {}).get("name"),
    )
