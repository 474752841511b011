"""The exception tree: every exception elevate defines, each with what becomes of it.

An ElevateError carries a one-line, user-facing message and an exit code; elevate.__main__
turns it into `elevate: error: <message>` on stderr in exactly one place. Messages never
contain a secret: they say where a value came from, not what it was. The few that are not
ElevateErrors are signals between two modules (the one below raises, the one above
translates) or an unwinding; each says so.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ElevateError(Exception):
    """Base of every error elevate reports to the user."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(ElevateError):
    """The config file is missing, unparsable, or holds an invalid value (exit 2)."""

    exit_code = EXIT_USAGE


class UsageError(ElevateError):
    """A command-line value is invalid (exit 2)."""

    exit_code = EXIT_USAGE


class KeyringError(ElevateError):
    """The OS keyring is unusable, locked, or lacks the requested key set."""


class MfaError(ElevateError):
    """No MFA code could be obtained, or the code is malformed."""


class TerminalBusy(MfaError):
    """The terminal's input is another program's: a shell or job in the foreground, or a
    full-screen program that has it out of line mode. A code typed would go there."""


class AwsError(ElevateError):
    """An AWS service refused a call or could not be reached; the message says what to do."""

    service = "AWS"


class StsError(AwsError):
    """STS (AssumeRole, GetSessionToken, GetCallerIdentity) failed."""

    service = "STS"


class IamError(AwsError):
    """IAM (access keys, MFA devices) failed."""

    service = "IAM"


class CloudFormationError(AwsError):
    """CloudFormation (reading a stack's outputs) failed."""

    service = "CloudFormation"


class FederationError(AwsError):
    """The console sign-in (federation) endpoint failed, or no browser could be opened."""

    service = "sign-in"


class MfaCodeRejected(StsError):
    """STS rejected the MFA code: wrong, or already used in this 30-second window."""


class CacheError(ElevateError):
    """The session cache is unsafe (permissions, owner, symlink) or unwritable."""


class LockTimeout(CacheError):
    """The wait for another elevate process holding the entry's lock gave up."""


class FailedElsewhere(ElevateError):
    """The error another elevate process recorded for the same entry, answered again: exit
    with that process's exit code (elevate.cache sets it from the record)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"another elevate process failed: {reason}")
        self.reason = reason


class OutputError(ElevateError):
    """A value cannot be written safely in the requested format."""


class LaunchError(ElevateError):
    """The command to run could not be started."""

    exit_code = 127


class ServerError(ElevateError):
    """The loopback credential server cannot start (a refused address, no free port)."""


class CredentialsUnavailable(ElevateError):
    """The credential server has no credentials within a request's deadline (a refresh is still
    running, or the command it ran for has ended): the request gets a 503, elevate exits 1 only
    if it reaches the exit point."""


class AuditError(ElevateError):
    """`elevate admin audit` could not audit (a refused permission, an unreadable report): exit 2,
    since 1 means the audit ran and found something."""

    exit_code = EXIT_USAGE


class DeployError(ElevateError):
    """`elevate admin deploy` (scripts/deploy-stack) cannot go on: one line on stderr, exit 1."""


class CommandLineError(ElevateError):
    """click rejected the command line; `message` is click's own text (usage and error), shown as is."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConsoleTimeout(Exception):
    """Nothing was typed at the Windows console before the deadline: elevate.hostos raises it,
    the prompt that asked (elevate.mfa, elevate.keyfile) turns it into its own error, so it never
    reaches the exit point."""


class NeedPassphrase(Exception):
    """The unlock held in the kernel lacks a key the keyring file needs: elevate.keyfile, which
    raises it inside the backend's unlock, catches it there, forgets the held unlock and asks
    for the passphrase; it never reaches the exit point."""


# --- signals between modules: raised by elevate.stsquery, translated by elevate.aws into the
# service's AwsError (exit 1); they never reach the exit point themselves ---------------------


class Unsupported(Exception):
    """A setting elevate.stsquery's transport does not cover: elevate.aws uses a botocore client
    instead, so this never reaches the exit point."""


class ResponseTooLarge(Exception):
    """An endpoint sent more than the answer's cap: not read further, never parsed; elevate.aws
    turns it into the service's AwsError (exit 1)."""


class ResponseParserError(Exception):
    """An answer that is not XML, named as botocore's parser names it (a message shows the
    name); elevate.aws turns it into the service's AwsError (exit 1)."""


class UnsafeAnswer(ValueError):
    """An answer that carries a DOCTYPE (entity definitions, external references): never parsed;
    elevate.aws turns it into the service's AwsError (exit 1)."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (temp files removed, locks released) and exit 128+N.

    Not an ElevateError, so a terminated lock holder is not reported to waiters as a
    failure: like a killed one, it lets a waiter take over. elevate.__main__ exits 128+N.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
