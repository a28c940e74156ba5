"""Decoding a part piece by piece gives exactly what decoding it whole gives."""

from __future__ import annotations

import base64
import quopri
import random

import pytest

from webmail.mail.body import decode_transfer
from webmail.mail.transfer import TransferDecoder

PAYLOAD = bytes(random.Random(7).randrange(256) for _ in range(200_000))


def pieces(data: bytes, seed: int):
    rng = random.Random(seed)
    position = 0
    while position < len(data):
        size = rng.choice([1, 2, 3, 5, 76, 77, 1000, 65_536])
        yield data[position : position + size]
        position += size


def decode_in_pieces(data: bytes, encoding: str, seed: int) -> bytes:
    decoder = TransferDecoder(encoding)
    out = b"".join(decoder.feed(piece) for piece in pieces(data, seed))
    return out + decoder.finish()


@pytest.mark.parametrize("seed", range(5))
def test_base64_in_pieces_equals_the_original(seed):
    encoded = base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n")
    assert decode_in_pieces(encoded, "base64", seed) == PAYLOAD


@pytest.mark.parametrize(
    "damaged",
    [
        b"SGVsbG8g!!d29y*bGQ\r\n",  # junk inside
        b"SGVsbG8gd29ybGQ",  # padding missing
        b"SGVsbG8gd29ybG",  # cut short
        b"SGVs=bG8g\r\nd29y\r\nbGQ=\r\n",  # padding in the middle
        b"",
    ],
)
def test_damaged_base64_decodes_as_decode_transfer_does(damaged):
    for seed in range(3):
        assert decode_in_pieces(damaged, "BASE64", seed) == decode_transfer(damaged, "base64")


@pytest.mark.parametrize("seed", range(5))
def test_quoted_printable_in_pieces_equals_the_original(seed):
    text = ("Café crème =, tabs\t and trailing spaces   \r\n" * 3000).encode()
    encoded = quopri.encodestring(text.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    assert decode_in_pieces(encoded, "quoted-printable", seed) == decode_transfer(
        encoded, "quoted-printable"
    )


def test_a_quoted_printable_line_without_end_is_decoded_in_pieces_too():
    encoded = b"=41" * 100_000 + b"=\r\nend"
    assert decode_in_pieces(encoded, "quoted-printable", 1) == b"A" * 100_000 + b"end"


@pytest.mark.parametrize("encoding", ["7bit", "8bit", "binary", "", "x-uuencode"])
def test_other_encodings_pass_through(encoding):
    assert decode_in_pieces(PAYLOAD, encoding, 3) == PAYLOAD
