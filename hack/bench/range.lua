-- wrk script: JSON-gateway linearizable range of one existing key ("bench/range", put beforehand).
local dir = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
dofile(dir .. 'wrk_common.lua')

wrk.method = 'POST'
wrk.path = '/v3/kv/range'
wrk.headers['Content-Type'] = 'application/json'
wrk.body = '{"key":"' .. b64('bench/range') .. '"}'
