"""Publish the template as a SageMaker Project template (Service Catalog product or S3 template)."""
