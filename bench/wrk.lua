-- wrk script of the benchmark (bench/wrk.rs): sends the request described in the file
-- named by $WRK_REQUEST: the method on the first line, then "Name: value" header lines,
-- an empty line, and the body. wrk adds Host and Content-Length. The request is built
-- once (no per-request Lua), so wrk costs the same against every server.
local f = assert(io.open(os.getenv("WRK_REQUEST"), "rb"))
local text = f:read("*a")
f:close()
local head, body = text:match("^(.-)\n\n(.*)$")
local first = true
for line in head:gmatch("[^\n]+") do
  if first then
    wrk.method = line
    first = false
  else
    local name, value = line:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
end
if #body > 0 then
  wrk.body = body
end
