-- wrk script (bench/wrk.py): hand out pre-signed requests from a file, one a line:
-- path TAB header-name TAB header-value TAB body. Arguments: the file, wrk's thread count.
-- Thread t of n takes lines t, t + n, t + 2n, ... so no request repeats while the file
-- lasts (then it cycles).
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

function init(args)
   requests = {}
   local file = assert(io.open(args[1], "r"))
   for line in file:lines() do
      local path, name, value, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", path,
         {["Content-Type"] = "application/json", [name] = value}, body)
   end
   file:close()
   step = tonumber(args[2])
   index = id
end

function request()
   local r = requests[(index % #requests) + 1]
   index = index + step
   return r
end
