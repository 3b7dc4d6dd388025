"""benchgate: continuous evaluation of LLMs as a CI/CD quality gate, built on Prefect 3."""

__version__ = "0.1.0"
