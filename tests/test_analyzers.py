"""The content analyzers, table by table: each kind, its evasions, and what must not match.

Pure functions: no server, no I/O. Evasions covered per analyzer: encodings (%XX, double
%XX, JSON \\u escapes, HTML entities, overlong UTF-8, fullwidth forms), case, whitespace,
comments in SQL, invisible characters.
"""

import itertools
import json

import pytest

from gate_proxy.core.analyzers import (
    AnalyzerConfig,
    Finding,
    analyze,
    finding_tags,
    mask_pii,
    parse_field_path,
)
from gate_proxy.core.analyzers.fields import form_pairs, select
from gate_proxy.core.analyzers.paths import analyze_path
from gate_proxy.core.analyzers.pii import analyze_pii, find_pii, iban_ok, luhn_ok, prepare
from gate_proxy.core.analyzers.records import RecordCheck, analyze_records
from gate_proxy.core.analyzers.shell import analyze_shell
from gate_proxy.core.analyzers.sql import MAX_SQL_CHARS, analyze_sql
from gate_proxy.core.analyzers.templates import analyze_templates
from gate_proxy.core.terms import decode_json


def kinds(findings: list[Finding] | tuple[Finding, ...]) -> set[str]:
    return {f.type for f in findings}


# -- SQL ------------------------------------------------------------------------------------

SQL_CASES = [
    # destructive statements
    ("DROP TABLE users", {"sql.drop"}),
    ("drop table users", {"sql.drop"}),
    ("dRoP TaBlE users", {"sql.drop"}),
    ("DROP\tTABLE\n\n  users", {"sql.drop"}),
    ("DROP/**/TABLE users", {"sql.drop"}),
    ("DROP -- comment\nTABLE users", {"sql.drop"}),
    ("/* leading comment */ DROP DATABASE prod", {"sql.drop"}),
    ("DROP TABLE IF EXISTS users", {"sql.drop"}),
    ("/*!50000 DROP TABLE users */", {"sql.drop"}),  # MySQL executes /*! ... */
    ("TRUNCATE users", {"sql.truncate"}),
    ("truncate table a, b CASCADE", {"sql.truncate"}),
    ("ALTER TABLE users ADD COLUMN x int", {"sql.alter"}),
    ("alter user admin with password 'x'", {"sql.alter"}),
    # DELETE / UPDATE without WHERE
    ("DELETE FROM users", {"sql.delete_without_where"}),
    ("delete   from\nusers;", {"sql.delete_without_where"}),
    ("DELETE FROM users WHERE 1=1", {"sql.delete_without_where"}),
    ("DELETE FROM users WHERE id = 5 OR 'a'='a'", {"sql.delete_without_where"}),
    ("DELETE FROM users WHERE (1 = 1)", {"sql.delete_without_where"}),
    ("DELETE FROM users WHERE true", {"sql.delete_without_where"}),
    ("WITH old AS (SELECT 1) DELETE FROM users", {"sql.delete_without_where"}),
    ("UPDATE users SET admin = 1", {"sql.update_without_where"}),
    ("update users set admin=1 -- WHERE id = 5", {"sql.update_without_where"}),
    ("UPDATE users SET a=1 WHERE id=id", {"sql.update_without_where"}),
    # stacked statements
    ("SELECT 1; SELECT 2", {"sql.stacked"}),
    ("SELECT * FROM t WHERE a = 'x'; DROP TABLE t", {"sql.stacked", "sql.drop"}),
    ("SELECT 1;/**/DELETE FROM t", {"sql.stacked", "sql.delete_without_where"}),
    # dynamic SQL
    ("EXEC('DROP TABLE users')", {"sql.drop"}),
    ("EXECUTE IMMEDIATE 'TRUNCATE TABLE users'", {"sql.truncate"}),
    # not destructive
    ("SELECT * FROM users WHERE id = 5", set()),
    ("DELETE FROM users WHERE id = 5", set()),
    ("UPDATE users SET name = 'x' WHERE id = 5", set()),
    ("UPDATE users SET a = 1 WHERE id = 5 AND 1 = 1", set()),
    ("INSERT INTO t (a) VALUES ('DROP TABLE x; DELETE FROM y')", set()),
    ("SELECT 1; -- DROP TABLE users", set()),
    ("-- DROP TABLE users\nSELECT 1", set()),
    ("/* DELETE FROM users */ SELECT 1", set()),
    ("SELECT 1;", set()),
    ("Update your profile please", set()),
    ("Truncate the long text", set()),
    ("Please drop me a line", set()),
]


@pytest.mark.parametrize(("sql", "expected"), SQL_CASES)
def test_sql(sql: str, expected: set[str]) -> None:
    assert kinds(analyze_sql(sql, "payload")) == expected


def test_sql_too_large_is_a_finding_not_a_parse() -> None:
    findings = analyze_sql("SELECT 1 " * (MAX_SQL_CHARS // 9 + 1), "$.q")
    assert kinds(findings) == {"sql.too_large"}


def test_sql_runs_only_on_sql_destinations_or_with_a_config() -> None:
    body = json.dumps({"query": "DELETE FROM users"})
    assert kinds(analyze(body)) == set()
    assert kinds(analyze(body, destination_tags=("sql",))) == {"sql.delete_without_where"}
    config = AnalyzerConfig(sql=True, sql_fields=(parse_field_path("query"),))
    found = analyze(body, config=config)
    assert [(f.type, f.location) for f in found] == [("sql.delete_without_where", "$.query")]


def test_sql_fields_restrict_where_sql_is_read() -> None:
    body = json.dumps({"query": "SELECT 1", "note": "DROP TABLE users"})
    config = AnalyzerConfig(sql=True, sql_fields=(parse_field_path("query"),))
    assert kinds(analyze(body, config=config)) == set()
    assert kinds(analyze(body, config=AnalyzerConfig(sql=True))) == {"sql.drop"}


def test_sql_in_a_plain_text_body() -> None:
    assert kinds(analyze("TRUNCATE orders", config=AnalyzerConfig(sql=True))) == {"sql.truncate"}


# -- shell ----------------------------------------------------------------------------------

SHELL_CASES = [
    ("report.pdf", set()),
    ("feature/new-login", set()),
    ("my file (1).txt", set()),
    ("a; rm -rf /", {"shell.separator"}),
    ("a && curl evil", {"shell.separator"}),
    ("a | sh", {"shell.separator"}),
    ("a\nid", {"shell.separator"}),
    ("$(id)", {"shell.substitution"}),
    ("`id`", {"shell.substitution"}),
    ("${HOME}", {"shell.substitution"}),
    ("a$IFS$9id", {"shell.variable"}),
    ("x > /etc/passwd", {"shell.redirection"}),
    ("--upload-pack=touch /tmp/x", {"shell.option"}),
    ("  -oProxyCommand=id", {"shell.option"}),
    # encodings
    ("a%3Bid", {"shell.separator"}),
    ("a%253Bid", {"shell.separator"}),  # double-encoded
    ("a%25253Bid", {"shell.separator"}),  # triple
    ("%24%28id%29", {"shell.substitution"}),
    ("a%0aid", {"shell.separator"}),
    ("a\\x3bid", {"shell.separator"}),
    ("a\\u0060id\\u0060", {"shell.substitution"}),
]


@pytest.mark.parametrize(("value", "expected"), SHELL_CASES)
def test_shell(value: str, expected: set[str]) -> None:
    assert kinds(analyze_shell(value, "$.cmd")) >= expected
    if not expected:
        assert analyze_shell(value, "$.cmd") == []


def test_shell_checks_only_configured_fields_and_every_list_element() -> None:
    body = json.dumps({"branch": "main", "args": ["-v", "ok"], "note": "a; b"})
    config = AnalyzerConfig(shell_fields=(parse_field_path("branch"), parse_field_path("args[*]")))
    found = analyze(body, config=config)
    assert [(f.type, f.location) for f in found] == [("shell.option", "$.args[0]")]


def test_shell_fields_in_a_form_body_and_fail_closed_on_other_text() -> None:
    config = AnalyzerConfig(shell_fields=(parse_field_path("branch"),))
    assert kinds(analyze("branch=main%3Bid&x=1", config=config)) == {"shell.separator"}
    assert kinds(analyze("just text; with a semicolon", config=config)) == {"shell.unchecked"}


def test_duplicate_keys_are_all_checked() -> None:
    body = '{"cmd": "ls", "cmd": "ls; id"}'
    config = AnalyzerConfig(shell_fields=(parse_field_path("cmd"),))
    assert kinds(analyze(body, config=config)) == {"shell.separator"}


# -- path traversal -------------------------------------------------------------------------

PATH_CASES = [
    ("reports/2024/summary.pdf", set()),
    ("file..txt", set()),
    ("..hidden", set()),
    ("../etc/passwd", {"path.traversal"}),
    ("a/../../b", {"path.traversal"}),
    ("..\\windows\\win.ini", {"path.traversal"}),
    ("a\\..\\..\\b", {"path.traversal"}),
    ("%2e%2e%2fetc%2fpasswd", {"path.traversal"}),
    ("%2E%2E%2Fetc", {"path.traversal"}),
    ("..%2fetc", {"path.traversal"}),
    ("..%5cwin.ini", {"path.traversal"}),
    ("%252e%252e%252fetc", {"path.traversal"}),  # double-encoded
    ("%u002e%u002e/etc", {"path.traversal"}),  # IIS %u
    ("%c0%ae%c0%ae/etc", {"path.traversal"}),  # overlong UTF-8
    ("..%c0%afetc", {"path.traversal"}),
    ("..%c1%9cwin.ini", {"path.traversal"}),
    ("．．／etc", {"path.traversal"}),  # fullwidth
    ("... /x", {"path.traversal"}),  # Windows trims dots and spaces
    ("/etc/passwd", {"path.absolute"}),
    ("C:\\Windows", {"path.absolute"}),
    ("\\\\server\\share", {"path.absolute"}),
    ("~/.ssh/id_rsa", {"path.absolute"}),
    ("file:///etc/passwd", {"path.absolute"}),
    ("%2fetc%2fpasswd", {"path.absolute"}),
    ("report.pdf%00.png", {"path.null_byte"}),
    ("report.pdf\x00.png", {"path.null_byte"}),
]


@pytest.mark.parametrize(("value", "expected"), PATH_CASES)
def test_paths(value: str, expected: set[str]) -> None:
    assert kinds(analyze_path(value, "$.file")) == expected


# -- PII and secrets ------------------------------------------------------------------------

PII_CASES = [
    # SSN
    ("SSN 123-45-6789", "pii.ssn"),
    ("ssn 123 45 6789", "pii.ssn"),
    ("123.45.6789", "pii.ssn"),
    ('{"ssn": 123456789}', "pii.ssn"),
    ('{"social_security_number": "123456789"}', "pii.ssn"),
    ("１２３-４５-６７８９", "pii.ssn"),  # fullwidth digits
    ("123\u201045\u20106789", "pii.ssn"),  # Unicode hyphens
    ("1\u200b23-45-6789", "pii.ssn"),  # zero-width space inside
    ('{"x": "\\u0031\\u0032\\u0033-45-6789"}', "pii.ssn"),  # JSON escapes
    ("123%2D45%2D6789", "pii.ssn"),  # URL-encoded
    ("&#49;23-45-6789", "pii.ssn"),  # HTML entity
    # card (Luhn)
    ("4111 1111 1111 1111", "pii.card"),
    ("4111-1111-1111-1111", "pii.card"),
    ("4111111111111111", "pii.card"),
    ('{"card": 4111111111111111}', "pii.card"),
    ("3782 822463 10005", "pii.card"),  # Amex 4-6-5
    ("%34%31%31%31%31%31%31%31%31%31%31%31%31%31%31%31", "pii.card"),
    ("４１１１１１１１１１１１１１１１", "pii.card"),
    # IBAN (mod 97)
    ("DE89 3704 0044 0532 0130 00", "pii.iban"),
    ("DE89370400440532013000", "pii.iban"),
    ("de89370400440532013000", "pii.iban"),  # case
    ("GB29 NWBK 6016 1331 9268 19", "pii.iban"),
    ("pay NL91ABNA0417164300 today", "pii.iban"),
    # email
    ("write to john.doe@corp.example.com", "pii.email"),
    ("JOHN@EXAMPLE.COM", "pii.email"),
    ("john%40example.com", "pii.email"),
    ("john&#64;example.com", "pii.email"),
    ('{"to": "john\\u0040example.com"}', "pii.email"),
    ("john [at] example [dot] com", "pii.email"),
    ("john (AT) example.com", "pii.email"),
    # phone
    ("+1 415 555 0100", "pii.phone"),
    ("+44 20 7946 0958", "pii.phone"),
    ("(415) 555-0100", "pii.phone"),
    ("415.555.0100", "pii.phone"),
    # secrets
    ("key AKIAIOSFODNN7EXAMPLE", "secret.aws_access_key"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234567890abcdefghij", "secret.private_key"),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAA",
        "secret.private_key",
    ),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "secret.api_key"),
    ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "secret.api_key"),
    ("xoxb-2400000000-2400000000000-AbCdEfGhIjKlMnOpQrStUvWx", "secret.api_key"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "secret.api_key"),
    ("sk-proj-abcdefghijklmnopqrstuvwxyz012345", "secret.api_key"),
    ("glpat-abcdefghijklmnopqrst", "secret.api_key"),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "secret.api_key",
    ),
    ("https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX", "secret.api_key"),
    ('{"k": "sk\\u005flive_4eC39HqLyjWDarjtT1zdp7dc"}', "secret.api_key"),
]


@pytest.mark.parametrize(("text", "expected"), PII_CASES)
def test_pii_and_secrets_found(text: str, expected: str) -> None:
    parsed = decode_json(text)
    assert expected in kinds(analyze(text, parsed)), analyze(text, parsed)


NOT_PII = [
    "Order 4821 shipped on 2024-01-15",
    "4111 1111 1111 1112",  # fails Luhn
    "0000 0000 0000 0000",  # one repeated digit
    "8111111111111112",  # Luhn-valid, but no card network starts with 8
    "1234567890128",  # 13 digits: only Visa (4) issued those
    "000-12-3456",  # never issued
    "666-12-3456",
    "123-45-67890",  # too long
    "DE89 3704 0044 0532 0130 01",  # bad checksum
    "XX89370400440532013000",  # no such country
    "version 1.2.3.4 at 10:30",
    "user@localhost",  # no domain
    "a pk_live_ key is publishable",
    "AKIA_not_a_key",
    "tracking id 12345678",
]


@pytest.mark.parametrize("text", NOT_PII)
def test_not_pii(text: str) -> None:
    assert analyze(text) == ()


def test_findings_never_carry_the_value() -> None:
    text = json.dumps({"ssn": "123-45-6789", "key": "AKIAIOSFODNN7EXAMPLE"})
    for finding in analyze(text):
        assert "6789" not in finding.detail and "IOSFODNN7" not in finding.detail
    assert {(f.type, f.location) for f in analyze(text)} == {
        ("pii.ssn", "$..ssn"),
        ("secret.aws_access_key", "$..key"),
    }


def test_one_finding_per_kind_says_there_are_more() -> None:
    text = json.dumps({"to": ["a@example.com", "b@example.com"]})
    (finding,) = analyze_pii(text, is_json=True)
    assert finding.type == "pii.email" and finding.detail.endswith("and more")


def test_luhn_and_iban_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB29 NWBK 6016 1331 9268 19") and not iban_ok("GB29 NWBK 6016 1331 9268 18")


MASKS = [
    ("SSN 123-45-6789.", "SSN [SSN]."),
    ("card 4111 1111 1111 1111", "card [CARD ending 1111]"),
    ("mail john@corp.example.com now", "mail [EMAIL …@corp.example.com] now"),
    ("call +1 415 555 0100", "call [PHONE ending 00]"),
    ("iban DE89 3704 0044 0532 0130 00", "iban [IBAN DE ending 3000]"),
    ("key AKIAIOSFODNN7EXAMPLE", "key [SECRET aws_access_key]"),
    ('{"ssn": 123456789}', '{"ssn": [SSN]}'),
    ("nothing to see, ticket 4821", "nothing to see, ticket 4821"),
    ("ünïcödé 123-45-6789 ok", "ünïcödé [SSN] ok"),  # offsets survive non-ASCII text
    ("", ""),
]


@pytest.mark.parametrize(("text", "masked"), MASKS)
def test_mask_pii(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


def test_mask_pii_is_compatible_with_the_dashboard_masks() -> None:
    # gate_proxy/core/pii.py (the dashboard's) masks SSNs and cards exactly like this,
    # and leaves the rest readable for reviewers.
    from gate_proxy.core import pii as dashboard_pii

    text = "123-45-6789 and 4111111111111111 and 3782 822463 10005, tel +1 415 555 0100"
    masked = "[SSN] and [CARD ending 1111] and [CARD ending 0005], tel "
    assert mask_pii(text) == masked + "[PHONE ending 00]"
    assert mask_pii(text, kinds=("ssn", "card")) == masked + "+1 415 555 0100"
    assert dashboard_pii.mask_pii(text) == masked + "+1 415 555 0100"


def test_find_pii_spans_do_not_overlap() -> None:
    spans = find_pii("4111 1111 1111 1111 123-45-6789 +1 415 555 0100")
    assert [m.kind for m in spans] == ["card", "ssn", "phone"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


# -- templates ------------------------------------------------------------------------------

TEMPLATE_CASES = [
    ("Hello {{customer_name}}", "{{customer_name}}"),
    ("Hello {{ customer_name }}", "{{ customer_name }}"),
    ("Hello {{   first_name\t}}", "{{   first_name\t}}"),
    ("Hi {{{ name }}}", "{{{ name }}}"),
    ("Hi {{user.first_name | default}}", "{{user.first_name | default}}"),
    ("{% if vip %}Dear VIP", "{% if vip %}"),
    ("Total ${amount}", "${amount}"),
    ("Total ${ order.total }", "${ order.total }"),
    ("You owe %(amount).2f", "%(amount).2f"),
    ("Dear %(name)s", "%(name)s"),
    ("Dear [[First Name]]", "[[First Name]]"),
    ("Dear [[ first_name ]]", "[[ first_name ]]"),
]


@pytest.mark.parametrize(("text", "placeholder"), TEMPLATE_CASES)
def test_templates(text: str, placeholder: str) -> None:
    findings = analyze(text)
    assert [(f.type, f.detail) for f in findings] == [("template.unresolved", placeholder)]


TEMPLATE_EVASIONS = [
    '{"body": "Hello \\u007b\\u007bcustomer_name\\u007d\\u007d"}',  # JSON escapes
    "Hello%20%7B%7Bcustomer_name%7D%7D",  # URL-encoded
    "Hello &#123;&#123;customer_name&#125;&#125;",  # HTML entities
    "Hello ｛｛customer_name｝｝",  # fullwidth braces
]


@pytest.mark.parametrize("text", TEMPLATE_EVASIONS)
def test_template_evasions(text: str) -> None:
    findings = analyze(text, decode_json(text))
    assert [f.type for f in findings] == ["template.unresolved"]
    assert "customer_name" in findings[0].detail


NOT_TEMPLATES = [
    "Hello Ada, your order ships today",
    '{"items": [{"sku": 1}, {"sku": 2}]}',  # JSON brackets are not placeholders
    "costs $5 (five dollars) or 10%",
    "a {single} brace and [one] bracket",
    "{{ }}",
]


@pytest.mark.parametrize("text", NOT_TEMPLATES)
def test_not_templates(text: str) -> None:
    assert analyze_templates(prepare(text)) == []


def test_template_location_names_the_json_key() -> None:
    body = json.dumps({"subject": "Hi", "html": "<p>Hello {{name}}</p>"})
    (finding,) = analyze(body)
    assert finding.location == "$..html"


# -- record checks --------------------------------------------------------------------------


def check(path: str, ratio: float) -> RecordCheck:
    return RecordCheck(parse_field_path(path), ratio)


RECORD_CASES = [
    ({"contacts": [{"email": "a@x.io"}, {"email": "b@x.io"}]}, 0.0, set()),
    ({"contacts": [{"email": "a@x.io"}, {"email": ""}]}, 0.2, {"record.empty_ratio"}),
    ({"contacts": [{"email": "a@x.io"}, {"email": "   "}]}, 0.5, set()),  # exactly 50%
    ({"contacts": [{"email": "a@x.io"}, {}]}, 0.2, {"record.empty_ratio"}),  # missing
    ({"contacts": [{"email": "a@x.io"}, {"email": None}]}, 0.2, {"record.empty_ratio"}),
    ({"contacts": [{"email": "a@x.io"}, {"email": []}]}, 0.2, {"record.empty_ratio"}),
    ({"contacts": []}, 0.0, set()),  # no records, none empty
    ({"people": []}, 0.2, {"record.unchecked"}),  # the path selects no list
    ({"contacts": "not a list"}, 0.2, {"record.unchecked"}),
]


@pytest.mark.parametrize(("payload", "ratio", "expected"), RECORD_CASES)
def test_record_checks(payload: object, ratio: float, expected: set[str]) -> None:
    text = json.dumps(payload)
    found = analyze_records(decode_json(text), (check("contacts[*].email", ratio),))
    assert kinds(found) == expected


def test_record_checks_fail_closed() -> None:
    checks = (check("contacts[*].email", 0.2),)
    assert kinds(analyze_records(decode_json("not json"), checks)) == {"record.unchecked"}
    dup = '{"contacts": [], "contacts": [{"email": ""}]}'
    assert kinds(analyze_records(decode_json(dup), checks)) == {"record.unchecked"}


def test_record_check_on_a_plain_list_and_nested_wildcards() -> None:
    text = json.dumps({"emails": ["a@x.io", "", ""], "batches": [{"rows": [{"v": 1}]}]})
    parsed = decode_json(text)
    assert kinds(analyze_records(parsed, (check("emails", 0.5),))) == {"record.empty_ratio"}
    assert analyze_records(parsed, (check("batches[*].rows[*].v", 0.0),)) == []


# -- field paths, tags ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["", " a", "a..b", ".a", "a.", "a[x]", "a]", "a[*]b", "a[", "a[-1]"]
)
def test_bad_field_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_field_path(bad)


def test_field_path_selection() -> None:
    parsed = decode_json('{"a": [{"b": 1}, {"b": 2}], "c": {"0": "zero"}}')
    assert [v for _, v in select(parsed, parse_field_path("a[*].b")).matches] == [1, 2]
    assert [v for _, v in select(parsed, parse_field_path("a.1.b")).matches] == [2]
    assert [v for _, v in select(parsed, parse_field_path("a[0].b")).matches] == [1]
    assert [v for _, v in select(parsed, parse_field_path("c.0")).matches] == ["zero"]
    assert form_pairs("amount=4200&charge=ch_1") == (("amount", "4200"), ("charge", "ch_1"))
    assert form_pairs("hello world") is None


def test_finding_tags_feed_the_risk_score() -> None:
    text = json.dumps({"to": "a@example.com", "body": "Hi {{name}}", "key": "AKIAIOSFODNN7EXAMPLE"})
    assert finding_tags(analyze(text)) == ("pii", "secret", "template_error")


def test_analyzers_are_deterministic_and_pure() -> None:
    text = json.dumps({"ssn": "123-45-6789", "body": "Hello {{x}}"})
    assert analyze(text) == analyze(text) == analyze(text, decode_json(text))
