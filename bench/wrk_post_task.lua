-- wrk posting unique finished tasks as callbackd-load does (POST /v1/callbacks, the same body).
--   wrk -c64 -t2 -d5s -s bench/wrk_post_task.lua http://127.0.0.1:7780 -- APP_ID CALLBACK_URL RUN [TOKEN]
local counter = 0
local app, callback, run, token
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  app, callback, run, token = args[1], args[2], args[3], args[4]
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"app_id":"%s","callback_url":"%s","task_id":"%s-%d-%d","status":"completed",' ..
    '"endpoint":"generate","results":[{"id":"clip_1","audio_url":"https://cdn.example/1.mp3",' ..
    '"image_url":"https://cdn.example/1.jpg","title":"Night Drive","duration":182.5,' ..
    '"tags":"synthwave","prompt":"[Verse] neon","expire_at":1767225600000}]}',
    app, callback, run, tid, counter)
  local headers = { ["Content-Type"] = "application/json" }
  if token then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("POST", "/v1/callbacks", headers, body)
end
