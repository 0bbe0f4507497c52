"""The triple-check workflow: import, reads, checks, adjudication, export and agreement."""
