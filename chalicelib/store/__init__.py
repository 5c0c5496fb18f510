"""The only code that knows DynamoDB keys and S3 keys; every key starts with the tenant."""
