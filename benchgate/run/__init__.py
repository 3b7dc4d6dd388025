"""Running an evaluation: the generation engine, scoring, summaries and content-addressed cache keys."""
