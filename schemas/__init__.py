"""JSON Schemas of the suite's files (dataset, taxonomy, review queue, validation report)."""
