"""The lifecycle commands (docs/lifecycle.md): they ask the running node's management API, which holds the
credentials, the agreements and the inbox.

`connector passports successor|change|components|lifecycle ...` and `connector notifications`.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from connector.settings import Settings

COMMANDS = ("successor", "change", "components", "lifecycle")
EXIT_FAILURE = 1


def add_passport_commands(passport_commands: Any) -> None:
    """Add the lifecycle actions to `connector passports`."""
    successor = passport_commands.add_parser(
        "successor",
        help="store a successor passport for a battery taken over, linked to its predecessors (asks the node)",
        description="Ask the running node to store a passport for a battery this operator takes over (repurposed, "
        "reused, remanufactured or waste), linked to its predecessor passports, each checked readable at the "
        "node that holds it; that node is told (a Digital Twin Event).",
    )
    successor.add_argument("file", type=Path, metavar="PASSPORT.json", help="the successor passport (any format)")
    successor.add_argument(
        "--predecessor",
        action="append",
        required=True,
        metavar="ID[@PARTNER]",
        help="a predecessor passport, at a partner's node (DID, BPN or DSP address; none: this node); repeatable",
    )
    successor.add_argument("--status", required=True, choices=["repurposed", "reused", "remanufactured", "waste"])
    successor.add_argument("--operator", required=True, help="the economic operator now responsible (its BPN)")
    successor.add_argument("--changed-by", help="who records it (default: this node's BPN)")
    successor.add_argument(
        "--recovered", action="append", default=[], metavar="MATERIAL=KG", help="a material recovered (waste)"
    )
    change = passport_commands.add_parser(
        "change",
        help="record a status change, state of health, capacity or events as a new version (asks the node)",
        description="Ask the running node to record a change of a passport's condition as a new version, with who "
        "changed what. FIELD is a condition field's node name (status, state_of_health_pct, remaining_capacity_ah, "
        "...); VALUE is read as JSON when it parses, else as text.",
    )
    change.add_argument("passport_id", metavar="ID")
    change.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a field to set")
    change.add_argument("--event", action="append", default=[], metavar="TEXT", help="an event to add (repair, ...)")
    change.add_argument("--changed-by", help="who records it (default: this node's BPN)")
    components = passport_commands.add_parser(
        "components",
        help="list an assembly's components (a pack's cells), each checked readable (asks the node)",
    )
    components.add_argument("passport_id", metavar="ID")
    components.add_argument("--component", action="append", required=True, metavar="ID[@PARTNER]")
    chain = passport_commands.add_parser(
        "lifecycle", help="a battery's life: the chain of passports across nodes (asks the node)"
    )
    chain.add_argument("passport_id", metavar="ID")
    for parser in (successor, change, components, chain):
        parser.add_argument("--config", type=Path, metavar="FILE")
        parser.add_argument("--node", metavar="URL", help="the node's management URL (default: from the settings)")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")


def add_notification_command(commands: Any) -> None:
    """Add `connector notifications`."""
    inbox = commands.add_parser(
        "notifications",
        help="Digital Twin Events received (the inbox) and sent, with their states (asks the node)",
    )
    inbox.add_argument("--direction", choices=["in", "out"], help="received (in) or sent (out); default both")
    inbox.add_argument("--passport", metavar="ID", help="only those about this passport")
    inbox.add_argument("--limit", type=int, default=100)
    inbox.add_argument("--config", type=Path, metavar="FILE")
    inbox.add_argument("--node", metavar="URL", help="the node's management URL (default: from the settings)")
    inbox.add_argument("--timeout", type=float, default=60.0)


def _ref(text: str) -> dict[str, str]:
    passport_id, sep, partner = text.rpartition("@") if "@" in text else (text, "", "")
    return {"passportId": passport_id, "partner": partner} if sep else {"passportId": text}


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run a lifecycle command against the running node; print its JSON answer."""
    from urllib.parse import quote, urlencode

    if args.command == "notifications":
        query = {"limit": str(args.limit)}
        if args.direction:
            query["direction"] = args.direction
        if args.passport:
            query["passportId"] = args.passport
        return _ask(settings, args, "GET", "/management/v1/notifications?" + urlencode(query), None)
    action = args.passports_command
    if action == "successor":
        try:
            passport = json.loads(args.file.read_text())
        except (OSError, ValueError) as exc:
            print(f"connector: cannot read {args.file}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        materials = []
        for item in args.recovered:
            name, sep, mass = item.partition("=")
            value = _value(mass)
            if not sep or not name or not isinstance(value, int | float):
                print(f"connector: --recovered {item!r} is not MATERIAL=KG", file=sys.stderr)
                return EXIT_FAILURE
            materials.append({"material": name, "massKg": value})
        body: dict[str, Any] = {
            "passport": passport,
            "predecessors": [_ref(p) for p in args.predecessor],
            "status": args.status,
            "operator": args.operator,
        }
        if args.changed_by:
            body["changedBy"] = args.changed_by
        if materials:
            body["recoveredMaterials"] = materials
        return _ask(settings, args, "POST", "/management/v1/passports/successors", body)
    path = "/management/v1/passports/" + quote(args.passport_id, safe="")
    if action == "change":
        condition = {}
        for item in args.set:
            name, sep, value = item.partition("=")
            if not sep or not name:
                print(f"connector: --set {item!r} is not FIELD=VALUE", file=sys.stderr)
                return EXIT_FAILURE
            condition[name] = _value(value)
        change: dict[str, Any] = {"condition": condition, "events": [{"event": e} for e in args.event]}
        if args.changed_by:
            change["changedBy"] = args.changed_by
        return _ask(settings, args, "POST", path + "/changes", change)
    if action == "components":
        return _ask(settings, args, "POST", path + "/components", {"components": [_ref(c) for c in args.component]})
    return _ask(settings, args, "GET", path + "/lifecycle", None)


def _ask(settings: Settings, args: argparse.Namespace, method: str, path: str, body: Any) -> int:
    host = settings.management_host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host  # noqa: S104
    base = (args.node or f"http://{host}:{settings.management_port}").rstrip("/")
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if settings.api_key is not None:
        headers["X-Api-Key"] = settings.api_key.get_secret_value()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310 (the operator's node)
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = {"detail": raw[:300].decode(errors="replace")}
        detail = problem.get("detail") if isinstance(problem, dict) else None
        print(f"connector: the node refused ({exc.code}): {detail or exc.reason}", file=sys.stderr)
        return EXIT_FAILURE
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(
            f"connector: cannot reach the node at {base} ({reason}); is it running (connector serve)?", file=sys.stderr
        )
        return EXIT_FAILURE
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0
