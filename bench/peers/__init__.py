"""Agora side by side with MLflow and FastTrackML (`make bench`, entry point `bench/compare.py`).

- `servers`:  start and stop the three servers (Agora's local stack, MLflow, FastTrackML) as process groups
- `clients`:  one small client per API (Agora's `/api/v1/experiments`, the MLflow REST API), same methods
- `workload`: the operations (the table's rows), written once against that client interface
- `meter`:    the same operations in-process (chalice.test.Client over moto), counting DynamoDB and S3 work
- `coldstart`: `import app` against `import boto3` in fresh interpreters
- `report`:   the Markdown tables and the JSON
"""
