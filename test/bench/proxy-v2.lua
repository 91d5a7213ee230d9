-- A PROXY protocol v2 header (PROXY command, TCP over IPv4, 192.0.2.1:12345 to 127.0.0.1:80) before the first
-- request of each connection, as a load balancer sends it. wrk calls request() as a connection starts each
-- request: with Connection: close (args "close") every request starts a connection; with keep-alive (args
-- "keepalive N") only the first N calls do, one per connection, since connections are opened once. wrk's
-- first call, in the first thread (the bench runs one), is its check of the request with its HTTP parser before
-- any connection: that one goes without the header.
local dir = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
dofile(dir .. 'wrk-report.lua')

local header = '\r\n\r\n\0\r\nQUIT\n' .. '\33\17\0\12' .. '\192\0\2\1' .. '\127\0\0\1' .. '\48\57' .. '\0\80'
local every, firsts, started, checked = false, 0, 0, false

function init(args)
  every = args[1] == 'close'
  firsts = tonumber(args[2] or '0')
end

function request()
  if not checked then
    checked = true
    return wrk.format()
  end
  started = started + 1
  if every or started <= firsts then return header .. wrk.format() end
  return wrk.format()
end
