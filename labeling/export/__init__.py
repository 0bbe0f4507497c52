"""Datasets out: the export plan, de-identification, crops, subject-grouped splits, the data card, and the download of a finished export."""
