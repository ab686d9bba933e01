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
front of the statement (``WITH a AS (...) DELETE FROM t``), statements inside a
``BEGIN ... END`` block, and dynamic SQL: the string literals of EXEC / EXECUTE / PREPARE
statements are analysed as SQL too. Text inside ordinary comments and string literals is
not code and does not count.

Bounded work. sqlparse's lexer and statement splitter are used, its grouping is not: the
grouping pass costs 10-20 µs per token, and raises ``SQLParseError`` past 10,000 tokens or
100 levels of nesting (``SELECT 1+1+...`` of 2 KB is enough). The one group the analysis
needs, the statement's WHERE clause, is found here in one linear pass over the tokens.
Every analysis runs against a ``SqlBudget`` (characters, sqlparse tokens, comment and
dollar-quote delimiters) shared by all the texts of one payload; past any of them the text
yields ``sql.too_large``, which policy evaluation treats as every kind (fail closed). An
unexpected error inside sqlparse yields the same finding: this analyzer never raises.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from sqlparse import tokens as T
from sqlparse.engine import FilterStack
from sqlparse.sql import Token

from gate_proxy.core.analyzers.base import Finding, JsonPath

__all__ = [
    "KINDS",
    "MAX_SQL_CHARS",
    "MAX_SQL_DELIMITERS",
    "MAX_SQL_TOKENS",
    "SqlBudget",
    "SqlTooLarge",
    "analyze_sql",
    "could_match",
    "finding",
    "sql_kinds",
    "too_large",
]

KINDS: Final = (
    "drop",
    "truncate",
    "alter",
    "delete_without_where",
    "update_without_where",
    "stacked",
)
# Limits per payload (all its SQL texts together). Measured on the 2-core benchmark
# machine (bench/bench_analyzers.py --adversarial): sqlparse lexes and splits at 3-12 µs
# per token, worst for one-character tokens (";;;", "((("), so 2,560 tokens cost at most
# ~30-45 ms; its pre-pass over "$" and "/*" delimiters costs ~0.6 µs each. Characters bound
# the C-speed passes (case folding, whitespace, searches) and the JSON walk.
MAX_SQL_CHARS: Final = 256 * 1024
MAX_SQL_TOKENS: Final = 2560
MAX_SQL_DELIMITERS: Final = 8192
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
# What ends a WHERE clause (sqlparse's ``sql.Where.M_CLOSE``), whitespace normalised.
_WHERE_END: Final = frozenset(
    {"ORDER BY", "GROUP BY", "LIMIT", "UNION", "UNION ALL", "EXCEPT", "INTERSECT", "HAVING",
     "RETURNING", "INTO"}
)  # fmt: skip
# Every finding needs one of these in the upper-cased text (sqlparse reads keywords with
# str.upper(), so this sees what it sees); "GO" splits statements only in upper case.
_TRIGGER: Final = re.compile(r"DROP|ALTER|TRUNCATE|DELETE|UPDATE|;")
_STRING_TYPES = (T.Literal.String.Single, T.Literal.String.Symbol)
_MAX_DEPTH = 2
# sqlparse lexes every whitespace character as its own token: runs are cut to their first
# character (kept: "# " starts a MySQL comment, "#\t" does not), and whitespace after a
# newline is dropped (the newline stays: it ends a "--" comment).
_HORIZONTAL_RUN = re.compile(r"([^\S\r\n])[^\S\r\n]+")
_AFTER_NEWLINE = re.compile(r"\n\s+")


class SqlTooLarge(Exception):
    """The payload's SQL is over a `SqlBudget` limit (internal: becomes a finding)."""


@dataclass(slots=True)
class SqlBudget:
    """Work left for one payload's SQL analysis; every analyzed text spends from it."""

    chars: int = MAX_SQL_CHARS
    tokens: int = MAX_SQL_TOKENS
    delimiters: int = MAX_SQL_DELIMITERS

    def spend_chars(self, text: str) -> None:
        self.chars -= len(text)
        if self.chars < 0:
            raise SqlTooLarge(f"over the {MAX_SQL_CHARS} characters the analyzer reads")

    def spend_delimiters(self, text: str) -> None:
        if "$" in text or "*" in text:
            self.delimiters -= text.count("$") + text.count("/*") + text.count("*/")
            if self.delimiters < 0:
                raise SqlTooLarge(f"over {MAX_SQL_DELIMITERS} '$' and comment delimiters")

    def metered(self, stream: Iterable[tuple[object, str]]) -> Iterator[tuple[object, str]]:
        """A sqlparse preprocess filter: passes tokens through while the budget lasts."""
        for item in stream:
            self.tokens -= 1
            if self.tokens < 0:
                raise SqlTooLarge(f"over the {MAX_SQL_TOKENS} SQL tokens the analyzer reads")
            yield item


class _Meter:
    """Adapter: sqlparse calls ``process(stream)`` on each preprocess filter."""

    __slots__ = ("budget",)

    def __init__(self, budget: SqlBudget) -> None:
        self.budget = budget

    def process(self, stream: Iterable[tuple[object, str]]) -> Iterator[tuple[object, str]]:
        return self.budget.metered(stream)


def could_match(text: str) -> bool:
    """False when no kind can be found in `text` (cheap, C-speed); True says "parse it"."""
    return _TRIGGER.search(text.upper()) is not None or "GO" in text


def too_large(location: str | JsonPath, why: str) -> Finding:
    return Finding("sql.too_large", _SEVERITY["too_large"], str(location), why)


def finding(kind: str, location: str | JsonPath, detail: str) -> Finding:
    return Finding(f"sql.{kind}", _SEVERITY[kind], str(location), detail)


def sql_kinds(text: str, budget: SqlBudget) -> dict[str, str]:
    """{kind: detail} for one SQL text, first detail of each kind; never raises.

    Over `budget`, or any error inside the parser, is the kind ``too_large`` (with what was
    found before it).
    """
    kinds: dict[str, str] = {}
    try:
        budget.spend_chars(text)
        if not could_match(text):
            return kinds
        for kind, detail in _kinds(text, 0, budget):
            kinds.setdefault(kind, detail)
    except SqlTooLarge as error:
        kinds["too_large"] = f"{len(text)} characters: {error}"
    except Exception as error:  # sqlparse on hostile input; fail closed
        kinds["too_large"] = f"could not be analysed ({type(error).__name__})"
    return kinds


def analyze_sql(
    text: str, location: str | JsonPath, budget: SqlBudget | None = None
) -> list[Finding]:
    """Findings for one SQL text found at `location` (a field path or "payload").

    `budget` is shared by the texts of one payload (a fresh one if None). Never raises:
    over budget, or any error inside the parser, is a ``sql.too_large`` finding.
    """
    kinds = sql_kinds(text, SqlBudget() if budget is None else budget)
    return [finding(kind, location, detail) for kind, detail in kinds.items()]


def _mysql_executable(text: str) -> str:
    """MySQL runs the content of /*! ... */ (after an optional version): it is code.

    A loop rather than a lazy regex: ``/\\*!(.*?)\\*/`` rescans to the end of the text for
    every unclosed opener, quadratic on "/*!/*!/*!...".
    """
    parts: list[str] = []
    position = 0
    while (start := text.find("/*!", position)) >= 0:
        end = text.find("*/", start + 3)
        if end < 0:
            break  # no closer after this opener: no later opener has one either
        content_start = start + 3
        digits = len(text[content_start : content_start + 6]) - len(
            text[content_start : content_start + 6].lstrip("0123456789")
        )
        if digits >= 5:
            content_start += digits
        parts.append(text[position:start])
        parts.append(f" {text[content_start:end]} ")
        position = end + 2
    parts.append(text[position:])
    return "".join(parts)


def _lex(text: str, budget: SqlBudget) -> list[list[Token]]:
    """Statements of `text`, each as its significant tokens (";" kept)."""
    if "/*!" in text:
        text = _mysql_executable(text)
    text = _AFTER_NEWLINE.sub("\n", _HORIZONTAL_RUN.sub(r"\1", text))
    budget.spend_delimiters(text)
    stack = FilterStack()  # no grouping: see the module docstring
    stack.preprocess.append(_Meter(budget))
    statements = []
    for statement in stack.run(text):
        tokens = [t for t in statement.tokens if not t.is_whitespace and t.ttype not in T.Comment]
        if any(not _is_semicolon(t) for t in tokens):
            statements.append(tokens)
    return statements


def _is_semicolon(token: Token) -> bool:
    return token.ttype is T.Punctuation and token.value == ";"


def _pieces(tokens: list[Token]) -> list[list[Token]]:
    """A statement's parts: split at ";" and BEGIN, which sqlparse keeps in one statement
    inside a block (``BEGIN DROP TABLE x; END``) or parentheses."""
    pieces: list[list[Token]] = [[]]
    for token in tokens:
        if _is_semicolon(token) or (token.ttype is T.Keyword and _upper(token) == "BEGIN"):
            pieces.append([])
        else:
            pieces[-1].append(token)
    return [piece for piece in pieces if piece]


def _kinds(text: str, depth: int, budget: SqlBudget) -> Iterator[tuple[str, str]]:
    statements = _lex(text, budget)
    if len(statements) > 1:
        yield "stacked", f"{len(statements)} statements"
    for tokens in statements:
        pieces = _pieces(tokens)
        if len(statements) == 1:
            commands = [p for p in pieces if p[0].ttype in (T.Keyword.DML, T.Keyword.DDL)]
            if len(commands) > 1:
                yield "stacked", f"{len(commands)} statements in one block"
        for piece in pieces:
            yield from _statement_kinds(piece)
        if depth < _MAX_DEPTH and any(_upper(t) in _DYNAMIC for t in tokens):
            for token in tokens:
                if token.ttype in _STRING_TYPES:
                    inner = _unquote(token.value)
                    budget.spend_chars(inner)
                    for kind, detail in _kinds(inner, depth + 1, budget):
                        yield kind, f"{detail} (inside dynamic SQL)"


def _upper(token: Token) -> str:
    return token.value.upper()


def _normalized(token: Token) -> str:
    return " ".join(token.value.upper().split())  # "ORDER  BY" -> "ORDER BY"


def _verb_index(tokens: list[Token]) -> int | None:
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


def _statement_kinds(tokens: list[Token]) -> Iterator[tuple[str, str]]:
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
        problem = _where_problem(rest)
        if problem:
            yield "delete_without_where", f"DELETE {problem}"
    elif verb == "UPDATE" and any(_upper(t) == "SET" for t in rest):
        problem = _where_problem(rest)
        if problem:
            yield "update_without_where", f"UPDATE {problem}"


def _truncate_target(rest: list[Token]) -> bool:
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


def _is_delete(rest: list[Token]) -> bool:
    if not rest:
        return False
    if any(_upper(t) == "FROM" for t in rest):
        return True
    # SQL Server's DELETE name [WHERE ...]
    return rest[0].ttype is T.Name and (len(rest) == 1 or _upper(rest[1]) == "WHERE")


_TAUTOLOGY = re.compile(
    r"""^(?:true|0*[1-9]\d*(?:\.\d+)?|not\s*false|not\s*0
        |('[^']*'|"[^"]*"|-?\d+(?:\.\d+)?|[a-z_][\w.]*)\s*(?:=|==|<=|>=|is|like)\s*\1)$""",
    re.VERBOSE | re.IGNORECASE,
)
_DOT_SPACES = re.compile(r" ?\. ?")


def _where_problem(tokens: list[Token]) -> str | None:
    """ "without WHERE", "with an always-true WHERE", or None for a real condition.

    The WHERE clause is the one outside parentheses (sqlparse's grouping would have made
    it a ``Where``); it ends at ORDER BY, GROUP BY, LIMIT, UNION, ... or the statement.
    """
    depth, start = 0, None
    for index, token in enumerate(tokens):
        if token.ttype is T.Punctuation and token.value in "()":
            depth = depth + 1 if token.value == "(" else max(0, depth - 1)
        elif depth == 0 and token.ttype is T.Keyword and _upper(token) == "WHERE":
            start = index + 1
            break
    if start is None:
        return "without WHERE"
    depth, end = 0, len(tokens)
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.ttype is T.Punctuation and token.value in "()":
            depth = depth + 1 if token.value == "(" else max(0, depth - 1)
        elif depth == 0 and token.ttype in T.Keyword and _normalized(token) in _WHERE_END:
            end = index
            break
    if _always_true(tokens[start:end]):
        return "with an always-true WHERE"
    return None


def _always_true(condition: list[Token]) -> bool:
    """Is one OR-branch of the condition always true (at any depth of parentheses)?

    Iterative and linear: each token is looked at in one branch at each of its levels,
    and matching parentheses are found once, so deep nesting costs no recursion.
    """
    values = [t.value for t in condition]
    partner = _matching_parentheses(condition)
    pending = [(0, len(values))]
    while pending:
        start, end = pending.pop()
        while start < end and values[start] == "(" and partner.get(start) == end - 1:
            start, end = start + 1, end - 1  # strip parentheses around the whole branch
        branches = _or_branches(condition, partner, start, end)
        if len(branches) > 1:
            pending.extend(branches)
        elif start < end:
            text = _DOT_SPACES.sub(".", " ".join(values[start:end]))
            if _TAUTOLOGY.match(text):
                return True
    return False


def _matching_parentheses(tokens: list[Token]) -> dict[int, int]:
    partner: dict[int, int] = {}
    opened: list[int] = []
    for index, token in enumerate(tokens):
        if token.ttype is T.Punctuation:
            if token.value == "(":
                opened.append(index)
            elif token.value == ")" and opened:
                partner[opened.pop()] = index
    return partner


def _or_branches(
    tokens: list[Token], partner: dict[int, int], start: int, end: int
) -> list[tuple[int, int]]:
    """(start, end) of each top-level OR branch of tokens[start:end]."""
    branches: list[tuple[int, int]] = []
    index, branch_start = start, start
    while index < end:
        token = tokens[index]
        if token.ttype is T.Punctuation and token.value == "(" and index in partner:
            index = min(partner[index], end - 1) + 1  # skip the group
            continue
        if token.ttype in T.Keyword and _upper(token) == "OR":
            branches.append((branch_start, index))
            branch_start = index + 1
        index += 1
    branches.append((branch_start, end))
    return branches


def _unquote(literal: str) -> str:
    quote = literal[:1]
    if quote in ("'", '"') and literal.endswith(quote) and len(literal) >= 2:
        return literal[1:-1].replace(quote * 2, quote)
    return literal
