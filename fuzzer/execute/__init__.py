"""A scenario to an execution: gates, caches, the scheduler, the runner, the server, logins."""
