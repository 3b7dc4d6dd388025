"""What users write and what flows between layers: pydantic models and plain data, nothing else of ours."""
