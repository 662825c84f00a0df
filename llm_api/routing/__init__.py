"""The router (issue 11): deployments, model aliases, fallbacks, shared cooldowns, and the response cache.

    config.py        GATEWAY_CONFIG: the file, validated (errors name their path), keys from the environment
    plan.py          model or alias -> ordered targets, each with its deployments (by weight or least busy)
    breaker/         cooldowns per deployment: Redis (Lua, shared by every worker) or in process
    budget.py        one budget of upstream attempts per request; `budget_stop` for the retry policy
    executor.py      `execute(plan, attempt, budget=, breaker=)`: fallbacks, skips, 503 when all cool
    chain.py         what a request went through, for the access log, the span and the ledger
    outcomes.py      which failures fall back and which are the request's own
    metrics.py       fallbacks, cooldowns opened, requests by deployment
    router.py        `Router`: the above together, as the service uses it
    cache.py         exact-match response cache in Redis, scoped per key id; Cache-Control
    replay.py        cached answers as bytes and as neutral stream events, and back from a stream
    redis_client.py  the Redis client for REDIS_URL (plain, cluster, sentinel)

Nothing here imports FastAPI or a provider SDK.
"""
