"""Declarative YAML search spaces: load, validate (file:line errors) and turn into Optuna objects.

``loader.load_spec`` reads a file into a ``schema.Spec``; bad input raises ``errors.SpecError``. No Ray and no
storage here (``sweeper`` maps a Spec onto Ray Tune). ``errors`` loads neither pydantic nor Optuna, so the CLI
starts fast: import the module you need.
"""
