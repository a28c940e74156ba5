"""Undoing Content-Transfer-Encoding piece by piece, for parts too large to hold in memory."""

from __future__ import annotations

import binascii
import re

from webmail.mail.body import decode_transfer

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
# A quoted-printable line with no line break for this long is no text a mailer wrote; decode it
# in pieces anyway rather than buffer a whole attachment.
_MAX_QP_LINE = 64 * 1024


class TransferDecoder:
    """Feed encoded pieces in order, get decoded bytes out; the same result as decode_transfer
    on the whole, including its leniency with damaged base64."""

    def __init__(self, encoding: str) -> None:
        self.encoding = (encoding or "").lower()
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            # RFC 2045 §6.8: anything outside the alphabet is ignored, '=' included (see
            # decode_transfer); decode whole 4-character quanta and keep the rest.
            self.pending += _NOT_BASE64.sub(b"", data)
            whole = len(self.pending) - len(self.pending) % 4
            ready, self.pending = self.pending[:whole], self.pending[whole:]
            return binascii.a2b_base64(ready) if ready else b""
        if self.encoding == "quoted-printable":
            # RFC 2045 §6.7: an escape or a soft line break never spans a line end, so
            # complete lines decode the same alone as in the whole body.
            self.pending += data
            cut = self.pending.rfind(b"\n") + 1
            if not cut and len(self.pending) > _MAX_QP_LINE:
                escape = self.pending.rfind(b"=", len(self.pending) - 2)
                cut = escape if escape != -1 else len(self.pending)
            ready, self.pending = self.pending[:cut], self.pending[cut:]
            return decode_transfer(ready, self.encoding) if ready else b""
        return data

    def finish(self) -> bytes:
        """What is left once the last piece has been fed."""
        rest, self.pending = self.pending, b""
        if not rest:
            return b""
        return decode_transfer(rest, self.encoding)
