"""The Lua scripts of the reservation engine: each runs atomically in ONE round trip.

Every key one call touches carries the same hash tag, ``{<prefix>:spend:<key id>}``, so the scripts run
on Redis Cluster too (a script may only touch keys of one slot). Per key id:

    {tag}:tok       HASH   per token window W (seconds): "W:idx" (window number), "W:cur", "W:prev"
                           (settled tokens of this and the previous window: a sliding-window counter)
    {tag}:res       ZSET   reservation id -> expiry (ms, Redis clock)
    {tag}:held      HASH   reservation id -> "<tokens> <nano-USD>", and the sums "#tokens", "#nano"
    {tag}:b:<per>   HASH   "spent" (nano-USD settled this budget period), "ok" (the rebuilt-marker)

Money is counted in whole nano-dollars (integers, exact in Lua's doubles up to $9M). Expired reservations
(a worker died mid-request) are pruned at the start of every reserve, so the sums stay exact.
Times come from Redis (`TIME`), so every worker and instance agrees on the windows.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(amount)
    local space = string.find(amount, ' ')
    return tonumber(string.sub(amount, 1, space - 1)), tonumber(string.sub(amount, space + 1))
end

local function unhold(held, res, id)
    local amount = redis.call('hget', held, id)
    if amount then
        local tokens, nano = split(amount)
        redis.call('hincrby', held, '#tokens', -tokens)
        redis.call('hincrby', held, '#nano', -nano)
        redis.call('hdel', held, id)
    end
    redis.call('zrem', res, id)
    return amount
end

-- Roll window W to the current window number; the weighted count of settled tokens in the last W s.
local function window(tok, w, now)
    local length = w * 1000
    local idx = math.floor(now / length)
    local stored = tonumber(redis.call('hget', tok, w .. ':idx') or -1)
    local cur = tonumber(redis.call('hget', tok, w .. ':cur') or 0)
    local prev = tonumber(redis.call('hget', tok, w .. ':prev') or 0)
    if stored ~= idx then
        if stored == idx - 1 then prev = cur else prev = 0 end
        cur = 0
        redis.call('hset', tok, w .. ':idx', idx, w .. ':cur', 0, w .. ':prev', prev)
    end
    local elapsed = now - idx * length
    return math.ceil(prev * (length - elapsed) / length) + cur, length - elapsed
end
"""

# KEYS: tok, res, held, budget. ARGV: id, tokens, nano, ttl_ms, budget_nano (-1: none), windows...
# (pairs of W seconds and limit). Returns {status, limit, remaining, reset_ms, committed_nano}:
# status 1 reserved, 0 over a token limit, 4 larger than a token limit, 2 over budget, 3 rebuild first.
RESERVE = (
    _COMMON
    + """
local tok, res, held, budget_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, tokens, nano = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl_ms, budget = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()

for _, expired in ipairs(redis.call('zrangebyscore', res, '-inf', now, 'LIMIT', 0, 512)) do
    unhold(held, res, expired)
end
local held_tokens = tonumber(redis.call('hget', held, '#tokens') or 0)
local held_nano = tonumber(redis.call('hget', held, '#nano') or 0)

local status, limit, remaining, reset_ms, longest = 1, -1, -1, 0, 0
for i = 6, #ARGV, 2 do
    local w, cap = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
    if w > longest then longest = w end
    local used, left_ms = window(tok, w, now)
    local room = cap - used - held_tokens
    if limit < 0 or room - tokens < remaining then
        limit, remaining, reset_ms = cap, room - tokens, left_ms
    end
    if tokens > cap then
        status = 4
    elseif tokens > room and status == 1 then
        status = 0
    end
end

local committed = 0
if budget >= 0 then
    if not redis.call('hget', budget_key, 'ok') then
        return {3, limit, remaining, reset_ms, 0}
    end
    committed = tonumber(redis.call('hget', budget_key, 'spent') or 0) + held_nano
    if committed + nano > budget then
        return {2, limit, remaining, reset_ms, committed}
    end
end
if status ~= 1 then
    return {status, limit, remaining + tokens, reset_ms, committed}
end

redis.call('zadd', res, now + ttl_ms, id)
redis.call('hset', held, id, tokens .. ' ' .. nano)
redis.call('hincrby', held, '#tokens', tokens)
redis.call('hincrby', held, '#nano', nano)
redis.call('pexpire', res, ttl_ms)
redis.call('pexpire', held, ttl_ms)
if longest > 0 then redis.call('pexpire', tok, longest * 2000) end
return {1, limit, remaining, reset_ms, committed + nano}
"""
)

# KEYS: tok, res, held, budget. ARGV: id, tokens, nano, budget_ttl_s (-1: none, 0: no budget), windows...
# (W seconds). Replaces the reservation by the actual usage. Returns 1 if the reservation was still held.
SETTLE = (
    _COMMON
    + """
local tok, res, held, budget_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, tokens, nano, budget_ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local was_held = unhold(held, res, id) and 1 or 0
local longest = 0
for i = 5, #ARGV do
    local w = tonumber(ARGV[i])
    if w > longest then longest = w end
    window(tok, w, now)
    redis.call('hincrby', tok, w .. ':cur', tokens)
end
if longest > 0 then redis.call('pexpire', tok, longest * 2000) end
if budget_ttl ~= 0 then
    redis.call('hincrby', budget_key, 'spent', nano)
    if budget_ttl > 0 then redis.call('expire', budget_key, budget_ttl) end
end
return was_held
"""
)

# KEYS: res, held. ARGV: id.
RELEASE = (
    _COMMON
    + """
return unhold(KEYS[2], KEYS[1], ARGV[1]) and 1 or 0
"""
)

# KEYS: budget. ARGV: spent_nano (from the ledger), ttl_s (-1: none). Sets the period's spend unless
# someone already did; what was settled since the flush (without the marker) is kept if larger.
REBUILD = """
if redis.call('hget', KEYS[1], 'ok') then return 0 end
local spent = math.max(tonumber(ARGV[1]), tonumber(redis.call('hget', KEYS[1], 'spent') or 0))
redis.call('hset', KEYS[1], 'spent', spent, 'ok', 1)
if tonumber(ARGV[2]) > 0 then redis.call('expire', KEYS[1], tonumber(ARGV[2])) end
return 1
"""

# KEYS: tok, held, budget. ARGV: W seconds of the minute window, has_budget (0/1).
# Returns {settled tokens in the last W s, held tokens, spent nano, held nano}.
SNAPSHOT = (
    _COMMON
    + """
local used = window(KEYS[1], tonumber(ARGV[1]), now_ms())
if redis.call('pttl', KEYS[1]) == -1 then redis.call('pexpire', KEYS[1], tonumber(ARGV[1]) * 2000) end
local spent = 0
if ARGV[2] == '1' then spent = tonumber(redis.call('hget', KEYS[3], 'spent') or 0) end
return {used, tonumber(redis.call('hget', KEYS[2], '#tokens') or 0), spent,
        tonumber(redis.call('hget', KEYS[2], '#nano') or 0)}
"""
)
