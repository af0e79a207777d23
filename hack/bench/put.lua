-- wrk script: JSON-gateway puts of unique keys "wrk/<tag>/<thread>/<n>" (tag from `-- TAG`),
-- value of VALUE_SIZE bytes (`-- TAG SIZE`, default 256).
local dir = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
dofile(dir .. 'wrk_common.lua')

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set('tid', #threads)
end

function init(args)
  tag = args[1] or 'x'
  value64 = b64(string.rep('v', tonumber(args[2] or '256')))
  counter = 0
  wrk.method = 'POST'
  wrk.headers['Content-Type'] = 'application/json'
end

function request()
  counter = counter + 1
  local key = string.format('wrk/%s/%d/%d', tag, tid, counter)
  return wrk.format(nil, '/v3/kv/put', nil, '{"key":"' .. b64(key) .. '","value":"' .. value64 .. '"}')
end
