"""Teacher-generated data: seed prompts, candidate trajectories and their reward labels."""
