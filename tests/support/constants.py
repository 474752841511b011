"""Values many tests share: AWS's documented example key pair and the ARNs of profile dev."""

from __future__ import annotations

# The example key pair from AWS's documentation: the shape of real long-term keys, never valid.
EXAMPLE_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/dev"
ROLE_PROD = f"arn:aws:iam::{ACCOUNT}:role/prod"
SERIAL = f"arn:aws:iam::{ACCOUNT}:mfa/alice"
