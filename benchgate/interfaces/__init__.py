"""What people and CI jobs call: the CLI, the HTTP API, its client and the prompt preview.

The only library package that may import the Prefect flows.
"""
