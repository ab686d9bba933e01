"""The content analyzers, table by table: each kind, its evasions, and what must not match.

Pure functions: no server, no I/O. Evasions covered per analyzer: encodings (%XX, double
%XX, JSON \\u escapes, HTML entities, overlong UTF-8, fullwidth forms), case, whitespace,
comments in SQL, invisible characters.
"""

import itertools
import json
import random

import pytest

from gate_proxy.core.analyzers import (
    DEFAULT_CONFIG,
    MAX_DECODE_CHARS,
    MAX_FIELD_CHARS,
    MAX_FIELD_VALUES,
    MAX_FINDINGS_PER_ANALYZER,
    MAX_FORM_CHARS,
    MAX_RECORDS,
    MAX_SCAN_BYTES,
    SEVERITIES,
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
from gate_proxy.core.analyzers.sql import (
    MAX_SQL_CHARS,
    MAX_SQL_DELIMITERS,
    MAX_SQL_TOKENS,
    analyze_sql,
)
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


# -- never raise, bounded work (security issue 9, item 18) ---------------------------------

SQL_HARDENING_CASES = [
    # sqlparse's grouping raised on these (depth > 100, > 10,000 tokens): no grouping now
    ("SELECT 1" + "+1" * 1000, set()),
    ("DELETE FROM t WHERE id = 1" + "+1" * 1000, set()),
    ("DELETE FROM t WHERE 1=1" + " OR 1=1" * 200, {"sql.delete_without_where"}),
    ("DELETE FROM t WHERE " + "(" * 300 + "1=1" + ")" * 300, {"sql.delete_without_where"}),
    ("DELETE FROM t WHERE " + "(" * 300 + "id = 5" + ")" * 300, set()),
    ("DELETE FROM t WHERE id = 5 OR (a = 2 OR (b = 3 OR (1 = 1)))", {"sql.delete_without_where"}),
    # the WHERE clause found without grouping
    ("DELETE FROM t WHERE 1=1 ORDER  BY x", {"sql.delete_without_where"}),
    ("DELETE FROM t WHERE 42", {"sql.delete_without_where"}),  # MySQL: non-zero is true
    ("DELETE FROM t WHERE 0", set()),
    ("DELETE FROM t WHERE x.y = x.y", {"sql.delete_without_where"}),
    ("UPDATE t SET a = CASE WHEN b THEN 1 END WHERE id = 1", set()),
    ("UPDATE t SET a = (SELECT b FROM u WHERE u.id = 1)", {"sql.update_without_where"}),
    ("WITH d AS (SELECT id FROM t WHERE x = 1) DELETE FROM t", {"sql.delete_without_where"}),
    ("DELETE FROM t WHERE id IN (SELECT id FROM u WHERE 1=1)", set()),
    # whitespace runs are folded before lexing, without changing what is a comment
    ("#\tDROP TABLE t", set()),  # as before: "#" is not read as a verb
    ("# \nDROP  \t  TABLE\n\n\t t", {"sql.drop"}),
    ("#  DROP TABLE t", set()),
    ("--\tx\n   DELETE   FROM\t\tt", {"sql.delete_without_where"}),
    # statements inside a BEGIN ... END block (one sqlparse statement)
    ("BEGIN DROP TABLE users; END", {"sql.drop"}),
    ("BEGIN DELETE FROM a; DELETE FROM b WHERE id = 1; END", {"sql.delete_without_where",
                                                             "sql.stacked"}),
    ("CREATE PROCEDURE p() BEGIN TRUNCATE TABLE t; END", {"sql.truncate", "sql.stacked"}),
    # MySQL executable comments: unclosed openers are not code (and are linear to skip)
    ("/*!50000 DROP TABLE t */", {"sql.drop"}),
    ("/*!" * 5000 + " DROP TABLE t", {"sql.too_large"}),  # 3 tokens each: over budget
    ("/*! DROP TABLE t", set()),  # unclosed: MySQL rejects it, nothing runs
]  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), SQL_HARDENING_CASES)
def test_sql_hardening(sql: str, expected: set[str]) -> None:
    assert kinds(analyze_sql(sql, "payload")) == expected


def test_sql_over_the_token_budget_is_too_large_not_an_error() -> None:
    # One statement of ~20,000 tokens: sqlparse's grouping raised SQLParseError (a 503).
    text = "INSERT INTO t VALUES " + ",".join(f"({i},'x')" for i in range(4000)) + "; DROP TABLE t"
    (finding,) = analyze_sql(text, "$.q")
    assert finding.type == "sql.too_large" and "tokens" in finding.detail
    assert finding.location == "$.q"


def test_sql_budget_is_shared_by_the_strings_of_one_payload() -> None:
    # Each string is small; together they are over the token budget: fail closed.
    strings = ["UPDATE a SET x = 1 WHERE id = 7; SELECT 1"] * (MAX_SQL_TOKENS // 10)
    found = analyze(json.dumps(strings), config=AnalyzerConfig(sql=True, pii=False))
    assert "sql.too_large" in kinds(found) and "sql.stacked" in kinds(found)
    few = analyze(json.dumps(strings[:10]), config=AnalyzerConfig(sql=True, pii=False))
    assert kinds(few) == {"sql.stacked"}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("$" * (MAX_SQL_DELIMITERS + 1) + " DROP TABLE t", "delimiters"),
        ("/**/" * (MAX_SQL_DELIMITERS // 2 + 1) + " DROP TABLE t", "delimiters"),
        (";" * (MAX_SQL_TOKENS + 1), "tokens"),
        ("(" * MAX_SQL_TOKENS + "DROP TABLE t", "tokens"),
        (" DROP TABLE t " * (MAX_SQL_CHARS // 14 + 1), "characters"),
    ],
)
def test_sql_limits(text: str, why: str) -> None:
    (finding,) = analyze_sql(text, "payload")
    assert finding.type == "sql.too_large" and why in finding.detail


def test_sql_json_payload_over_the_limit_is_too_large_without_a_walk() -> None:
    body = json.dumps({"q": "SELECT 1", "pad": "x" * MAX_SQL_CHARS})
    found = analyze(body, config=AnalyzerConfig(sql=True, pii=False, templates=False))
    assert [(f.type, f.location) for f in found] == [("sql.too_large", "payload")]


def test_sql_findings_in_deep_json_name_their_location() -> None:
    depth = 800
    body = "[" * depth + '"SELECT 1", "DROP TABLE t"' + "]" * depth
    found = analyze(body, config=AnalyzerConfig(sql=True, pii=False, templates=False))
    where = "$" + "[0]" * (depth - 1) + "[1]"
    assert [(f.type, f.location) for f in found] == [("sql.drop", where)]


def test_findings_are_capped_per_analyzer_but_every_kind_is_kept() -> None:
    strings = ["DROP TABLE t"] * 200 + ["TRUNCATE u"]
    found = analyze(json.dumps(strings), config=AnalyzerConfig(sql=True, pii=False))
    assert len(found) <= MAX_FINDINGS_PER_ANALYZER + 1
    assert kinds(found) == {"sql.drop", "sql.truncate"}
    assert found[0].location == "$[0]" and found[-1].location == "$[200]"


def filler(size: int) -> str:
    words = "the parcel left the warehouse on friday and should arrive soon "
    return (words * (size // len(words) + 1))[:size]


def test_pii_and_templates_read_up_to_their_limit() -> None:
    tail = " ssn 123-45-6789 hello {{name}}"
    under = filler(MAX_SCAN_BYTES - len(tail)) + tail
    assert kinds(analyze(under)) == {"pii.ssn", "template.unresolved"}
    over = filler(MAX_SCAN_BYTES + 1 - len(tail)) + tail
    found = analyze(over)
    assert kinds(found) == {"pii.too_large", "template.too_large"}
    assert all(str(MAX_SCAN_BYTES) in f.detail for f in found)


def test_decoded_readings_count_towards_the_scan_limit() -> None:
    # %XX makes a second (URL-decoded) reading: the two together are over the limit.
    text = filler(MAX_SCAN_BYTES // 2 + 100) + " %34%31"
    assert kinds(analyze(text, config=AnalyzerConfig(templates=False))) == {"pii.too_large"}


def test_field_checks_fail_closed_past_their_limits() -> None:
    config = AnalyzerConfig(
        pii=False,
        templates=False,
        shell_fields=(parse_field_path("tags[*]"),),
        path_fields=(parse_field_path("file"),),
    )
    many = json.dumps({"tags": ["ok"] * (MAX_FIELD_VALUES + 1), "file": "a.txt"})
    assert kinds(analyze(many, config=config)) == {"shell.too_large"}  # "file" is fine
    long_value = json.dumps({"tags": ["a" * (MAX_FIELD_CHARS + 1)], "file": "a.txt"})
    assert "shell.too_large" in kinds(analyze(long_value, config=config))
    fine = json.dumps({"tags": ["ok"] * 100 + ["a;b"], "file": "../x"})
    assert kinds(analyze(fine, config=config)) == {"shell.separator", "path.traversal"}


def test_record_checks_fail_closed_past_their_limit() -> None:
    config = AnalyzerConfig(pii=False, templates=False, record_checks=(check("r[*].e", 0.5),))
    over = json.dumps({"r": [{"e": "x"}] * (MAX_RECORDS + 1)})
    (finding,) = analyze(over, config=config)
    assert finding.type == "record.unchecked" and finding.location == "r[*].e"
    under = json.dumps({"r": [{"e": "x"}] * MAX_RECORDS})
    assert analyze(under, config=config) == ()


def test_analyze_does_not_decode_a_body_over_its_decode_limit() -> None:
    config = AnalyzerConfig(pii=False, templates=False, record_checks=(check("r[*].e", 0.5),))
    body = json.dumps({"r": [{"e": "x"}], "pad": "x" * MAX_DECODE_CHARS})
    (finding,) = analyze(body, config=config)
    assert finding.type == "record.unchecked" and "decodes" in finding.detail
    assert analyze(body, decode_json(body), config=config) == ()  # the caller decoded it


# The inputs that broke or stalled an analyzer, and a few more shapes an attacker controls.
HOSTILE = [
    "",
    "\x00" * 100,
    "\ud800\udfff\ud800 lone surrogates \udc00 DROP TABLE t; 4111 1111 1111 1111",
    '{"q": "\\ud800 DROP TABLE t", "e": "a@b.co"}',
    "[" * 5000 + "]" * 5000,
    "[" * 900 + '"DROP TABLE t",' * 50 + '"x"' + "]" * 900,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "SELECT " + "(" * 5000,
    ")" * 5000 + "DELETE FROM t",
    "'" * 10_001 + "DROP TABLE t",
    '"' * 10_001,
    "`" * 5000 + " DROP TABLE t",
    "$$" * 5000 + "$tag$ DROP TABLE t $tag",
    "/*" * 5000 + "*/" * 10,
    "-- " * 5000 + "\nDROP TABLE t",
    "%" * 5000 + "%25" * 2000 + "%u002e" * 1000,
    "&#" * 5000 + "&#x110000;&#99999999999;",
    "\\u" * 5000 + "\\x" * 5000,
    "{{" * 20_000,
    "at]" * 20_000,
    "a" * 200_000,
    "9" * 200_000,
    "-----BEGIN " * 5000,
    "ＤＲＯＰ　ＴＡＢＬＥ　ｔ；" * 1000,
    "a=1&" * 20_000,
    "q=DROP%20TABLE%20t&branch=%3Bid&file=..%2f..%2fetc",
    "\u202e\u2066" * 5000 + "4111\u200b1111\u200b1111\u200b1111",
    "x" * (MAX_SCAN_BYTES + 1),
    "GO\n" * 5000,
    "BEGIN " * 5000 + "DROP TABLE t; END",
    "EXEC('" + "EXEC(''" * 200 + "DROP TABLE t" + "'')" * 200 + "')",
]
EVERYTHING = AnalyzerConfig(
    sql=True,
    sql_fields=(),
    shell_fields=(parse_field_path("branch"), parse_field_path("a[*]"), parse_field_path("q")),
    path_fields=(parse_field_path("file"), parse_field_path("a[*].b")),
    record_checks=(check("a[*].b", 0.5), check("r", 0.5)),
)
CONFIGS = [
    DEFAULT_CONFIG,
    EVERYTHING,
    AnalyzerConfig(sql=True, sql_fields=(parse_field_path("q"), parse_field_path("a[*]"))),
]


def assert_findings(found: object) -> None:
    assert isinstance(found, tuple)
    assert all(isinstance(f, Finding) and f.severity in SEVERITIES for f in found)
    assert all(isinstance(f.location, str) and isinstance(f.detail, str) for f in found)


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_never_raise(text: str) -> None:
    for config in CONFIGS:
        assert_findings(analyze(text, config=config))
        assert_findings(analyze(text, destination_tags=("sql",), config=config))
    for direct in (analyze_sql, analyze_shell, analyze_path):
        assert isinstance(direct(text, "payload"), list)
    assert isinstance(analyze_pii(text), list)
    assert isinstance(mask_pii(text[:20_000]), str)


# Fragments an attacker would combine: SQL, PII, templates, shell, paths, encodings, JSON
# syntax, control characters and lone surrogates.
FRAGMENTS = [
    "DROP", "TABLE", "DELETE FROM t", "UPDATE t SET a=1", "WHERE", "1=1", " OR ", "(", ")",
    ";", "GO", "BEGIN", "END", "EXEC('", "'", '"', "`", "$$", "$a$", "/*", "*/", "/*!", "--",
    "\n", "\r", "\t", " ", "\x00", "\ud800", "\udfff", "\u200b", "\u2212", "４", "．",
    "123-45-6789", "4111 1111 1111 1111", "DE89370400440532013000", "a@b.co", "[at]",
    "AKIAIOSFODNN7EXAMPLE", "-----BEGIN RSA PRIVATE KEY-----", "{{x}}", "${", "%(", "[[",
    "%2e%2e%2f", "%25", "%u002e", "%c0%ae", "\\x2e", "\\u0034", "&#52;", "&amp;", "../",
    "C:\\", "~", "|", "&&", "$(id)", "-o", "[", "]", "{", "}", ",", ":", "\\",
]  # fmt: skip


def random_text(rng: random.Random) -> str:
    parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 60))]
    if rng.random() < 0.3:
        parts.append(rng.choice(FRAGMENTS) * rng.randint(100, 3000))  # a long run
    if rng.random() < 0.2:
        parts.append("".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(1, 50))))
    return "".join(parts)


def random_json(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 6 or roll < 0.4:
        return random_text(rng) if rng.random() < 0.8 else rng.choice([1, -2.5, None, True])
    if roll < 0.7:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    keys = ["a", "b", "q", "r", "branch", "file", random_text(rng)[:10]]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def test_random_inputs_never_raise() -> None:
    """Property: analyze() returns findings for any text and any JSON (seeded, bounded:
    hypothesis is not a dependency of this project)."""
    rng = random.Random(918)
    for _ in range(300):
        if rng.random() < 0.5:
            text = random_text(rng)
        else:
            text = json.dumps(random_json(rng), ensure_ascii=rng.random() < 0.5)
        config = rng.choice(CONFIGS)
        tags = ("sql",) if rng.random() < 0.5 else ()
        assert_findings(analyze(text, destination_tags=tags, config=config))


def test_a_large_form_body_is_not_parsed_and_field_checks_fail_closed() -> None:
    config = AnalyzerConfig(pii=False, templates=False, shell_fields=(parse_field_path("a"),))
    small = "a=main&" + "b=1&" * 100
    assert analyze(small, config=config) == ()
    large = "a=main&" + "b=1&" * (MAX_FORM_CHARS // 4)
    assert kinds(analyze(large, config=config)) == {"shell.unchecked"}
