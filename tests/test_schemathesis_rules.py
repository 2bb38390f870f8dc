"""The rules schemathesis checks, pinned one by one: the document's parameter schemas are the ones the node
enforces (one table), a value outside them is a 400 problem naming the parameter, and a value inside is served."""

from __future__ import annotations

from typing import Any

from connector.transport import openapi
from tests.conftest import EDC_CONTEXT, Management

NOTIFICATIONS = "/management/v1/notifications"
PASSPORTS = "/management/v1/passports"


def _parameter(document: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    [found] = [p["schema"] for p in document["paths"][path]["get"]["parameters"] if p["name"] == name]
    return found


async def test_a_limit_beyond_the_documented_maximum_is_refused_not_clamped(management: Management) -> None:
    status, document = await management.call("GET", "/management/openapi.json")
    assert status == 200
    assert _parameter(document, PASSPORTS, "limit")["maximum"] == 1000
    assert _parameter(document, NOTIFICATIONS, "limit")["maximum"] == 500
    for path, top in ((PASSPORTS, 1000), (NOTIFICATIONS, 500)):
        assert (await management.call("GET", f"{path}?limit={top}"))[0] == 200
        status, problem = await management.call("GET", f"{path}?limit={top + 1}")
        assert status == 400, problem
        assert problem["errors"] == [
            {
                "message": f"limit must be an integer from 1 to {top}",
                "type": "ValidationFailure",
                "path": "limit",
                "invalidValue": str(top + 1),
            }
        ]
    status, problem = await management.call("GET", f"{PASSPORTS}?limit=ten")
    assert status == 400 and problem["errors"][0]["message"] == "limit must be an integer from 1 to 1000", problem


async def test_a_huge_number_is_refused_with_the_text_sent(management: Management) -> None:
    huge = "9" * 40  # not even a 64-bit integer: the refusal shows the text, never the number
    status, problem = await management.call("GET", f"/management/v1/sync/jobs?offset={huge}")
    assert status == 400, problem
    assert problem["errors"][0]["path"] == "offset" and problem["errors"][0]["invalidValue"] == huge
    # Past the database's integers: refused as the document says, not a 500 from the driver.
    status, problem = await management.call("GET", f"{PASSPORTS}?changedSince={2**63}")
    assert status == 400 and problem["errors"][0]["path"] == "changedSince", problem
    assert (await management.call("GET", f"{PASSPORTS}?changedSince={2**63 - 1}"))[0] == 200


async def test_a_cursor_is_opaque_and_a_malformed_one_is_a_documented_400(management: Management) -> None:
    status, document = await management.call("GET", "/management/openapi.json")
    assert status == 200
    cursor = _parameter(document, PASSPORTS, "cursor")
    assert cursor["type"] == "string" and "minLength" not in cursor and "opaque" in cursor["description"]
    assert "400" in document["paths"][PASSPORTS]["get"]["responses"]
    status, problem = await management.call("GET", f"{PASSPORTS}?cursor=not-a-cursor")
    assert status == 400, problem
    assert problem["errors"][0]["path"] == "cursor"
    # An empty cursor is the first page, as a script that starts its loop with `cursor=` expects.
    assert await management.call("GET", f"{PASSPORTS}?cursor=") == await management.call("GET", PASSPORTS)


async def test_an_enum_parameter_is_checked_against_the_document(management: Management) -> None:
    assert (await management.call("GET", f"{NOTIFICATIONS}?direction=in"))[0] == 200
    status, problem = await management.call("GET", f"{NOTIFICATIONS}?direction=sideways")
    assert status == 400 and problem["errors"][0]["message"] == 'direction must be one of "in", "out"', problem


def test_every_query_parameter_of_a_route_has_its_schema_in_the_one_table() -> None:
    from connector.transport import management

    for route in management.ROUTES:
        for key in route.query:
            assert key in openapi.QUERY_PARAMETERS, (route.path, key)


async def test_a_whole_number_written_with_a_fraction_is_an_integer(management: Management) -> None:
    # JSON Schema (and so the document) calls 5.0 an integer; so does the node.
    status, found = await management.call(
        "POST", "/management/v3/assets/request", {"@context": EDC_CONTEXT, "limit": 5.0}
    )
    assert status == 200, found


async def test_a_url_that_cannot_be_parsed_is_refused_never_a_500(management: Management) -> None:
    status, problem = await management.call(
        "POST", "/management/v3/catalog/request", {"@context": EDC_CONTEXT, "counterPartyAddress": "http://["}
    )
    assert status in (400, 502), problem
    assert problem["errors"], problem


async def test_open_operations_say_they_need_no_key(management: Management) -> None:
    status, document = await management.call("GET", "/management/openapi.json")
    assert status == 200
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "security" not in document["paths"][PASSPORTS]["get"]
