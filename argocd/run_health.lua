-- Runs an Argo CD health.lua the way Argo CD does: the resource as the global `obj`, the
-- script's returned table as its health. Lua 5.1 (Argo CD embeds gopher-lua, a Lua 5.1).
--
--   lua5.1 argocd/run_health.lua <health.lua> < object.lua
--
-- object.lua is a Lua table constructor (tests/argocd_scenarios.py: lua_literal). Prints the
-- status on the first line and the message, verbatim, after it. The script sees only the
-- standard functions that make sense in a health check, so reaching for io or os fails here.
local path = assert(arg[1], "usage: lua5.1 run_health.lua <health.lua> < object.lua")
local script = assert(loadfile(path))
local source = io.read("*a")
local object = assert(loadstring("return " .. source, "=object"))()

local env = {
  obj = object,
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  string = string, table = table, math = math,
}
setfenv(script, env)
local hs = script()

local statuses = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }
if type(hs) ~= "table" then
  error("the health check returned " .. type(hs) .. ", not a table")
end
if not statuses[hs.status] then
  error("the health check returned the status " .. tostring(hs.status) .. ", which Argo CD does not know")
end
if hs.message ~= nil and type(hs.message) ~= "string" then
  error("the health check returned a message of type " .. type(hs.message))
end
io.write(hs.status, "\n", hs.message or "")
