"""Documentation is a tested contract: settings, routes and commands that are not documented fail here."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

from connector.app import Node
from connector.settings import Settings, setting_names
from connector.transport import management as management_routes
from connector.transport.openapi import document
from tests.conftest import REPO, Management

README = (REPO / "README.md").read_text(encoding="utf-8")


def _table_settings() -> set[str]:
    return set(re.findall(r"^\| `(CONNECTOR_[A-Z_]+)` \|", README, flags=re.MULTILINE))


def test_every_setting_is_in_the_readme_table() -> None:
    missing = set(setting_names()) - _table_settings()
    assert not missing, f"settings missing from README.md's settings table: {sorted(missing)}"


def test_the_readme_table_lists_only_real_settings() -> None:
    unknown = _table_settings() - set(setting_names())
    assert not unknown, f"README.md documents settings that do not exist: {sorted(unknown)}"


def test_every_setting_has_a_description() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"setting {name} has no description"


def test_readme_opens_with_the_two_commands() -> None:
    first_screen = README.split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", first_screen, flags=re.DOTALL)
    assert [b.strip() for b in blocks] == ["make run", "make test"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: ", makefile, flags=re.MULTILINE) and re.search(r"^test: ", makefile, flags=re.MULTILINE)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci, "CI must run the README's test command"


def test_cli_help_names_every_setting_and_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for name in setting_names():
        assert name in help_text
    for command in re.findall(r"^\| `connector (\w+)", README, flags=re.MULTILINE):
        assert command in result.stdout


async def test_openapi_documents_every_management_route(node: Node, management: Management) -> None:
    status, served = await management.call("GET", "/management/openapi.json")
    assert status == 200
    assert served == document(management_routes.ROUTES, secured=True, open_paths=management_routes.OPEN)
    app_routes = {
        (route.method, route.resource.canonical)
        for route in management_routes.create_app(None, None, 1024, 8).router.routes()  # type: ignore[arg-type]
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    assert app_routes == documented
    for path, operations in served["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"], f"{method} {path} has no summary"
            for schema in re.findall(r"#/components/schemas/(\w+)", str(operation)):
                assert schema in served["components"]["schemas"], f"{method} {path} refers to missing {schema}"


async def test_openapi_shows_both_versions_and_the_v4_schemas_it_enforces(node: Node, management: Management) -> None:
    from connector.management import schemas

    _, served = await management.call("GET", "/management/openapi.json")
    paths = served["paths"]
    for resource in ("assets", "policydefinitions", "contractdefinitions", "contractnegotiations", "transferprocesses"):
        assert f"/management/v3/{resource}" in paths and f"/management/v4/{resource}" in paths
    assert "/management/v3/edrs/request" in paths and not [p for p in paths if p.startswith("/management/v4/edrs")]
    for path, operations in paths.items():
        if not path.startswith("/management/v4/"):
            continue
        for method, operation in operations.items():
            if "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.startswith("#/components/schemas/V4"), f"{method} {path} documents {ref}"
    # What is shown is what is checked: the same objects.
    components = served["components"]["schemas"]
    assert components["V4Criterion"]["required"] == ["@type", "operandLeft", "operator", "operandRight"]
    for name, schema in schemas.components().items():
        assert components[name] == schema, name


def test_the_import_batch_the_help_and_the_docs_name_is_the_one_an_import_uses() -> None:
    from connector.services.passport_pipeline import IMPORT_BATCH
    from connector.services.passports import PassportService

    result = subprocess.run(
        [sys.executable, "-m", "connector.cli", "passports", "import", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert f"(default {IMPORT_BATCH})" in " ".join(result.stdout.split())
    passports_doc = (REPO / "docs" / "passports.md").read_text(encoding="utf-8")
    assert f"[--batch {IMPORT_BATCH}]" in passports_doc
    assert f"{IMPORT_BATCH:,} records unless told" in passports_doc
    assert inspect.signature(PassportService.import_records).parameters["batch"].default == IMPORT_BATCH
