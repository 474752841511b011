"""Admin tools: deploy the IAM stack, check its drift, audit developers' keys.

The core never imports this package."""
