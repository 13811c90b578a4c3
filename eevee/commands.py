"""The commands that need a cluster: ``run``, ``diff`` and ``demo``."""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eevee import logs
from eevee.kube.client import Kube, KubeError
from eevee.kube.config import kubeconfig_connection, load_connection
from eevee.locations import bundled
from eevee.manifests import dump_manifests, read_manifests
from eevee.metrics import Metrics
from eevee.operator.events import EventRecorder
from eevee.operator.reconciler import PlannedWrite, Reconciler
from eevee.operator.reload import RulesSource
from eevee.operator.snapshot import take_snapshot
from eevee.settings import Settings, load_settings

EXIT_UNREACHABLE = 3


def cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    from eevee.service import OperatorService

    service = OperatorService(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: service.shutdown())
    service.run_forever()
    return 0


def _redacted(write: PlannedWrite) -> Any:
    """Secret values never leave the process, not even in a diff."""
    body = write.body
    if write.kind != "Secret" or body is None:
        return body
    if write.action == "create":
        return {**body, "data": {key: "<redacted>" for key in body.get("data") or {}}}
    return [dict(op, value="<redacted>") if str(op.get("path", "")).startswith("/data") else op for op in body]


def cmd_diff(args: argparse.Namespace) -> int:
    settings = load_settings()
    logs.configure("WARNING", "text")
    metrics = Metrics()
    rules = RulesSource(args.rules or settings.rules_dir, metrics).rules
    kube = Kube(load_connection(in_cluster=settings.in_cluster, kubeconfig=args.kubeconfig or settings.kubeconfig))
    reconciler = Reconciler(
        kube,
        metrics=metrics,
        events=EventRecorder(kube, enabled=False),
        operator_scope=settings.operator_scope(),
        dry_run=True,
    )
    namespaces = ("*",) if args.all_namespaces else tuple(args.namespace or settings.watch_namespaces)
    try:
        snapshot = take_snapshot(kube, rules, namespaces)
    except KubeError as error:
        print(f"error: cannot read the cluster: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    renderer = reconciler.renderer(rules, snapshot)
    planned: list[PlannedWrite] = []
    for resource in list(snapshot.sorted_resources()):
        outcome = reconciler.reconcile(resource, rules, snapshot, renderer)
        planned.extend(w for w in outcome.writes if args.status or w.action != "status")
    for write in planned:
        print(f"# {write.action} {write.kind} {write.namespace}/{write.name}")
        body = _redacted(write)
        if write.action == "create":
            sys.stdout.write(dump_manifests([body]))
        elif write.action in ("patch", "status"):
            print(json.dumps(body, indent=2))
    if not planned:
        print("# in sync: a pass would send no write", file=sys.stderr)
    return 1 if planned else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the stand-in, apply the CRDs and examples, run the operator and the API."""
    from eevee.service import OperatorService
    from kubestandin.server import StandIn

    logs.configure("WARNING" if args.quiet else "INFO", "text")
    rules_dir = args.rules or load_settings().rules_dir
    RulesSource(rules_dir, Metrics())  # a refused table stops here, with file, rule and reason
    directory = Path(tempfile.mkdtemp(prefix="eevee-demo-"))
    standin = None
    service = None
    try:
        step("starting the Kubernetes API stand-in")
        standin = StandIn(port=args.kube_port, directory=directory, deployment_delay=1.0).start()
        namespace = "eevee-bot"
        standin.create_namespace(namespace)
        kube = Kube(kubeconfig_connection(standin.kubeconfig))
        token = secrets.token_urlsafe(32)
        (directory / "api-token").write_text(token)
        (directory / "api-token").chmod(0o600)
        step("installing the CustomResourceDefinitions")
        for crd in read_manifests([bundled("crds")]):
            kube.create("apiextensions.k8s.io/v1", "customresourcedefinitions", None, crd)
        demo_secrets = {
            "eevee-operator-api-token": {"token": token},  # the operator's API token
            "irc-libera-credentials": {"IRC_PASSWORD": secrets.token_urlsafe(12)},
        }  # examples/botmodule-irc.yaml
        for name, data in demo_secrets.items():
            body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
            kube.create("v1", "secrets", namespace, body)
        step(f"applying {bundled('examples')}")
        for resource in read_manifests([bundled("examples")]):
            plural = "ipcconfigs" if resource["kind"] == "IpcConfig" else "botmodules"
            kube.create(resource["apiVersion"], plural, namespace, resource)
        settings = Settings(
            namespace=namespace,
            watch_namespaces=(namespace,),
            http_host="127.0.0.1",
            http_port=args.port,
            api_token=token,
            poll_interval=args.poll_interval,
            rules_dir=rules_dir,
            log_format="text",
            lease_duration=5.0,
            identity="demo",
        )
        step(f"starting the operator with the rule tables in {rules_dir}")
        try:
            service = OperatorService(settings, connection=kubeconfig_connection(standin.kubeconfig)).start()
        except OSError as error:
            print(f"error: cannot listen on port {args.port} ({error.strerror}); try --port 0 for any free port",
                  file=sys.stderr)
            return 1
        deadline = time.monotonic() + 30
        while service.runner.passes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.http is not None
        print(guide(standin, service.http.url, directory, namespace, args.quiet), flush=True)
        stop = {"now": False}
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda number, frame: stop.update(now=True))
        ends = time.monotonic() + args.exit_after if args.exit_after else None
        while not stop["now"] and (ends is None or time.monotonic() < ends):
            time.sleep(0.2)
    finally:
        if service is not None:
            service.stop()
        if standin is not None:
            standin.stop()
        shutil.rmtree(directory, ignore_errors=True)  # the kubeconfig and the API token go with it
    print("demo stopped.")
    return 0


def step(what: str) -> None:
    print(f"demo: {what}...", flush=True)


def guide(standin: Any, url: str, directory: Path, namespace: str, quiet: bool) -> str:
    token = directory / "api-token"
    logs_line = "" if quiet else "\nThe operator's log follows below (--quiet hides it).\n"
    return f"""
eevee-operator demo is running.

  Kubernetes API stand-in  {standin.url}
  Operator HTTP API        {url}

In another terminal (the kubeconfig and the token are removed when the demo stops):
  export KUBECONFIG={standin.kubeconfig}
  kubectl config set-context --current --namespace {namespace}

Look around:
  kubectl get bm,ipc
  kubectl get deployments,replicasets,pods,services,configmaps,pvc
  kubectl describe bm router
  kubectl explain bm.spec
  curl -s {url}/ready
  curl -s {url}/metrics | grep eevee_operator_module
  curl -s -H "Authorization: Bearer $(cat {token})" {url}/bot-modules

Change something and watch it converge:
  kubectl patch bm echo --type=merge -p '{{"spec":{{"size":3}}}}'
  kubectl get deployment eevee-echo-module -o jsonpath='{{.spec.replicas}}'

Break one and see its Pod's reason (a registry under .invalid never resolves, RFC 6761):
  kubectl patch bm echo --type=merge -p '{{"spec":{{"image":"registry.invalid/eevee/echo:1.0"}}}}'
  kubectl get bm echo          # STATUS ErrImagePull, then ImagePullBackOff
  curl -s -H "Authorization: Bearer $(cat {token})" {url}/api/bot-modules

Press Ctrl-C to stop.{logs_line}"""


def add_cluster_commands(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run the operator (settings from the environment)",
        description="Run the operator: reconcile BotModules and IpcConfigs until SIGTERM. Every setting comes "
        "from the environment.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(func=cmd_run)

    diff = commands.add_parser(
        "diff",
        help="print the writes a pass would send to the cluster, sending nothing",
        description="Print the writes one reconcile pass would send (creates, JSON patches, deletes), as "
        "kubectl diff does, sending nothing. Secret values are redacted. Exit 1 when there are differences.",
    )
    diff.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config or in-cluster)")
    diff.add_argument("-n", "--namespace", action="append", help="namespace (repeatable; default: WATCH_NAMESPACES)")
    diff.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace (as WATCH_NAMESPACES=*)")
    diff.add_argument("--rules", help="rules directory (default: RULES_DIR or the bundled rules)")
    diff.add_argument("--status", action="store_true", help="also show status updates")
    diff.set_defaults(func=cmd_diff)

    demo = commands.add_parser(
        "demo",
        help="run everything against a built-in Kubernetes API stand-in",
        description="Start a Kubernetes API stand-in, install the CRDs and the examples, run the operator and its "
        "HTTP API, and print the kubectl and curl commands to look around. Ctrl-C stops it and removes its "
        "temporary files.",
    )
    demo.add_argument("--port", type=int, default=9000, help="operator HTTP API port (default 9000; 0: any free port)")
    demo.add_argument("--kube-port", type=int, default=0, help="stand-in API server port (default: any free port)")
    demo.add_argument(
        "--poll-interval", type=float, default=10.0, help="seconds between full reconcile passes (default 10)"
    )
    demo.add_argument("--rules", help="rules directory to run with (default: RULES_DIR or the bundled rules)")
    demo.add_argument("--exit-after", type=float, default=0, help="stop after this many seconds (0: run until Ctrl-C)")
    demo.add_argument("-q", "--quiet", action="store_true", help="hide the operator's log (shown at INFO by default)")
    demo.set_defaults(func=cmd_demo)


ENVIRONMENT = """environment:
  NAMESPACE                     the operator's namespace (default: the pod's, else eevee-bot)
  WATCH_NAMESPACES              comma-separated namespaces to reconcile, or * (default: NAMESPACE)
  KUBE_IN_CLUSTER_CONFIG        true: the pod's service account; false: KUBECONFIG (default: detect)
  KUBECONFIG                    kubeconfig when not in a cluster (default: ~/.kube/config)
  HTTP_API_PORT, HTTP_API_HOST  the HTTP API's port and address (default 9000, 0.0.0.0)
  EEVEE_OPERATOR_API_TOKEN      bearer token of the protected API routes (unset: they answer 503)
  EEVEE_OPERATOR_API_URL        what modules with mountOperatorApiToken get as their API URL
  EEVEE_OPERATOR_API_TOKEN_SECRET, EEVEE_OPERATOR_API_TOKEN_SECRET_KEY
                                the Secret and key those modules read the token from
  HTTP_API_RATE_LIMIT, HTTP_API_RATE_BURST
                                per-client rate limit: requests a second, burst (default 10, 20)
  POLL_INTERVAL_SECONDS         seconds between full passes over the cache (default 30)
  WATCH_SILENCE_SECONDS         a watch silent this long is resumed (default 100, at most 120)
  RESYNC_SECONDS                each kind is listed again this often, jittered (default 3600; 0: never)
  RULES_DIR                     rule tables directory (default: the bundled rules), reloaded on change
  LOG_LEVEL, LOG_FORMAT         DEBUG|INFO|WARNING|ERROR (default INFO); json|text (default json)
  LEADER_ELECTION               true: take a Lease before writing (default true)
  LEASE_NAME, LEASE_DURATION_SECONDS
                                the Lease and its duration (default eevee-operator-leader, 15)
  POD_NAME                      this replica's identity (default: the hostname)
"""
