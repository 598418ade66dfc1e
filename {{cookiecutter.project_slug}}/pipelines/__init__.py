"""The SageMaker pipeline of this project: ``get_pipeline`` builds it, ``run`` upserts/starts it."""
