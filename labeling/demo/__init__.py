"""The SYNTHETIC demo: the FNP face generator and the simulated readers and adjudicator that carry a demo project through the workflow."""
