"""The quality gate: rule kinds, paired comparisons, verdicts and signed webhooks."""
