"""Agora: a multi-tenant, serverless experiment platform (Chalice, DynamoDB, S3, Step Functions)."""
