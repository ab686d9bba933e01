"""Where keys come from: generated on one box, mounted files in a fleet, never both."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gate_proxy import key_material
from gate_proxy.key_material import KeyMaterialError
from gate_proxy.proxy.ca import CA_KEY_AND_CERT, ensure_ca


def pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_one_box_generates_what_it_lacks_once(tmp_path: Path) -> None:
    first = key_material.admin_key(tmp_path, {})
    again = key_material.admin_key(tmp_path, {})
    assert first.created and not again.created and first.value == again.value
    assert key_material.signer(tmp_path, {}).key_id == key_material.signer(tmp_path, {}).key_id
    assert (tmp_path / "admin.key").stat().st_mode & 0o777 == 0o600


def test_a_fleet_never_generates(tmp_path: Path) -> None:
    for load, variable in (
        (key_material.admin_key, "GATE_ADMIN_KEY_FILE"),
        (key_material.signer, "GATE_SIGNING_KEY_FILE"),
        (key_material.install_ca, "GATE_CA_FILE"),
    ):
        with pytest.raises(KeyMaterialError, match=variable):
            load(tmp_path, {}, shared=True)
    assert list(tmp_path.iterdir()) == []


def test_mounted_files_are_used_as_they_are(tmp_path: Path) -> None:
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    (mounted / "admin").write_text("gate_sk_" + "a" * 40 + "\n")
    signing = Ed25519PrivateKey.generate()
    (mounted / "signing").write_bytes(pem(signing))
    ca_source = ensure_ca(tmp_path / "made")
    (mounted / "ca").write_bytes(ca_source.key_and_cert_path.read_bytes())
    for path in mounted.iterdir():
        path.chmod(0o440)
    environ = {
        "GATE_ADMIN_KEY_FILE": str(mounted / "admin"),
        "GATE_SIGNING_KEY_FILE": str(mounted / "signing"),
        "GATE_CA_FILE": str(mounted / "ca"),
    }
    data, certs = tmp_path / "data", tmp_path / "certs"
    assert key_material.admin_key(data, environ, shared=True).value == "gate_sk_" + "a" * 40
    loaded = key_material.signer(data, environ, shared=True)
    assert loaded.public_pem() == key_material.signer(data, environ).public_pem()
    key_material.install_ca(certs, environ, shared=True)
    installed = certs / CA_KEY_AND_CERT
    assert installed.read_bytes() == (mounted / "ca").read_bytes()
    assert installed.stat().st_mode & 0o777 == 0o600
    assert ensure_ca(certs).cert_pem == ca_source.cert_pem
    assert not data.exists()  # nothing generated next to the mounted keys
    assert all(path.stat().st_mode & 0o777 == 0o440 for path in mounted.iterdir())


@pytest.mark.parametrize(
    ("variable", "content", "message"),
    [
        ("GATE_ADMIN_KEY_FILE", b"short\n", "not an admin key"),
        ("GATE_ADMIN_KEY_FILE", b"gate_sk_aaaaaaaaaaaa bbbbbbbbbbbbbbb\n", "not an admin key"),
        ("GATE_SIGNING_KEY_FILE", b"not a key", "not an Ed25519 private key"),
        ("GATE_SIGNING_KEY_FILE", pem(ec.generate_private_key(ec.SECP256R1())), "Ed25519"),
        ("GATE_CA_FILE", b"-----BEGIN NOTHING-----", "private key and its certificate"),
    ],
)
def test_a_bad_mounted_file_is_named(
    tmp_path: Path, variable: str, content: bytes, message: str
) -> None:
    path = tmp_path / "mounted"
    path.write_bytes(content)
    load = {
        "GATE_ADMIN_KEY_FILE": key_material.admin_key,
        "GATE_SIGNING_KEY_FILE": key_material.signer,
        "GATE_CA_FILE": key_material.install_ca,
    }[variable]
    with pytest.raises(KeyMaterialError, match=message) as refused:
        load(tmp_path / "dir", {variable: str(path)})
    assert variable in str(refused.value)
    assert b"PRIVATE" not in str(refused.value).encode()


def test_a_ca_whose_key_does_not_match_its_certificate_is_refused(tmp_path: Path) -> None:
    one, other = ensure_ca(tmp_path / "one"), ensure_ca(tmp_path / "other")
    other_key = other.key_and_cert_path.read_bytes().split(b"-----BEGIN CERTIFICATE-----")[0]
    mixed = tmp_path / "mixed.pem"
    mixed.write_bytes(other_key + one.cert_pem)
    with pytest.raises(KeyMaterialError, match="does not match"):
        key_material.install_ca(tmp_path / "certs", {"GATE_CA_FILE": str(mixed)})


def test_a_missing_named_file_is_fatal(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match=r"GATE_SIGNING_KEY_FILE=.*No such file"):
        key_material.signer(tmp_path, {"GATE_SIGNING_KEY_FILE": str(tmp_path / "nope")})
