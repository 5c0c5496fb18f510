"""Agora's domain: models and rules, free of boto3 and of HTTP."""
