"""Local tooling: the embedded DynamoDB, the local API Gateway, invoke and import."""
