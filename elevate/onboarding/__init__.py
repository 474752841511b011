"""Onboarding and key hygiene: configure, keys import, rotate, mfa enroll, doctor, and the
~/.aws and TOML editors they use. The core never imports this package."""
