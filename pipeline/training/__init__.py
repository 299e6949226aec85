"""Training (torch), for train@B: the epoch loop, optimisers and schedules (`training.loop`)."""
