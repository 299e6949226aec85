"""Model-based faithfulness of maps (torch), for faithfulness@B: Average Drop, Increase in Confidence,
deletion and insertion AUC (``faithfulness.scores``, PROTOCOL §6). Apart from ``cams`` so that editing it
re-runs only the faithfulness stage, never the map dump."""
