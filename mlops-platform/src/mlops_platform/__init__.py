"""The MLOps platform a rendered project runs on: the parts every project shares, versioned.

See the library's README for what it holds and how a project depends on it.
"""

__version__ = "0.1.0"

# The folder beside a job's requirements.txt (the project's src/, the job code's root, the model's
# code/) that holds this library's wheel; requirements.txt names it with --find-links.
WHEELS_FOLDER = "platform-wheels"
