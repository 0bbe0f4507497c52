"""Photos in: the import manifest and the content-addressed importer (per-file report, zip upload)."""
