"""Provision an IAM user, access key, virtual MFA device and role in a moto server."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
import pyotp

from support.constants import EXAMPLE_ID, EXAMPLE_SECRET

TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    ],
}

# The services tests create clients for (boto3-stubs types client() per service name).
AwsService = Literal["cloudformation", "iam", "sts"]


@dataclass(frozen=True)
class Provisioned:
    user_name: str
    account_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    role_arn: str = ""
    mfa_serial: str = ""
    mfa_seed: str = field(default="", repr=False)

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP(self.mfa_seed)


def _client(service: AwsService, endpoint: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=EXAMPLE_ID,
        aws_secret_access_key=EXAMPLE_SECRET,
    )


def provision(endpoint: str, user_name: str = "alice", role_name: str = "DeveloperElevated") -> Provisioned:
    """Create (or reuse) the role, then a fresh user with a key and a virtual MFA device."""
    iam = _client("iam", endpoint)
    sts = _client("sts", endpoint)
    account = sts.get_caller_identity()["Account"]
    try:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role_arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
            MaxSessionDuration=43200,
        )["Role"]["Arn"]
    iam.create_user(UserName=user_name)
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    device = iam.create_virtual_mfa_device(VirtualMFADeviceName=user_name)["VirtualMFADevice"]
    seed = device["Base32StringSeed"]
    seed = seed.decode() if isinstance(seed, bytes) else seed
    totp = pyotp.TOTP(seed)
    iam.enable_mfa_device(
        UserName=user_name,
        SerialNumber=device["SerialNumber"],
        AuthenticationCode1=totp.at(time.time() - 30),
        AuthenticationCode2=totp.now(),
    )
    return Provisioned(
        user_name=user_name,
        account_id=account,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
        role_arn=role_arn,
        mfa_serial=device["SerialNumber"],
        mfa_seed=seed,
    )
