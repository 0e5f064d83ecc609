"""From YAML, overrides and the environment to a checked Config; its JSON Schema; sweeps."""
