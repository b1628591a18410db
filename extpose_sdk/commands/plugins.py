"""``extpose plugins``: what is registered, by kind, and which plugin it came from."""

from __future__ import annotations

import json
import sys
import warnings


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plugins", help="list registered components by kind and the plugins they came from"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--kind", help="only this kind (backbone, modality, head, ...)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from extpose_sdk.plugins import get_plugin_manager

    manager = get_plugin_manager()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # failures are listed below instead
        registries = manager.registries()
    kinds = [args.kind] if args.kind else [kind for kind, _ in registries.items()]
    components = {
        kind: [
            {
                "name": c.name,
                "package": c.package,
                "plugin": c.plugin,
                "description": c.description,
                **({"example": c.metadata["example"]} if "example" in c.metadata else {}),
                **({"subject": str(c.metadata["subject"])} if "subject" in c.metadata else {}),
            }
            for c in registries[kind]
        ]
        for kind in kinds
    }
    failures = [
        {"plugin": f.name, "package": f.package, "stage": f.stage, "error": f.error}
        for f in manager.failures
    ]
    if args.json:
        plugins = [
            {"name": i.name, "package": i.package, "version": i.version, "source": i.source}
            for i in manager.infos.values()
        ]
        json.dump({"components": components, "plugins": plugins, "failures": failures},
                  sys.stdout, indent=2)
        print()
        return 0
    for kind, rows in components.items():
        print(f"{kind} ({len(rows)})")
        if not rows:
            print("  (none registered)")
        width = max((len(r["name"]) for r in rows), default=0)
        pwidth = max((len(r["package"]) for r in rows), default=0)
        for row in rows:
            line = f"  {row['name']:<{width}}  {row['package']:<{pwidth}}  {row['description']}"
            if "subject" in row:
                line += f" [{row['subject']}]"
            if "example" in row:
                line += f" (e.g. {row['example']})"
            print(line.rstrip())
        print()
    for failure in failures:
        print(
            f"skipped plugin {failure['plugin']!r} from {failure['package']} "
            f"({failure['stage']}): {failure['error']}",
            file=sys.stderr,
        )
    return 0
