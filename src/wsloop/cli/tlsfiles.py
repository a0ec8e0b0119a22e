"""Certificates and keys named on the command line, loaded with errors that
name the option and the file."""

from __future__ import annotations

import ssl

from .usage import UsageError

__all__ = ["load_chain", "load_verify"]


def _readable(flag: str, path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot read {flag} file {path!r}: {exc.strerror or exc}") from None


def load_chain(
    context: ssl.SSLContext, cert_flag: str, cert: str, key_flag: str, key: str | None
) -> None:
    """``context.load_cert_chain(cert, key)``; a missing file or a bad PEM
    is a one-line UsageError that names it."""
    _readable(cert_flag, cert)
    if key is not None:
        _readable(key_flag, key)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        files = f"{cert_flag} {cert!r}" + (f" and {key_flag} {key!r}" if key else "")
        hint = "" if key else f" (a {cert_flag} file without the key needs {key_flag})"
        raise UsageError(
            f"cannot load the certificate and key from {files}: {exc.reason or exc}{hint}"
        ) from None


def load_verify(context: ssl.SSLContext, flag: str, cafile: str) -> None:
    """``context.load_verify_locations(cafile)``, with errors naming the file."""
    _readable(flag, cafile)
    try:
        context.load_verify_locations(cafile)
    except ssl.SSLError as exc:
        raise UsageError(
            f"cannot load CA certificates from {flag} {cafile!r}: {exc.reason or exc}"
        ) from None
