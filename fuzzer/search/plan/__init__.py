"""The plan: conflicting endpoint pairs ranked by likelihood, their schedules, the opening."""
