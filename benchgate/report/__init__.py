"""The report: building it from results, the files written (JSON, markdown, JUnit) and metric history."""
