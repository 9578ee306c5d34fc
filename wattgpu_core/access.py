"""Who may write to the store from the app: uploads, removals, custom GPUs and LLMs, retraining.

On one person's machine (the embedded file) the app writes as ``app:<user>@<host>``. In team mode (the store is a
shared DuckLake, or ``$WATTGPU_TEAM`` is set) only a signed-in user may write (Streamlit's built-in OIDC login,
``st.login``, configured in ``.streamlit/secrets.toml``), and each batch records that user. A replica started with
``--read-only`` (``streamlit run app.py -- --read-only``) or ``$WATTGPU_READ_ONLY`` never writes: uploads then go
through the CLI. The pages pass ``st.user`` in as a plain mapping; this module never imports streamlit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .backend import cli_actor, resolve

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class WriteAccess:
    team: bool
    read_only: bool

    @classmethod
    def from_environment(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
                         ) -> WriteAccess:
        """From the app's command line (after ``--``) and environment; team mode also when the store is a lake."""
        argv = sys.argv[1:] if argv is None else argv
        environ = os.environ if environ is None else environ
        team = environ.get("WATTGPU_TEAM", "").strip().lower() in _TRUE
        if not team:
            try:
                team = resolve(environ.get("WATTGPU_DB") or None).is_lake
            except Exception:  # noqa: BLE001 - a bad store setting is reported when the store is opened
                team = True
        read_only = "--read-only" in argv or environ.get("WATTGPU_READ_ONLY", "").strip().lower() in _TRUE
        return cls(team=team, read_only=read_only)

    def writer(self, user: Mapping) -> str | None:
        """Whom to record as having added a batch, or None when this visitor may not write."""
        if self.read_only:
            return None
        if user.get("is_logged_in"):
            return str(user.get("email") or user.get("name") or user.get("sub") or "signed-in user")
        if self.team:
            return None
        return cli_actor().replace("cli:", "app:", 1)

    def notice(self, login_available: bool) -> str:
        """Why this visitor cannot write, and what to do instead."""
        if self.read_only:
            return ("This replica is read-only: it shows the shared data but never writes. Add benchmark files with "
                    "`python -m wattgpu_core ingest FILE` (the README's *Deploy for a team* section).")
        if login_available:
            return "Sign in to upload or remove benchmark files; every batch records who added it."
        return ("This is a shared deployment: uploading and removing need a signed-in user, and sign-in is not "
                "configured (an [auth] section in .streamlit/secrets.toml). Use the CLI to add files.")
