"""aws-elevate: keyring-held IAM keys plus an MFA code become one-hour role credentials.

Kept empty of imports: every `elevate` call, including the cached credential_process
fast path, imports this module first.
"""

__version__ = "0.1.0"
