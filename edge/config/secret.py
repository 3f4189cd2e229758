"""Secrets are never inline: a reference to an environment variable, a file, or a systemd
credential (a file in ``$CREDENTIALS_DIRECTORY``, loaded with ``LoadCredential=``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from edge.config.base import StrictModel
from edge.errors import SecretError

# systemd/lane@.service's SetCredential= placeholder when a LoadCredential= file is missing.
MISSING_CREDENTIAL = "lane-agent.missing-credential"


class SecretRef(StrictModel):
    """Where a secret is read from: exactly one of ``env``, ``file`` or ``credential``."""

    env: str | None = Field(None, description="Name of an environment variable.")
    file: Path | None = Field(None, description="Path of a file holding the secret.")
    credential: str | None = Field(
        None, description="Name of a systemd credential (a file in $CREDENTIALS_DIRECTORY)."
    )

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str | int | float):
            raise ValueError(
                "secrets are never inline: use {env: NAME}, {file: PATH} or {credential: NAME}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "file", "credential") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file, credential")
        return self

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return f"credential {self.credential}"

    def path(self) -> Path:
        """The file holding the secret, for a library that reads it by name (a TLS key).

        Only ``file`` and ``credential`` have one; ``read()`` has already checked it."""
        if self.file is not None:
            return self.file
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if self.credential is None or not directory:
            raise SecretError(f"{self.describe()} is not a file")
        return Path(directory) / self.credential

    def read(self) -> str:
        """Return the secret's value, or raise SecretError saying what is missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"environment variable {self.env} is not set")
            return value
        if self.file is not None:
            path = self.file
        else:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise SecretError(
                    f"credential {self.credential}: $CREDENTIALS_DIRECTORY is not set "
                    "(add LoadCredential= to the unit)"
                )
            path = Path(directory) / str(self.credential)
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise SecretError(f"secret file {path} does not exist") from None
        except OSError as exc:
            raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from None
        if self.credential is not None and value == MISSING_CREDENTIAL:
            raise SecretError(
                f"credential {self.credential}: the unit's LoadCredential= file for it is "
                f"missing (/etc/lane-agent/credentials/<LANE>/{self.credential})"
            )
        return value
