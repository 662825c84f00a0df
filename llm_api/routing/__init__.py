"""The router: deployments, aliases, fallbacks, shared cooldowns and the response cache (issue 11)."""
