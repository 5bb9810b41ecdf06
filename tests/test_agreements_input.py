"""`accord agreements set`: strict validation, nothing published on error, and the node applies
the same rules to the directory it loads (certs/directory.py's agreement parsing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certs.ca import FederationAuthority
from certs.directory import Directory, agreement_from_dict, sign_directory
from certs.errors import PkiError
from tests.test_cli_args import assert_one_line_error, run

NOW = datetime.now(UTC)


def good(**changes: Any) -> dict[str, Any]:
    agreement: dict[str, Any] = {
        "id": "AGR-NL-DE",
        "title": "NL-DE",
        "parties": ["NL-POL", "DE-BKA"],
        "purposes": ["missing-persons", "serious-crime-investigation"],
        "message_types": ["REQUEST_INFO", "REPLY", "HIT_NOTIFICATION", "INCIDENT_PUBLISH"],
        "max_retention_days": 180,
        "max_tlp": "AMBER",
        "valid_from": (NOW - timedelta(days=1)).isoformat(),
        "valid_until": (NOW + timedelta(days=365)).isoformat(),
        "review_date": "2027-06-30",
        "approval_required": ["REPLY>HIT_NOTIFICATION"],
        "allowed_fields": {"missing-persons": ["incident_id", "location", "entities.person"]},
    }
    agreement.update(changes)
    return {k: v for k, v in agreement.items() if v is not None}


@pytest.fixture
def authority(tmp_path: Path) -> FederationAuthority:
    fa = FederationAuthority.init(tmp_path / "fed", federation="accord.test", now=NOW)
    for agency in ("NL-POL", "DE-BKA"):
        fa.issue(agency=agency, endpoint="127.0.0.1:1", now=NOW)
    return fa


def set_agreements(
    fa: FederationAuthority, agreements: list[Any], capsys: pytest.CaptureFixture[str]
) -> Any:
    path = fa.root / "agreements.json"
    path.write_text(json.dumps(agreements))
    return run(["agreements", "set", "--dir", str(fa.root), "--file", str(path)], capsys)


BAD = [
    # A misspelled safeguard is an error, never silently dropped.
    ({"aproval_required": ["REPLY"]}, ["unknown key(s) 'aproval_required'", "AGR-NL-DE"]),
    ({"purposes": ["pizza-delivery"]}, ["purposes: unknown purpose 'pizza-delivery'"]),
    ({"parties": ["NL-POL", "ZZ-NOPE"]}, ["parties: unknown federation member 'ZZ-NOPE'"]),
    ({"parties": ["NL-POL", "nl-pol"]}, ["parties: agency code 'nl-pol'"]),
    ({"parties": ["NL-POL", "NL-POL"]}, ["at least two different agencies"]),
    ({"message_types": ["TELEPATHY"]}, ["message_types: unknown message type 'TELEPATHY'"]),
    ({"approval_required": ["REPLY>TELEPATHY"]}, ["approval_required 'REPLY>TELEPATHY'"]),
    ({"allowed_fields": {"missing-persons": ["dna"]}}, ["unknown incident field 'dna'"]),
    ({"allowed_fields": {"counter-terrorism": ["location"]}}, ["purpose of this agreement"]),
    ({"review_date": "2027-13-01"}, ["review_date: '2027-13-01' is not a date YYYY-MM-DD"]),
    ({"review_date": 20270101}, ["review_date must be a date"]),
    ({"max_retention_days": True}, ["max_retention_days must be a whole number"]),
    ({"max_retention_days": 0}, ["max_retention_days must be a whole number from 1"]),
    ({"max_tlp": "PURPLE"}, ["max_tlp must be one of CLEAR, GREEN, AMBER, AMBER+STRICT, RED"]),
    ({"onward_transfer": "SOMETIMES"}, ["onward_transfer must be one of"]),
    ({"valid_until": "2026-02-30T00:00:00+00:00"}, ["valid_until: '2026-02-30T00:00:00+00:00'"]),
    ({"purposes": []}, ["purposes must name at least one purpose"]),
    ({"title": 7}, ["title must be a string"]),
]


@pytest.mark.parametrize(("changes", "fragments"), BAD)
def test_a_bad_agreement_is_one_line_and_publishes_nothing(
    authority: FederationAuthority,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    fragments: list[str],
) -> None:
    before = authority.directory_path.read_bytes()
    # The good agreement first: one bad agreement in the file publishes none of them.
    result = set_agreements(authority, [good(id="AGR-OK"), good(**changes)], capsys)
    assert_one_line_error(result, *fragments)
    assert authority.directory_path.read_bytes() == before


def test_bad_files_are_one_line(authority: FederationAuthority, capsys: Any) -> None:
    path = authority.root / "agreements.json"
    for content, fragment in (
        (b"\xff\xfe", "not UTF-8 text"),
        (b"[{", "not valid JSON"),
        (b"{}", "expected a JSON list"),
        (b'["x"]', "must be an object"),
    ):
        path.write_bytes(content)
        result = run(["agreements", "set", "--dir", str(authority.root), "--file", str(path)],
                     capsys)  # fmt: skip
        assert_one_line_error(result, fragment)


def test_a_good_agreement_is_published_with_tlp_2_spelling(
    authority: FederationAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    result = set_agreements(authority, [good(max_tlp="amber+strict")], capsys)
    assert result.code == 0, result
    (agreement,) = authority.directory().agreements
    assert agreement.max_tlp == "AMBER_STRICT"
    assert agreement.approval_required == ("REPLY>HIT_NOTIFICATION",)
    published = json.loads(authority.directory_path.read_text())["agreements"][0]
    assert published["max_tlp"] == "AMBER+STRICT"


def test_a_node_refuses_a_signed_directory_with_a_bad_agreement(
    authority: FederationAuthority,
) -> None:
    """The same parsing runs when a node loads a directory: a directory signed by the CA but
    naming a purpose outside its own vocabulary is refused, not half-applied."""
    directory = authority.directory()
    doc = json.loads(directory.to_json())
    doc["agreements"] = [good(purposes=["pizza-delivery"])]
    data = json.dumps(doc).encode()
    with pytest.raises(PkiError, match="unknown purpose 'pizza-delivery'"):
        Directory.from_json(data)
    doc["agreements"] = [good(aproval_required=["REPLY"])]
    with pytest.raises(PkiError, match="unknown key"):
        Directory.from_json(json.dumps(doc).encode())
    # A party no longer in the directory (a revoked member) does not make it unloadable.
    doc["agreements"] = [good(parties=["NL-POL", "FR-PN"])]
    loaded = Directory.from_json(json.dumps(doc).encode())
    assert loaded.agreements[0].parties == ("NL-POL", "FR-PN")
    assert sign_directory(loaded, authority.ca_key)[0]


def test_parsing_names_the_agreement_and_its_position() -> None:
    with pytest.raises(PkiError) as caught:
        agreement_from_dict(good(colour="blue"), "agreements.json[3]")
    assert str(caught.value).startswith("agreements.json[3] (agreement AGR-NL-DE): unknown key")
