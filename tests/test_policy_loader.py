"""Loading policy files and directories: ids match file names, the first bad file stops."""

from pathlib import Path

import pytest

from gate_proxy.core.policy import IntentFacts, PolicyError, RateCounts, evaluate
from gate_proxy.loaders.policy_file import MAX_POLICY_BYTES, load_policy_dir, load_policy_file

REPO_POLICIES = Path(__file__).resolve().parents[1] / "policies"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_repository_policies_load() -> None:
    policies = load_policy_dir(REPO_POLICIES)
    assert sorted(policies) == [
        "blog-publish",
        "crm-low-risk",
        "finance-high-risk",
        "schema-checked-email",
        "support-reply",
    ]
    for policy_id, policy in policies.items():
        assert policy.source == f"{policy_id}.yaml"


@pytest.mark.parametrize(
    ("policy_id", "facts", "rates", "status", "reason"),
    [
        ("support-reply", {"destination": "zendesk.reply", "payload": "Thank you, resolved."},
         None, "approved", "approved_by_policy"),
        ("support-reply", {"destination": "zendesk.reply", "payload": "Refund GUARANTEED"},
         None, "blocked", "blocked_term_detected"),
        ("crm-low-risk", {"destination": "hubspot.contacts", "payload": "./leads.csv",
                          "record_count": 250},
         None, "pending_approval", "record_threshold_exceeded"),
        ("finance-high-risk", {"destination": "stripe.refund", "payload": "refund"},
         None, "pending_approval", "manual_review_required"),
        ("finance-high-risk", {"destination": "stripe.charge", "payload": "charge"},
         None, "blocked", "destination_not_allowed"),
        ("schema-checked-email", {"destination": "loops.send", "environment": "development",
                                  "payload": '{"to": "a@b.co", "amount": 3}'},
         RateCounts(0, 0), "approved", "approved_by_policy"),
        ("schema-checked-email", {"destination": "loops.send", "environment": "production",
                                  "payload": '{"to": "a@b.co", "amount": 3}'},
         RateCounts(0, 0), "pending_approval", "manual_review_required"),
        ("blog-publish", {"destination": "cms.publish", "payload": "# Post"},
         None, "pending_approval", "manual_review_required"),
    ],
)  # fmt: skip
def test_repository_policies_decide_like_the_seed(
    policy_id: str, facts: dict[str, object], rates: RateCounts | None, status: str, reason: str
) -> None:
    policy = load_policy_dir(REPO_POLICIES)[policy_id]
    decision = evaluate(policy, IntentFacts(**facts), rates)  # type: ignore[arg-type]
    assert (decision.status, decision.reason_code) == (status, reason)


def test_load_policy_file_checks_id_matches_stem(tmp_path: Path) -> None:
    path = write(tmp_path, "support.yaml", "# comment\nid: other\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert (caught.value.file, caught.value.line, caught.value.field) == ("support.yaml", 2, "id")
    assert str(caught.value).startswith("support.yaml:2: id: ")


def test_load_policy_file_accepts_yml(tmp_path: Path) -> None:
    assert load_policy_file(write(tmp_path, "short.yml", "id: short\n")).source == "short.yml"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeid: x\n", "not UTF-8"),
        (b"id: bad\n" + b"#" * MAX_POLICY_BYTES, "larger than"),
        (b"", "empty"),
    ],
)
def test_load_policy_file_rejects_unusable_files(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy_file(path)
    assert caught.value.file == "bad.yaml"


def test_load_policy_file_missing(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read") as caught:
        load_policy_file(tmp_path / "absent.yaml")
    assert caught.value.file == "absent.yaml"


def test_load_policy_dir_reads_yaml_and_yml_only(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: a\n")
    write(tmp_path, "b.yml", "id: b\n")
    write(tmp_path, "notes.txt", "not a policy")
    write(tmp_path, "c.yaml.bak", "id: nope\n")
    write(tmp_path, ".hidden.yaml", "id: broken: [\n")  # editor leftovers are skipped
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "d.yaml", "id: d\n")  # not recursive
    assert sorted(load_policy_dir(tmp_path)) == ["a", "b"]


def test_load_policy_dir_stops_at_first_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: a\n")
    write(tmp_path, "b.yaml", "id: b\nrequire_aproval: always\n")
    write(tmp_path, "c.yaml", "id: c\nexpiry_minutes: 0\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_dir(tmp_path)
    error = caught.value
    assert (error.file, error.line, error.field) == ("b.yaml", 2, "require_aproval")


def test_load_policy_dir_rejects_duplicate_ids(tmp_path: Path) -> None:
    write(tmp_path, "same.yaml", "id: same\n")
    write(tmp_path, "same.yml", "id: same\n")
    with pytest.raises(PolicyError, match="duplicate policy id 'same'") as caught:
        load_policy_dir(tmp_path)
    assert caught.value.file == "same.yml"
    assert "same.yaml" in caught.value.message


def test_load_policy_dir_rejects_directory_named_like_a_policy(tmp_path: Path) -> None:
    (tmp_path / "odd.yaml").mkdir()
    with pytest.raises(PolicyError, match="not a regular file"):
        load_policy_dir(tmp_path)


def test_load_policy_dir_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy directory not found"):
        load_policy_dir(tmp_path / "nope")


def test_empty_directory_loads_no_policies(tmp_path: Path) -> None:
    assert load_policy_dir(tmp_path) == {}
