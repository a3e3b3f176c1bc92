"""Declarative YAML search spaces: load, validate (file:line errors) and turn into Optuna objects.

``loader.load_spec`` reads a file into a ``schema.Spec``; ``errors.SpecError`` is what bad input raises. No Ray and
no storage here: the driver (``sweeper``) maps a Spec onto Ray Tune, the study and its sampler. What a training
function accepts and reports is ``trials.entrypoint``'s. Import the module you need: ``errors`` loads neither
pydantic nor Optuna, so the CLI starts fast.
"""
