"""Features, models and their validation, and quality metrics against the truth."""
