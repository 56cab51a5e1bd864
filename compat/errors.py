"""Errors that end a command: each owns its exit code and says what to try next."""

from __future__ import annotations

from typing import Optional


class CompatError(Exception):
    """Base: a message, a hint, and the process exit code. Both texts are scrubbed of secrets
    when the error is made: a message quotes its input, and whoever shows it (the CLI, a
    cluster report, a caller of the library) shows no credential from it."""

    exit_code = 1

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        from compat.redact import redact_text  # only when an error is made

        message = redact_text(message)
        super().__init__(message)
        self.message = message
        self.hint = redact_text(hint) if hint else hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class UsageError(CompatError):
    """Bad flags or arguments (exit 2)."""

    exit_code = 2


class InputError(CompatError):
    """Unreadable or invalid input file or bundled data (exit 3)."""

    exit_code = 3


class DataError(InputError):
    """The database under matrices/ failed validation (exit 3); `problems` lists each one."""

    def __init__(self, problems: list[str], hint: Optional[str] = None) -> None:
        from compat.redact import redact_text

        self.problems = [redact_text(p) for p in problems]
        head = f"{len(problems)} problem(s) in the database"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems), hint)


class NetworkError(CompatError):
    """The package index could not be reached or answered wrongly (exit 4)."""

    exit_code = 4


class OutputError(CompatError):
    """The report could not be written (disk full, closed pipe end, unwritable file) (exit 74)."""

    exit_code = 74


class ResolutionError(CompatError):
    """No tuple satisfies the target (exit 1)."""

    exit_code = 1


# Not a CompatError: a bug. main() reports it with a short report file and this exit code, so a
# crash is never read as a verdict (1) or a usage error (2).
INTERNAL_ERROR_EXIT = 70
