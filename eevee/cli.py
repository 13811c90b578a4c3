"""``eevee-operator``: the command line (SPEC section 10).

Exit codes: 0 success, 1 the input is wrong (a bad table, an invalid resource),
2 usage errors (argparse), 3 the cluster could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eevee import __version__
from eevee.engine.render import InvalidSpec, render_resources
from eevee.engine.tables import RuleSet, TableError, load_rules
from eevee.kube.client import ConfigurationError
from eevee.locations import bundled
from eevee.manifests import ManifestError, dump_manifests, kind_schemas, read_manifests
from eevee.settings import SettingsError, load_settings


def _rules(directory: str | None) -> RuleSet:
    return load_rules(directory or load_settings().rules_dir, schemas=kind_schemas())


def cmd_check_rules(args: argparse.Namespace) -> int:
    directory = args.directory or load_settings().rules_dir
    rules = load_rules(directory, schemas=kind_schemas(args.crds or ()))
    for kind, table in rules.tables.items():
        print(f"ok  {table.file}: {kind} ({len(table.children)} children)")
    for note in rules.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    rules = _rules(args.rules)
    resources = read_manifests(args.filename)
    for resource in resources:
        resource.setdefault("metadata", {}).setdefault("namespace", args.namespace)
    known = [r for r in resources if r["kind"] in rules.tables]
    for resource in resources:
        if resource["kind"] not in rules.tables:
            name = resource["metadata"]["name"]
            print(f"skipped {resource['kind']} {name}: no rule table for this kind", file=sys.stderr)
    failed = 0
    documents = []

    def warn(resource: dict, field: str, what: str) -> None:
        where = f"{resource['kind']} {resource['metadata']['namespace']}/{resource['metadata']['name']}"
        print(f"warning: {where}: {field}: {what} is not in the given files; shown as a placeholder", file=sys.stderr)

    results = render_resources(
        rules, known, operator=load_settings().operator_scope(), placeholders=True, warn=warn  # type: ignore[arg-type]
    )
    for resource, result in results:
        where = f"{resource['kind']} {resource['metadata']['namespace']}/{resource['metadata']['name']}"
        if isinstance(result, InvalidSpec):
            failed += 1
            for problem in result.problems:
                print(f"error: {where}: {problem.field}: {problem.reason}", file=sys.stderr)
            continue
        documents.extend(child.body if args.show_secrets else redacted(child.body) for child in result.children)
    if documents:
        sys.stdout.write(dump_manifests(documents))
    return 1 if failed else 0


def redacted(body: dict) -> dict:
    """A Secret's values as <redacted> (a generated token differs on every run anyway)."""
    if body.get("kind") != "Secret" or not body.get("data"):
        return body
    return {**body, "data": {key: "<redacted>" for key in body["data"]}}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="eevee-operator",
        description="Kubernetes operator for the eevee chat bot: BotModule and IpcConfig resources.",
    )
    top.add_argument("--version", action="version", version=f"eevee-operator {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    show = commands.add_parser("version", help="print the version", description="Print the version and exit.")
    show.set_defaults(func=lambda args: print(f"eevee-operator {__version__}") or 0)

    check = commands.add_parser("check-rules", help="validate the rule tables in a directory")
    check.add_argument("directory", nargs="?", help=f"rules directory (default: RULES_DIR or {bundled('rules')})")
    check.add_argument(
        "--crds",
        action="append",
        help="CRD file or directory for the custom kinds tables make (repeatable; the bundled CRDs are always in)",
    )
    check.set_defaults(func=cmd_check_rules)

    render = commands.add_parser("render", help="print the child objects the rules make of resources (no cluster)")
    render.add_argument(
        "-f", "--filename", action="append", required=True, help="a YAML file or directory (repeatable)"
    )
    render.add_argument("-n", "--namespace", default="eevee-bot", help="namespace for resources that name none")
    render.add_argument("--rules", help="rules directory (default: RULES_DIR or the bundled rules)")
    render.add_argument(
        "--show-secrets", action="store_true", help="show generated Secret values (redacted by default)"
    )
    render.set_defaults(func=cmd_render)

    from eevee.commands import add_cluster_commands

    add_cluster_commands(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TableError as error:
        print("error: the rule tables are refused:", file=sys.stderr)
        for file, rule, reason in error.problems:
            print(f"  {file}: {rule}: {reason}", file=sys.stderr)
        return 1
    except (ManifestError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
