"""The triple check itself: settings, the read queue and its quality-control items, derived image states, check 2, adjudication, landmark corrections, what a reader may see, the status counts."""
