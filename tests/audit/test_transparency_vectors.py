"""Known-answer tests of the Merkle tree, the proofs, Ed25519 and the signed-note format.

The tree and proofs are checked against the reference vectors every RFC 6962 implementation
shares: the leaves, tree heads and proofs of Certificate Transparency's C++ ``merkle_tree_test.cc``
and of Trillian / transparency-dev ``merkle`` (``proof/verify_test.go``: ``inclusionProofs``,
``consistencyProofs``, ``roots``, ``leaves``; leaf numbers there are 1-based). Ed25519 against
RFC 8032 §7.1 (TEST 1 and TEST 2); the signed-note format against the example of
``golang.org/x/mod/sumdb/note`` (the package documentation's PeterNeumann note), which C2SP
signed-note describes. A tree that no other implementation agrees with proves nothing to anyone.
"""

from __future__ import annotations

import base64
import itertools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import offline_verifier as tlog

# The eight leaves of the reference tree (hex of the leaf data).
LEAVES = [
    bytes.fromhex(value)
    for value in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
# MTH of the first n leaves, n = 0..8.
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, 0-based; tree size; audit path)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, consistency proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
LEAF_HASHES = [tlog.leaf_hash(leaf) for leaf in LEAVES]


def _hex(values):
    return [value.hex() for value in values]


def _unhex(values):
    return [bytes.fromhex(value) for value in values]


def test_tree_heads_match_rfc_6962_reference_roots():
    """Leaf 0x00 and node 0x01 domain separation and the split at the largest power of two."""
    for size in range(len(LEAVES) + 1):
        assert tlog.root_of(LEAF_HASHES[:size]).hex() == ROOTS[size], size
    assert tlog.leaf_hash(b"").hex() == ROOTS[1]  # SHA-256(0x00)


def test_the_frontier_reaches_the_same_root_at_every_size():
    frontier: list[bytes] = []
    for size, value in enumerate(LEAF_HASHES):
        tlog.frontier_append(frontier, size, value)
        assert len(frontier) == bin(size + 1).count("1")
        assert tlog.frontier_root(frontier).hex() == ROOTS[size + 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference_and_verify(index, size, path):
    subtree = tlog.list_hasher(LEAF_HASHES)
    assert _hex(tlog.inclusion_proof(index, size, subtree)) == path
    tlog.verify_inclusion(index, size, LEAF_HASHES[index], _unhex(path), bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_and_verify(old, new, path):
    assert _hex(tlog.consistency_proof(old, new, tlog.list_hasher(LEAF_HASHES))) == path
    tlog.verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), _unhex(path))


def test_consistency_proofs_come_from_the_old_frontier_and_the_new_leaves_alone():
    """What the sealer relies on: it keeps the frontier per checkpoint and never re-reads old events."""
    leaves = [tlog.leaf_hash(bytes([number, number * 7 % 256])) for number in range(70)]
    for old, new in itertools.combinations(range(71), 2):
        frontier: list[bytes] = []
        for size, value in enumerate(leaves[:old]):
            tlog.frontier_append(frontier, size, value)
        from_frontier = tlog.consistency_proof(old, new, tlog.frontier_hasher(old, frontier, leaves[old:new]))
        assert from_frontier == tlog.consistency_proof(old, new, tlog.list_hasher(leaves)), (old, new)
        tlog.verify_consistency(old, new, tlog.root_of(leaves[:old]), tlog.root_of(leaves[:new]), from_frontier)


def test_every_inclusion_proof_of_every_tree_shape_verifies_and_a_wrong_one_does_not():
    leaves = [tlog.leaf_hash(bytes([number])) for number in range(33)]
    for size in range(1, 34):
        root = tlog.root_of(leaves[:size])
        for index in range(size):
            path = tlog.inclusion_proof(index, size, tlog.list_hasher(leaves))
            tlog.verify_inclusion(index, size, leaves[index], path, root)
            if size > 1:
                with pytest.raises(tlog.VerificationError):
                    tlog.verify_inclusion((index + 1) % size, size, leaves[index], path, root)


def _flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 8]) + value[1:]


@pytest.mark.parametrize(
    ("description", "change"),
    [
        ("index - 1", lambda index, size, path, root: (index - 1, size, path, root)),
        ("index + 1", lambda index, size, path, root: (index + 1, size, path, root)),
        ("size * 2", lambda index, size, path, root: (index, size * 2, path, root)),
        ("size // 2", lambda index, size, path, root: (index, size // 2, path, root)),
        ("empty root", lambda index, size, path, root: (index, size, path, tlog.EMPTY_ROOT)),
        ("trailing root", lambda index, size, path, root: (index, size, [*path, root], root)),
        ("preceding root", lambda index, size, path, root: (index, size, [root, *path], root)),
        ("a flipped bit", lambda index, size, path, root: (index, size, [_flip(path[0]), *path[1:]], root)),
        ("a removed hash", lambda index, size, path, root: (index, size, path[:-1], root)),
        ("a short hash", lambda index, size, path, root: (index, size, [path[0][:31], *path[1:]], root)),
    ],
)
def test_corrupted_inclusion_proofs_are_refused(description, change):
    """The corruptions of transparency-dev's ``corruptInclusionProof``."""
    index, size, path = INCLUSION[2]
    arguments = change(index, size, _unhex(path), bytes.fromhex(ROOTS[size]))
    with pytest.raises(tlog.VerificationError):
        tlog.verify_inclusion(arguments[0], arguments[1], LEAF_HASHES[index], arguments[2], arguments[3])


@pytest.mark.parametrize(
    ("description", "change"),
    [
        ("old - 1", lambda old, new, r1, r2, path: (old - 1, new, r1, r2, path)),
        ("old + 1", lambda old, new, r1, r2, path: (old + 1, new, r1, r2, path)),
        ("new * 2", lambda old, new, r1, r2, path: (old, new * 2, r1, r2, path)),
        ("swapped roots", lambda old, new, r1, r2, path: (old, new, r2, r1, path)),
        ("empty proof", lambda old, new, r1, r2, path: (old, new, r1, r2, [])),
        ("trailing root", lambda old, new, r1, r2, path: (old, new, r1, r2, [*path, r2])),
        ("preceding hash", lambda old, new, r1, r2, path: (old, new, r1, r2, [path[0], *path])),
        ("truncated", lambda old, new, r1, r2, path: (old, new, r1, r2, path[:-1])),
        ("a flipped bit", lambda old, new, r1, r2, path: (old, new, r1, r2, [*path[:-1], _flip(path[-1])])),
        ("shrinking", lambda old, new, r1, r2, path: (new, old, r2, r1, path)),
    ],
)
def test_corrupted_consistency_proofs_are_refused(description, change):
    """The corruptions of transparency-dev's ``corruptConsistencyProof``."""
    old, new, path = CONSISTENCY[2]
    arguments = change(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), _unhex(path))
    with pytest.raises(tlog.VerificationError):
        tlog.verify_consistency(*arguments)


def test_the_same_size_with_another_root_is_a_fork():
    with pytest.raises(tlog.VerificationError, match="forked"):
        tlog.verify_consistency(5, 5, bytes.fromhex(ROOTS[5]), bytes.fromhex(ROOTS[4]), [])


# RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72).
RFC_8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC_8032)
def test_ed25519_matches_rfc_8032(secret, public, message, signature):
    private_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert tlog.public_key_bytes(private_key).hex() == public
    assert private_key.sign(bytes.fromhex(message)).hex() == signature


# golang.org/x/mod/sumdb/note, package documentation: the signed note of PeterNeumann.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _go_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert raw[0] == tlog.ED25519_TYPE
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_signed_notes_match_the_go_sumdb_note_example_byte_for_byte():
    private_key = _go_private_key()
    assert tlog.verifier_key("PeterNeumann", tlog.public_key_bytes(private_key)) == GO_VERIFIER
    assert tlog.sign_note(GO_TEXT, name="PeterNeumann", private_key=private_key) == GO_NOTE
    assert tlog.open_note(GO_NOTE, tlog.parse_verifier_key(GO_VERIFIER)) == GO_TEXT


def test_a_changed_note_or_another_key_is_refused():
    verifier = tlog.parse_verifier_key(GO_VERIFIER)
    with pytest.raises(tlog.VerificationError, match="not valid"):
        tlog.open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)
    other = Ed25519PrivateKey.generate()
    stranger = tlog.parse_verifier_key(tlog.verifier_key("PeterNeumann", tlog.public_key_bytes(other)))
    with pytest.raises(tlog.VerificationError, match="no signature"):
        tlog.open_note(GO_NOTE, stranger)
    with pytest.raises(tlog.VerificationError, match="hash does not match"):
        tlog.parse_verifier_key(GO_VERIFIER.replace("c74f20a3", "c74f20a4"))


def test_a_checkpoint_is_the_documented_text_and_round_trips():
    private_key = _go_private_key()
    checkpoint = tlog.Checkpoint(
        origin="example.org/audit", size=8, root=bytes.fromhex(ROOTS[8]), time="2026-12-02T13:00:00.000000Z"
    )
    note = tlog.sign_checkpoint(checkpoint, private_key=private_key)
    body, signature_line = note.split("\n\n")
    assert body.split("\n") == [
        "example.org/audit",
        "8",
        base64.b64encode(bytes.fromhex(ROOTS[8])).decode(),
        "time 2026-12-02T13:00:00.000000Z",
    ]
    assert signature_line.startswith("\u2014 example.org/audit ")
    verifier = tlog.parse_verifier_key(tlog.verifier_key("example.org/audit", tlog.public_key_bytes(private_key)))
    assert tlog.open_checkpoint(note, verifier) == checkpoint
    with pytest.raises(tlog.VerificationError):
        tlog.open_checkpoint(note.replace("\n8\n", "\n9\n"), verifier)


def test_a_verifier_key_whose_base64_holds_a_plus_parses():
    """transparency-dev/formats ``note/note_cosigv1_test.go``: the base64 of this key holds a '+'."""
    verifier = tlog.parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert verifier.name == "TEST"
