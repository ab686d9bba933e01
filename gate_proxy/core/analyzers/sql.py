"""SQL analyzer: destructive and stacked statements, read with sqlparse. PURE.

Kinds (the names a policy's ``sql: {block: [...], require_approval: [...]}`` uses):

    drop                   DROP TABLE / DATABASE / SCHEMA / VIEW / INDEX / ...
    truncate               TRUNCATE [TABLE] name[, name ...]
    alter                  ALTER TABLE / DATABASE / USER / ...
    delete_without_where   DELETE without a WHERE clause, or with an always-true one (1=1)
    update_without_where   UPDATE ... SET without a WHERE clause, or with an always-true one
    stacked                more than one statement in one text ("SELECT 1; DROP TABLE x")

Evasions handled: keyword case (``dRoP``), any whitespace between keywords, comments
between keywords (``DROP/**/TABLE``, ``DROP -- x`` newline ``TABLE``), MySQL executable
comments (``/*!50000 DROP TABLE x*/`` runs its content, so it is read as code), CTEs in
front of the statement (``WITH a AS (...) DELETE FROM t``), and dynamic SQL: the string
literals of EXEC / EXECUTE / PREPARE statements are analysed as SQL too. Text inside
ordinary comments and string literals is not code and does not count.

Text over ``MAX_SQL_CHARS`` is not parsed: it yields ``sql.too_large``, which policy
evaluation treats as every kind (fail closed).
"""

import re
from collections.abc import Iterator
from typing import Final

import sqlparse
from sqlparse import sql as sqltypes
from sqlparse import tokens as T

from gate_proxy.core.analyzers.base import Finding

__all__ = ["KINDS", "MAX_SQL_CHARS", "analyze_sql"]

KINDS: Final = (
    "drop",
    "truncate",
    "alter",
    "delete_without_where",
    "update_without_where",
    "stacked",
)
MAX_SQL_CHARS: Final = 256 * 1024
_SEVERITY: Final = {
    "drop": "critical",
    "truncate": "critical",
    "alter": "high",
    "delete_without_where": "critical",
    "update_without_where": "high",
    "stacked": "high",
    "too_large": "high",
}
_DDL_OBJECTS: Final = frozenset(
    {
        "TABLE", "DATABASE", "SCHEMA", "VIEW", "INDEX", "SEQUENCE", "FUNCTION", "PROCEDURE",
        "TRIGGER", "USER", "ROLE", "TYPE", "EXTENSION", "MATERIALIZED", "TEMPORARY", "TEMP",
        "COLUMN", "CONSTRAINT", "DOMAIN", "POLICY", "OWNED", "SYSTEM", "TABLESPACE", "EVENT",
        "SERVER", "PACKAGE", "SYNONYM", "LOGIN", "IF", "UNIQUE", "CLUSTERED", "FOREIGN",
        "COLLATION", "RULE", "PUBLICATION", "SUBSCRIPTION", "EXTERNAL", "GLOBAL", "VIRTUAL",
    }
)  # fmt: skip
_DYNAMIC: Final = frozenset({"EXEC", "EXECUTE", "PREPARE", "SP_EXECUTESQL"})
_MYSQL_EXECUTABLE = re.compile(r"/\*!(?:\d{5,6})?(.*?)\*/", re.DOTALL)
_STRING_TYPES = (T.Literal.String.Single, T.Literal.String.Symbol)
_MAX_DEPTH = 2


def analyze_sql(text: str, location: str) -> list[Finding]:
    """Findings for one SQL text found at `location` (a field path or "payload")."""
    if len(text) > MAX_SQL_CHARS:
        return [
            Finding(
                "sql.too_large",
                _SEVERITY["too_large"],
                location,
                f"{len(text)} characters is over the {MAX_SQL_CHARS} the analyzer parses",
            )
        ]
    findings: dict[str, Finding] = {}
    for kind, detail in _kinds(text, 0):
        findings.setdefault(kind, Finding(f"sql.{kind}", _SEVERITY[kind], location, detail))
    return list(findings.values())


def _kinds(text: str, depth: int) -> Iterator[tuple[str, str]]:
    if "/*!" in text:
        # MySQL runs the content of /*! ... */: it is code, not a comment.
        text = _MYSQL_EXECUTABLE.sub(lambda m: f" {m.group(1)} ", text)
    statements = [s for s in sqlparse.parse(text) if _significant(s)]
    if len(statements) > 1:
        yield "stacked", f"{len(statements)} statements"
    for statement in statements:
        tokens = _significant(statement)
        yield from _statement_kinds(statement, tokens)
        if depth < _MAX_DEPTH and any(_upper(t) in _DYNAMIC for t in tokens):
            for token in tokens:
                if token.ttype in _STRING_TYPES:
                    for kind, detail in _kinds(_unquote(token.value), depth + 1):
                        yield kind, f"{detail} (inside dynamic SQL)"


def _significant(statement: sqltypes.Statement) -> list[sqltypes.Token]:
    return [
        t
        for t in statement.flatten()
        if not t.is_whitespace
        and t.ttype not in T.Comment
        and not (t.ttype is T.Punctuation and t.value == ";")
    ]


def _upper(token: sqltypes.Token) -> str:
    return token.value.upper()


def _verb_index(tokens: list[sqltypes.Token]) -> int | None:
    """Index of the statement's verb; a leading WITH ... AS (...) CTE is skipped."""
    if not tokens:
        return None
    if _upper(tokens[0]) != "WITH":
        return 0
    depth = 0
    for index, token in enumerate(tokens[1:], start=1):
        if token.ttype is T.Punctuation:
            depth += token.value == "("
            depth -= token.value == ")"
        elif depth == 0 and token.ttype in (T.Keyword.DML, T.Keyword.DDL):
            return index
    return None


def _statement_kinds(
    statement: sqltypes.Statement, tokens: list[sqltypes.Token]
) -> Iterator[tuple[str, str]]:
    index = _verb_index(tokens)
    if index is None:
        return
    verb = _upper(tokens[index])
    rest = tokens[index + 1 :]
    following = _upper(rest[0]) if rest else ""
    if verb == "DROP" and following in _DDL_OBJECTS:
        yield "drop", f"DROP {following}"
    elif verb == "ALTER" and following in _DDL_OBJECTS:
        yield "alter", f"ALTER {following}"
    elif verb == "TRUNCATE" and _truncate_target(rest):
        yield "truncate", "TRUNCATE"
    elif verb == "DELETE" and _is_delete(rest):
        problem = _where_problem(statement)
        if problem:
            yield "delete_without_where", f"DELETE {problem}"
    elif verb == "UPDATE" and any(_upper(t) == "SET" for t in rest):
        problem = _where_problem(statement)
        if problem:
            yield "update_without_where", f"UPDATE {problem}"


def _truncate_target(rest: list[sqltypes.Token]) -> bool:
    """TRUNCATE [TABLE] [ONLY] a[, b ...] [options]: names separated by commas.

    Prose ("Truncate the long text") has names one after another without commas.
    """
    names = [t for t in rest if _upper(t) not in {"TABLE", "ONLY"}]
    if not names or names[0].ttype not in (T.Name, T.Literal.String.Symbol, T.Keyword):
        return False
    expect_name = True
    for token in names:
        if token.ttype is T.Punctuation and token.value in ".,":
            expect_name = True
        elif token.ttype in (T.Name, T.Literal.String.Symbol, T.Name.Builtin):
            if not expect_name:
                return False
            expect_name = False
        elif token.ttype in T.Keyword:
            expect_name = False  # CASCADE, RESTART IDENTITY, ...
        else:
            return False
    return True


def _is_delete(rest: list[sqltypes.Token]) -> bool:
    if not rest:
        return False
    if any(_upper(t) == "FROM" for t in rest):
        return True
    # SQL Server's DELETE name [WHERE ...]
    return rest[0].ttype is T.Name and (len(rest) == 1 or _upper(rest[1]) == "WHERE")


_TAUTOLOGY = re.compile(
    r"""^(?:true|1|not\s*false|not\s*0
        |('[^']*'|"[^"]*"|-?\d+(?:\.\d+)?|[a-z_][\w.]*)\s*(?:=|==|<=|>=|is|like)\s*\1)$""",
    re.VERBOSE | re.IGNORECASE,
)


def _where_problem(statement: sqltypes.Statement) -> str | None:
    """ "without WHERE", "with an always-true WHERE", or None for a real condition."""
    where = next((t for t in statement.tokens if isinstance(t, sqltypes.Where)), None)
    if where is None:
        return "without WHERE"
    condition = " ".join(
        t.value for t in where.flatten() if not t.is_whitespace and t.ttype not in T.Comment
    )
    condition = re.sub(r"^where\s+", "", condition, flags=re.IGNORECASE)
    if any(_always_true(branch) for branch in _or_branches(condition)):
        return "with an always-true WHERE"
    return None


def _or_branches(condition: str) -> list[str]:
    """Split on top-level OR; an always-true branch makes the whole condition true."""
    branches, depth, start = [], 0, 0
    tokens = re.finditer(r"\(|\)|\bor\b|'[^']*'|\"[^\"]*\"", condition, re.IGNORECASE)
    for match in tokens:
        value = match.group(0)
        if value == "(":
            depth += 1
        elif value == ")":
            depth -= 1
        elif value.lower() == "or" and depth == 0:
            branches.append(condition[start : match.start()])
            start = match.end()
    branches.append(condition[start:])
    return branches


def _always_true(branch: str) -> bool:
    text = branch.strip()
    while text.startswith("(") and text.endswith(")"):
        inner = text[1:-1].strip()
        if any(_always_true(b) for b in _or_branches(inner)) and len(_or_branches(inner)) > 1:
            return True
        text = inner
    return _TAUTOLOGY.match(text) is not None


def _unquote(literal: str) -> str:
    quote = literal[:1]
    if quote in ("'", '"') and literal.endswith(quote) and len(literal) >= 2:
        return literal[1:-1].replace(quote * 2, quote)
    return literal
