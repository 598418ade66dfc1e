"""The project's ML code: data contract, training, evaluation, serving and monitoring.

Every module with a ``main`` is a command-line entry point (``python -m <package>.<module>``)
taking the same directories SageMaker passes to its jobs, so the local DVC chain and the SageMaker
pipeline run the very same code.
"""

__version__ = "0.1.0"
