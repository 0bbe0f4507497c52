"""Agreement statistics (not the audit log): the named measures, subject-cluster intervals, comparisons, the report and plots, loading from the database, out-of-fold range classes, prediagnosis."""
